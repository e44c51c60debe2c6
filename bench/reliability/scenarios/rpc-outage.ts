/**
 * (b) RPC outage under load: the TcpProxy between the service and its chain is cut while
 * writers post. Ingest must go on (201, never a 5xx); once the proxy is restored, the backlog is
 * anchored, each batch exactly once, and every acknowledged event is provable.
 */
import { freePort } from "../../../test/support/hardhat-node.ts";
import {
  Load,
  WRITER_ORG,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
} from "../client.ts";
import { startExternalChain } from "../external-chain.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess, sleep } from "../service-process.ts";
import { anchoredOnChain, batchSequenceProblems, withTempDir } from "../workspace.ts";

export interface RpcOutageOptions {
  outages: number;
  outageMs: number;
  writers: number;
  anchorTimeoutMs: number;
  log?: (message: string) => void;
}

export const RPC_OUTAGE_DEFAULTS: RpcOutageOptions = {
  outages: 3,
  outageMs: 15_000,
  writers: 8,
  anchorTimeoutMs: 120_000,
};

export async function runRpcOutage(opts: RpcOutageOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "RPC outage under load",
    `${opts.outages} × ${opts.outageMs / 1000} s`,
  );
  const log = opts.log ?? (() => undefined);
  await withTempDir("outage", async (dataDir) => {
    const chain = await startExternalChain(dataDir);
    let service: ServiceProcess | undefined;
    try {
      service = await ServiceProcess.start({
        ...chain.env,
        PORT: String(await freePort()),
        BATCH_MAX_EVENTS: "64",
        BATCH_MAX_WAIT_MS: "100",
        ANCHOR_RETRY_MAX_MS: "2000",
        RPC_TIMEOUT_MS: "2000",
        LOG_LEVEL: "warn",
      });
      const base = service.baseUrl;
      const writerKey = await createKey(base, service.adminKey!, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const load = new Load(() => base, writerKey, {
        concurrency: opts.writers,
        maxMs: opts.outages * (opts.outageMs + 4_000) + 10_000,
        maxEvents: 1_000_000,
        runId: "outage",
      });
      let acceptedDuringOutages = 0;
      let serverErrorsDuringOutages = 0;
      let outagesWithIngest = 0;
      for (let i = 0; i < opts.outages; i++) {
        await sleep(2_000);
        const ackedBefore = load.acked.length;
        const errorsBefore = load.serverErrors;
        chain.proxy.cut();
        await sleep(opts.outageMs);
        const accepted = load.acked.length - ackedBefore;
        acceptedDuringOutages += accepted;
        serverErrorsDuringOutages += load.serverErrors - errorsBefore;
        if (accepted > 0) outagesWithIngest++;
        chain.proxy.restore();
        log(`outage ${i + 1}/${opts.outages}: ${accepted} events accepted while the RPC was down`);
      }
      await sleep(2_000);
      await load.stop();
      report.check(
        "ingest continues during the outage (2xx, no 5xx)",
        outagesWithIngest === opts.outages && serverErrorsDuringOutages === 0,
        `${acceptedDuringOutages} events accepted while cut; ${outagesWithIngest}/${opts.outages} outages with ingest; ${serverErrorsDuringOutages} 5xx`,
      );
      const check = await checkAcknowledged(base, writerKey, chain.node.url, load.acked, {
        anchorTimeoutMs: opts.anchorTimeoutMs,
      });
      report.check(
        "after restore the backlog is anchored: every acknowledged event provable",
        checkPassed(check) && load.serverErrors === 0,
        `${describeCheck(check)}; ${load.serverErrors} 5xx overall`,
      );
      const anchored = await anchoredOnChain(chain.node.url, chain.logId);
      const problems = batchSequenceProblems(anchored);
      const last = anchored.at(-1);
      const covered = last ? last.firstSeq + last.count : 0;
      const maxSeq = Math.max(-1, ...load.acked.map((r) => r.seq));
      report.check(
        "no duplicate or missing batch on-chain, nothing lost",
        problems.length === 0 && covered > maxSeq,
        problems.length
          ? problems.slice(0, 3).join("; ")
          : `${anchored.length} batches cover seqs 0..${covered - 1}`,
      );
    } finally {
      await service?.kill("SIGKILL");
      await chain.close();
    }
  });
  return report.finish();
}

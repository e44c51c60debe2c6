/**
 * (b) RPC outage under load: the TcpProxy between the service and its chain is cut while
 * writers post. Ingest must go on (201, never a 5xx); once the proxy is restored, the backlog is
 * anchored, each batch exactly once, and every acknowledged event is provable. The drain time —
 * from the RPC's return until every event acknowledged before it is anchored on-chain — is
 * measured on the node itself (not through the proxy) from the registry's log head.
 */
import path from "node:path";
import { RegistryClient } from "../../../services/chain/registry-client.ts";
import { freePort } from "../../../test/support/hardhat-node.ts";
import {
  Load,
  WRITER_ORG,
  checkAcknowledged,
  checkPassed,
  createKey,
  checkAcknowledgedStored,
  describeCheck,
  describeStoredCheck,
  lastSeq,
  sampleOf,
  storedCheckPassed,
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
  /**
   * BATCH_MAX_EVENTS and BATCH_MAX_WAIT_MS of the service. The backlog drains at the anchor
   * loop's pace in batches per second, so the 5-minute outage runs with production's defaults
   * (10,000 events or 2 s); the short test seals tiny batches to exercise many of them.
   */
  batchMaxEvents: number;
  batchMaxWaitMs: number;
  log?: (message: string) => void;
}

/** One 5-minute outage by default; `--long-outage` in run.ts makes it 30 minutes. */
export const RPC_OUTAGE_DEFAULTS: RpcOutageOptions = {
  outages: 1,
  outageMs: 300_000,
  writers: 8,
  anchorTimeoutMs: 900_000,
  batchMaxEvents: 10_000,
  batchMaxWaitMs: 2_000,
};

export const LONG_OUTAGE_MS = 1_800_000;

/** Bundles fetched and verified end to end; the rest are checked through the stored log. */
const E2E_SAMPLE = 2_000;

export async function runRpcOutage(opts: RpcOutageOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "RPC outage under load",
    `${opts.outages} × ${opts.outageMs / 1000} s, batches ≤ ${opts.batchMaxEvents} events / ${opts.batchMaxWaitMs} ms`,
  );
  const log = opts.log ?? (() => undefined);
  await withTempDir("outage", async (dataDir) => {
    const chain = await startExternalChain(dataDir);
    let service: ServiceProcess | undefined;
    try {
      service = await ServiceProcess.start({
        ...chain.env,
        PORT: String(await freePort()),
        BATCH_MAX_EVENTS: String(opts.batchMaxEvents),
        BATCH_MAX_WAIT_MS: String(opts.batchMaxWaitMs),
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
        // Stopped explicitly; the bound only keeps a stuck run finite.
        maxMs: opts.outages * (opts.outageMs + opts.anchorTimeoutMs + 4_000) + 10_000,
        maxEvents: 1_000_000,
        runId: "outage",
      });
      const registry = await RegistryClient.connect({
        rpcUrl: chain.node.url,
        address: chain.contract,
      });
      let acceptedDuringOutages = 0;
      let serverErrorsDuringOutages = 0;
      let overloadedDuringOutages = 0;
      let outagesWithIngest = 0;
      const drains: Array<{ backlog: number; batches: number; ms: number }> = [];
      try {
        for (let i = 0; i < opts.outages; i++) {
          await sleep(2_000);
          const ackedBefore = load.acked.length;
          const errorsBefore = load.serverErrors;
          const overloadedBefore = load.overloaded;
          chain.proxy.cut();
          await sleep(opts.outageMs);
          const accepted = load.acked.length - ackedBefore;
          acceptedDuringOutages += accepted;
          serverErrorsDuringOutages += load.serverErrors - errorsBefore;
          overloadedDuringOutages += load.overloaded - overloadedBefore;
          if (accepted > 0) outagesWithIngest++;
          // Everything acknowledged up to the RPC's return must drain; load goes on meanwhile.
          const target = lastSeq(load.acked);
          const atRestore = await registry.logHead(chain.logId);
          const restoredAt = Date.now();
          chain.proxy.restore();
          log(
            `outage ${i + 1}/${opts.outages}: ${accepted} events accepted while the RPC was down`,
          );
          const drainDeadline = restoredAt + opts.anchorTimeoutMs;
          let now = atRestore;
          while (now.nextSeq <= target) {
            if (Date.now() > drainDeadline)
              throw new Error(`backlog not drained within ${opts.anchorTimeoutMs} ms`);
            await sleep(250);
            now = await registry.logHead(chain.logId);
          }
          const drain = {
            backlog: target + 1 - atRestore.nextSeq,
            batches: now.nextBatchNo - atRestore.nextBatchNo,
            ms: Date.now() - restoredAt,
          };
          drains.push(drain);
          log(
            `outage ${i + 1}: backlog of ${drain.backlog} events (${drain.batches} batches) anchored ${(drain.ms / 1000).toFixed(1)} s after the RPC returned`,
          );
        }
      } finally {
        registry.destroy();
      }
      await sleep(2_000);
      await load.stop();
      report.check(
        "ingest continues during the outage (2xx; no 5xx but backpressure's 503 OVERLOADED)",
        outagesWithIngest === opts.outages && serverErrorsDuringOutages === 0,
        `${acceptedDuringOutages} events accepted while cut; ${outagesWithIngest}/${opts.outages} outages with ingest; ${serverErrorsDuringOutages} 5xx; ${overloadedDuringOutages} × 503 OVERLOADED (backlog at its bound, Retry-After honoured)`,
      );
      // End to end for a sample (bundle over HTTP, standalone verifier against the chain), then
      // every acknowledged event through the audit of the stopped service's ledger.
      const sample = sampleOf(load.acked, E2E_SAMPLE);
      const check = await checkAcknowledged(base, writerKey, chain.node.url, sample, {
        anchorTimeoutMs: opts.anchorTimeoutMs,
      });
      await service.kill("SIGTERM");
      const stored = await checkAcknowledgedStored(
        path.join(dataDir, "ledger"),
        chain.node.url,
        load.acked,
      );
      const drained = drains
        .map(
          (d) =>
            `${d.backlog} events (${d.batches} batches) in ${(d.ms / 1000).toFixed(1)} s after the RPC returned`,
        )
        .join(", ");
      report.check(
        "after restore the backlog is anchored: every acknowledged event provable",
        checkPassed(check) && storedCheckPassed(stored) && load.serverErrors === 0,
        `drained ${drained}; ${describeStoredCheck(stored)}; end to end (bundle + standalone verifier) for a sample: ${describeCheck(check)}; ${load.serverErrors} 5xx overall, ${load.overloaded} × 503 OVERLOADED`,
      );
      const anchored = await anchoredOnChain(chain.node.url, chain.logId);
      const problems = batchSequenceProblems(anchored);
      const last = anchored.at(-1);
      const covered = last ? last.firstSeq + last.count : 0;
      const maxSeq = lastSeq(load.acked);
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

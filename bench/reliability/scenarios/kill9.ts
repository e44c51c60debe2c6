/**
 * (a) kill -9 under load: writers post concurrently, the service is SIGKILLed at a random
 * moment and restarted on the same DATA_DIR (the external chain survives). After each restart
 * every receipt acknowledged before the kill is served unchanged and provable on-chain.
 */
import { freePort } from "../../../test/support/hardhat-node.ts";
import {
  type AckedReceipt,
  Load,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
  WRITER_ORG,
} from "../client.ts";
import { startExternalChain } from "../external-chain.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess } from "../service-process.ts";
import { anchoredOnChain, batchSequenceProblems, randomInt, withTempDir } from "../workspace.ts";

export interface Kill9Options {
  cycles: number;
  writers: number;
  /** The kill comes at a random moment in [minRunMs, maxRunMs] after the load starts. */
  minRunMs: number;
  maxRunMs: number;
  maxEventsPerCycle: number;
  anchorTimeoutMs: number;
  log?: (message: string) => void;
}

export const KILL9_DEFAULTS: Kill9Options = {
  cycles: 20,
  writers: 8,
  minRunMs: 300,
  maxRunMs: 3_000,
  maxEventsPerCycle: 2_000,
  anchorTimeoutMs: 60_000,
};

export async function runKill9(opts: Kill9Options): Promise<ScenarioResult> {
  const report = new ScenarioReport("kill -9 under load", `${opts.cycles} cycles`);
  const log = opts.log ?? (() => undefined);
  await withTempDir("kill9", async (dataDir) => {
    const chain = await startExternalChain(dataDir);
    let service: ServiceProcess | undefined;
    try {
      const env = {
        ...chain.env,
        PORT: String(await freePort()),
        BATCH_MAX_EVENTS: "64",
        BATCH_MAX_WAIT_MS: "100",
        LOG_LEVEL: "warn",
      };
      service = await ServiceProcess.start(env);
      const base = service.baseUrl;
      const writerKey = await createKey(base, service.adminKey!, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const all: AckedReceipt[] = [];
      let failedCycles = 0;
      let killedWithAcks = 0;
      for (let cycle = 0; cycle < opts.cycles; cycle++) {
        const load = new Load(() => base, writerKey, {
          concurrency: opts.writers,
          maxMs: opts.maxRunMs + 5_000,
          maxEvents: opts.maxEventsPerCycle,
          runId: `kill9-${cycle}`,
        });
        const runMs = randomInt(opts.minRunMs, opts.maxRunMs);
        await new Promise((r) => setTimeout(r, runMs));
        await service.kill("SIGKILL");
        await load.stop();
        if (load.acked.length > 0) killedWithAcks++;
        all.push(...load.acked);
        service = await ServiceProcess.start(env);
        const check = await checkAcknowledged(base, writerKey, chain.node.url, load.acked, {
          anchorTimeoutMs: opts.anchorTimeoutMs,
        });
        if (!checkPassed(check)) failedCycles++;
        log(
          `cycle ${cycle + 1}/${opts.cycles}: killed after ${runMs} ms, ${load.acked.length} acknowledged; ${describeCheck(check)}`,
        );
        if (!checkPassed(check))
          report.check(
            `cycle ${cycle + 1}: acknowledged events intact`,
            false,
            describeCheck(check),
          );
      }
      const final = await checkAcknowledged(base, writerKey, chain.node.url, all, {
        anchorTimeoutMs: opts.anchorTimeoutMs,
      });
      const seqs = new Set(all.map((r) => r.seq));
      report.check(
        "after each restart, that cycle's acknowledged events are present, unchanged, provable",
        failedCycles === 0,
        `${opts.cycles - failedCycles}/${opts.cycles} cycles; ${killedWithAcks} kills landed with acknowledged writes`,
      );
      report.check(
        "at the end, every acknowledged event of every cycle is present, unchanged, provable",
        checkPassed(final) && seqs.size === all.length,
        `${describeCheck(final)}; ${all.length} receipts, ${seqs.size} distinct seqs`,
      );
      const anchored = await anchoredOnChain(chain.node.url, chain.logId);
      const problems = batchSequenceProblems(anchored);
      report.check(
        "batches on-chain are contiguous, each anchored once",
        problems.length === 0,
        problems.length ? problems.slice(0, 3).join("; ") : `${anchored.length} batches`,
      );
    } finally {
      await service?.kill("SIGKILL");
      await chain.close();
    }
  });
  return report.finish();
}

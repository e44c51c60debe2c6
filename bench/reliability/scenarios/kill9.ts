/**
 * (a) kill -9 under load, the way a user runs the service: `npm start` with its embedded
 * Hardhat node, writers posting concurrently, SIGKILL at a random moment, and `npm start` again
 * on the same DATA_DIR with no manual step in between. Kills alternate between the service
 * process alone (as the OOM killer does) and npm's whole process group; either way the embedded
 * node must exit with the service (it runs in a process group of its own, so nothing else kills
 * it). Each restart begins a fresh in-memory chain, so the anchor loop redeploys the registry and
 * re-anchors every batch from LevelDB; after each restart every receipt acknowledged before the
 * kill is served unchanged and provable on that chain.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { stopRecordedOrphan } from "../../../services/chain/dev-node.ts";
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
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess, sleep } from "../service-process.ts";
import {
  anchoredOnChain,
  batchSequenceProblems,
  randomInt,
  waitReanchored,
  withTempDir,
} from "../workspace.ts";

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
  anchorTimeoutMs: 120_000,
};

/** The embedded node's pid, from the pid file the service keeps under DATA_DIR. */
async function embeddedNodePid(dataDir: string): Promise<number | undefined> {
  try {
    const record = JSON.parse(await readFile(path.join(dataDir, "dev-chain.pid"), "utf8")) as {
      pid?: unknown;
    };
    return typeof record.pid === "number" ? record.pid : undefined;
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function exitsWithin(pid: number, ms: number): Promise<number | undefined> {
  const t0 = Date.now();
  while (running(pid)) {
    if (Date.now() - t0 > ms) return undefined;
    await sleep(50);
  }
  return Date.now() - t0;
}

/** Where a cycle's time goes (ms). */
interface CyclePhases {
  /** Writers posting until the kill. */
  load: number;
  /** SIGKILL until the service and its embedded node are gone. */
  kill: number;
  /** The start command until the service's banner (a fresh chain, the registry deployed). */
  restart: number;
  /** Until the fresh chain holds every acknowledged seq again. */
  reanchor: number;
  /** Every receipt of the cycle: bundle over HTTP, standalone verifier against the chain. */
  check: number;
}

function describePhases(phases: readonly CyclePhases[]): string {
  const mean = (k: keyof CyclePhases) =>
    (phases.reduce((n, p) => n + p[k], 0) / Math.max(1, phases.length) / 1000).toFixed(1);
  return `load ${mean("load")} s, kill ${mean("kill")} s, restart ${mean("restart")} s, re-anchor ${mean("reanchor")} s, check ${mean("check")} s`;
}

export async function runKill9(opts: Kill9Options): Promise<ScenarioResult> {
  const report = new ScenarioReport("kill -9 under load (npm start)", `${opts.cycles} cycles`);
  const log = opts.log ?? (() => undefined);
  await withTempDir("kill9", async (dataDir) => {
    const chainPort = await freePort();
    const rpcUrl = `http://127.0.0.1:${chainPort}`;
    const env = {
      DATA_DIR: dataDir,
      PORT: String(await freePort()),
      EMBEDDED_CHAIN_PORT: String(chainPort),
      BATCH_MAX_EVENTS: "256",
      // Half a second: the kill (0.3–3 s into a cycle) lands both before and after seals, and the
      // batches the fresh chain of every restart re-anchors stay a few per cycle, not dozens.
      BATCH_MAX_WAIT_MS: "500",
      // The writers post as fast as the service takes them, with one key: a stress load, not
      // a client the per-key limit is meant to slow down.
      RATE_LIMIT_PER_MINUTE: "10000000",
      LOG_LEVEL: "warn",
    };
    let service: ServiceProcess | undefined;
    const startTimes: number[] = [];
    const nodeExitMs: number[] = [];
    const orphans: string[] = [];
    const failedStarts: string[] = [];
    const start = async (): Promise<ServiceProcess> => {
      const t0 = Date.now();
      const started = await ServiceProcess.start(env, { npmStart: true });
      startTimes.push(Date.now() - t0);
      return started;
    };
    try {
      service = await start();
      const base = service.baseUrl;
      const logId = /\n {2}log +(0x[0-9a-f]{64})/.exec(service.output)?.[1];
      const writerKey = await createKey(base, service.adminKey!, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const all: AckedReceipt[] = [];
      let failedCycles = 0;
      let killedWithAcks = 0;
      const phases: CyclePhases[] = [];
      for (let cycle = 0; cycle < opts.cycles; cycle++) {
        const cycleStarted = Date.now();
        const load = new Load(() => base, writerKey, {
          concurrency: opts.writers,
          maxMs: opts.maxRunMs + 5_000,
          maxEvents: opts.maxEventsPerCycle,
          runId: `kill9-${cycle}`,
        });
        const runMs = randomInt(opts.minRunMs, opts.maxRunMs);
        await sleep(runMs);
        const nodePid = await embeddedNodePid(dataDir);
        const alone = cycle % 2 === 0;
        if (alone) {
          const pid = await service.servicePid();
          if (pid !== undefined) process.kill(pid, "SIGKILL");
        }
        const killedAt = Date.now();
        await service.kill("SIGKILL");
        await load.stop();
        const exitMs = nodePid === undefined ? undefined : await exitsWithin(nodePid, 15_000);
        const restartAt = Date.now();
        if (exitMs === undefined) orphans.push(`cycle ${cycle + 1}: node ${nodePid ?? "?"}`);
        else nodeExitMs.push(exitMs);
        if (load.acked.length > 0) killedWithAcks++;
        all.push(...load.acked);
        try {
          service = await start();
        } catch (error) {
          failedStarts.push(`cycle ${cycle + 1}: ${String(error).slice(0, 300)}`);
          break;
        }
        // The fresh chain has nothing yet, while LevelDB still says "anchored" (on the chain
        // that died): wait until the anchor loop has noticed and re-anchored past the last seq.
        const upAt = Date.now();
        await waitReanchored(rpcUrl, all, opts.anchorTimeoutMs);
        const reanchoredAt = Date.now();
        const check = await checkAcknowledged(base, writerKey, rpcUrl, load.acked, {
          anchorTimeoutMs: opts.anchorTimeoutMs,
        });
        if (!checkPassed(check)) failedCycles++;
        const phase: CyclePhases = {
          load: killedAt - cycleStarted,
          kill: restartAt - killedAt,
          restart: upAt - restartAt,
          reanchor: reanchoredAt - upAt,
          check: Date.now() - reanchoredAt,
        };
        phases.push(phase);
        log(
          `cycle ${cycle + 1}/${opts.cycles}: killed ${alone ? "the service" : "npm's group"} after ${runMs} ms, ${load.acked.length} acknowledged; embedded node exited ${exitMs === undefined ? "NOT" : `in ${exitMs} ms`}; restart ${startTimes.at(-1)} ms; ${describeCheck(check)}; ${describePhases([phase])}`,
        );
        if (!checkPassed(check))
          report.check(
            `cycle ${cycle + 1}: acknowledged events intact`,
            false,
            describeCheck(check),
          );
      }
      const cyclesRun = startTimes.length - 1;
      report.check(
        "npm start comes back after every kill -9, with no manual step",
        failedStarts.length === 0 && cyclesRun === opts.cycles,
        failedStarts.length
          ? failedStarts[0]!
          : `${cyclesRun} restarts; start ${Math.min(...startTimes)}–${Math.max(...startTimes)} ms (contract and page build, embedded node, redeploy); per cycle, mean: ${describePhases(phases)}`,
      );
      report.check(
        "the embedded Hardhat node exits with the service (never orphaned)",
        orphans.length === 0 && nodeExitMs.length === cyclesRun,
        orphans.length
          ? orphans.slice(0, 3).join("; ")
          : `${nodeExitMs.length} kills; exited within ${Math.max(0, ...nodeExitMs)} ms`,
      );
      const final = await checkAcknowledged(base, writerKey, rpcUrl, all, {
        anchorTimeoutMs: opts.anchorTimeoutMs,
      });
      const seqs = new Set(all.map((r) => r.seq));
      report.check(
        "after each restart, that cycle's acknowledged events are present, unchanged, provable",
        failedCycles === 0,
        `${cyclesRun - failedCycles}/${cyclesRun} cycles; ${killedWithAcks} kills landed with acknowledged writes`,
      );
      report.check(
        "at the end, every acknowledged event of every cycle is present, unchanged, provable",
        checkPassed(final) && seqs.size === all.length,
        `${describeCheck(final)}; ${all.length} receipts, ${seqs.size} distinct seqs`,
      );
      const anchored = logId === undefined ? [] : await anchoredOnChain(rpcUrl, logId);
      const problems = batchSequenceProblems(anchored);
      report.check(
        "batches on the last chain are contiguous, each anchored once",
        logId !== undefined && problems.length === 0,
        logId === undefined
          ? "no logId in the banner"
          : problems.length
            ? problems.slice(0, 3).join("; ")
            : `${anchored.length} batches`,
      );
    } finally {
      await service?.kill("SIGKILL");
      // A node that outlived everything (the property above failed) must not outlive the bench;
      // stopped only if the pid file proves it is that node.
      await stopRecordedOrphan(path.join(dataDir, "dev-chain.pid"));
    }
  });
  return report.finish();
}

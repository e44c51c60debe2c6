/**
 * The large-log section of `npm run bench`: ONE log of `logSize` events (1,000,000 by default,
 * 10,000,000 behind the same flag) with one patient's `patientEvents` spread evenly, built,
 * sealed and marked anchored once, then every size-dependent measurement on that same log:
 * proof latency, patient history + completeness proof next to the naive baseline, the
 * regulator's full audit, the build rate, and the peak RSS of the process that did all of it
 * (run.ts gives each section its own process, so nothing else is in that number).
 */
import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Ledger } from "../services/ledger/ledger.ts";
import { openBenchLedger } from "./ledger-bench.ts";
import { type BuiltLog, benchAudit, buildLog, closeLog, keptLog } from "./patient-bench.ts";
import { serviceRuntime } from "./reliability/service-process.ts";
import type { ServeLogOptions } from "./serve-log.ts";
import type { BenchRow } from "./table.ts";

export interface LargeLogOptions {
  logSize: number;
  patientEvents: number;
  proofSamples: number;
  /** Run the regulator-audit replay too. */
  audit: boolean;
  historySamples: number;
  /**
   * Keep the log in this directory: built there when it is absent or empty, reused (its event
   * count checked) when it holds the log of an earlier run with the same sizes.
   */
  logDir?: string;
  /** One line per phase on stderr (the section can run for minutes). */
  log?: (message: string) => void;
}

/** Proofs and patient histories timed by bench/serve-log.ts in a process of its own. */
async function serveInChild(log: BuiltLog, opts: LargeLogOptions): Promise<BenchRow[]> {
  const rowsFile = path.join(os.tmpdir(), `veritrail-serve-log-${process.pid}.json`);
  const options: ServeLogOptions = {
    logSize: log.logSize,
    patientEvents: log.patientEvents,
    proofSamples: opts.proofSamples,
    historySamples: opts.historySamples,
    buildSeconds: log.buildSeconds,
  };
  // With the Node flags and environment `npm start` gives the service (heap limit, arenas).
  const runtime = await serviceRuntime();
  const child = spawn(
    process.execPath,
    [
      ...runtime.nodeArgs,
      path.join(import.meta.dirname, "serve-log.ts"),
      log.dir,
      JSON.stringify(options),
      rowsFile,
    ],
    { stdio: ["ignore", 2, 2], env: { ...process.env, ...runtime.env } },
  );
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (c) => resolve(c));
  });
  try {
    if (code !== 0) throw new Error(`bench/serve-log.ts exited with ${code}`);
    return JSON.parse(await readFile(rowsFile, "utf8")) as BenchRow[];
  } finally {
    await rm(rowsFile, { force: true });
  }
}

function reopen(dir: string): Promise<Ledger> {
  return openBenchLedger(dir);
}

/** Peak RSS so far (the kernel's high-water mark for this process), MB. */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export async function benchLargeLog(opts: LargeLogOptions): Promise<BenchRow[]> {
  const log0 = opts.log ?? (() => undefined);
  const say = (message: string) =>
    log0(`${message} (peak RSS so far ${peakRssMb().toFixed(0)} MB)`);
  /** The high-water mark after each phase: which phase set the peak. */
  const peaks: string[] = [];
  const phase = (name: string) => peaks.push(`${name} ${peakRssMb().toFixed(0)} MB`);
  const at = opts.logSize.toLocaleString("en");
  const progress = (done: number) => say(`  ${done.toLocaleString("en")} events ingested`);
  say(
    `${opts.logDir ? `kept log in ${opts.logDir}: reused if built, else ` : ""}building a log of ${at} events (${opts.patientEvents} for one patient)`,
  );
  const log = opts.logDir
    ? await keptLog(opts.logDir, opts.logSize, opts.patientEvents, progress)
    : await buildLog(opts.logSize, opts.patientEvents, progress);
  const reused = log.kept?.reused === true;
  phase(reused ? "opening the kept log" : "build");
  try {
    const rows: BenchRow[] = [
      {
        name: `log build: ingest + seal ${at} events (incl. completeness index)`,
        value: opts.logSize / log.buildSeconds,
        unit: "events/s",
        ...(reused ? { note: `kept log built ${log.kept?.builtAt}, not in this run` } : {}),
      },
    ];
    // Served by a process of its own, opened as the service opens it: its RSS is the memory
    // serving this log takes, without the build's.
    await log.ledger.close();
    try {
      say(`serving process: ${opts.proofSamples} proofs, ${opts.historySamples} patient histories`);
      rows.push(...(await serveInChild(log, opts)));
      phase("serving process");
    } finally {
      log.ledger = await reopen(log.dir);
    }
    if (opts.audit) {
      say("regulator audit: full replay");
      rows.push(...(await benchAudit(log)));
      phase("audit");
    }
    // Taken here, while the log is still open: everything above ran in this process.
    rows.push({
      name: `peak RSS, the process that ${reused ? "reopened" : "built"} the ${at}-event log${opts.audit ? " and audited it" : ""}`,
      value: peakRssMb(),
      unit: "MB",
      note: `high-water mark after ${peaks.join(", ")}`,
    });
    return rows;
  } finally {
    await closeLog(log);
  }
}

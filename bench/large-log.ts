/**
 * The large-log section of `npm run bench`: ONE log of `logSize` events (1,000,000 by default,
 * 10,000,000 behind the same flag) with one patient's `patientEvents` spread evenly, built,
 * sealed and marked anchored once, then every size-dependent measurement on that same log:
 * proof latency, patient history + completeness proof next to the naive baseline, the
 * regulator's full audit, the build rate, and the peak RSS of the process that did all of it
 * (run.ts gives each section its own process, so nothing else is in that number).
 */
import type { Ledger } from "../services/ledger/ledger.ts";
import { benchAudit, benchPatientHistory, buildLog, closeLog } from "./patient-bench.ts";
import { type BenchRow, percentile } from "./table.ts";

export interface LargeLogOptions {
  logSize: number;
  patientEvents: number;
  proofSamples: number;
  /** Run the regulator-audit replay too. */
  audit: boolean;
  historySamples: number;
  /** One line per phase on stderr (the section can run for minutes). */
  log?: (message: string) => void;
}

/** prove(seq) for `samples` random seqs of a sealed log. */
async function proofLatency(ledger: Ledger, size: number, samples: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let k = 0; k < samples; k++) {
    const seq = Math.floor(Math.random() * size);
    const s = performance.now();
    await ledger.prove(seq);
    latencies.push(performance.now() - s);
  }
  return latencies;
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
  say(`building a log of ${at} events (${opts.patientEvents} for one patient)`);
  const log = await buildLog(opts.logSize, opts.patientEvents, (done) =>
    say(`  ${done.toLocaleString("en")} events ingested`),
  );
  phase("build");
  try {
    const rows: BenchRow[] = [
      {
        name: `log build: ingest + seal ${at} events (incl. completeness index)`,
        value: opts.logSize / log.buildSeconds,
        unit: "events/s",
      },
    ];
    say(`proof latency, ${opts.proofSamples} random seqs`);
    const latencies = await proofLatency(log.ledger, opts.logSize, opts.proofSamples);
    phase("proofs");
    rows.push(
      { name: `proof latency p50 at ${at} events`, value: percentile(latencies, 50), unit: "ms" },
      {
        name: `proof latency p99 at ${at} events`,
        value: percentile(latencies, 99),
        unit: "ms",
        target: { op: "<=", value: 5 },
      },
    );
    say(`patient history, ${opts.historySamples} repetitions, then one prove(seq) per event`);
    rows.push(...(await benchPatientHistory(log, opts.historySamples)));
    phase("history");
    if (opts.audit) {
      say("regulator audit: full replay");
      rows.push(...(await benchAudit(log)));
      phase("audit");
    }
    // Taken here, while the log is still open: everything above ran in this process.
    rows.push({
      name: `peak RSS, large-log process (${at} events: build, proofs, history${opts.audit ? ", audit" : ""})`,
      value: peakRssMb(),
      unit: "MB",
      note: `high-water mark after ${peaks.join(", ")}${opts.logSize >= 1_000_000 ? "" : "; the 512 MB target is set at 1,000,000 events"}`,
      ...(opts.logSize >= 1_000_000 ? { target: { op: "<=" as const, value: 512 } } : {}),
    });
    return rows;
  } finally {
    await closeLog(log);
  }
}

/**
 * The serving half of the large-log section, in a process of its own:
 *
 *   node --import tsx bench/serve-log.ts <log dir> <options JSON> <rows file>
 *
 * It opens a log built by another process the way the service does, times proofs and patient
 * histories on it, and reports its own peak RSS: the memory a service needs to serve a log of
 * that size, not that of the process that built it.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { openBenchLedger } from "./ledger-bench.ts";
import { benchPatientHistory } from "./patient-bench.ts";
import { type BenchRow, percentile } from "./table.ts";

export interface ServeLogOptions {
  logSize: number;
  patientEvents: number;
  proofSamples: number;
  historySamples: number;
  buildSeconds: number;
}

const [dir, optionsJson, rowsFile] = process.argv.slice(2);
if (dir === undefined || optionsJson === undefined || rowsFile === undefined) {
  process.stderr.write(
    "usage: node --import tsx bench/serve-log.ts <log dir> <options JSON> <rows file>\n",
  );
  process.exit(2);
}
const o = JSON.parse(optionsJson) as ServeLogOptions;
const ledger = await openBenchLedger(dir);
const at = o.logSize.toLocaleString("en");
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;
/**
 * Peaks of RSS's two parts, sampled every 100 ms: anonymous memory (heaps, malloc) and mapped
 * files (the Node binary, and the LevelDB tables LevelDB maps to read them).
 */
const peakPart = { anon: 0, file: 0 };
const samplePart = () => {
  const status = readFileSync("/proc/self/status", "utf8");
  const mb = (field: string) =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  peakPart.anon = Math.max(peakPart.anon, mb("RssAnon"));
  peakPart.file = Math.max(peakPart.file, mb("RssFile"));
};
const sampler = existsSync("/proc/self/status") ? setInterval(samplePart, 100) : undefined;
const rows: BenchRow[] = [];
try {
  // Warm-up, not timed: the process's first proofs also pay for module compilation and the
  // sealing worker's start on the other core.
  for (let k = 0; k < Math.min(200, o.proofSamples); k++)
    await ledger.prove(Math.floor(Math.random() * o.logSize));
  // Seqs drawn uniformly from the whole log: most proofs read tables no earlier proof opened.
  const latencies: number[] = [];
  const load0 = loadavg()[0]!;
  const cpu0 = process.cpuUsage();
  for (let k = 0; k < o.proofSamples; k++) {
    const seq = Math.floor(Math.random() * o.logSize);
    const s = performance.now();
    await ledger.prove(seq);
    latencies.push(performance.now() - s);
  }
  const cpu = process.cpuUsage(cpu0);
  const load1 = loadavg()[0]!;
  rows.push(
    { name: `proof latency p50 at ${at} events`, value: percentile(latencies, 50), unit: "ms" },
    {
      name: `proof latency p99 at ${at} events`,
      value: percentile(latencies, 99),
      unit: "ms",
      target: { op: "<=", value: 5 },
      note: `${o.proofSamples} proofs of seqs drawn from the whole log, one at a time; load average ${load0.toFixed(1)} → ${load1.toFixed(1)}`,
    },
    {
      // Less sensitive to the neighbours' load than the latency: compare this between runs.
      name: `proof CPU time at ${at} events, all threads of the process, per proof`,
      value: (cpu.user + cpu.system) / o.proofSamples,
      unit: "µs",
    },
  );
  rows.push(
    ...(await benchPatientHistory(
      {
        ledger,
        dir,
        logSize: o.logSize,
        patientEvents: o.patientEvents,
        buildSeconds: o.buildSeconds,
      },
      o.historySamples,
    )),
  );
  if (sampler) samplePart();
  rows.push({
    name: `peak RSS of a process serving the ${at}-event log (opened as the service does; proofs, patient histories)`,
    value: peakRssMb(),
    unit: "MB",
    target: { op: "<=", value: 512 },
    ...(sampler
      ? {
          note: `sampled every 100 ms: anonymous peak ${peakPart.anon.toFixed(0)} MB, mapped files (binary, LevelDB tables) peak ${peakPart.file.toFixed(0)} MB`,
        }
      : {}),
  });
} finally {
  clearInterval(sampler);
  await ledger.close();
}
await writeFile(rowsFile, JSON.stringify(rows));

/**
 * The serving half of the large-log section, in a process of its own:
 *
 *   node --import tsx bench/serve-log.ts <log dir> <options JSON> <rows file>
 *
 * It opens a log built by another process the way the service does, times proofs and patient
 * histories on it, and reports its own peak RSS: the memory a service needs to serve a log of
 * that size, not that of the process that built it.
 */
import { Wallet } from "ethers";
import { writeFile } from "node:fs/promises";
import { loadConfig } from "../services/config.ts";
import { Ledger } from "../services/ledger/ledger.ts";
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
const defaults = loadConfig({});
const ledger = await Ledger.open({
  location: dir,
  receiptSigner: new Wallet("0x" + "42".repeat(32)),
  batchMaxEvents: 10_000,
  batchMaxWaitMs: 1_000,
  anchorDeadlineMs: 3_600_000,
  groupCommitMaxEvents: 4_096,
  sealWorker: true,
  indexNodeCacheMax: defaults.INDEX_NODE_CACHE_MAX,
  sealWorkerHeapMb: defaults.SEAL_WORKER_HEAP_MB,
});
const at = o.logSize.toLocaleString("en");
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;
const rows: BenchRow[] = [];
try {
  const latencies: number[] = [];
  for (let k = 0; k < o.proofSamples; k++) {
    const seq = Math.floor(Math.random() * o.logSize);
    const s = performance.now();
    await ledger.prove(seq);
    latencies.push(performance.now() - s);
  }
  rows.push(
    { name: `proof latency p50 at ${at} events`, value: percentile(latencies, 50), unit: "ms" },
    {
      name: `proof latency p99 at ${at} events`,
      value: percentile(latencies, 99),
      unit: "ms",
      target: { op: "<=", value: 5 },
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
  rows.push({
    name: `peak RSS of a process serving the ${at}-event log (opened as the service does; proofs, patient histories)`,
    value: peakRssMb(),
    unit: "MB",
    target: { op: "<=", value: 512 },
  });
} finally {
  await ledger.close();
}
await writeFile(rowsFile, JSON.stringify(rows));

/**
 * Patient history and regulator audit, measured on a real LevelDB log (the large-log section of
 * `npm run bench` uses these on its one log; see large-log.ts):
 *
 *   - buildLog: a sealed log of `logSize` events, one target patient's `patientEvents` spread
 *     evenly over it, every batch marked anchored in the store (the chain is not what is
 *     measured here).
 *   - benchPatientHistory: the latency of the whole history answer (every bundle plus the
 *     completeness proof) and of the proof alone, next to the naive baseline of one
 *     `prove(seq)` per event. Target (issue 8): 5,000 events in a 1,000,000-event log, p95 < 1 s.
 *   - benchAudit: the full replay (leaves, roots, subject index rebuilt in memory), events/s.
 *
 *   node --import tsx bench/patient-bench.ts [logSize] [patientEvents]
 */
import { Wallet } from "ethers";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NativeEvent } from "../services/core/event.ts";
import { auditLog } from "../services/ledger/audit.ts";
import { Ledger } from "../services/ledger/ledger.ts";
import { patientHistory } from "../services/ledger/patient-history.ts";
import { benchEvent, ingestHonouringBackpressure } from "./ledger-bench.ts";
import { type BenchRow, percentile, renderTable } from "./table.ts";

const signer = new Wallet("0x" + "43".repeat(32));
const TARGET = { system: "urn:oid:2.16.840.1.113883.4.1", value: "MRN-BENCH-TARGET" };

export interface BuiltLog {
  ledger: Ledger;
  dir: string;
  logSize: number;
  patientEvents: number;
  /** Ingest + seal, not the marking of batches as anchored. */
  buildSeconds: number;
  /** Kept after the run (built in, or reused from, a directory the caller named). */
  kept?: { root: string; reused: boolean; builtAt: string };
}

/** What a kept log's directory says about the log it holds, written once the build is done. */
interface KeptLogManifest {
  logSize: number;
  /** Asked for, and logged (fewer when the log is smaller). */
  patientEventsAsked: number;
  patientEvents: number;
  buildSeconds: number;
  builtAt: string;
}
const MANIFEST = "bench-log.json";

function openBuildLedger(dir: string): Promise<Ledger> {
  return Ledger.open({
    location: dir,
    receiptSigner: signer,
    batchMaxEvents: 10_000,
    batchMaxWaitMs: 1_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
    sealWorker: true,
  });
}

/**
 * The log kept in `root` (its LevelDB in `root/log`, its manifest next to it): reused when the
 * manifest says it is a complete log of this size and patient share and the store agrees,
 * built there when `root` is absent or empty. Anything else (a build that was cut short, a log
 * of another size) is refused rather than deleted: the directory is the caller's.
 */
export async function keptLog(
  root: string,
  logSize: number,
  patientEvents: number,
  onProgress?: (done: number) => void,
): Promise<BuiltLog> {
  const dir = path.join(root, "log");
  const manifestFile = path.join(root, MANIFEST);
  const manifest = await readFile(manifestFile, "utf8").then(
    (text) => JSON.parse(text) as KeptLogManifest,
    () => undefined,
  );
  if (manifest) {
    if (manifest.logSize !== logSize || manifest.patientEventsAsked !== patientEvents)
      throw new Error(
        `${root} holds a log of ${manifest.logSize} events with ${manifest.patientEventsAsked} for the patient, not ${logSize} with ${patientEvents}`,
      );
    const ledger = await openBuildLedger(dir);
    if (ledger.nextSeq !== logSize || ledger.sealedThrough !== logSize) {
      await ledger.close();
      throw new Error(
        `${root}: the manifest says ${logSize} sealed events, the store holds ${ledger.nextSeq} (${ledger.sealedThrough} sealed)`,
      );
    }
    return {
      ledger,
      dir,
      logSize,
      patientEvents: manifest.patientEvents,
      buildSeconds: manifest.buildSeconds,
      kept: { root, reused: true, builtAt: manifest.builtAt },
    };
  }
  const present = await readdir(root).catch(() => []);
  if (present.length > 0)
    throw new Error(
      `${root} is neither empty nor a complete kept log (no ${MANIFEST}: a build cut short?); remove it or name another directory`,
    );
  await mkdir(root, { recursive: true });
  const log = await buildLog(logSize, patientEvents, onProgress, dir);
  const builtAt = new Date().toISOString();
  const written: KeptLogManifest = {
    logSize,
    patientEventsAsked: patientEvents,
    patientEvents: log.patientEvents,
    buildSeconds: log.buildSeconds,
    builtAt,
  };
  await writeFile(manifestFile, JSON.stringify(written, null, 2) + "\n");
  return { ...log, kept: { root, reused: false, builtAt } };
}

/**
 * A sealed log of `logSize` events; every (logSize / patientEvents)-th is the target patient's.
 * Each call's events are generated just before the call, as a server receives them.
 */
export async function buildLog(
  logSize: number,
  patientEvents: number,
  onProgress?: (done: number) => void,
  /** Where to build it (a fresh temp directory otherwise). */
  location?: string,
): Promise<BuiltLog> {
  const dir = location ?? (await mkdtemp(path.join(tmpdir(), "veritrail-bench-log-")));
  const ledger = await openBuildLedger(dir);
  const every = patientEvents > 0 ? Math.max(1, Math.floor(logSize / patientEvents)) : Infinity;
  const patients = Math.max(1, Math.floor(logSize / 10));
  const t0 = performance.now();
  const perCall = 2_000;
  let target = 0;
  for (let i = 0; i < logSize; i += perCall) {
    const events: NativeEvent[] = [];
    for (let j = i; j < Math.min(logSize, i + perCall); j++) {
      const e = benchEvent(j, patients);
      if (j % every === 0 && target < patientEvents) {
        e.patient = { ...TARGET };
        target++;
      }
      events.push(e);
    }
    await ingestHonouringBackpressure(ledger, events);
    if (i % 100_000 === 0) onProgress?.(i);
  }
  await ledger.sealPending();
  const buildSeconds = (performance.now() - t0) / 1000;
  // Anchoring is the chain's business; the history only needs the records to say "anchored".
  let lastBatchNo = -1;
  for (const record of await ledger.listBatches({ limit: Number.MAX_SAFE_INTEGER })) {
    lastBatchNo = record.header.batchNo;
    await ledger.saveBatchState({
      ...record,
      state: "anchored",
      anchor: {
        chainId: 31337,
        contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        txHash: `0x${"ab".repeat(32)}`,
        blockNumber: 10 + record.header.batchNo,
        blockHash: `0x${"cd".repeat(32)}`,
        gasUsed: 60_000,
        anchoredAt: new Date().toISOString(),
      },
    });
  }
  // The service deletes the undo records of batches anchored long enough as they get anchored,
  // in the background. Finished here, not left to the serving process's first minutes: the
  // first process serving a 3,000,000-event log, which deleted them, peaked at 649 MB; later
  // ones at 445–453 MB.
  await ledger.subjectIndex.pruneUndo(lastBatchNo);
  return { ledger, dir, logSize, patientEvents: target, buildSeconds };
}

/** Closes the log; deletes it unless it is kept. */
export async function closeLog(log: BuiltLog): Promise<void> {
  await log.ledger.close();
  if (!log.kept) await rm(log.dir, { recursive: true, force: true });
}

function sizeLabel(log: BuiltLog): string {
  return `${log.patientEvents.toLocaleString("en")} events in a log of ${log.logSize.toLocaleString("en")}`;
}

/** History + completeness proof for the target patient, `samples` times, and the naive baseline. */
export async function benchPatientHistory(log: BuiltLog, samples = 20): Promise<BenchRow[]> {
  const { ledger } = log;
  const tag = ledger.subjectTagOf(TARGET);
  const last = await ledger.lastBatchNo();
  const history: number[] = [];
  const proofOnly: number[] = [];
  let bytes = 0;
  let count = 0;
  for (let k = 0; k < samples; k++) {
    const s = performance.now();
    const h = await patientHistory(ledger, tag, { staffIdentity: "withhold" });
    history.push(performance.now() - s);
    count = h.events.length;
    if (k === 0) bytes = Buffer.byteLength(JSON.stringify(h));
    const p = performance.now();
    await ledger.subjectIndex.proveAt(last, tag);
    proofOnly.push(performance.now() - p);
  }
  if (count !== log.patientEvents)
    throw new Error(`the history holds ${count} events, ${log.patientEvents} were logged`);
  // Baseline: the obvious implementation, one prove(seq) per event.
  const seqs = await ledger.store.seqsBySubject(tag, { limit: Number.MAX_SAFE_INTEGER });
  const b = performance.now();
  for (const seq of seqs) await ledger.prove(seq);
  const naive = performance.now() - b;
  const at = sizeLabel(log);
  return [
    {
      name: `patient history with bundles + completeness proof, p95 (${at})`,
      value: percentile(history, 95),
      unit: "ms",
      baselineName: "one prove(seq) per event",
      baseline: naive,
      target: { op: "<", value: 1_000 },
      note: `${samples} repetitions`,
    },
    { name: `patient history p50 (${at})`, value: percentile(history, 50), unit: "ms" },
    {
      name: `completeness proof alone (proveAt), p95 (${at})`,
      value: percentile(proofOnly, 95),
      unit: "ms",
    },
    {
      name: `patient history answer size (${at})`,
      value: bytes / 1024,
      unit: "KiB",
      note: "JSON, every bundle included",
    },
  ];
}

/**
 * The regulator's full replay of the log on every core (ranges checked and the subject index
 * rebuilt on worker threads), next to the same replay on one thread in the same run, and the
 * build rate. Each row notes the CPU the calling thread spent per event (the replay's critical
 * path when it only reads and hands over) and the whole process's.
 */
export async function benchAudit(log: BuiltLog): Promise<BenchRow[]> {
  const timed = async (workers: number) => {
    const thread0 = process.threadCpuUsage();
    const process0 = process.cpuUsage();
    const s = performance.now();
    const report = await auditLog(log.ledger.store, { workers });
    const seconds = (performance.now() - s) / 1000;
    const thread = process.threadCpuUsage(thread0);
    const all = process.cpuUsage(process0);
    if (!report.ok) throw new Error(`the audit of a clean log found ${report.findingCount} things`);
    const perEvent = (u: NodeJS.CpuUsage) => ((u.user + u.system) / log.logSize).toFixed(1);
    return {
      rate: log.logSize / seconds,
      cpu: `calling thread ${perEvent(thread)} µs CPU/event, process ${perEvent(all)}`,
    };
  };
  const cores = os.availableParallelism();
  const oneThread = await timed(0);
  const parallel = await timed(cores);
  const at = log.logSize.toLocaleString("en");
  return [
    {
      name: `regulator audit replay, ${cores} worker threads (${at} events, index rebuilt)`,
      value: parallel.rate,
      unit: "events/s",
      baselineName: "the same replay on one thread (same run)",
      baseline: oneThread.rate,
      note: `${parallel.cpu}; local replay only, the chain comparison is one view call per batch`,
    },
    {
      name: `regulator audit replay, one thread (${at} events)`,
      value: oneThread.rate,
      unit: "events/s",
      baselineName: "log build (ingest + seal)",
      baseline: log.logSize / log.buildSeconds,
      note: oneThread.cpu,
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const log = await buildLog(Number(process.argv[2] ?? 20_000), Number(process.argv[3] ?? 500));
  try {
    const rows = [...(await benchPatientHistory(log)), ...(await benchAudit(log))];
    console.log(renderTable(rows));
  } finally {
    await closeLog(log);
  }
}

/**
 * Patient history and regulator audit, measured on a real LevelDB log:
 *
 *   - benchPatientHistory: one patient with `patientEvents` events spread over a log of
 *     `logSize`; the latency of the whole history answer (every bundle plus the completeness
 *     proof) and of the proof alone, next to the naive baseline of one `prove(seq)` per event.
 *     Target (issue 8): 5,000 events in a 1,000,000-event log, p95 < 1 s.
 *   - benchAudit: the full replay (leaves, roots, subject index rebuilt in memory), events/s.
 *
 * Batches are marked anchored in the store (the chain is not what is measured here).
 *
 *   node --import tsx bench/patient-bench.ts [logSize] [patientEvents]
 */
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { subjectTag } from "../services/core/entry.ts";
import type { NativeEvent } from "../services/core/event.ts";
import { fromHex } from "../services/core/hex.ts";
import { auditLog } from "../services/ledger/audit.ts";
import { Ledger } from "../services/ledger/ledger.ts";
import { patientHistory } from "../services/ledger/patient-history.ts";
import { benchEvent } from "./ledger-bench.ts";
import { type BenchRow, percentile, renderTable } from "./table.ts";

const signer = new Wallet("0x" + "43".repeat(32));
const TARGET = { system: "urn:oid:2.16.840.1.113883.4.1", value: "MRN-BENCH-TARGET" };

interface BuiltLog {
  ledger: Ledger;
  dir: string;
  buildSeconds: number;
}

/** A sealed log of `logSize` events; every (logSize / patientEvents)-th is the target patient's. */
async function buildLog(logSize: number, patientEvents: number): Promise<BuiltLog> {
  const dir = await mkdtemp(path.join(tmpdir(), "veritrail-bench-patient-"));
  const ledger = await Ledger.open({
    location: dir,
    receiptSigner: signer,
    batchMaxEvents: 10_000,
    batchMaxWaitMs: 1_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  });
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
    await ledger.ingest(events);
  }
  await ledger.sealPending();
  const buildSeconds = (performance.now() - t0) / 1000;
  // Anchoring is the chain's business; the history only needs the records to say "anchored".
  for (const record of await ledger.listBatches({ limit: 1_000_000 })) {
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
  return { ledger, dir, buildSeconds };
}

async function closeLog(log: BuiltLog): Promise<void> {
  await log.ledger.close();
  await rm(log.dir, { recursive: true, force: true });
}

export async function benchPatientHistory(
  opts: { logSize?: number; patientEvents?: number; samples?: number } = {},
): Promise<BenchRow[]> {
  const logSize = opts.logSize ?? 20_000;
  const patientEvents = opts.patientEvents ?? 500;
  const samples = opts.samples ?? 20;
  const log = await buildLog(logSize, patientEvents);
  try {
    const { ledger } = log;
    const tag = subjectTag(fromHex(ledger.meta.logSecret), TARGET);
    const last = await ledger.lastBatchNo();
    const history: number[] = [];
    const proofOnly: number[] = [];
    let bytes = 0;
    let count = 0;
    for (let k = 0; k < samples; k++) {
      const s = performance.now();
      const h = await patientHistory(ledger, tag, { staffNames: false });
      history.push(performance.now() - s);
      count = h.events.length;
      if (k === 0) bytes = Buffer.byteLength(JSON.stringify(h));
      const p = performance.now();
      await ledger.subjectIndex.proveAt(last, tag);
      proofOnly.push(performance.now() - p);
    }
    if (count !== patientEvents)
      throw new Error(`the history holds ${count} events, ${patientEvents} were logged`);
    // Baseline: the obvious implementation, one prove(seq) per event.
    const seqs = await ledger.store.seqsBySubject(tag, { limit: Number.MAX_SAFE_INTEGER });
    const b = performance.now();
    for (const seq of seqs) await ledger.prove(seq);
    const naive = performance.now() - b;
    const at = `${patientEvents.toLocaleString("en")} events in a log of ${logSize.toLocaleString("en")}`;
    return [
      {
        name: `patient history with bundles + completeness proof, p95 (${at})`,
        value: percentile(history, 95),
        unit: "ms",
        baselineName: "one prove(seq) per event",
        baseline: naive,
        target: { op: "<", value: 1_000 },
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
  } finally {
    await closeLog(log);
  }
}

export async function benchAudit(opts: { logSize?: number } = {}): Promise<BenchRow[]> {
  const logSize = opts.logSize ?? 20_000;
  const log = await buildLog(logSize, 0);
  try {
    const s = performance.now();
    const report = await auditLog(log.ledger.store);
    const seconds = (performance.now() - s) / 1000;
    if (!report.ok) throw new Error(`the audit of a clean log found ${report.findingCount} things`);
    return [
      {
        name: `regulator audit replay (${logSize.toLocaleString("en")} events, index rebuilt)`,
        value: logSize / seconds,
        unit: "events/s",
        baselineName: "log build (ingest + seal)",
        baseline: logSize / log.buildSeconds,
        note: "local replay only; the chain comparison is one view call per batch",
      },
    ];
  } finally {
    await closeLog(log);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const logSize = Number(process.argv[2] ?? 20_000);
  const patientEvents = Number(process.argv[3] ?? 500);
  const rows = [
    ...(await benchPatientHistory({ logSize, patientEvents })),
    ...(await benchAudit({ logSize })),
  ];
  console.log(renderTable(rows));
}

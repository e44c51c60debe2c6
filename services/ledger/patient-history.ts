/**
 * A patient's history with its completeness proof (DESIGN.md "Per-patient completeness"): every
 * event of one subjectTag up to the latest *anchored* batch, each with its `veritrail-proof/1`
 * bundle, plus the subject-index proof at that batch, so a verifier can check the list is the
 * subject's whole history as committed to on-chain. Events accepted after that batch are listed
 * separately: nothing on-chain covers them yet.
 *
 * Built for large logs: one getMany per kind of record (entries, bodies, batch records), each
 * batch's stored Merkle levels read once for all of the patient's events in it, each receipt
 * from its stored group path. No tree is rebuilt (a patient with 5,000 events in a 1,000,000-event
 * log is answered well under a second; bench/patient-bench.ts measures it).
 */
import { BUNDLE_FORMAT, type AnchorJson, type Bundle, type BundleStatus } from "../core/bundle.ts";
import type { EventView } from "../core/disclosure.ts";
import type { NativeEvent } from "../core/event.ts";
import type { Hex } from "../core/hex.ts";
import {
  type SubjectIndexProofJson,
  subjectIndexProofToJson,
} from "../core/subject-index-proof.ts";
import type { BatchHeader } from "../core/batch-header.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import { LedgerError, invariant } from "./errors.ts";
import { type StaffIdentity, bundleContent, redactEvent } from "./access.ts";
import { parseEntryRead } from "./ingest.ts";
import type { Ledger } from "./ledger.ts";

export const PATIENT_HISTORY_FORMAT = "veritrail-patient-history/1";

/** One event as the patient sees it, with the bundle that proves it. */
export interface PatientHistoryEvent {
  seq: number;
  /** The entry's recorded time (always present, even once the body is erased). */
  recorded: string;
  /** The event as the access policy shows it to the caller (staff identity per policy); null once erased. */
  event: EventView | null;
  erased: boolean;
  /**
   * Present (true) when the event exists but is withheld from this caller: an entry v1 event
   * cannot hide staff identity field by field (access.ts bundleContent).
   */
  withheld?: true;
  bundle: Bundle;
}

/** The batch the completeness proof speaks for: its header and where it is anchored. */
export interface HistoryAsOf {
  batch: BatchHeader;
  anchor: AnchorJson;
}

export interface PatientHistory {
  format: typeof PATIENT_HISTORY_FORMAT;
  subjectTag: Hex;
  /** Null while no batch is anchored: nothing can be proven complete yet. */
  asOf: HistoryAsOf | null;
  /** Subject-index proof for `subjectTag` under `asOf.batch.indexRoot`; null with `asOf`. */
  proof: SubjectIndexProofJson | null;
  /** Every event of the subject with seq < asOf.batch.firstSeq + count, ascending. */
  events: PatientHistoryEvent[];
  /** Events accepted after the `asOf` batch, ascending: not covered by the proof yet. */
  notYetCovered: PatientHistoryEvent[];
}

export interface PatientHistoryOptions {
  /** Staff identity shown or withheld (the access policy's decision for the caller). */
  staffIdentity: StaffIdentity;
}

/** The latest batch in state `anchored`, or undefined when none is. */
export async function latestAnchoredBatch(ledger: Ledger): Promise<BatchRecord | undefined> {
  const PAGE = 256;
  let from: number | undefined;
  for (;;) {
    const page = await ledger.listBatches(
      from === undefined
        ? { limit: PAGE, reverse: true }
        : { fromBatchNo: from, limit: PAGE, reverse: true },
    );
    const found = page.find((r) => r.state === "anchored" && r.anchor !== undefined);
    if (found) return found;
    const last = page[page.length - 1];
    if (page.length < PAGE || last === undefined || last.header.batchNo === 0) return undefined;
    from = last.header.batchNo - 1;
  }
}

/** The patient's history with its completeness proof at the latest anchored batch. */
export async function patientHistory(
  ledger: Ledger,
  subjectTag: Hex,
  opts: PatientHistoryOptions,
): Promise<PatientHistory> {
  if (!/^0x[0-9a-f]{64}$/.test(subjectTag))
    throw new LedgerError("VALIDATION_FAILED", "subject must be a 32-byte 0x-hex tag", "subject");
  const asOfRecord = await latestAnchoredBatch(ledger);
  const coveredEnd = asOfRecord ? asOfRecord.header.firstSeq + asOfRecord.header.count : 0;
  const [seqs, proof] = await Promise.all([
    ledger.store.seqsBySubject(subjectTag, { limit: Number.MAX_SAFE_INTEGER }),
    asOfRecord
      ? ledger.subjectIndex.proveAt(asOfRecord.header.batchNo, subjectTag)
      : Promise.resolve(undefined),
  ]);
  const events = await historyEvents(ledger, seqs, opts);
  return {
    format: PATIENT_HISTORY_FORMAT,
    subjectTag,
    asOf:
      asOfRecord && asOfRecord.anchor
        ? { batch: { ...asOfRecord.header }, anchor: anchorJson(asOfRecord) }
        : null,
    proof: proof ? subjectIndexProofToJson(proof) : null,
    events: events.filter((e) => e.seq < coveredEnd),
    notYetCovered: events.filter((e) => e.seq >= coveredEnd),
  };
}

function anchorJson(record: BatchRecord): AnchorJson {
  const a = record.anchor;
  invariant(a !== undefined, `batch ${record.header.batchNo} has an anchor`);
  return { chainId: a.chainId, contract: a.contract, txHash: a.txHash, blockNumber: a.blockNumber };
}

/** Events with their bundles, for ascending `seqs`, in a handful of bulk reads. */
async function historyEvents(
  ledger: Ledger,
  seqs: number[],
  opts: PatientHistoryOptions,
): Promise<PatientHistoryEvent[]> {
  const { store } = ledger;
  const sealedThrough = ledger.sealedThrough;
  // Every read that does not wait on another is issued at once; the audit paths wait only on
  // the batch records.
  const entriesRead = store
    .getEntriesJcs(seqs)
    .then((list) => list.map((jcs, i) => parseEntryRead(seqs[i]!, jcs)));
  const batchesRead = batchesFor(
    ledger,
    seqs.filter((s) => s < sealedThrough),
  );
  const [entries, bodies, receipts, batches, paths] = await Promise.all([
    entriesRead,
    store.getBodiesJson(seqs),
    ledger.receipts(seqs, entriesRead),
    batchesRead,
    batchesRead.then((b) => inclusionPaths(ledger, b)),
  ]);
  const out: PatientHistoryEvent[] = [];
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const read = entries[i];
    invariant(read !== undefined, `indexed seq ${seq} has an entry`);
    const { entry } = read;
    const raw = bodies[i];
    const body = store.decodeBody(seq, raw);
    const event = body ? (body.event as NativeEvent) : null;
    const receipt = receipts[i]!;
    const record = batches.bySeq.get(seq);
    const shared = record && batches.shared.get(record);
    const erasure = event === null ? await ledger.erasureBundle(seq) : undefined;
    const content = bundleContent(entry, body, opts.staffIdentity);
    const bundle: Bundle = {
      format: BUNDLE_FORMAT,
      event: content.event,
      salt: content.salt,
      ...(content.disclosures !== undefined ? { disclosures: content.disclosures } : {}),
      ...(erasure ? { erasure } : {}),
      entry,
      leafIndex: record ? seq - record.header.firstSeq : null,
      batch: shared ? shared.header : null,
      inclusion: record ? paths.get(seq)! : [],
      anchor: shared ? shared.anchor : null,
      receipt,
      status: record ? (record.state satisfies BundleStatus) : "unsealed",
    };
    out.push({
      seq,
      recorded: entry.recorded,
      // What the bundle does not show, the view does not claim: a withheld event has no view.
      event: event && !content.withheld ? redactEvent(event, opts.staffIdentity) : null,
      erased: event === null,
      ...(content.withheld ? { withheld: true } : {}),
      bundle,
    });
  }
  return out;
}

interface BatchLookup {
  bySeq: Map<number, BatchRecord>;
  /**
   * Per batch, the header and anchor its bundles cite: one object each, shared by every bundle
   * of the batch (they are identical, and a history holds thousands of bundles).
   */
  shared: Map<BatchRecord, { header: BatchHeader; anchor: AnchorJson | null }>;
  /** The batch records touched, with the seqs of each. */
  groups: Array<{ record: BatchRecord; seqs: number[] }>;
}

/**
 * The batch of each sealed seq (seqs ascending): two seeks for the first and last batch, then one
 * range read of the batch records between them (a seek and a read per batch when the events are
 * few and far apart). A patient's 5,000 events in a 10,000,000-event log fall into ≈ 1,000
 * batches; a seek and a read per batch, one after the other, cost more than reading the records
 * in order.
 */
async function batchesFor(ledger: Ledger, seqs: number[]): Promise<BatchLookup> {
  const bySeq = new Map<number, BatchRecord>();
  const groups: BatchLookup["groups"] = [];
  const shared: BatchLookup["shared"] = new Map();
  if (seqs.length === 0) return { bySeq, groups, shared };
  const [firstNo, lastNo] = await Promise.all([
    ledger.store.batchNoForSeq(seqs[0]!),
    ledger.store.batchNoForSeq(seqs[seqs.length - 1]!),
  ]);
  invariant(firstNo !== undefined && lastNo !== undefined, "sealed seqs have batches");
  const span = lastNo - firstNo + 1;
  // A few events far apart in a long log: a seek per batch reads less than the whole span.
  const sparse = span > 4 * seqs.length + 64;
  const records = sparse ? [] : await ledger.listBatches({ fromBatchNo: firstNo, limit: span });
  let at = 0;
  const recordFor = async (seq: number): Promise<BatchRecord | undefined> => {
    if (sparse) return ledger.batchForSeq(seq);
    while (at < records.length && seq >= records[at]!.header.firstSeq + records[at]!.header.count)
      at++;
    return records[at];
  };
  let current: { record: BatchRecord; seqs: number[] } | undefined;
  for (const seq of seqs) {
    const h = current?.record.header;
    if (!current || !h || seq >= h.firstSeq + h.count) {
      const record = await recordFor(seq);
      invariant(
        record !== undefined &&
          record.header.firstSeq <= seq &&
          seq < record.header.firstSeq + record.header.count,
        `sealed seq ${seq} has a batch`,
      );
      current = { record, seqs: [] };
      groups.push(current);
      shared.set(record, {
        header: { ...record.header },
        anchor: record.state === "anchored" && record.anchor ? anchorJson(record) : null,
      });
    }
    current.seqs.push(seq);
    bySeq.set(seq, current.record);
  }
  return { bySeq, groups, shared };
}

/**
 * Batches whose stored Merkle nodes a history reads at the same time. A patient's 5,000 events
 * in a 10,000,000-event log fall into ≈ 1,000 batches; read all at once, every batch's tiles were
 * held in memory together (LevelDB's threads run 4 reads at a time whatever the queue holds).
 */
const PATH_READS_AT_ONCE = 16;

/** Audit paths of every listed seq, reading each batch's stored nodes once. */
async function inclusionPaths(ledger: Ledger, batches: BatchLookup): Promise<Map<number, Hex[]>> {
  const paths = new Map<number, Hex[]>();
  const { groups } = batches;
  let next = 0;
  const reader = async () => {
    while (next < groups.length) {
      const { record, seqs } = groups[next++]!;
      const found = await ledger.inclusionPaths(record, seqs);
      seqs.forEach((s, i) => paths.set(s, found[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PATH_READS_AT_ONCE, groups.length) }, reader));
  return paths;
}

/**
 * The regulator's audit (DESIGN.md "Per-patient completeness", users table): replays the whole
 * log from LevelDB and recomputes everything the log has committed to, trusting no stored
 * digest:
 *
 *   - every entry: well-formed, canonical (JCS), its own seq and log, seqs contiguous from 0;
 *   - every present body: commitment = SHA-256(salt ‖ JCS(event)) equals the entry's;
 *   - every leaf hash, against the receipt group that acknowledged it; each group's leaves
 *     against its signed leavesRoot, its stored header (`h:`) against the group record, and
 *     each event's stored receipt path (`r:`, what re-issued receipts carry) against the
 *     group's tree;
 *   - every batch: contiguous numbers and seq ranges, eventsRoot over the recomputed leaves,
 *     the stored Merkle levels (they serve inclusion proofs), and indexRoot from a subject map
 *     rebuilt from scratch in memory (MemoryNodeStore) batch by batch — an operator who left an
 *     event out of a patient's index is caught here;
 *   - the live completeness index and subject heads agree with the rebuilt ones;
 *   - with a chain: every header against the registry's `batchCommitment`, and no commitment on
 *     the chain for a batch the store does not have (a truncated log).
 *
 * Each discrepancy is reported as a finding `{ batchNo?, seq?, kind, message }`; the audit never
 * stops at the first one. Memory is O(subjects + one batch), time O(events).
 */
import { type FieldSalts, committedForm } from "../core/disclosure.ts";
import os from "node:os";
import type { Worker } from "node:worker_threads";
import { type BatchHeader, batchHeaderHash } from "../core/batch-header.ts";
import { type Entry, EntrySchema, commitmentOfCanonical, encodeEntry } from "../core/entry.ts";
import { type Hex, bytesEqual, fromHex, isHex32, toHex } from "../core/hex.ts";
import { jcs } from "../core/jcs.ts";
import { type MerkleTree, buildTree, inclusionProofNodeIds, leafHash } from "../core/merkle.ts";
import {
  EMPTY_ROOT,
  MemoryNodeStore,
  type SmtUpdate,
  extendChain,
  historyValueHash,
} from "../core/subject-index.ts";
import { BodyUnreadable, type LedgerStore } from "../store/ledger-store.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import type { GroupRecords, StoredGroup } from "../store/log-scan.ts";
import { CANONICAL_ENTRY, StoreCorruptError, decodeBatchRecordOf } from "../store/record-codec.ts";
import { type ReceiptGroupRecord, encodeReceiptPath } from "../store/receipt-group-record.ts";
import { type AnchorFindingKind, type AnchorReads, checkAnchorFields } from "./audit-anchors.ts";
import { packValues } from "./index-wire.ts";
import { SubjectIndex } from "./subject-index-store.ts";
import { type LostRange, describeLostRange } from "./lost-ranges.ts";
import { startTsWorker } from "./ts-worker.ts";

export type AuditFindingKind =
  | "META_MISSING"
  | "ENTRY_MISSING"
  | "ENTRY_MALFORMED"
  | "ENTRY_NOT_CANONICAL"
  | "ENTRY_SEQ_MISMATCH"
  | "ENTRY_LOG_MISMATCH"
  | "BODY_MALFORMED"
  | "BODY_WITHOUT_ENTRY"
  | "COMMITMENT_MISMATCH"
  | "RECEIPT_GROUP_MISSING"
  | "RECEIPT_LEAF_MISMATCH"
  | "RECEIPT_GROUP_ROOT_MISMATCH"
  | "RECEIPT_HEADER_MISMATCH"
  | "RECEIPT_PATH_MISSING"
  | "RECEIPT_PATH_MISMATCH"
  | "BATCH_MALFORMED"
  | "BATCH_NUMBER_MISMATCH"
  | "BATCH_LOG_MISMATCH"
  | "BATCH_GAP"
  | "BATCH_ENTRIES_MISSING"
  | "EVENTS_ROOT_MISMATCH"
  | "STORED_LEVELS_MISMATCH"
  | "INDEX_ROOT_MISMATCH"
  | "STORED_INDEX_MISMATCH"
  | "SUBJECT_HEAD_MISMATCH"
  | "CHAIN_NOT_ANCHORED"
  | "CHAIN_HEADER_MISMATCH"
  | "CHAIN_EXTRA_BATCH"
  | "CHAIN_NO_REGISTRY"
  | "CHAIN_ERROR"
  /** The registry compared with is not one the trust policy lists (veritrail audit --trust). */
  | "UNTRUSTED_REGISTRY"
  /** The trust policy does not list this log (in that registry). */
  | "UNKNOWN_LOG"
  | "EVENTS_LOST"
  | "LOST_RANGE_INCONSISTENT"
  | "LOST_BATCH_NOT_ON_CHAIN"
  /** An anchor field of a batch record that the chain contradicts (ledger/audit-anchors.ts). */
  | AnchorFindingKind;

export interface AuditFinding {
  batchNo?: number;
  seq?: number;
  kind: AuditFindingKind;
  message: string;
  /** EVENTS_LOST: the batches and seqs the chain holds and this ledger lost (lost-ranges.ts). */
  range?: { fromBatchNo: number; batches: number; firstSeq: number; count: number };
}

export interface AuditProgress {
  phase: "replay" | "chain";
  done: number;
  total: number;
}

/**
 * What the audit reads of the chain, given by the caller (verifier/chain-reads.ts's ChainReads
 * is one; a fresh one per audit, so the chain head is read once per audit): the registry state,
 * and the blocks and transactions each batch record says it was anchored by (AnchorReads).
 * `batchCommitment` throws an error named "NotARegistry" when no registry answers at `contract`.
 */
export interface RegistryReads extends AnchorReads {
  chainId(): Promise<bigint>;
  latest(): Promise<number>;
}

/** The chain to compare with: how to read it, and the registry (else the one the log names). */
export interface AuditChain {
  reads: RegistryReads;
  contract?: string;
}

const ZERO_COMMITMENT = `0x${"0".repeat(64)}`;

export interface AuditOptions {
  /** Compare every header with the registry; without it only the local replay runs. */
  chain?: AuditChain;
  onProgress?: (p: AuditProgress) => void;
  /** Stop collecting findings beyond this many (the count keeps going). Default 10,000. */
  maxFindings?: number;
  /**
   * Worker threads that check entries and bodies (leaf hashes, canonical form, commitments:
   * most of the replay's CPU) while this thread rebuilds the index and checks batches and
   * receipts. Default: one per core for a log of PARALLEL_FROM_EVENTS events or more, none
   * (everything on this thread) below; 0 forces one thread.
   */
  workers?: number;
}

/** Below this many events starting workers costs more than it saves. */
const PARALLEL_FROM_EVENTS = 200_000;

export interface AuditReport {
  ok: boolean;
  logId: string | null;
  events: number;
  erased: number;
  batches: number;
  /** Events in sealed batches (the rest are accepted, not sealed yet). */
  sealedEvents: number;
  chain: {
    chainId: number;
    contract: string;
    head: number;
    anchoredBatches: number;
    /**
     * How the recorded anchors were checked: by their transaction receipt, by registry state
     * alone (receipt pruned, EIP-4444, or none recorded), or not at all (the node serves
     * neither); the block hash is compared in every case the node serves the block.
     */
    anchorEvidence: { receipt: number; state: number; unverifiable: number };
  } | null;
  findingCount: number;
  findings: AuditFinding[];
  durationMs: number;
}

interface BodyJson {
  event?: unknown;
  salt?: unknown;
}

/** Replays the log in `store` (see the file comment). */
export async function auditLog(store: LedgerStore, opts: AuditOptions = {}): Promise<AuditReport> {
  const started = Date.now();
  const maxFindings = opts.maxFindings ?? 10_000;
  const findings: AuditFinding[] = [];
  let findingCount = 0;
  const report = (f: AuditFinding) => {
    findingCount++;
    if (findings.length < maxFindings) findings.push(f);
  };

  const meta = await store.getMeta();
  if (!meta) report({ kind: "META_MISSING", message: "no log metadata (m:log)" });
  const logId = meta?.logId ?? null;
  // Ranges lost in a restore: a gap in the batches they explain is reported as a loss (the
  // chain is checked to hold those batches), not as a gap; any other gap stays a BATCH_GAP.
  const lostRanges = await store.getLostRanges();
  const lostReported = new Set<LostRange>();
  const reportLost = (lost: LostRange) => {
    lostReported.add(lost);
    report({
      batchNo: lost.fromBatchNo,
      seq: lost.firstSeq,
      kind: "EVENTS_LOST",
      message: describeLostRange(lost),
      range: {
        fromBatchNo: lost.fromBatchNo,
        batches: lost.batches,
        firstSeq: lost.firstSeq,
        count: lost.count,
      },
    });
  };
  const lostAt = (batchNo: number, firstSeq: number) =>
    lostRanges.find((r) => r.fromBatchNo === batchNo && r.firstSeq === firstSeq);

  // Batch records in order, and each batch's firstSeq from the q: index (a second source for
  // the range of a batch whose record is unreadable).
  const batchRaw: Array<[number, Buffer]> = [];
  for await (const record of store.batchRecordsAsStored()) batchRaw.push(record);
  const qFirst = new Map<number, number>();
  for await (const [batchNo, firstSeq] of store.batchFirstSeqs()) qFirst.set(batchNo, firstSeq);
  // Read after the batches: on a live log, a batch sealed meanwhile is replayed as unsealed tail.
  const total = await store.nextSeq();

  // One iterator per key range, opened after `total` was read: LevelDB iterators read from a
  // snapshot, so a live log's later writes never show up half-way through the replay.
  const entries = store.seqValues("entries", total);
  const bodies = store.seqValues("bodies", total);
  const groups = new GroupStream(store, store.groupRecords(), report);
  const receiptPaths = store.seqValues("receiptPaths", total);
  const index = new MemoryNodeStore();
  const heads = new Map<Hex, { count: number; chain: Uint8Array }>();
  let erased = 0;
  let expectedFirst = 0;
  let sealedEvents = 0;
  const headers: AuditedBatch[] = [];

  const workers = opts.workers ?? (total >= PARALLEL_FROM_EVENTS ? os.availableParallelism() : 0);
  const pool = workers > 0 ? new EventCheckPool(workers) : undefined;

  /** Reads seqs [from, to) (in order: the iterators are sequential) and starts their checks. */
  let reading: Promise<unknown> = Promise.resolve();
  const readAndCheck = (from: number, to: number): Promise<CheckedRange> => {
    const read = reading.then(async () => {
      const range: RangeRead = {
        from,
        to,
        seqs: [],
        entries: [],
        bodies: [],
        stored: [],
        opening: [],
      };
      for (let seq = from; seq < to; seq++) {
        if (!entries.has(seq)) {
          await entries.load(seq);
          if (seq > from) opts.onProgress?.({ phase: "replay", done: seq, total });
        }
        if (!bodies.has(seq)) await bodies.load(seq);
        const raw = entries.get(seq);
        if (raw === undefined) continue;
        range.seqs.push(seq);
        range.entries.push(raw);
        const stored = bodies.get(seq);
        range.stored.push(stored !== undefined);
        range.bodies.push(
          stored === undefined
            ? undefined
            : await openBody(store, seq, stored, (f) => range.opening.push(f)),
        );
      }
      return range;
    });
    reading = read.catch(() => undefined);
    return read.then(async (range) => ({
      range,
      checked: pool
        ? await pool.check(logId, range)
        : checkEvents(logId, range.seqs, range.entries, range.bodies),
    }));
  };

  /**
   * Checks seqs [from, to) and returns their leaf hashes; with `touched`, folds each subject's
   * events into its history chain there (in seq order, as sealing does). The per-event checks
   * (`checkEvents`) come from `ahead` when they were started early (on a worker).
   */
  const replayRange = async (
    from: number,
    to: number,
    batchNo: number | undefined,
    touched?: Map<Hex, { count: number; chain: Uint8Array }>,
    ahead?: Promise<CheckedRange>,
  ) => {
    const { range, checked } = await (ahead ?? readAndCheck(from, to));
    const leaves: Uint8Array[] = [];
    let k = 0;
    let f = 0;
    let o = 0;
    for (let seq = from; seq < to; seq++) {
      if (range.seqs[k] !== seq) {
        report({
          ...(batchNo === undefined ? {} : { batchNo }),
          seq,
          kind: batchNo === undefined ? "ENTRY_MISSING" : "BATCH_ENTRIES_MISSING",
          message: `no entry at seq ${seq}`,
        });
        continue;
      }
      // The entry's and body's findings, in the order the checks made them; a body that could
      // not be opened has no body findings, only its own.
      while (f < checked.findings.length && checked.findings[f]!.seq === seq)
        report(checked.findings[f++]!);
      while (o < range.opening.length && range.opening[o]!.seq === seq) report(range.opening[o++]!);
      const leaf = checked.leaves.subarray(32 * k, 32 * (k + 1));
      leaves.push(leaf);
      const subject = checked.subjects[k];
      if (!range.stored[k]) erased++;
      k++;
      const group = groups.covering(seq) ?? (await groups.containing(seq));
      if (!group)
        report({
          seq,
          kind: "RECEIPT_GROUP_MISSING",
          message: `no receipt group holds seq ${seq}`,
        });
      else {
        const at = (seq - group.firstSeq) * 32;
        if (
          at < 0 ||
          at + 32 > group.leaves.length ||
          group.leaves.compare(leaf, 0, 32, at, at + 32) !== 0
        )
          report({
            seq,
            kind: "RECEIPT_LEAF_MISMATCH",
            message: `entry ${seq} hashes to ${toHex(leaf)}, its receipt acknowledged another leaf`,
          });
        if (!receiptPaths.has(seq)) await receiptPaths.load(seq);
        checkReceiptPath(seq, group, receiptPaths.get(seq), report);
      }
      if (touched && subject) {
        const mine = touched.get(subject);
        if (mine) {
          mine.count++;
          mine.chain = extendChain(mine.chain, seq, leaf);
        } else {
          const head = heads.get(subject) ?? { count: 0, chain: EMPTY_ROOT };
          touched.set(subject, {
            count: head.count + 1,
            chain: extendChain(head.chain, seq, leaf),
          });
        }
      }
    }
    if (to > from) opts.onProgress?.({ phase: "replay", done: to, total });
    return leaves;
  };

  // Each batch's seq range, as the replay below will take it (contiguity, not the record's
  // claim, and past a range lost in a restore): the checks of the next batches are started
  // while this one is being finished.
  const ranges: Array<{ from: number; to: number }> = [];
  {
    let first = 0;
    let nextNo = 0;
    for (let b = 0; b < batchRaw.length; b++) {
      const [batchNo, raw] = batchRaw[b]!;
      if (batchNo !== nextNo) {
        const lost = lostAt(nextNo, first);
        if (lost && lost.fromBatchNo + lost.batches === batchNo) first = lost.firstSeq + lost.count;
      }
      nextNo = batchNo + 1;
      const header = readBatch(batchNo, raw)?.header;
      const count = header ? header.count : (qFirst.get(batchNo + 1) ?? total) - first;
      const to = Math.min(first + Math.max(count, 0), Math.max(total, first));
      ranges.push({ from: first, to });
      first += Math.max(count, 0);
    }
  }
  const lookahead = pool ? pool.size + 1 : 0;
  const started_ = new Map<number, Promise<CheckedRange>>();
  const checksOf = (b: number): Promise<CheckedRange> | undefined => {
    for (let next = b; next <= b + lookahead && next < ranges.length; next++)
      if (!started_.has(next)) {
        const r = ranges[next]!;
        const p = readAndCheck(r.from, r.to);
        p.catch(() => undefined);
        started_.set(next, p);
      }
    const mine = started_.get(b);
    started_.delete(b);
    return mine;
  };

  let expectedNo = 0;
  try {
    for (let b = 0; b < batchRaw.length; b++) {
      const [batchNo, raw] = batchRaw[b]!;
      if (batchNo !== expectedNo) {
        const lost = lostAt(expectedNo, expectedFirst);
        if (lost && lost.fromBatchNo + lost.batches === batchNo) {
          reportLost(lost);
          expectedFirst = lost.firstSeq + lost.count;
        } else
          report({
            batchNo,
            kind: "BATCH_GAP",
            message: `batch numbers jump from ${expectedNo - 1} to ${batchNo}`,
          });
      }
      expectedNo = batchNo + 1;
      const parsed = parseBatch(batchNo, raw);
      const record = parsed instanceof StoreCorruptError ? undefined : parsed;
      const header = record?.header ?? null;
      headers.push({ batchNo, header, ...(record ? { record } : {}) });
      let count: number;
      if (!header) {
        report({
          batchNo,
          kind: "BATCH_MALFORMED",
          message: `batch record ${batchNo} is not a valid record: ${(parsed as StoreCorruptError).reason}`,
        });
        const nextFirst = qFirst.get(batchNo + 1);
        count = (nextFirst ?? total) - expectedFirst;
      } else {
        count = header.count;
        if (header.batchNo !== batchNo)
          report({
            batchNo,
            kind: "BATCH_NUMBER_MISMATCH",
            message: `record under batch ${batchNo} says batchNo ${header.batchNo}`,
          });
        if (logId !== null && header.logId !== logId)
          report({
            batchNo,
            kind: "BATCH_LOG_MISMATCH",
            message: `batch ${batchNo} names log ${header.logId}`,
          });
        if (header.firstSeq !== expectedFirst)
          report({
            batchNo,
            kind: "BATCH_GAP",
            message: `batch ${batchNo} starts at seq ${header.firstSeq}, the previous batch ended before ${expectedFirst}`,
          });
      }
      // Ranges follow contiguity (the rule the contract enforces), not the record's own claim.
      const from = expectedFirst;
      const claimedEnd = from + Math.max(count, 0);
      const to = Math.min(claimedEnd, Math.max(total, from));
      if (claimedEnd > to)
        report({
          batchNo,
          kind: "BATCH_ENTRIES_MISSING",
          message: `batch ${batchNo} covers seqs up to ${claimedEnd - 1}, the entries end at ${total - 1}`,
        });
      const touched = new Map<Hex, { count: number; chain: Uint8Array }>();
      const planned = ranges[b]!;
      const leaves = await replayRange(
        from,
        to,
        batchNo,
        touched,
        planned.from === from && planned.to === to ? checksOf(b) : undefined,
      );
      expectedFirst = from + Math.max(count, 0);
      sealedEvents += to - from;
      const tree = buildTree(leaves);
      const updates: SmtUpdate[] = [];
      for (const [subject, next] of touched) {
        heads.set(subject, next);
        updates.push({
          key: fromHex(subject),
          valueHash: historyValueHash(next.count, next.chain),
        });
      }
      const indexRoot = await index.update(updates);
      if (!header) continue;
      if (leaves.length === count && toHex(tree.root) !== header.eventsRoot)
        report({
          batchNo,
          kind: "EVENTS_ROOT_MISMATCH",
          message: `batch ${batchNo}: eventsRoot ${header.eventsRoot}, the entries hash to ${toHex(tree.root)}`,
        });
      if (toHex(indexRoot) !== header.indexRoot)
        report({
          batchNo,
          kind: "INDEX_ROOT_MISMATCH",
          message: `batch ${batchNo}: indexRoot ${header.indexRoot}, the rebuilt subject index has ${toHex(indexRoot)}`,
        });
      if (record && leaves.length === count)
        await checkStoredNodes(store, record, tree.levels, report);
    }
    sealedEvents = Math.min(sealedEvents, total);
    // A loss right after the last batch held (nothing sealed here since the restore).
    const trailing = lostAt(expectedNo, expectedFirst);
    if (trailing) {
      reportLost(trailing);
      expectedFirst = trailing.firstSeq + trailing.count;
      expectedNo = trailing.fromBatchNo + trailing.batches;
    }
    for (const r of lostRanges)
      if (!lostReported.has(r))
        report({
          batchNo: r.fromBatchNo,
          seq: r.firstSeq,
          kind: "LOST_RANGE_INCONSISTENT",
          message: `a lost range is recorded for batches ${r.fromBatchNo}..${r.fromBatchNo + r.batches - 1} (seqs ${r.firstSeq}..${r.firstSeq + r.count - 1}) that does not fit between the batches held`,
        });
    // The accepted, not yet sealed tail.
    if (expectedFirst < total) await replayRange(expectedFirst, total, undefined);
  } finally {
    await Promise.allSettled([...started_.values()]);
    await pool?.close();
    await Promise.allSettled([
      entries.close(),
      bodies.close(),
      groups.close(),
      receiptPaths.close(),
    ]);
  }
  await checkOrphanBodies(store, total, report);
  // On a live log a batch sealed during the replay moves the live index on: compare only when
  // the batches replayed are still all there are.
  const lastReplayed = batchRaw[batchRaw.length - 1]?.[0] ?? -1;
  const lastNow = await store.lastBatchNo();
  if (lastNow === lastReplayed) await checkLiveIndex(store, lastNow, index.root, heads, report);

  let chain: AuditReport["chain"] = null;
  if (opts.chain && logId !== null) {
    chain = await checkChain(
      logId,
      headers,
      batchRaw,
      Math.max(expectedNo, headers.length),
      lostRanges,
      opts.chain,
      report,
      opts.onProgress,
    );
  }
  return {
    ok: findingCount === 0,
    logId,
    events: total,
    erased,
    batches: batchRaw.length,
    sealedEvents,
    chain,
    findingCount,
    findings,
    durationMs: Date.now() - started,
  };
}

/**
 * A batch record as the store decodes it (schema and digest, store/record-codec.ts), or why it
 * does not decode: the audit reports that and goes on with the range the `q:` index gives.
 */
function parseBatch(batchNo: number, raw: Buffer): BatchRecord | StoreCorruptError {
  try {
    return decodeBatchRecordOf(batchNo, raw);
  } catch (e) {
    if (e instanceof StoreCorruptError) return e;
    throw e;
  }
}

function readBatch(batchNo: number, raw: Buffer): BatchRecord | undefined {
  const r = parseBatch(batchNo, raw);
  return r instanceof StoreCorruptError ? undefined : r;
}

/** A batch as the replay found it: its header when its record decodes, and the record. */
interface AuditedBatch {
  batchNo: number;
  header: BatchHeader | null;
  record?: BatchRecord;
}

/** The stored entries and bodies of a seq range (entries present only, in seq order). */
interface RangeRead {
  from: number;
  to: number;
  seqs: number[];
  entries: Buffer[];
  /** Each body as opened (undefined: erased, or it could not be opened). */
  bodies: Array<Buffer | undefined>;
  /** Whether a body was stored at all (erased when not). */
  stored: boolean[];
  /** Findings from opening the bodies, in seq order. */
  opening: AuditFinding[];
}

/** What `checkEvents` finds of a range. */
export interface CheckedEvents {
  /** The leaf hash of each entry, 32 bytes each, in order. */
  leaves: Buffer;
  /** Each entry's subject tag (null: none; undefined: the entry is malformed). */
  subjects: Array<Hex | null | undefined>;
  /** Findings about the entries and bodies, in seq order. */
  findings: AuditFinding[];
}

interface CheckedRange {
  range: RangeRead;
  checked: CheckedEvents;
}

/**
 * The checks of each event that depend on nothing but its own entry and body: the leaf hash,
 * the entry's form, seq and log, and the body's commitment. Run here or on the audit's workers.
 */
export function checkEvents(
  logId: string | null,
  seqs: readonly number[],
  entries: readonly Buffer[],
  bodies: ReadonlyArray<Buffer | undefined>,
): CheckedEvents {
  // Its own buffer (not a pool slice): a worker transfers it.
  const leaves = Buffer.allocUnsafeSlow(32 * seqs.length);
  const subjects: Array<Hex | null | undefined> = [];
  const findings: AuditFinding[] = [];
  const report = (f: AuditFinding) => findings.push(f);
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const raw = entries[i]!;
    leaves.set(leafHash(raw), 32 * i);
    const entry = checkEntry(seq, raw, logId, report);
    subjects.push(entry?.subject);
    const body = bodies[i];
    if (body !== undefined && entry)
      if (entry.v === 2) checkBodyV2(seq, entry.commitment, body, report);
      else checkBody(seq, entry.commitment, body, report);
  }
  return { leaves, subjects, findings };
}

/** Worker threads running `checkEvents` (audit-worker.ts), one range at a time each. */
class EventCheckPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<() => void> = [];
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (c: CheckedEvents) => void; reject: (e: Error) => void }
  >();

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const worker = startTsWorker(new URL("./audit-worker.ts", import.meta.url));
      worker.on("message", (m: { id: number } & (CheckedEvents | { error: string })) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if ("error" in m) p?.reject(new Error(m.error));
        else {
          const l = m.leaves as Uint8Array;
          p?.resolve({ ...m, leaves: Buffer.from(l.buffer, l.byteOffset, l.byteLength) });
        }
        this.release(worker);
      });
      worker.on("error", (error) => {
        for (const p of this.pending.values()) p.reject(error);
        this.pending.clear();
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  async check(logId: string | null, range: RangeRead): Promise<CheckedEvents> {
    const worker = await this.acquire();
    const id = this.nextId++;
    const entries = packValues(range.entries);
    const bodies = packValues(range.bodies);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, logId, seqs: range.seqs, entries, bodies }, [
        entries.buffer as ArrayBuffer,
        bodies.buffer as ArrayBuffer,
      ]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private acquire(): Promise<Worker> {
    const worker = this.idle.pop();
    if (worker) return Promise.resolve(worker);
    return new Promise((resolve) => this.queue.push(() => resolve(this.idle.pop()!)));
  }

  private release(worker: Worker): void {
    this.idle.push(worker);
    this.queue.shift()?.();
  }
}

function checkEntry(
  seq: number,
  raw: Buffer,
  logId: string | null,
  report: (f: AuditFinding) => void,
): Pick<Entry, "commitment" | "subject" | "v"> | undefined {
  // latin1 maps each byte to one char: any non-ASCII byte fails the pattern and takes the
  // general path below, which decodes UTF-8.
  const m = CANONICAL_ENTRY.exec(raw.toString("latin1"));
  const entrySeq = m ? Number(m[4]) : NaN;
  if (m && Number.isSafeInteger(entrySeq)) {
    if (entrySeq !== seq)
      report({
        seq,
        kind: "ENTRY_SEQ_MISMATCH",
        message: `entry stored at seq ${seq} says seq ${entrySeq}`,
      });
    if (logId !== null && m[2] !== logId)
      report({ seq, kind: "ENTRY_LOG_MISMATCH", message: `entry ${seq} names log ${m[2]}` });
    return {
      commitment: m[1] as Hex,
      subject: (m[5] ?? null) as Hex | null,
      v: Number(m[6]) as Entry["v"],
    };
  }
  return checkEntryParsed(seq, raw, logId, report);
}

function checkEntryParsed(
  seq: number,
  raw: Uint8Array,
  logId: string | null,
  report: (f: AuditFinding) => void,
): Entry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw).toString("utf8"));
  } catch {
    report({ seq, kind: "ENTRY_MALFORMED", message: `entry ${seq} is not JSON` });
    return undefined;
  }
  const r = EntrySchema.safeParse(parsed);
  if (!r.success) {
    report({
      seq,
      kind: "ENTRY_MALFORMED",
      message: `entry ${seq}: ${r.error.issues[0]?.message ?? "invalid"}`,
    });
    return undefined;
  }
  const entry = r.data as Entry;
  if (encodeEntry(entry) !== Buffer.from(raw).toString("utf8"))
    report({ seq, kind: "ENTRY_NOT_CANONICAL", message: `entry ${seq} is not in JCS form` });
  if (entry.seq !== seq)
    report({
      seq,
      kind: "ENTRY_SEQ_MISMATCH",
      message: `entry stored at seq ${seq} says seq ${entry.seq}`,
    });
  if (logId !== null && entry.log !== logId)
    report({ seq, kind: "ENTRY_LOG_MISMATCH", message: `entry ${seq} names log ${entry.log}` });
  return entry;
}

/** A body as ingest writes it: `{"event":<JCS of the event>,"salt":"0x<64 hex>"}`. */
const BODY_HEAD = Buffer.from('{"event":');
const BODY_SALT = Buffer.from(',"salt":"');
const BODY_TAIL_BYTES = BODY_SALT.length + 66 + 2;

/**
 * A stored body as JSON text: opened with its epoch's key (LedgerStore.openBody). One whose key
 * went while the audit read it (an erasure re-keyed its epoch) is read again; one that does not
 * open under its key was altered on disk and is reported.
 */
async function openBody(
  store: LedgerStore,
  seq: number,
  stored: Buffer,
  report: (f: AuditFinding) => void,
): Promise<Buffer | undefined> {
  try {
    return store.openBody(seq, stored) ?? (await store.getBodiesJson([seq]))[0];
  } catch (e) {
    if (!(e instanceof BodyUnreadable)) throw e;
    report({ seq, kind: "BODY_MALFORMED", message: e.message });
    return undefined;
  }
}

function checkBody(seq: number, commitment: Hex, raw: Buffer, report: (f: AuditFinding) => void) {
  // Fast path: slice the event's JCS text out of the stored layout and hash it as it is. A
  // match means these are the committed bytes (SHA-256 preimage resistance), so parsing and
  // re-canonicalising could only say the same; anything else is decided by the full check.
  const n = raw.length;
  const saltAt = n - BODY_TAIL_BYTES;
  if (
    saltAt > BODY_HEAD.length &&
    BODY_HEAD.compare(raw, 0, BODY_HEAD.length) === 0 &&
    BODY_SALT.compare(raw, saltAt, saltAt + BODY_SALT.length) === 0 &&
    raw[n - 2] === 0x22 &&
    raw[n - 1] === 0x7d
  ) {
    const saltHex = raw.toString("latin1", saltAt + BODY_SALT.length, n - 2);
    if (
      isHex32(saltHex) &&
      commitmentOfCanonical(fromHex(saltHex), raw.toString("utf8", BODY_HEAD.length, saltAt)) ===
        commitment
    )
      return;
  }
  checkBodyParsed(seq, commitment, raw, report);
}

/** Entry v2: the commitment is over C(event), the event with its field digests (core/disclosure). */
function checkBodyV2(
  seq: number,
  commitment: Hex,
  raw: Buffer,
  report: (f: AuditFinding) => void,
): void {
  let body: BodyJson & { fieldSalts?: unknown };
  try {
    body = JSON.parse(raw.toString("utf8")) as BodyJson;
  } catch {
    report({ seq, kind: "BODY_MALFORMED", message: `body ${seq} is not JSON` });
    return;
  }
  const fieldSalts = body.fieldSalts;
  if (
    typeof body !== "object" ||
    body === null ||
    !isHex32(body.salt) ||
    typeof body.event !== "object" ||
    body.event === null ||
    typeof fieldSalts !== "object" ||
    fieldSalts === null
  ) {
    report({
      seq,
      kind: "BODY_MALFORMED",
      message: `body ${seq} lacks an event object, a 32-byte salt or its field salts`,
    });
    return;
  }
  let committed: unknown;
  try {
    committed = committedForm(body.event, fieldSalts as FieldSalts);
  } catch (e) {
    report({ seq, kind: "BODY_MALFORMED", message: `body ${seq}: ${(e as Error).message}` });
    return;
  }
  if (commitmentOfCanonical(fromHex(body.salt), jcs(committed)) !== commitment)
    report({
      seq,
      kind: "COMMITMENT_MISMATCH",
      message: `body ${seq} does not match the entry's commitment`,
    });
}

function checkBodyParsed(
  seq: number,
  commitment: Hex,
  raw: Buffer,
  report: (f: AuditFinding) => void,
): void {
  let body: BodyJson;
  try {
    body = JSON.parse(raw.toString("utf8")) as BodyJson;
  } catch {
    report({ seq, kind: "BODY_MALFORMED", message: `body ${seq} is not JSON` });
    return;
  }
  if (
    typeof body !== "object" ||
    body === null ||
    !isHex32(body.salt) ||
    typeof body.event !== "object" ||
    body.event === null
  ) {
    report({
      seq,
      kind: "BODY_MALFORMED",
      message: `body ${seq} lacks an event object or a 32-byte salt`,
    });
    return;
  }
  if (commitmentOfCanonical(fromHex(body.salt), jcs(body.event)) !== commitment)
    report({
      seq,
      kind: "COMMITMENT_MISMATCH",
      message: `body ${seq} does not match the entry's commitment`,
    });
}

/** The stored Merkle nodes serve every inclusion proof: they must be the recomputed ones. */
async function checkStoredNodes(
  store: LedgerStore,
  record: BatchRecord,
  levels: ReadonlyArray<ReadonlyArray<Uint8Array>>,
  report: (f: AuditFinding) => void,
): Promise<void> {
  const { batchNo } = record.header;
  const bad = await store.storedNodesDiffering(record, levels);
  if (bad)
    report({
      batchNo,
      kind: "STORED_LEVELS_MISMATCH",
      message: `batch ${batchNo}: stored Merkle nodes ${bad.key} ${bad.missing ? "are missing" : "differ from the recomputed tree"}`,
    });
}

async function checkOrphanBodies(
  store: LedgerStore,
  total: number,
  report: (f: AuditFinding) => void,
): Promise<void> {
  for await (const seq of store.bodySeqsFrom(total)) {
    report({
      seq,
      kind: "BODY_WITHOUT_ENTRY",
      message: `a body is stored at seq ${seq}, past the last entry`,
    });
  }
}

/** The live index (what proofs are served from) and heads (what new batches extend). */
async function checkLiveIndex(
  store: LedgerStore,
  lastBatchNo: number,
  rebuiltRoot: Uint8Array,
  heads: Map<Hex, { count: number; chain: Uint8Array }>,
  report: (f: AuditFinding) => void,
): Promise<void> {
  let liveRoot: Uint8Array;
  try {
    liveRoot = await new SubjectIndex(store, lastBatchNo).rootAt(lastBatchNo);
  } catch {
    liveRoot = new Uint8Array(32).fill(0xff);
  }
  if (!bytesEqual(liveRoot, rebuiltRoot))
    report({
      kind: "STORED_INDEX_MISMATCH",
      message: `the stored completeness index has root ${toHex(liveRoot)}, the rebuilt one ${toHex(rebuiltRoot)}`,
    });
  let seen = 0;
  for await (const [subject, v] of store.subjectHeadsAsStored()) {
    seen++;
    const want = heads.get(subject);
    let ok = false;
    try {
      const head = JSON.parse(v.toString("utf8")) as { count: number; chain: string };
      ok = want !== undefined && head.count === want.count && head.chain === toHex(want.chain);
    } catch {
      ok = false;
    }
    if (!ok)
      report({
        kind: "SUBJECT_HEAD_MISMATCH",
        message: `the stored history head of subject ${subject} differs from the replayed one`,
      });
  }
  if (seen !== heads.size)
    report({
      kind: "SUBJECT_HEAD_MISMATCH",
      message: `${seen} subject heads are stored, the replay has ${heads.size}`,
    });
}

async function checkChain(
  logId: string,
  headers: AuditedBatch[],
  batchRaw: Array<[number, Buffer]>,
  /** The first batch number past everything held or lost. */
  nextBatchNo: number,
  lostRanges: readonly LostRange[],
  chainOpts: NonNullable<AuditOptions["chain"]>,
  report: (f: AuditFinding) => void,
  onProgress: AuditOptions["onProgress"],
): Promise<AuditReport["chain"]> {
  let contract = chainOpts.contract;
  if (contract === undefined) {
    for (let i = batchRaw.length - 1; i >= 0 && contract === undefined; i--) {
      const r = readBatch(batchRaw[i]![0], batchRaw[i]![1]);
      if (r?.anchor) contract = r.anchor.contract;
    }
  }
  if (contract === undefined) {
    if (headers.some((h) => h.record?.state === "anchored"))
      report({ kind: "CHAIN_ERROR", message: "no registry address: pass one (--contract)" });
    return null;
  }
  const reads = chainOpts.reads;
  const anchorEvidence = { receipt: 0, state: 0, unverifiable: 0 };
  let head: number;
  let chainId: bigint;
  try {
    [chainId, head] = await Promise.all([reads.chainId(), reads.latest()]);
  } catch (e) {
    report({
      kind: "CHAIN_ERROR",
      message: `cannot read the chain: ${e instanceof Error ? e.message : String(e)}`,
    });
    return null;
  }
  // One probe first: an address without the registry answers every read the same way.
  try {
    await reads.batchCommitment(contract, logId, 0, head);
  } catch (e) {
    if (e instanceof Error && e.name === "NotARegistry") {
      report({
        kind: "CHAIN_NO_REGISTRY",
        message: `no registry answers at ${contract}: ${e.message}`,
      });
      return { chainId: Number(chainId), contract, head, anchoredBatches: 0, anchorEvidence };
    }
  }
  let anchored = 0;
  let done = 0;
  const CONCURRENCY = 16;
  let next = 0;
  const worker = async () => {
    while (next < headers.length) {
      const h = headers[next++]!;
      try {
        const onChain = await reads.batchCommitment(contract, logId, h.batchNo, head);
        if (onChain === ZERO_COMMITMENT) {
          if (h.record?.state === "anchored")
            report({
              batchNo: h.batchNo,
              kind: "CHAIN_NOT_ANCHORED",
              message: `batch ${h.batchNo} is recorded as anchored, the registry holds nothing for it`,
            });
        } else {
          anchored++;
          if (!h.header || batchHeaderHash(h.header) !== onChain)
            report({
              batchNo: h.batchNo,
              kind: "CHAIN_HEADER_MISMATCH",
              message: `batch ${h.batchNo}: the registry holds ${onChain}, the stored header hashes to ${h.header ? batchHeaderHash(h.header) : "(unreadable)"}`,
            });
        }
        // Anchor fields are compared once the header is the registry's (or, for a batch not
        // anchored yet, its submission); a header that differs is reported above.
        const matches =
          onChain === ZERO_COMMITMENT
            ? h.record?.state !== "anchored"
            : h.record !== undefined && batchHeaderHash(h.record.header) === onChain;
        if (h.record && matches) {
          const how = await checkAnchorFields(
            h.record,
            { reads, chainId: Number(chainId), contract, head },
            report,
          );
          if (how) anchorEvidence[how]++;
        }
      } catch (e) {
        report({
          batchNo: h.batchNo,
          kind: "CHAIN_ERROR",
          message: `batch ${h.batchNo}: ${e instanceof Error ? e.message : String(e)}`,
        });
      }
      onProgress?.({ phase: "chain", done: ++done, total: headers.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, headers.length) }, worker));
  // A loss is only a loss if the chain proves those batches existed: else it would be a way to
  // hide events behind a claimed restore.
  const lostBatches = lostRanges.flatMap((r) =>
    Array.from({ length: r.batches }, (_, i) => r.fromBatchNo + i),
  );
  let nextLost = 0;
  const lostWorker = async () => {
    while (nextLost < lostBatches.length) {
      const batchNo = lostBatches[nextLost++]!;
      try {
        if ((await reads.batchCommitment(contract, logId, batchNo, head)) === ZERO_COMMITMENT)
          report({
            batchNo,
            kind: "LOST_BATCH_NOT_ON_CHAIN",
            message: `batch ${batchNo} is recorded as lost in a restore, but the registry holds nothing for it: a loss the chain does not prove`,
          });
      } catch (e) {
        report({
          batchNo,
          kind: "CHAIN_ERROR",
          message: `lost batch ${batchNo}: ${e instanceof Error ? e.message : String(e)}`,
        });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, lostBatches.length) }, lostWorker));
  // A commitment for a batch the store does not have: the log was cut short.
  try {
    const beyond = await reads.batchCommitment(contract, logId, nextBatchNo, head);
    if (beyond !== ZERO_COMMITMENT)
      report({
        batchNo: nextBatchNo,
        kind: "CHAIN_EXTRA_BATCH",
        message: `the registry holds batch ${nextBatchNo}, which the store does not have`,
      });
  } catch (e) {
    report({
      kind: "CHAIN_ERROR",
      message: `cannot read batch ${nextBatchNo}: ${e instanceof Error ? e.message : String(e)}`,
    });
  }
  return { chainId: Number(chainId), contract, head, anchoredBatches: anchored, anchorEvidence };
}

interface AuditedGroup {
  firstSeq: number;
  count: number;
  leaves: Buffer;
  tree: MerkleTree;
  pathsStored: boolean;
}

/** The `h:` record must be the `g:` record without its leaves, field for field. */
function sameGroupHeader(raw: Buffer, group: ReceiptGroupRecord): boolean {
  try {
    const header = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
    const { leafHashes: _leaves, ...expected } = group;
    return jcs(header) === jcs(expected);
  } catch {
    return false;
  }
}

/** An event's stored receipt path (`r:<seq>`): its group's firstSeq, then its audit path. */
function checkReceiptPath(
  seq: number,
  group: AuditedGroup,
  raw: Buffer | undefined,
  report: (f: AuditFinding) => void,
): void {
  if (raw === undefined) {
    if (group.pathsStored)
      report({
        seq,
        kind: "RECEIPT_PATH_MISSING",
        message: `no stored receipt path for seq ${seq}`,
      });
    return;
  }
  const index = seq - group.firstSeq;
  // The tree is built from the leaves actually stored (a tampered group may hold fewer).
  const ok =
    index < group.tree.size &&
    raw.equals(
      encodeReceiptPath(group.firstSeq, inclusionProofNodeIds(index, group.tree.size), group.tree),
    );
  if (!ok)
    report({
      seq,
      kind: "RECEIPT_PATH_MISMATCH",
      message: `the stored receipt path of seq ${seq} is not its path in the signed group tree`,
    });
}

/**
 * Receipt groups in seq order, read through one iterator. For each seq it answers what
 * `LedgerStore.getGroupContaining` would: the record under the greatest key ≤ seq, if its range
 * holds seq.
 */
class GroupStream {
  private current: AuditedGroup | undefined;
  /** The next group record not yet reached, by its key's seq. */
  private ahead: StoredGroup | undefined;
  private candidate: StoredGroup | undefined;
  private ended = false;

  constructor(
    private readonly store: LedgerStore,
    private readonly records: GroupRecords,
    private readonly report: (f: AuditFinding) => void,
  ) {}

  /** The group last read, when it holds `seq` (no read, no promise: the common case). */
  covering(seq: number): AuditedGroup | undefined {
    const c = this.current;
    return c && seq >= c.firstSeq && seq < c.firstSeq + c.count ? c : undefined;
  }

  async containing(seq: number): Promise<AuditedGroup | undefined> {
    const c = this.covering(seq);
    if (c) return c;
    // Advance to the greatest key ≤ seq.
    for (;;) {
      if (this.ahead === undefined && !this.ended) {
        const next = await this.records.next();
        if (next === undefined) this.ended = true;
        else this.ahead = next;
      }
      if (this.ahead === undefined || !(this.ahead.keySeq <= seq)) break;
      this.candidate = this.ahead;
      this.ahead = undefined;
    }
    if (this.candidate === undefined) return undefined;
    let group: ReceiptGroupRecord | undefined;
    try {
      group = JSON.parse(this.candidate.raw.toString("utf8")) as ReceiptGroupRecord;
      if (!(seq < group.firstSeq + group.count)) group = undefined;
    } catch {
      group = undefined;
    }
    if (!group || typeof group.leafHashes !== "string") return undefined;
    const leaves = Buffer.from(group.leafHashes, "base64");
    const leafList: Uint8Array[] = [];
    for (let at = 0; at + 32 <= leaves.length; at += 32)
      leafList.push(leaves.subarray(at, at + 32));
    const tree = buildTree(leafList);
    if (leafList.length !== group.count || toHex(tree.root) !== group.leavesRoot)
      this.report({
        seq: group.firstSeq,
        kind: "RECEIPT_GROUP_ROOT_MISMATCH",
        message: `receipt group at seq ${group.firstSeq}: its leaves do not hash to the signed leavesRoot`,
      });
    const rawHeader = await this.store.getGroupHeaderAsStored(group.firstSeq);
    if (rawHeader !== undefined && !sameGroupHeader(rawHeader, group))
      this.report({
        seq: group.firstSeq,
        kind: "RECEIPT_HEADER_MISMATCH",
        message: `receipt group at seq ${group.firstSeq}: the stored header differs from the group record`,
      });
    this.current = {
      firstSeq: group.firstSeq,
      count: group.count,
      leaves,
      tree,
      // Groups written since receipt paths are stored have a header; older ones have neither.
      pathsStored: rawHeader !== undefined,
    };
    return this.current;
  }

  async close(): Promise<void> {
    await this.records.close();
  }
}

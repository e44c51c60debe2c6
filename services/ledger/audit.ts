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
 * stops at the first one. Memory is O(subjects + a few batches), time O(events).
 *
 * This thread reads the store and decides the batch-level findings; the per-event work (bodies,
 * entries, leaves, trees, receipts) and the index rebuild run in audit-range.ts, on worker
 * threads or here (AuditOptions.workers), with the same findings in the same order.
 */
import os from "node:os";
import type { Worker } from "node:worker_threads";
import { type BatchHeader, batchHeaderHash } from "../core/batch-header.ts";
import { bytesEqual, toHex } from "../core/hex.ts";
import { EMPTY_ROOT } from "../core/subject-index.ts";
import { BodyUnreadable, type LedgerStore } from "../store/ledger-store.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import type { GroupRecords, SeqValues } from "../store/log-scan.ts";
import { nodeLayoutOf } from "../store/node-layout.ts";
import { StoreCorruptError, decodeBatchRecordOf } from "../store/record-codec.ts";
import { epochKeyLookup, isStaleSealedBody } from "../store/sealed-body.ts";
import { wipeKeys } from "../store/body-keys.ts";
import { type AnchorFindingKind, type AnchorReads, checkAnchorFields } from "./audit-anchors.ts";
import {
  HEAD_BYTES,
  type RangeGroup,
  type RangeInput,
  type RangeResult,
  type Subtree,
  SubjectShard,
  checkRange,
  joinShards,
} from "./audit-range.ts";
import { ValuePacker, asBuffer, rangeTransfer } from "./audit-wire.ts";
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
   * Worker threads that check the batches' ranges and rebuild the subject index (each owns a
   * shard of the subjects) while this thread only reads the store and hands them over. Default: one per core for a log of PARALLEL_FROM_EVENTS events or more, none
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
  const reportLost = (lost: LostRange, to: (f: AuditFinding) => void) => {
    lostReported.add(lost);
    to({
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

  const workers = opts.workers ?? (total >= PARALLEL_FROM_EVENTS ? os.availableParallelism() : 0);
  const runner: ReplayRunner = workers > 0 ? new WorkerRunner(workers) : new LocalRunner();
  // Opened after `total` was read: LevelDB iterators read from a snapshot, so a live log's later
  // writes never show up half-way through the replay.
  const reader = new RangeReader(store, total, logId, runner.shards, opts.onProgress);
  let erased = 0;
  let expectedFirst = 0;
  let sealedEvents = 0;
  const headers: AuditedBatch[] = [];

  /** Reads seqs [from, to) (ranges are read in order) and has them checked. */
  let reading: Promise<unknown> = Promise.resolve();
  const readAndCheck = (
    from: number,
    to: number,
    batchNo: number | undefined,
    tree: RangeInput["tree"],
  ): Promise<RangeResult> => {
    const read = reading.then(() => reader.read(from, to, batchNo, tree));
    reading = read.catch(() => undefined);
    return read.then(async (input) => {
      let result = await runner.check(input);
      // A group record whose firstSeq is not its key: its header is read now, and the range
      // checked again (only a tampered store gets here).
      if (result.needHeaders) {
        const extra = await Promise.all(
          result.needHeaders.map(
            async (seq) =>
              [seq, (await store.getGroupHeaderAsStored(seq)) ?? null] as [number, Buffer | null],
          ),
        );
        result = await runner.check({
          ...input,
          bodyKeys: store.bodyKeysOf(from, to),
          groupHeaders: [...input.groupHeaders, ...extra],
        });
        if (result.needHeaders) throw new Error("invariant violated: group headers read twice");
      }
      return result;
    });
  };

  // Group findings name their group's key: a group spanning two ranges is reported once.
  const groupsReported = new Set<string>();
  const rangeFindings = (result: RangeResult, to: (f: AuditFinding) => void) => {
    for (const { group, ...f } of result.findings) {
      if (group !== undefined) {
        const id = `${f.kind}:${group}`;
        if (groupsReported.has(id)) continue;
        groupsReported.add(id);
      }
      to(f);
    }
  };

  // Each batch's seq range, as the replay below will take it (contiguity, not the record's
  // claim, and past a range lost in a restore): the checks of the next batches are started
  // while this one is being finished.
  const ranges: Array<{ from: number; to: number; tree: RangeInput["tree"] }> = [];
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
      const record = readBatch(batchNo, raw);
      const header = record?.header;
      const count = header ? header.count : (qFirst.get(batchNo + 1) ?? total) - first;
      const to = Math.min(first + Math.max(count, 0), Math.max(total, first));
      ranges.push({ from: first, to, tree: treeOf(record) });
      first += Math.max(count, 0);
    }
  }
  const lookahead = runner.parallel + 1;
  const started_ = new Map<number, Promise<RangeResult>>();
  const checksOf = (b: number): Promise<RangeResult> | undefined => {
    for (let next = b; next <= b + lookahead && next < ranges.length; next++)
      if (!started_.has(next)) {
        const r = ranges[next]!;
        const p = readAndCheck(r.from, r.to, batchRaw[next]![0], r.tree);
        p.catch(() => undefined);
        started_.set(next, p);
      }
    const mine = started_.get(b);
    started_.delete(b);
    return mine;
  };

  // Each batch's findings, in batch order; a batch's last ones (its roots and stored nodes) are
  // known once the shards have folded it in, while the next batches are being checked.
  const finishing: Array<Promise<AuditFinding[]>> = [];
  const drain = async (keep: number) => {
    while (finishing.length > keep) for (const f of await finishing.shift()!) report(f);
  };
  /** The index subtree of each shard after the last batch sent to it. */
  const subtrees: Array<Promise<Subtree>> = Array.from({ length: runner.shards }, () =>
    Promise.resolve({ kind: "empty" }),
  );
  let indexRoot: Promise<Uint8Array> = Promise.resolve(EMPTY_ROOT);

  let expectedNo = 0;
  try {
    for (let b = 0; b < batchRaw.length; b++) {
      const [batchNo, raw] = batchRaw[b]!;
      const early: AuditFinding[] = [];
      const note = (f: AuditFinding) => early.push(f);
      if (batchNo !== expectedNo) {
        const lost = lostAt(expectedNo, expectedFirst);
        if (lost && lost.fromBatchNo + lost.batches === batchNo) {
          reportLost(lost, note);
          expectedFirst = lost.firstSeq + lost.count;
        } else
          note({
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
        note({
          batchNo,
          kind: "BATCH_MALFORMED",
          message: `batch record ${batchNo} is not a valid record: ${(parsed as StoreCorruptError).reason}`,
        });
        const nextFirst = qFirst.get(batchNo + 1);
        count = (nextFirst ?? total) - expectedFirst;
      } else {
        count = header.count;
        if (header.batchNo !== batchNo)
          note({
            batchNo,
            kind: "BATCH_NUMBER_MISMATCH",
            message: `record under batch ${batchNo} says batchNo ${header.batchNo}`,
          });
        if (logId !== null && header.logId !== logId)
          note({
            batchNo,
            kind: "BATCH_LOG_MISMATCH",
            message: `batch ${batchNo} names log ${header.logId}`,
          });
        if (header.firstSeq !== expectedFirst)
          note({
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
        note({
          batchNo,
          kind: "BATCH_ENTRIES_MISSING",
          message: `batch ${batchNo} covers seqs up to ${claimedEnd - 1}, the entries end at ${total - 1}`,
        });
      const planned = ranges[b]!;
      const result = await ((planned.from === from && planned.to === to
        ? checksOf(b)
        : undefined) ?? readAndCheck(from, to, batchNo, treeOf(record)));
      rangeFindings(result, note);
      expectedFirst = from + Math.max(count, 0);
      sealedEvents += to - from;
      erased += result.erased;
      // The shards fold batches in the order they are sent: this batch's events go now.
      result.shardEvents.forEach((events, s) => {
        if (events.length > 0) subtrees[s] = runner.apply(s, events);
      });
      const root = Promise.all(subtrees).then(joinShards);
      indexRoot = root;
      root.catch(() => undefined);
      const present = result.present;
      const finish = (async () => {
        const rebuilt = await root;
        if (!header) return early;
        if (present === count && result.eventsRoot !== header.eventsRoot)
          note({
            batchNo,
            kind: "EVENTS_ROOT_MISMATCH",
            message: `batch ${batchNo}: eventsRoot ${header.eventsRoot}, the entries hash to ${result.eventsRoot}`,
          });
        if (toHex(rebuilt) !== header.indexRoot)
          note({
            batchNo,
            kind: "INDEX_ROOT_MISMATCH",
            message: `batch ${batchNo}: indexRoot ${header.indexRoot}, the rebuilt subject index has ${toHex(rebuilt)}`,
          });
        // The stored Merkle nodes serve every inclusion proof: they must be the recomputed ones.
        if (result.nodes) {
          const bad = await store.storedValuesDiffering(result.nodes);
          if (bad)
            note({
              batchNo,
              kind: "STORED_LEVELS_MISMATCH",
              message: `batch ${batchNo}: stored Merkle nodes ${bad.key} ${bad.missing ? "are missing" : "differ from the recomputed tree"}`,
            });
        }
        return early;
      })();
      finish.catch(() => undefined);
      finishing.push(finish);
      await drain(lookahead);
    }
    await drain(0);
    sealedEvents = Math.min(sealedEvents, total);
    // A loss right after the last batch held (nothing sealed here since the restore).
    const trailing = lostAt(expectedNo, expectedFirst);
    if (trailing) {
      reportLost(trailing, report);
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
    if (expectedFirst < total) {
      const tail = await readAndCheck(expectedFirst, total, undefined, undefined);
      rangeFindings(tail, report);
      erased += tail.erased;
    }
    await checkOrphanBodies(store, total, report);
    // On a live log a batch sealed during the replay moves the live index on: compare only when
    // the batches replayed are still all there are.
    const lastReplayed = batchRaw[batchRaw.length - 1]?.[0] ?? -1;
    const lastNow = await store.lastBatchNo();
    if (lastNow === lastReplayed) {
      const rebuiltRoot = await indexRoot;
      const heads: Buffer[] = [];
      for (let s = 0; s < runner.shards; s++) heads.push(await runner.heads(s));
      await checkLiveIndex(store, lastNow, rebuiltRoot, Buffer.concat(heads), report);
    }
  } finally {
    await Promise.allSettled([...started_.values(), ...finishing, reading]);
    await Promise.allSettled([runner.close(), reader.close()]);
  }

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

/** What a decodable batch record tells the range check: its count and node layout. */
function treeOf(record: BatchRecord | undefined): RangeInput["tree"] {
  return record ? { count: record.header.count, layout: nodeLayoutOf(record) } : undefined;
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

/**
 * The live index (what proofs are served from) and heads (what new batches extend), against the
 * rebuilt root and the replayed heads (audit-range.ts `packedHeads`, sorted by subject, as the
 * stored heads are).
 */
async function checkLiveIndex(
  store: LedgerStore,
  lastBatchNo: number,
  rebuiltRoot: Uint8Array,
  heads: Buffer,
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
  const replayed = heads.length / HEAD_BYTES;
  const subjectAt = (i: number) => toHex(heads.subarray(HEAD_BYTES * i, HEAD_BYTES * i + 32));
  let at = 0;
  let seen = 0;
  for await (const [subject, v] of store.subjectHeadsAsStored()) {
    seen++;
    while (at < replayed && subjectAt(at) < subject) at++;
    const found = at < replayed && subjectAt(at) === subject;
    let ok = false;
    try {
      const head = JSON.parse(v.toString("utf8")) as { count: number; chain: string };
      ok =
        found &&
        head.count === heads.readDoubleLE(HEAD_BYTES * at + 32) &&
        head.chain === toHex(heads.subarray(HEAD_BYTES * at + 40, HEAD_BYTES * (at + 1)));
    } catch {
      ok = false;
    }
    if (!ok)
      report({
        kind: "SUBJECT_HEAD_MISMATCH",
        message: `the stored history head of subject ${subject} differs from the replayed one`,
      });
  }
  if (seen !== replayed)
    report({
      kind: "SUBJECT_HEAD_MISMATCH",
      message: `${seen} subject heads are stored, the replay has ${replayed}`,
    });
}

/** Where the replay's checks run: on this thread, or on worker threads (audit-worker.ts). */
interface ReplayRunner {
  /** Subject shards (a power of two). */
  readonly shards: number;
  /** Ranges checked at once. */
  readonly parallel: number;
  check(input: RangeInput): Promise<RangeResult>;
  /** Folds a batch's events into shard `shard`; its subtree after them. */
  apply(shard: number, events: Buffer): Promise<Subtree>;
  /** Shard `shard`'s heads, packed (SubjectShard.packedHeads); asked once, at the end. */
  heads(shard: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Everything on this thread, one shard. */
class LocalRunner implements ReplayRunner {
  readonly shards = 1;
  readonly parallel = 0;
  private readonly shard = new SubjectShard(0, 1);

  check(input: RangeInput): Promise<RangeResult> {
    return Promise.resolve(checkRange(input));
  }

  apply(_shard: number, events: Buffer): Promise<Subtree> {
    return this.shard.apply(events);
  }

  heads(): Promise<Buffer> {
    return Promise.resolve(this.shard.packedHeads());
  }

  async close(): Promise<void> {}
}

/**
 * Worker threads: each range goes to the worker with the fewest ranges in hand; the subject
 * shards (one per worker, rounded up to a power of two) each live on one worker.
 */
class WorkerRunner implements ReplayRunner {
  readonly shards: number;
  readonly parallel: number;
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (m: unknown) => void; reject: (e: Error) => void }
  >();
  private failed: Error | undefined;

  constructor(size: number) {
    this.parallel = size;
    this.shards = 2 ** Math.ceil(Math.log2(size));
    for (let i = 0; i < size; i++) {
      const worker = startTsWorker(new URL("./audit-worker.ts", import.meta.url));
      worker.on("message", (m: { id: number; error?: string }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error !== undefined) p?.reject(new Error(m.error));
        else p?.resolve(m);
      });
      worker.on("error", (error) => this.fail(error));
      worker.on("exit", (code) => this.fail(new Error(`an audit worker exited (${code})`)));
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  async check(input: RangeInput): Promise<RangeResult> {
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[w]!) w = i;
    this.load[w]!++;
    try {
      const m = (await this.send(w, { type: "range", range: input }, rangeTransfer(input))) as {
        result: RangeResult;
        back?: Pick<RangeInput, "entries" | "bodies" | "receiptPaths">;
      };
      if (m.back) {
        input.entries = asBuffer(m.back.entries);
        input.bodies = asBuffer(m.back.bodies);
        input.receiptPaths = asBuffer(m.back.receiptPaths);
      }
      const result = m.result;
      result.shardEvents = result.shardEvents.map(asBuffer);
      result.nodes = result.nodes?.map((n) => ({ key: n.key, value: asBuffer(n.value) }));
      return result;
    } finally {
      this.load[w]!--;
      // The worker was given a copy; this thread's copy of the keys goes now.
      wipeKeys(input.bodyKeys);
    }
  }

  async apply(shard: number, events: Buffer): Promise<Subtree> {
    const own = Buffer.allocUnsafeSlow(events.length);
    events.copy(own);
    const m = (await this.send(
      shard % this.workers.length,
      { type: "shard", shard, shards: this.shards, events: own },
      [own.buffer as ArrayBuffer],
    )) as { subtree: Subtree };
    return m.subtree;
  }

  async heads(shard: number): Promise<Buffer> {
    const m = (await this.send(shard % this.workers.length, {
      type: "heads",
      shard,
      shards: this.shards,
    })) as { heads: Uint8Array };
    return asBuffer(m.heads);
  }

  async close(): Promise<void> {
    this.failed ??= new Error("the audit is over");
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private send(w: number, message: object, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[w]!.postMessage({ id, ...message }, transfer);
    });
  }

  private fail(error: Error): void {
    this.failed ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** A group record as read, with its stored header (null: none) under the same seq. */
type ReadGroup = RangeGroup & { header: Buffer | null };

/**
 * Reads the log's per-seq records (entries, bodies, receipt paths) and receipt groups through one
 * iterator each, range after range in seq order, into what `checkRange` takes. Bodies stay as
 * stored (sealed): the checks open them, with a copy of their epochs' keys.
 */
class RangeReader {
  private readonly entries: SeqValues;
  private readonly bodies: SeqValues;
  private readonly receiptPaths: SeqValues;
  private readonly groups: GroupRecords;
  /** The last group record read (the candidate for the next range's first seq). */
  private last: ReadGroup | undefined;
  private ahead: ReadGroup | undefined;
  private groupsEnded = false;

  constructor(
    private readonly store: LedgerStore,
    private readonly total: number,
    private readonly logId: string | null,
    private readonly shards: number,
    private readonly onProgress: AuditOptions["onProgress"],
  ) {
    this.entries = store.seqValues("entries", total);
    this.bodies = store.seqValues("bodies", total);
    this.receiptPaths = store.seqValues("receiptPaths", total);
    this.groups = store.groupRecords();
  }

  /** Seqs [from, to); ranges are read in increasing order. */
  async read(
    from: number,
    to: number,
    batchNo: number | undefined,
    tree: RangeInput["tree"],
  ): Promise<RangeInput> {
    const bodyKeys = this.store.bodyKeysOf(from, to);
    const keys = epochKeyLookup(bodyKeys);
    const seqs: number[] = [];
    const stored: number[] = [];
    const openingFailures: RangeInput["openingFailures"] = [];
    const packed = {
      entries: new ValuePacker(),
      bodies: new ValuePacker(),
      receiptPaths: new ValuePacker(),
    };
    const { entries, bodies, receiptPaths } = this;
    for (let seq = from; seq < to; seq++) {
      if (!entries.has(seq)) {
        await entries.load(seq);
        if (seq > from) this.onProgress?.({ phase: "replay", done: seq, total: this.total });
      }
      if (!bodies.has(seq)) await bodies.load(seq);
      if (!receiptPaths.has(seq)) await receiptPaths.load(seq);
      const raw = entries.get(seq);
      if (raw === undefined) continue;
      seqs.push(seq);
      packed.entries.push(raw);
      let body = bodies.get(seq);
      stored.push(body === undefined ? 0 : 1);
      // Re-keyed by an erasure since it was read: read again, opened here.
      if (body !== undefined && isStaleSealedBody(seq, body, keys))
        try {
          body = (await this.store.getBodiesJson([seq]))[0];
        } catch (e) {
          if (!(e instanceof BodyUnreadable)) throw e;
          openingFailures.push({ seq, message: e.message });
          body = undefined;
        }
      packed.bodies.push(body);
      packed.receiptPaths.push(receiptPaths.get(seq));
    }
    const input: RangeInput = {
      logId: this.logId,
      ...(batchNo === undefined ? {} : { batchNo }),
      from,
      to,
      seqs,
      entries: packed.entries.take(),
      bodies: packed.bodies.take(),
      stored: Uint8Array.from(stored),
      openingFailures,
      receiptPaths: packed.receiptPaths.take(),
      groups: [],
      groupHeaders: [],
      bodyKeys,
      ...(tree ? { tree } : {}),
      shards: batchNo === undefined ? 0 : this.shards,
    };
    const groups = await this.groupsOf(from, to);
    input.groups = groups.map(({ keySeq, raw }) => ({ keySeq, raw }));
    input.groupHeaders = groups.map((g) => [g.keySeq, g.header]);
    if (to > from) this.onProgress?.({ phase: "replay", done: to, total: this.total });
    return input;
  }

  /** The record under the greatest key ≤ from, then those with keys in (from, to). */
  private async groupsOf(from: number, to: number): Promise<ReadGroup[]> {
    const inRange: ReadGroup[] = [];
    for (;;) {
      if (this.ahead === undefined && !this.groupsEnded) {
        const next = await this.groups.next();
        if (next === undefined) this.groupsEnded = true;
        else
          this.ahead = {
            ...next,
            header: (await this.store.getGroupHeaderAsStored(next.keySeq)) ?? null,
          };
      }
      const a = this.ahead;
      if (a === undefined || a.keySeq >= to) break;
      this.ahead = undefined;
      if (a.keySeq <= from) this.last = a;
      else inRange.push(a);
    }
    const candidate = this.last;
    if (inRange.length > 0) this.last = inRange[inRange.length - 1];
    return candidate ? [candidate, ...inRange] : inRange;
  }

  async close(): Promise<void> {
    await Promise.allSettled([
      this.entries.close(),
      this.bodies.close(),
      this.receiptPaths.close(),
      this.groups.close(),
    ]);
  }
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

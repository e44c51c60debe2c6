import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { BUNDLE_FORMAT, type Bundle, type BundleStatus } from "../core/bundle.ts";
import {
  type Entry,
  type EntryVersion,
  type SubjectDerivation,
  subjectTag,
} from "../core/entry.ts";
import type { NativeEvent } from "../core/event.ts";
import { type Hex, fromHex, toHex } from "../core/hex.ts";
import { inclusionProofNodeIds } from "../core/merkle.ts";
import type { Receipt, TypedDataSigner } from "../core/receipt.ts";
import { decodeEntryOf } from "../store/record-codec.ts";
import {
  type BatchPage,
  LedgerStore,
  type LedgerStoreOptions,
  type LogMeta,
  type StoredBody,
} from "../store/ledger-store.ts";
import { type StorageFailure, StorageUnavailableError } from "../store/storage-failure.ts";
import {
  LogSecretError,
  type SealedLogSecret,
  openLogSecret,
  sealLogSecret,
} from "./log-secret.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import { type StaffIdentity, bundleContent } from "./access.ts";
import { LedgerError, invariant } from "./errors.ts";
import { type EntryRead, GroupCommitter, type IngestResult, parseEntryRead } from "./ingest.ts";
import { IngestGate, type IngestGateStatus, type IngestLimits } from "./ingest-gate.ts";
import { nodeLayoutOf, nodeReads } from "../store/node-layout.ts";
import { Sealer } from "./seal.ts";
import { SubjectIndex } from "./subject-index-store.ts";
import {
  type LostRange,
  type RestoreMarker,
  describeLostRange,
  lostRangeOfBatch,
  lostRangeOfSeq,
  pastLostRanges,
} from "./lost-ranges.ts";

export interface LedgerOptions {
  /** LevelDB directory of this log. */
  location: string;
  receiptSigner: TypedDataSigner;
  batchMaxEvents: number;
  batchMaxWaitMs: number;
  anchorDeadlineMs: number;
  groupCommitMaxEvents: number;
  /**
   * The clock `entry.recorded` is read from (ms since the epoch; default Date.now). Tests set it
   * to build logs that span time; receipts are always issued on the real clock.
   */
  logClock?: () => number;
  /**
   * Tests only: the version of the entries written (asked per group; 1 is the format of logs
   * written before entry v2, so a test log can hold both, as an upgraded log does).
   */
  entryVersion?: () => EntryVersion;
  /**
   * Compute each batch's completeness-index update in a worker thread (the service does; tools
   * and most tests keep it on the calling thread). See index-worker.ts.
   */
  sealWorker?: boolean;
  /** V8 heap limit of the sealing worker (MB); V8's default when absent. */
  sealWorkerHeapMb?: number;
  /** Deep completeness-index nodes kept in memory (index-updater.ts); its default when absent. */
  indexNodeCacheMax?: number;
  /** Tests only: index ops per write of a large seal (subject-index-store.ts). */
  indexWriteSliceOps?: number;
  /**
   * Backpressure bounds (ingest-gate.ts); when absent DEFAULT_INGEST_LIMITS, with room for at
   * least two batches of unsealed events and two batch waits.
   */
  ingestLimits?: IngestLimits;
  /** Only used when the log is created: a fixed logId (tests); random otherwise. */
  newLogId?: Hex;
  /**
   * Key material (32 bytes) that seals the log secret at rest (ledger/log-secret.ts). Without
   * it the secret is stored in clear, which only development allows; a log whose secret is
   * sealed does not open without it, and a log whose secret is in clear gets it sealed.
   */
  logSecretKey?: Uint8Array;
  onSealed?: (record: BatchRecord) => void;
  onBackgroundError?: (error: unknown) => void;
  /** While the disk refuses writes: how often a probe write is tried (default 2 s). */
  storageRetryMs?: number;
  /** Bytes a probe must write and sync before the store is reopened (default 8 MiB). */
  storageProbeBytes?: number;
  /** Storage failures and recoveries, for logs. */
  onStorage?: (event: StorageEvent) => void;
  /** Store options (tests inject write faults here). */
  store?: LedgerStoreOptions;
}

/** The service's defaults (config.ts INGEST_*): see ingest-gate.ts for what they bound. */
export const DEFAULT_INGEST_LIMITS: IngestLimits = {
  maxUnsealedEvents: 50_000,
  maxUnsealedAgeMs: 10_000,
  maxUnanchoredBatches: 256,
  waitMs: 1_000,
};

/** What the ledger reports of its backlog (/readyz, /metrics). */
export interface BacklogStatus extends IngestGateStatus {
  /** Time since the oldest acknowledged-but-unsealed event was acknowledged; 0 when none. */
  oldestUnsealedMs: number;
}

/** What the ledger reports about its disk. */
export type StorageEvent =
  | { type: "failed"; failure: StorageFailure }
  | { type: "probe-failed"; message: string }
  | { type: "recovered"; failure: StorageFailure; downMs: number; nextSeq: number };

/** Whether the ledger can write; `failed` while its disk refuses writes (503 on ingest). */
export type StorageHealth =
  { state: "ok"; failures: number } | ({ state: "failed"; failures: number } & StorageFailure);

/** A stored event as the ledger hands it out (body null once erased). */
export interface StoredEvent {
  seq: number;
  entry: Entry;
  event: NativeEvent | null;
  salt: Hex | null;
}

/** The parts that hold in-memory state derived from the store: rebuilt after a reopen. */
interface LedgerParts {
  committer: GroupCommitter;
  sealer: Sealer;
  subjectIndex: SubjectIndex;
}

const DEFAULT_STORAGE_RETRY_MS = 2_000;
const DEFAULT_STORAGE_PROBE_BYTES = 8 * 1024 * 1024;

/**
 * One log: accepts events durably, seals them into batches and serves proofs. The use cases
 * the API and CLI call live here; only this layer talks to the store (STYLE.md §6).
 *
 * When the disk refuses a write (full, quota, I/O error) the ledger stops acknowledging:
 * ingest is refused with a StorageUnavailableError, sealing stops, reads go on. A probe write
 * is tried every `storageRetryMs`; once the disk takes it, the store is reopened, the committer,
 * sealer and completeness index are rebuilt from what is on disk, and ingest resumes.
 */
export class Ledger {
  private sealedListeners: Array<(record: BatchRecord) => void> = [];
  private parts!: LedgerParts;
  private storageFailures = 0;
  private recovering: Promise<void> | undefined;
  private closing = false;
  private wakeRecovery: (() => void) | undefined;
  private lost: LostRange[] = [];
  private restore: RestoreMarker | undefined;
  private anchorBound = false;
  /**
   * Batches [0, anchoredBelow) are anchored (per their records, or lost: anchored on-chain and
   * missing here); so are those in anchoredAbove.
   */
  private anchoredBelow = 0;
  private readonly anchoredAbove = new Set<number>();
  private lastSealedBatchNo = -1;
  /** When each acknowledged-but-unsealed group was acknowledged (group end seq, time), in order. */
  private readonly ackTimes: Array<{ end: number; at: number }> = [];
  private ackTimesStart = 0;
  private readonly gate: IngestGate;

  private constructor(
    readonly store: LedgerStore,
    readonly meta: LogMeta,
    readonly signerAddress: string,
    private readonly secretSealed: boolean,
    private readonly opts: LedgerOptions,
    ingestLimits: IngestLimits,
  ) {
    this.gate = new IngestGate(ingestLimits, {
      unsealedEvents: () => this.nextSeq - this.sealedThrough,
      oldestUnsealedMs: () => this.oldestUnsealedMs(),
      unanchoredBatches: () => (this.anchorBound ? this.unanchoredBatches : 0),
    });
  }

  static async open(opts: LedgerOptions): Promise<Ledger> {
    await mkdir(path.dirname(path.resolve(opts.location)), { recursive: true });
    const store = await LedgerStore.open(opts.location, opts.store);
    try {
      const meta = await openLogMeta(store, opts);
      const signerAddress = await opts.receiptSigner.getAddress();
      const ledger = new Ledger(
        store,
        meta,
        signerAddress,
        opts.logSecretKey !== undefined,
        opts,
        opts.ingestLimits ?? {
          ...DEFAULT_INGEST_LIMITS,
          // Never below a batch (sealing would wait for its timer): two, so one can fill while
          // the previous one seals.
          maxUnsealedEvents: Math.max(
            DEFAULT_INGEST_LIMITS.maxUnsealedEvents,
            2 * opts.batchMaxEvents,
          ),
          // Nor below two batch waits (a partial batch is sealed only when its wait is over).
          maxUnsealedAgeMs: Math.max(
            DEFAULT_INGEST_LIMITS.maxUnsealedAgeMs,
            2 * opts.batchMaxWaitMs,
          ),
        },
      );
      ledger.lost = await store.getLostRanges();
      ledger.restore = await store.getRestoreMarker();
      const last = await store.lastBatch();
      ledger.lastSealedBatchNo = last ? last.header.batchNo : -1;
      ledger.anchoredBelow = await anchoredBelow(store);
      for (const range of ledger.lost) ledger.noteLostAnchored(range);
      ledger.parts = await ledger.buildParts();
      // Events left unsealed by an earlier run: their acknowledgement time is not kept; count
      // their age from now (the sealer seals them at once on start).
      if (ledger.nextSeq > ledger.sealedThrough)
        ledger.ackTimes.push({ end: ledger.nextSeq, at: Date.now() });
      store.onFailure((failure) => ledger.storageFailed(failure));
      // A restored copy seals nothing before it has been compared with the chain.
      if (!ledger.restore) {
        ledger.parts.sealer.start();
        ledger.pruneUndo();
      }
      return ledger;
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  /** Whether the log secret is sealed on disk (a key was given) or in clear. */
  get logSecretAtRest(): "sealed" | "clear" {
    return this.secretSealed ? "sealed" : "clear";
  }

  /** Committer, sealer and completeness index as the store says they are now. */
  private async buildParts(): Promise<LedgerParts> {
    const { store, meta, opts } = this;
    // Lost seqs and batch numbers are never given out again: the log continues past them.
    const past = pastLostRanges(this.lost);
    const nextSeq = Math.max(await store.nextSeq(), past.seq);
    const last = await store.lastBatch();
    const subjectIndex = new SubjectIndex(
      store,
      Math.max(last ? last.header.batchNo : -1, past.batchNo - 1),
      {
        worker: opts.sealWorker ?? false,
        ...(opts.sealWorkerHeapMb !== undefined ? { workerHeapMb: opts.sealWorkerHeapMb } : {}),
        ...(opts.indexNodeCacheMax !== undefined ? { nodeCacheMax: opts.indexNodeCacheMax } : {}),
        ...(opts.indexWriteSliceOps !== undefined
          ? { writeSliceOps: opts.indexWriteSliceOps }
          : {}),
      },
    );
    const sealer = new Sealer(store, subjectIndex, last, nextSeq, {
      floor: { batchNo: past.batchNo, firstSeq: past.seq },
      logId: meta.logId as Hex,
      maxEvents: opts.batchMaxEvents,
      maxWaitMs: opts.batchMaxWaitMs,
      onSealed: (record) => {
        this.noteSealed(record);
        opts.onSealed?.(record);
        for (const l of this.sealedListeners) l(record);
      },
      onError: (error) => opts.onBackgroundError?.(error),
    });
    const committer = new GroupCommitter(store, nextSeq, {
      logId: meta.logId as Hex,
      logSecret: fromHex(meta.logSecret),
      subjectDerivation: meta.subjectDerivation ?? "pipe",
      lastRecordedMs: await lastLogTime(store, nextSeq),
      ...(opts.entryVersion !== undefined ? { entryVersion: opts.entryVersion } : {}),
      ...(opts.logClock !== undefined ? { logClock: opts.logClock } : {}),
      signer: opts.receiptSigner,
      signerAddress: this.signerAddress,
      anchorDeadlineMs: opts.anchorDeadlineMs,
      maxGroupEvents: opts.groupCommitMaxEvents,
      onCommitted: (next, group) => {
        this.ackTimes.push({ end: next, at: Date.now() });
        sealer.accepted(next, group);
      },
    });
    return { committer, sealer, subjectIndex };
  }

  /** Stops the committer, the sealer and the sealing worker (before a rebuild or a close). */
  private async closeParts(): Promise<void> {
    const { committer, sealer, subjectIndex } = this.parts;
    await committer.close();
    await sealer.stop();
    await subjectIndex.close();
  }

  get subjectIndex(): SubjectIndex {
    return this.parts.subjectIndex;
  }

  /** Whether the ledger can write now, and how often its disk has refused since it opened. */
  storageHealth(): StorageHealth {
    const failure = this.store.failure;
    return failure
      ? { state: "failed", failures: this.storageFailures, ...failure }
      : { state: "ok", failures: this.storageFailures };
  }

  // ---- restore and lost ranges --------------------------------------------------------------

  /** Set while a restored copy waits to be compared with the chain (ingest answers 503). */
  get restorePending(): RestoreMarker | undefined {
    return this.restore;
  }

  /** Batch ranges the chain holds and this ledger lost (restore-reconcile.ts). */
  lostRanges(): readonly LostRange[] {
    return this.lost;
  }

  lostRangeAt(seq: number): LostRange | undefined {
    return lostRangeOfSeq(this.lost, seq);
  }

  /**
   * Ends a restore: records what the chain holds beyond this copy (if anything) and lets the
   * log continue after it, in one synced write with the marker's removal. From here on ingest
   * and sealing run; seqs and batch numbers continue after the lost range.
   */
  async completeRestore(lost: LostRange | undefined): Promise<void> {
    invariant(this.restore !== undefined, "a restore is pending");
    if (lost) {
      invariant(lost.firstSeq === this.sealedThrough, "a lost range starts where the copy ends");
      invariant(this.nextSeq === this.sealedThrough, "a restored copy holds no unsealed events");
    }
    await this.store.completeRestore(lost);
    if (lost) {
      this.lost = [...this.lost, lost];
      this.noteLostAnchored(lost);
    }
    this.restore = undefined;
    await this.closeParts();
    this.parts = await this.buildParts();
    this.parts.sealer.start();
    this.gate.progress();
  }

  /**
   * A consistent copy of the whole log while it runs: acknowledgements are held back (callers
   * wait, nothing is refused) while the unsealed tail is sealed and a LevelDB snapshot taken,
   * then resume; the snapshot is read afterwards while ingest goes on. Every event in the copy
   * is in a sealed batch, so a restored copy never seals the same seqs differently from the
   * batches the running log anchors after it (restore-reconcile.ts).
   */
  async backupStream(): Promise<{
    ingestPausedMs: number;
    headSeq: number;
    /** The body-key file (bodies are sealed under its keys), consistent with the snapshot. */
    bodyKeys: Buffer;
    frames: AsyncGenerator<Buffer>;
  }> {
    if (this.restore)
      throw new LedgerError(
        "RESTORE_PENDING",
        "this ledger is a restored copy not yet compared with the chain; back it up once it is",
      );
    const failure = this.store.failure;
    if (failure) throw new StorageUnavailableError(failure);
    // Sealed up to now while ingest goes on; the hold then seals only what came in meanwhile.
    await this.parts.sealer.catchUp();
    const started = performance.now();
    const committer = this.parts.committer;
    await committer.pause();
    let copy: { bodyKeys: Buffer; frames: AsyncGenerator<Buffer> };
    let headSeq: number;
    try {
      await this.parts.sealer.sealAll();
      // With the body keys, in one exclusive section: an erasure re-keys an epoch's bodies and
      // its key together, and must not fall between the two copies.
      copy = await committer.exclusive(() => this.store.snapshotCopy());
      headSeq = this.nextSeq;
    } finally {
      committer.resume();
    }
    const ingestPausedMs = performance.now() - started;
    return { ingestPausedMs, headSeq, ...copy };
  }

  private notLost(seq: number): void {
    const lost = this.lostRangeAt(seq);
    if (lost)
      throw new LedgerError(
        "NOT_FOUND",
        `no event at seq ${seq}: ${describeLostRange(lost)}`,
        "seq",
      );
  }

  /** Free bytes on the ledger's file system (metrics). */
  storageFreeBytes(): Promise<number | undefined> {
    return this.store.freeBytes();
  }

  private storageFailed(failure: StorageFailure): void {
    this.storageFailures++;
    this.opts.onStorage?.({ type: "failed", failure });
    if (this.closing) return;
    this.recovering ??= this.recoverStorage(failure).finally(() => {
      this.recovering = undefined;
    });
  }

  /** Probes until the disk takes writes, then reopens the store and rebuilds the parts. */
  private async recoverStorage(failure: StorageFailure): Promise<void> {
    const retryMs = this.opts.storageRetryMs ?? DEFAULT_STORAGE_RETRY_MS;
    const probeBytes = this.opts.storageProbeBytes ?? DEFAULT_STORAGE_PROBE_BYTES;
    let lastProbeError: string | undefined;
    while (!this.closing) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retryMs);
        this.wakeRecovery = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRecovery = undefined;
      if (this.closing) return;
      try {
        await this.store.probeWritable(probeBytes);
        await this.closeParts();
        await this.store.reopen();
        this.parts = await this.buildParts();
        this.store.clearFailure();
        if (!this.restore) this.parts.sealer.start();
        this.gate.progress();
        this.opts.onStorage?.({
          type: "recovered",
          failure,
          downMs: Date.now() - failure.since,
          nextSeq: this.nextSeq,
        });
        return;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Said once per distinct cause, not every retry of a disk that stays full.
        if (message !== lastProbeError)
          this.opts.onStorage?.({ type: "probe-failed", message: message.slice(0, 300) });
        lastProbeError = message;
      }
    }
  }

  get logId(): Hex {
    return this.meta.logId as Hex;
  }

  /** How this log turns patient identifiers into subject tags (fixed at its creation). */
  get subjectDerivation(): SubjectDerivation {
    return this.meta.subjectDerivation ?? "pipe";
  }

  /** The keyed subject tag of a patient identifier in this log (the secret stays here). */
  subjectTagOf(patient: { system?: string | undefined; value: string }): Hex {
    return subjectTag(fromHex(this.meta.logSecret), patient, this.subjectDerivation);
  }

  /** Seqs [0, nextSeq) are acknowledged. */
  get nextSeq(): number {
    return this.parts.committer.pendingSeq;
  }

  get sealedThrough(): number {
    return this.parts.sealer.sealedThrough;
  }

  onSealed(listener: (record: BatchRecord) => void): void {
    this.sealedListeners.push(listener);
  }

  /**
   * Validated events in; receipts out once the events are synced to disk. While the backlog is
   * at its bound this waits briefly for room, then throws IngestOverloadedError (nothing stored).
   * While the disk refuses writes it throws StorageUnavailableError, and while a restored copy
   * is being compared with the chain a RESTORE_PENDING LedgerError.
   */
  async ingest(events: NativeEvent[]): Promise<IngestResult[]> {
    this.refuseUnlessWritable();
    const release = await this.gate.admit(events.length);
    try {
      // The disk may have failed while this caller waited for room.
      this.refuseUnlessWritable();
      return await this.parts.committer.submit(events);
    } finally {
      release();
    }
  }

  private refuseUnlessWritable(): void {
    const failure = this.store.failure;
    if (failure) throw new StorageUnavailableError(failure);
    if (this.restore)
      throw new LedgerError(
        "RESTORE_PENDING",
        "this ledger was restored from a backup and is being compared with the chain before it accepts events; retry shortly",
      );
  }

  /**
   * An anchor loop runs for this ledger: from now on sealed-but-unanchored batches count against
   * the ingest bound (a ledger nobody anchors, as in tools and tests, is bounded by sealing only).
   */
  expectAnchoring(): void {
    this.anchorBound = true;
  }

  /** Sealed batches whose records are not anchored (kept from the anchor loop's writes). */
  get unanchoredBatches(): number {
    return this.lastSealedBatchNo + 1 - this.anchoredBelow - this.anchoredAbove.size;
  }

  private noteBatchState(batchNo: number, anchored: boolean): void {
    if (anchored) {
      if (batchNo < this.anchoredBelow) return;
      this.anchoredAbove.add(batchNo);
      const below = this.anchoredBelow;
      while (this.anchoredAbove.delete(this.anchoredBelow)) this.anchoredBelow++;
      if (this.anchoredBelow > below) this.pruneUndo();
    } else if (batchNo < this.anchoredBelow) {
      // A reorg or chain reset: this batch goes back to waiting; the ones after it still hold.
      for (let b = batchNo + 1; b < this.anchoredBelow; b++) this.anchoredAbove.add(b);
      this.anchoredBelow = batchNo;
    } else {
      this.anchoredAbove.delete(batchNo);
    }
  }

  /**
   * Lost batches have no record here and are never anchored again, but the chain holds them:
   * they count as anchored, or they would hold the unanchored-batches bound forever.
   */
  private noteLostAnchored(range: LostRange): void {
    const end = range.fromBatchNo + range.batches;
    this.lastSealedBatchNo = Math.max(this.lastSealedBatchNo, end - 1);
    for (let b = Math.max(range.fromBatchNo, this.anchoredBelow); b < end; b++)
      this.noteBatchState(b, true);
  }

  /**
   * Deletes completeness-index undo records that proofs at the anchored batches no longer need
   * (SubjectIndex.pruneUndo), in the background.
   */
  private pruneUndo(): void {
    // Not before the parts exist (lost ranges are noted first at open), nor on a restored copy
    // not yet compared with the chain.
    if (this.anchoredBelow === 0 || this.parts === undefined || this.restore) return;
    this.subjectIndex
      .pruneUndo(this.anchoredBelow - 1)
      .catch((error: unknown) => this.opts.onBackgroundError?.(error));
  }

  /** The unsealed and unanchored backlog against its bounds. */
  backlog(): BacklogStatus {
    return { ...this.gate.status(), oldestUnsealedMs: this.oldestUnsealedMs() };
  }

  private oldestUnsealedMs(): number {
    const sealed = this.sealedThrough;
    for (let i = this.ackTimesStart; i < this.ackTimes.length; i++) {
      const t = this.ackTimes[i]!;
      if (t.end > sealed) return Math.max(0, Date.now() - t.at);
    }
    return 0;
  }

  /** A batch is durable: forget acknowledgement times it covers and let waiting callers in. */
  private noteSealed(record: BatchRecord): void {
    const end = record.header.firstSeq + record.header.count;
    this.lastSealedBatchNo = Math.max(this.lastSealedBatchNo, record.header.batchNo);
    while (
      this.ackTimesStart < this.ackTimes.length &&
      this.ackTimes[this.ackTimesStart]!.end <= end
    )
      this.ackTimesStart++;
    if (this.ackTimesStart > 1_024 && this.ackTimesStart * 2 > this.ackTimes.length) {
      this.ackTimes.splice(0, this.ackTimesStart);
      this.ackTimesStart = 0;
    }
    this.gate.sealed(record.header.count);
  }

  /** The seq that (organization, requestId) names, if an event was stored under it. */
  findRequest(organization: string, requestId: string): Promise<number | undefined> {
    return this.store.findRequest(organization, requestId);
  }

  async sealPending(): Promise<void> {
    await this.parts.committer.flush();
    await this.parts.sealer.sealAll();
  }

  /** Stops accepting, writes what is queued, and closes the database. */
  async close(): Promise<void> {
    this.closing = true;
    this.gate.close();
    this.wakeRecovery?.();
    await this.recovering;
    await this.closeParts();
    await this.store.close();
  }

  /**
   * Erases the body and salt of `seq` for good, with its tombstone (LedgerStore.eraseBody),
   * while no group is being written: the re-sealing of its epoch must not race new bodies.
   */
  async eraseBody(seq: number, tombstone: unknown): Promise<{ legacyPlaintext: boolean }> {
    return this.parts.committer.exclusive(() => this.store.eraseBody(seq, tombstone));
  }

  async getEvent(seq: number): Promise<StoredEvent> {
    this.notLost(seq);
    const [entryJcs, body] = await Promise.all([
      this.store.getEntryJcs(seq),
      this.store.getBody(seq),
    ]);
    if (entryJcs === undefined) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
    return toStoredEvent(seq, entryJcs, body);
  }

  async getEvents(seqs: number[]): Promise<StoredEvent[]> {
    const [entries, bodies] = await Promise.all([
      this.store.getEntriesJcs(seqs),
      this.store.getBodies(seqs),
    ]);
    return seqs.map((seq, i) => {
      const entryJcs = entries[i];
      invariant(entryJcs !== undefined, `indexed seq ${seq} has an entry`);
      return toStoredEvent(seq, entryJcs, bodies[i]);
    });
  }

  async receipt(seq: number): Promise<Receipt> {
    if (seq >= this.nextSeq) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
    this.notLost(seq);
    return this.parts.committer.receiptFor(seq);
  }

  /**
   * Receipts of stored events (ascending or not), re-issued as first issued, in bulk. Pass the
   * events' entries when they are being read anyway: they are not read or parsed twice.
   */
  async receipts(
    seqs: readonly number[],
    entriesRead?: Promise<Array<EntryRead | undefined>>,
  ): Promise<Receipt[]> {
    for (const seq of seqs) {
      if (seq >= this.nextSeq) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
      if (this.lost.length > 0) this.notLost(seq);
    }
    return this.parts.committer.receiptsFor(seqs, entriesRead);
  }

  async getBatch(batchNo: number): Promise<BatchRecord> {
    const record = await this.store.getBatch(batchNo);
    if (!record) {
      const lost = lostRangeOfBatch(this.lost, batchNo);
      throw new LedgerError(
        "NOT_FOUND",
        lost ? `no batch ${batchNo}: ${describeLostRange(lost)}` : `no batch ${batchNo}`,
        "batchNo",
      );
    }
    return record;
  }

  /** Batches in batchNo order starting at `fromBatchNo`. */
  async listBatches(opts: BatchPage): Promise<BatchRecord[]> {
    return this.store.listBatches(opts);
  }

  /** The last sealed batch's number, or -1 when nothing is sealed yet. */
  async lastBatchNo(): Promise<number> {
    const last = await this.store.lastBatch();
    return last ? last.header.batchNo : -1;
  }

  /**
   * Persists a batch's anchoring state (the anchor loop's only write). The header is immutable:
   * a record whose header differs from the sealed one is refused.
   */
  async saveBatchState(record: BatchRecord): Promise<void> {
    const current = await this.getBatch(record.header.batchNo);
    invariant(
      JSON.stringify(current.header) === JSON.stringify(record.header),
      `batch ${record.header.batchNo} header is immutable`,
    );
    await this.store.putBatch(record);
    this.noteBatchState(record.header.batchNo, record.state === "anchored");
    this.gate.progress();
  }

  async batchForSeq(seq: number): Promise<BatchRecord | undefined> {
    if (seq >= this.parts.sealer.sealedThrough) return undefined;
    const cached = this.store.cachedBatchForSeq(seq);
    if (cached) return cached;
    const batchNo = await this.store.batchNoForSeq(seq);
    invariant(batchNo !== undefined, `sealed seq ${seq} has a batch`);
    return this.getBatch(batchNo);
  }

  /**
   * The RFC 9162 audit paths of `seqs` (all in the batch of `record`), read from its stored nodes
   * in one multi-get: paths in one batch share their upper nodes, and those are read once.
   */
  async inclusionPaths(record: BatchRecord, seqs: readonly number[]): Promise<Hex[][]> {
    const { batchNo, count, firstSeq } = record.header;
    const idsPerSeq = seqs.map((s) => inclusionProofNodeIds(s - firstSeq, count));
    const nodes = (await this.store.getNodesHex(
      nodeReads(batchNo, count, idsPerSeq.flat(), nodeLayoutOf(record)),
    )) as Hex[];
    let at = 0;
    return idsPerSeq.map((ids) => nodes.slice(at, (at += ids.length)));
  }

  /**
   * The bundle of the event that logged the erasure of `seq` (DESIGN.md "Erasure in a bundle"),
   * carried as `erasure` by the erased event's bundle so a verifier can tell erased from
   * withheld; undefined when `seq` has no tombstone.
   */
  async erasureBundle(seq: number): Promise<Bundle | undefined> {
    const tombstone = await this.store.getTombstone(seq);
    return tombstone ? this.prove(tombstone.erasureSeq) : undefined;
  }

  /**
   * The `veritrail-proof/1` bundle for one event. Before anchoring it carries the receipt and
   * says how far the event has got (`status`); `anchor` is null until the batch is anchored.
   * An erased event's bundle carries the erasure event's bundle as `erasure`.
   */
  async prove(
    seq: number,
    opts: { staffIdentity: StaffIdentity } = { staffIdentity: "disclose" },
  ): Promise<Bundle> {
    if (!Number.isSafeInteger(seq) || seq < 0)
      throw new LedgerError("VALIDATION_FAILED", "seq must be a non-negative integer", "seq");
    if (seq >= this.nextSeq) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
    this.notLost(seq);
    // Independent reads, issued together: a proof's latency is one round of reads, then the path.
    const entryRead = this.store.getEntryJcs(seq).then((jcs) => parseEntryRead(seq, jcs));
    // The Merkle path as soon as the batch is known (at once when its record is cached).
    const recordRead = this.batchForSeq(seq);
    const [read, body, receipts, record, inclusion] = await Promise.all([
      entryRead,
      this.store.getBody(seq),
      this.parts.committer.receiptsFor(
        [seq],
        entryRead.then((e) => [e]),
      ),
      recordRead,
      recordRead.then(async (r) => (r ? (await this.inclusionPaths(r, [seq]))[0]! : [])),
    ]);
    if (read === undefined) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
    const entry = read.entry;
    const content = bundleContent(entry, body, opts.staffIdentity);
    const receipt = receipts[0]!;
    // A tombstone names the Delete that erased this seq; content withheld by the access policy
    // (entry v1 staff identity) has none and carries no erasure record.
    const erasure = content.event === null ? await this.erasureBundle(seq) : undefined;
    const base = {
      format: BUNDLE_FORMAT as typeof BUNDLE_FORMAT,
      event: content.event,
      salt: content.salt,
      ...(content.disclosures !== undefined ? { disclosures: content.disclosures } : {}),
      entry,
      receipt,
      ...(erasure ? { erasure } : {}),
    };
    if (!record) {
      return {
        ...base,
        leafIndex: null,
        batch: null,
        inclusion: [],
        anchor: null,
        status: "unsealed",
      };
    }
    const anchor =
      record.state === "anchored" && record.anchor
        ? {
            chainId: record.anchor.chainId,
            contract: record.anchor.contract,
            txHash: record.anchor.txHash,
            blockNumber: record.anchor.blockNumber,
          }
        : null;
    const status: BundleStatus = record.state;
    return {
      ...base,
      leafIndex: seq - record.header.firstSeq,
      batch: { ...record.header },
      inclusion,
      anchor,
      status,
    };
  }
}

/**
 * The log clock's floor at start: the recorded time of the last entry when it is a v2 entry (a
 * v1 entry's time is the writer's, which may lie anywhere), else 0.
 */
async function lastLogTime(store: LedgerStore, nextSeq: number): Promise<number> {
  if (nextSeq === 0) return 0;
  const last = await store.getEntry(nextSeq - 1);
  if (last === undefined) return 0;
  return last.entry.v === 2 ? Date.parse(last.entry.recorded) : 0;
}

/** The first batch that is not anchored, found from the newest batch backwards. */
async function anchoredBelow(store: LedgerStore): Promise<number> {
  const last = await store.lastBatch();
  if (!last) return 0;
  let below = last.header.batchNo + 1;
  for (;;) {
    const page = await store.listBatches({
      fromBatchNo: below - 1,
      limit: 1_000,
      reverse: true,
    });
    for (const record of page) {
      if (record.state === "anchored") return below;
      below = record.header.batchNo;
    }
    if (page.length < 1_000 || below === 0) return below;
  }
}

function toStoredEvent(seq: number, entryJcs: string, body: StoredBody | undefined): StoredEvent {
  return {
    seq,
    entry: decodeEntryOf(seq, entryJcs),
    event: body ? (body.event as NativeEvent) : null,
    salt: body ? (body.salt as Hex) : null,
  };
}

/**
 * The log's metadata with its secret in clear (in memory only), creating it on first open. On
 * disk the secret is sealed when a key is given (and sealed now, with the clear copy purged, if
 * it was stored in clear before); a sealed secret without the key refuses to open.
 */
async function openLogMeta(
  store: LedgerStore,
  opts: Pick<LedgerOptions, "newLogId" | "logSecretKey">,
): Promise<LogMeta> {
  const key = opts.logSecretKey;
  const stored = await store.getMeta();
  if (!stored) {
    const secret = randomBytes(32);
    const base = {
      logId: opts.newLogId ?? toHex(randomBytes(32)),
      createdAt: new Date().toISOString(),
      formatVersion: 1 as const,
      subjectDerivation: "jcs" as const,
    };
    await store.putMeta(
      key === undefined
        ? { ...base, logSecret: toHex(secret) }
        : { ...base, logSecretSealed: sealLogSecret(secret, key, base.logId) },
    );
    return { ...base, logSecret: toHex(secret) };
  }
  const { logSecretSealed, logSecret, ...rest } = stored;
  if (logSecretSealed !== undefined) {
    if (key === undefined)
      throw new LogSecretError(
        "the log secret in DATA_DIR is sealed: set LOG_SECRET_KEY or LOG_SECRET_KEYSTORE to the key it was sealed under",
      );
    const secret = openLogSecret(logSecretSealed as SealedLogSecret, key, stored.logId);
    return { ...rest, logSecret: toHex(secret) };
  }
  invariant(logSecret !== undefined, "log metadata holds the log secret, sealed or in clear");
  if (key !== undefined)
    await store.putMeta(
      { ...rest, logSecretSealed: sealLogSecret(fromHex(logSecret), key, stored.logId) },
      { purge: true },
    );
  return { ...rest, logSecret };
}

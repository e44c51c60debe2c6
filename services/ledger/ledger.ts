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
import { K } from "../store/keys.ts";
import { LedgerStore, type LogMeta, type StoredBody } from "../store/ledger-store.ts";
import {
  LogSecretError,
  type SealedLogSecret,
  openLogSecret,
  sealLogSecret,
} from "./log-secret.ts";
import type { BatchRecord } from "./batch.ts";
import { type StaffIdentity, bundleContent } from "./access.ts";
import { LedgerError, invariant } from "./errors.ts";
import { type EntryRead, GroupCommitter, type IngestResult, parseEntryRead } from "./ingest.ts";
import { IngestGate, type IngestGateStatus, type IngestLimits } from "./ingest-gate.ts";
import { nodeLayoutOf, nodeReads } from "./node-layout.ts";
import { Sealer } from "./seal.ts";
import { SubjectIndex } from "./subject-index-store.ts";

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

/** A stored event as the ledger hands it out (body null once erased). */
export interface StoredEvent {
  seq: number;
  entry: Entry;
  event: NativeEvent | null;
  salt: Hex | null;
}

/**
 * One log: accepts events durably, seals them into batches and serves proofs. The use cases
 * the API and CLI call live here; only this layer talks to the store (STYLE.md §6).
 */
export class Ledger {
  private sealedListeners: Array<(record: BatchRecord) => void> = [];
  private anchorBound = false;
  /** Batches [0, anchoredBelow) are anchored (per their records); so are those in anchoredAbove. */
  private anchoredBelow = 0;
  private readonly anchoredAbove = new Set<number>();
  private lastSealedBatchNo: number;
  /** When each acknowledged-but-unsealed group was acknowledged (group end seq, time), in order. */
  private readonly ackTimes: Array<{ end: number; at: number }> = [];
  private ackTimesStart = 0;
  private readonly gate: IngestGate;

  private constructor(
    readonly store: LedgerStore,
    readonly meta: LogMeta,
    private readonly committer: GroupCommitter,
    private readonly sealer: Sealer,
    readonly subjectIndex: SubjectIndex,
    readonly signerAddress: string,
    private readonly secretSealed: boolean,
    ingestLimits: IngestLimits,
    anchored: { lastBatchNo: number; anchoredBelow: number },
  ) {
    this.lastSealedBatchNo = anchored.lastBatchNo;
    this.anchoredBelow = anchored.anchoredBelow;
    this.gate = new IngestGate(ingestLimits, {
      unsealedEvents: () => this.nextSeq - this.sealedThrough,
      oldestUnsealedMs: () => this.oldestUnsealedMs(),
      unanchoredBatches: () => (this.anchorBound ? this.unanchoredBatches : 0),
    });
    // Events left unsealed by an earlier run: their acknowledgement time is not kept; count
    // their age from now (the sealer seals them at once on start).
    if (this.nextSeq > this.sealedThrough)
      this.ackTimes.push({ end: this.nextSeq, at: Date.now() });
  }

  static async open(opts: LedgerOptions): Promise<Ledger> {
    await mkdir(path.dirname(path.resolve(opts.location)), { recursive: true });
    const store = await LedgerStore.open(opts.location);
    try {
      const meta = await openLogMeta(store, opts);
      const nextSeq = await store.nextSeq();
      const last = await store.lastBatch<BatchRecord>();
      const subjectIndex = new SubjectIndex(store, last ? last.header.batchNo : -1, {
        worker: opts.sealWorker ?? false,
        ...(opts.sealWorkerHeapMb !== undefined ? { workerHeapMb: opts.sealWorkerHeapMb } : {}),
        ...(opts.indexNodeCacheMax !== undefined ? { nodeCacheMax: opts.indexNodeCacheMax } : {}),
      });
      const signerAddress = await opts.receiptSigner.getAddress();
      const holder: { ledger?: Ledger } = {};
      const sealer = new Sealer(store, subjectIndex, last, nextSeq, {
        logId: meta.logId as Hex,
        maxEvents: opts.batchMaxEvents,
        maxWaitMs: opts.batchMaxWaitMs,
        onSealed: (record) => {
          holder.ledger?.noteSealed(record);
          opts.onSealed?.(record);
          for (const l of holder.ledger?.sealedListeners ?? []) l(record);
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
        signerAddress,
        anchorDeadlineMs: opts.anchorDeadlineMs,
        maxGroupEvents: opts.groupCommitMaxEvents,
        onCommitted: (next, group) => {
          holder.ledger?.ackTimes.push({ end: next, at: Date.now() });
          sealer.accepted(next, group);
        },
      });
      const ledger = new Ledger(
        store,
        meta,
        committer,
        sealer,
        subjectIndex,
        signerAddress,
        opts.logSecretKey !== undefined,
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
        { lastBatchNo: last ? last.header.batchNo : -1, anchoredBelow: await anchoredBelow(store) },
      );
      holder.ledger = ledger;
      sealer.start();
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
    return this.committer.pendingSeq;
  }

  get sealedThrough(): number {
    return this.sealer.sealedThrough;
  }

  onSealed(listener: (record: BatchRecord) => void): void {
    this.sealedListeners.push(listener);
  }

  /**
   * Validated events in; receipts out once the events are synced to disk. While the backlog is
   * at its bound this waits briefly for room, then throws IngestOverloadedError (nothing stored).
   */
  async ingest(events: NativeEvent[]): Promise<IngestResult[]> {
    const release = await this.gate.admit(events.length);
    try {
      return await this.committer.submit(events);
    } finally {
      release();
    }
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
      while (this.anchoredAbove.delete(this.anchoredBelow)) this.anchoredBelow++;
    } else if (batchNo < this.anchoredBelow) {
      // A reorg or chain reset: this batch goes back to waiting; the ones after it still hold.
      for (let b = batchNo + 1; b < this.anchoredBelow; b++) this.anchoredAbove.add(b);
      this.anchoredBelow = batchNo;
    } else {
      this.anchoredAbove.delete(batchNo);
    }
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
    await this.committer.flush();
    await this.sealer.sealAll();
  }

  /** Stops accepting, writes what is queued, and closes the database. */
  async close(): Promise<void> {
    this.gate.close();
    await this.committer.close();
    await this.sealer.stop();
    await this.subjectIndex.close();
    await this.store.close();
  }

  /**
   * Erases the body and salt of `seq` for good, with its tombstone (LedgerStore.eraseBody),
   * while no group is being written: the re-sealing of its epoch must not race new bodies.
   */
  async eraseBody(seq: number, tombstone: unknown): Promise<{ legacyPlaintext: boolean }> {
    return this.committer.exclusive(() => this.store.eraseBody(seq, tombstone));
  }

  async getEvent(seq: number): Promise<StoredEvent> {
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
    return this.committer.receiptFor(seq);
  }

  /**
   * Receipts of stored events (ascending or not), re-issued as first issued, in bulk. Pass the
   * events' entries when they are being read anyway: they are not read or parsed twice.
   */
  async receipts(
    seqs: readonly number[],
    entriesRead?: Promise<Array<EntryRead | undefined>>,
  ): Promise<Receipt[]> {
    for (const seq of seqs)
      if (seq >= this.nextSeq) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
    return this.committer.receiptsFor(seqs, entriesRead);
  }

  async getBatch(batchNo: number): Promise<BatchRecord> {
    const record = await this.store.getBatch<BatchRecord>(batchNo);
    if (!record) throw new LedgerError("NOT_FOUND", `no batch ${batchNo}`, "batchNo");
    return record;
  }

  /** Batches in batchNo order starting at `fromBatchNo`. */
  async listBatches(opts: {
    fromBatchNo?: number;
    limit: number;
    reverse?: boolean;
  }): Promise<BatchRecord[]> {
    return this.store.listBatches<BatchRecord>(opts);
  }

  /** The last sealed batch's number, or -1 when nothing is sealed yet. */
  async lastBatchNo(): Promise<number> {
    const last = await this.store.lastBatch<BatchRecord>();
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
    await this.store.write([this.store.putJsonOp(K.batch(record.header.batchNo), record)], true);
    this.noteBatchState(record.header.batchNo, record.state === "anchored");
    this.gate.progress();
  }

  async batchForSeq(seq: number): Promise<BatchRecord | undefined> {
    if (seq >= this.sealer.sealedThrough) return undefined;
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
    const tombstone = await this.store.getTombstone<TombstoneRef>(seq);
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
    // Independent reads, issued together: a proof's latency is one round of reads, then the path.
    const entryRead = this.store.getEntryJcs(seq);
    const [entryJcs, body, receipts, record] = await Promise.all([
      entryRead,
      this.store.getBody(seq),
      this.committer.receiptsFor(
        [seq],
        entryRead.then((e) => [parseEntryRead(e)]),
      ),
      this.batchForSeq(seq),
    ]);
    if (entryJcs === undefined) throw new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
    const entry = JSON.parse(entryJcs) as Entry;
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
      inclusion: (await this.inclusionPaths(record, [seq]))[0]!,
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
  const last = await store.getEntryJcs(nextSeq - 1);
  if (last === undefined) return 0;
  const entry = JSON.parse(last) as Entry;
  return entry.v === 2 ? Date.parse(entry.recorded) : 0;
}

/** The first batch that is not anchored, found from the newest batch backwards. */
async function anchoredBelow(store: LedgerStore): Promise<number> {
  const last = await store.lastBatch<BatchRecord>();
  if (!last) return 0;
  let below = last.header.batchNo + 1;
  for (;;) {
    const page = await store.listBatches<BatchRecord>({
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

/** Reads the tombstone of an erased seq (written by ledger/erasure.ts). */
interface TombstoneRef {
  erasureSeq: number;
}

function toStoredEvent(seq: number, entryJcs: string, body: StoredBody | undefined): StoredEvent {
  return {
    seq,
    entry: JSON.parse(entryJcs) as Entry,
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

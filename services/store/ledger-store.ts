import { ClassicLevel } from "classic-level";
import { createCipheriv, randomBytes } from "node:crypto";
import { z } from "zod";
import type { Entry, SubjectDerivation } from "../core/entry.ts";
import type { SmtNode } from "../core/subject-index.ts";
import type { Hex } from "../core/hex.ts";
import { BatchRecordCache } from "./batch-cache.ts";
import type { BatchRecord } from "./batch-record.ts";
import type { ReceiptGroupHeader, ReceiptGroupRecord } from "./receipt-group-record.ts";
import { BODY_KEYS_FILE, BodyKeys, EPOCH_SEQS, epochOf } from "./body-keys.ts";
import { snapshotFrames } from "./backup-archive.ts";
import {
  BodyUnreadable,
  type EpochKeys,
  NONCE_BYTES,
  SEALED_BODY,
  SEALED_HEAD,
  TAG_BYTES,
  openSealedBody,
} from "./sealed-body.ts";
import { readFile, statfs } from "node:fs/promises";
import path from "node:path";
import { findUndo, undoChunkRecords } from "./index-undo.ts";
import { K, parseSeqPart, prefixEnd, seqPart } from "./keys.ts";
import {
  BatchRecordSchema,
  LogMetaSchema,
  ReceiptGroupHeaderSchema,
  ReceiptGroupRecordSchema,
  RequestSeqSchema,
  StoreCorruptError,
  StoredBodySchema,
  TombstoneSchema,
  decodeBatchNo,
  decodeBatchRecord,
  decodeEntry,
  decodeIndexNode,
  decodeJson,
  encodeBatchRecord,
} from "./record-codec.ts";
import type { IndexReads } from "./index-records.ts";
import { GroupRecords, SEQ_RECORD_PREFIX, type SeqRecordKind, SeqValues } from "./log-scan.ts";
import {
  type LostRange,
  LostRangeSchema,
  type RestoreMarker,
  RestoreMarkerSchema,
} from "./restore-records.ts";
import {
  type StorageFailure,
  StorageUnavailableError,
  probeWritable,
  storageFailureOf,
} from "./storage-failure.ts";

type Db = ClassicLevel<string, Buffer>;
/** A range of keys, as LevelDB's iterators take it. */
type KeyRange = {
  gte?: string;
  gt?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  limit?: number;
};
export type BatchOp = { type: "put"; key: string; value: Buffer } | { type: "del"; key: string };

/** Log metadata, created on first start. `logSecret` keys the subject tags and never leaves. */
export interface LogMeta {
  logId: string;
  logSecret: string;
  createdAt: string;
  formatVersion: 1;
  /**
   * How this log derives subject tags (core/entry.ts SubjectDerivation), fixed when the log is
   * created; absent in logs created before it was recorded, which use "pipe".
   */
  subjectDerivation?: SubjectDerivation;
}

/**
 * Log metadata as stored: the log secret either in clear (`logSecret`, development without a
 * key) or sealed under the operator's key (`logSecretSealed`, ledger/log-secret.ts).
 */
export type StoredLogMeta = Omit<LogMeta, "logSecret"> & {
  logSecret?: string;
  logSecretSealed?: unknown;
};

/** One event as handed to the store by the ledger, ready to be written. */
export interface AppendRecord {
  seq: number;
  /** The entry's JCS text as UTF-8 (the ledger hashes these same bytes into the leaf). */
  entryBytes: Uint8Array;
  /** The StoredBody as JSON text (built by the ledger from the event's JCS form). */
  bodyJson: string;
  subject: string | null;
  organization: string;
  recordedMs: number;
  requestId?: string | undefined;
}

/** A page of batch records in batchNo order (descending with `reverse`), from `fromBatchNo`. */
export interface BatchPage {
  fromBatchNo?: number;
  limit: number;
  reverse?: boolean;
}

export interface StoredBody {
  event: unknown;
  salt: string;
  /** Entry v2: the 16-byte salt of each redactable value, by JSON pointer. */
  fieldSalts?: Record<string, `0x${string}`>;
}

/** Ops per write when an interrupted seal is rolled back or undo records are pruned. */
const ROLLBACK_SLICE_OPS = 8_192;

/** Ops added to a chained batch between two turns of the event loop. */
const WRITE_SLICE_OPS = 4_096;

const enc = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8");

export type TombstoneRecord = z.infer<typeof TombstoneSchema>;

/** `m:sealing`: the batch whose index update is being written in slices. */
const SealMarkerSchema = z.object({ batchNo: z.number().int().nonnegative() });
/** The undo records deleted through this batch. */
const UndoPrunedSchema = z.object({ through: z.number().int().min(-1) });

/** LevelDB table file size by default (LedgerStoreOptions.tableFileBytes). */
export const DEFAULT_TABLE_FILE_BYTES = 2 * 1024 * 1024;

export interface LedgerStoreOptions {
  /**
   * Size of the table files LevelDB writes (its max_file_size): the pages of up to 64 open
   * tables count in RSS (see open). Default DEFAULT_TABLE_FILE_BYTES; the service sets
   * STORE_TABLE_FILE_MB.
   */
  tableFileBytes?: number;
  /**
   * Fault injection for tests on machines where no size-limited file system can be mounted:
   * called before each write (and probe write) reaches the disk; an error it returns is
   * treated as the disk's own.
   */
  injectWriteFault?: () => Error | undefined;
  /** Batch records kept in memory (batch-cache.ts); default DEFAULT_BATCH_CACHE_RECORDS. */
  batchCacheRecords?: number;
}

/** Batch records cached by default: every batch of 20,000,000 events in full batches. */
export const DEFAULT_BATCH_CACHE_RECORDS = 2_048;

/**
 * The value of the per-event index entries (by subject, organization and time), whose keys say
 * everything: one byte, not none. classic-level 3.0.0 copies every value it is given into a
 * `new char[size]` and frees the copy only when it is not empty (binding.cc, DisposeSliceBuffer),
 * so each empty value written left a minimal malloc chunk (32 bytes) behind for good: three per
 * event, the ≈ 100 bytes per event by which the service's main malloc arena grew under load.
 * Readers test these entries for presence only; entries written empty before stay valid.
 */
const INDEX_MARKER = Buffer.from([1]);

/**
 * LevelDB repositories of one log. Only the store knows keys and encodings; the ledger speaks
 * in seqs, batches and records. Every multi-key change is one atomic `batch`, and writes that
 * acknowledge anything to a caller are synced (fsync) before they resolve. Every record read is
 * decoded by record-codec.ts: a value that does not decode is a StoreCorruptError naming its key.
 *
 * A write the disk refuses puts the store in a failed state (storage-failure.ts): later writes
 * are refused at once until {@link LedgerStore.reopen} and {@link LedgerStore.clearFailure}.
 */
export class LedgerStore {
  private failureState: StorageFailure | undefined;
  private readonly failureListeners: Array<(failure: StorageFailure) => void> = [];
  /**
   * Batch records as last read: every proof needs its event's record, and without it reads the
   * seq → batch lookup (an iterator seek, which opens a table on every LevelDB level) and then
   * the record, one after the other. A write of a batch key drops that batch's copy.
   */
  private readonly batchCache: BatchRecordCache;
  /** Writes of batch keys begun or ended: a read that one overtook is not cached. */
  private batchWrites = 0;

  private constructor(
    private readonly db: Db,
    readonly location: string,
    private readonly opts: LedgerStoreOptions,
    private readonly bodyKeys: BodyKeys,
  ) {
    this.batchCache = new BatchRecordCache(opts.batchCacheRecords ?? DEFAULT_BATCH_CACHE_RECORDS);
  }

  static async open(location: string, opts: LedgerStoreOptions = {}): Promise<LedgerStore> {
    const db: Db = new ClassicLevel<string, Buffer>(location, {
      keyEncoding: "utf8",
      valueEncoding: "buffer",
      // LevelDB 1.20 maps every table it opens into memory and reads it through that mapping,
      // so the pages it reads (and those the kernel maps around each one) count in the
      // process's RSS for as long as the table stays open. It keeps at least 64 tables open
      // (it raises any lower max_open_files to 74, 10 of them for other files), so the mapped
      // part of RSS is bounded by 64 × the table size:
      // - tables of 2 MiB by default (tableFileBytes; LevelDB's own default, 32 MiB before,
      //   then 4 MiB): ≤ 128 MiB mapped, and a compaction reads one table of a level and the
      //   tables it overlaps in the next, ≈ 20 MiB at a time. In a 5-minute soak the mapped
      //   table pages peaked at 177 MB with 4 MiB tables; tables written by a memtable flush
      //   are the size of the write buffer (4 MiB) whatever this is;
      // - at most 64 open tables: a process serving a 1,000,000-event log (1.9 GB) reached 1.4 GB
      //   of RSS with every table kept open, 1.1 GB of it mapped table pages; with 64, 520 MB,
      //   proof p99 unchanged (4.6 ms) and p50 0.26 → 0.44 ms (a table reopened re-reads its
      //   index block).
      maxFileSize: opts.tableFileBytes ?? DEFAULT_TABLE_FILE_BYTES,
      maxOpenFiles: 64,
    });
    await db.open();
    let bodyKeys: BodyKeys;
    try {
      bodyKeys = await BodyKeys.open(location);
    } catch (error) {
      await db.close();
      throw error;
    }
    const store = new LedgerStore(db, location, opts, bodyKeys);
    try {
      await store.settleInterruptedErasures();
      await store.settleInterruptedSeal();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  async close(): Promise<void> {
    await this.db.close();
    await this.bodyKeys.close();
  }

  get isOpen(): boolean {
    return this.db.status === "open";
  }

  // ---- storage failures ---------------------------------------------------------------------

  /** Set from the first write the disk refused until {@link clearFailure}. */
  get failure(): StorageFailure | undefined {
    return this.failureState;
  }

  onFailure(listener: (failure: StorageFailure) => void): void {
    this.failureListeners.push(listener);
  }

  /**
   * The body-key file as it is now (body-keys.ts): a backup takes it with its snapshot, inside
   * the committer's exclusive section, so no erasure re-keys an epoch between the two.
   */
  async bodyKeysCopy(): Promise<Buffer> {
    return readFile(path.join(this.location, BODY_KEYS_FILE));
  }

  /**
   * A consistent copy of every record as of this call (backup-archive.ts): the snapshot is taken
   * at once, then the body-key file read (call it where no erasure can fall between the two),
   * and `frames` read the snapshot while writes go on. The snapshot is released when the frames
   * end or are given up.
   */
  async snapshotCopy(): Promise<{ bodyKeys: Buffer; frames: AsyncGenerator<Buffer> }> {
    const snapshot = this.db.snapshot();
    let bodyKeys: Buffer;
    try {
      bodyKeys = await this.bodyKeysCopy();
    } catch (error) {
      await snapshot.close();
      throw error;
    }
    const db = this.db;
    const frames = (async function* () {
      try {
        yield* snapshotFrames(db.iterator({ snapshot }));
      } finally {
        await snapshot.close();
      }
    })();
    return { bodyKeys, frames };
  }

  /** Bytes available to this process on the database's file system (undefined if unknown). */
  async freeBytes(): Promise<number | undefined> {
    try {
      const fs = await statfs(this.location);
      return fs.bavail * fs.bsize;
    } catch {
      return undefined;
    }
  }

  /** Resolves once a probe write of `bytes` in the database's directory was synced. */
  async probeWritable(bytes: number): Promise<void> {
    const fault = this.opts.injectWriteFault?.();
    if (fault) throw fault;
    await probeWritable(this.location, bytes);
  }

  /**
   * Closes and reopens LevelDB in place (the same object, so every holder of `db` keeps it):
   * the only way out of LevelDB's sticky write error. Open iterators and snapshots are closed.
   */
  async reopen(): Promise<void> {
    this.batchWrites++;
    this.batchCache.clear();
    if (this.db.status === "open") await this.db.close();
    await this.db.open();
  }

  /** Lets writes through again (after {@link reopen} and the ledger has re-read its state). */
  clearFailure(): void {
    this.failureState = undefined;
  }

  /** The error to throw for a failed write: a storage failure is recorded and reported once. */
  private failedWrite(error: unknown): unknown {
    const failure = storageFailureOf(error);
    if (!failure) return error;
    if (!this.failureState) {
      this.failureState = failure;
      for (const listener of this.failureListeners) listener(failure);
    }
    return new StorageUnavailableError(this.failureState);
  }

  // ---- generic ------------------------------------------------------------------------------

  /**
   * Writes `ops` as one atomic batch. The batch is filled through LevelDB's chained batch, a
   * slice of ops at a time with a turn of the event loop in between: a sealed batch can hold
   * 100,000+ ops, and filling it in one go stalled every request for hundreds of milliseconds.
   */
  async write(ops: BatchOp[], sync = true): Promise<void> {
    if (ops.length === 0) return;
    if (this.failureState) throw new StorageUnavailableError(this.failureState);
    const batch = this.db.batch();
    let batchKeys: string[] | undefined;
    try {
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        if (op.type === "put") batch.put(op.key, op.value);
        else batch.del(op.key);
        if (op.key.startsWith(K.batchPrefix)) (batchKeys ??= []).push(op.key);
        if ((i + 1) % WRITE_SLICE_OPS === 0) await new Promise<void>((r) => setImmediate(r));
      }
    } catch (error) {
      await batch.close();
      throw error;
    }
    // Dropped before and after: a read between the two may return either value, and is not
    // cached (batchWrites moved).
    if (batchKeys) this.forgetBatches(batchKeys);
    try {
      const fault = this.opts.injectWriteFault?.();
      if (fault) {
        await batch.close();
        throw fault;
      }
      await batch.write({ sync });
    } catch (error) {
      // Only the disk's refusal gets here: the ops were all accepted into the batch above.
      throw this.failedWrite(error);
    } finally {
      if (batchKeys) this.forgetBatches(batchKeys);
    }
  }

  private forgetBatches(keys: string[]): void {
    this.batchWrites++;
    for (const key of keys) this.batchCache.delete(parseInt(key.slice(K.batchPrefix.length), 16));
  }

  async getRaw(key: string): Promise<Buffer | undefined> {
    return (await this.db.get(key)) ?? undefined;
  }

  async getManyRaw(keys: string[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return [];
    return (await this.db.getMany(keys)).map((v) => v ?? undefined);
  }

  /** The JSON record under `key`, checked against `schema` (StoreCorruptError if it is not one). */
  async getJson<T>(key: string, schema: z.ZodType<T>): Promise<T | undefined> {
    const raw = await this.getRaw(key);
    return raw === undefined ? undefined : decodeJson(key, raw, schema);
  }

  putJsonOp(key: string, value: unknown): BatchOp {
    return { type: "put", key, value: enc(value) };
  }

  /** Keys (and values) in [gte, lt) in order; `reverse` walks backwards. */
  async *scan(range: KeyRange): AsyncGenerator<[string, Buffer]> {
    for await (const [k, v] of this.db.iterator(range)) yield [k, v];
  }

  async *scanKeys(range: KeyRange): AsyncGenerator<string> {
    for await (const k of this.db.keys(range)) yield k;
  }

  /** The record under the greatest key in `range`, if any. */
  private async greatest(
    range: { gte: string } & ({ lte: string } | { lt: string }),
  ): Promise<[string, Buffer] | undefined> {
    for await (const entry of this.db.iterator({ ...range, reverse: true, limit: 1 })) return entry;
    return undefined;
  }

  /** The greatest key that starts with `prefix`, if any. */
  async lastKey(prefix: string): Promise<string | undefined> {
    for await (const key of this.scanKeys({
      gte: prefix,
      lt: prefixEnd(prefix),
      reverse: true,
      limit: 1,
    }))
      return key;
    return undefined;
  }

  /**
   * Compacts the whole database: values deleted or overwritten leave LevelDB's files (at once,
   * rather than at some later compaction).
   */
  async compact(): Promise<void> {
    await this.db.compactRange("\u0000", "\uffff");
  }

  // ---- log metadata -------------------------------------------------------------------------

  async getMeta(): Promise<StoredLogMeta | undefined> {
    return this.getJson(K.logMeta, LogMetaSchema) as Promise<StoredLogMeta | undefined>;
  }

  /**
   * Writes the metadata; `purge` then compacts its key so an earlier value (a secret that was in
   * clear) leaves the write-ahead log and table files too, as eraseBody does for bodies.
   */
  async putMeta(meta: StoredLogMeta, opts: { purge?: boolean } = {}): Promise<void> {
    await this.write([this.putJsonOp(K.logMeta, meta)]);
    if (opts.purge) await this.db.compactRange(K.logMeta, `${K.logMeta}\u0000`);
  }

  // ---- restores ----------------------------------------------------------------------------

  /** The marker of a restore not yet compared with the chain (restore-records.ts). */
  async getRestoreMarker(): Promise<RestoreMarker | undefined> {
    return this.getJson(K.restoreMarker, RestoreMarkerSchema);
  }

  /** The ranges of batches lost in restores, in batchNo order. */
  async getLostRanges(): Promise<LostRange[]> {
    const out: LostRange[] = [];
    for await (const [k, v] of this.scan({
      gte: K.lostRangePrefix,
      lt: prefixEnd(K.lostRangePrefix),
    }))
      out.push(decodeJson(k, v, LostRangeSchema));
    return out;
  }

  /** Ends a restore: the marker goes, with the range it lost (if any) recorded, synced. */
  async completeRestore(lost: LostRange | undefined): Promise<void> {
    const ops: BatchOp[] = [{ type: "del", key: K.restoreMarker }];
    if (lost) ops.push(this.putJsonOp(K.lostRange(lost.fromBatchNo), lost));
    await this.write(ops, true);
  }

  // ---- events -------------------------------------------------------------------------------

  /** The next seq to assign: one past the last stored entry (entries are never deleted). */
  async nextSeq(): Promise<number> {
    for await (const key of this.db.keys({
      gte: K.entryPrefix,
      lt: prefixEnd(K.entryPrefix),
      reverse: true,
      limit: 1,
    })) {
      return parseSeqPart(key.slice(K.entryPrefix.length)) + 1;
    }
    return 0;
  }

  appendOps(records: AppendRecord[]): BatchOp[] {
    const ops: BatchOp[] = [];
    // A group's events mostly come from one organization: hex-encode its key part once.
    const orgPrefixes = new Map<string, string>();
    // Every body's nonce from one draw: a call into the CSPRNG per event cost more than the
    // bytes it returned.
    const nonces = randomBytes(NONCE_BYTES * records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const entry = r.entryBytes;
      ops.push({
        type: "put",
        key: K.entry(r.seq),
        value: Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength),
      });
      ops.push({
        type: "put",
        key: K.body(r.seq),
        value: this.sealBody(
          r.seq,
          Buffer.from(r.bodyJson, "utf8"),
          this.bodyKeys.current(r.seq),
          nonces.subarray(i * NONCE_BYTES, (i + 1) * NONCE_BYTES),
        ),
      });
      if (r.subject !== null)
        ops.push({ type: "put", key: K.bySubject(r.subject, r.seq), value: INDEX_MARKER });
      let orgPrefix = orgPrefixes.get(r.organization);
      if (orgPrefix === undefined) {
        orgPrefix = K.byOrgPrefix(r.organization);
        orgPrefixes.set(r.organization, orgPrefix);
      }
      ops.push({ type: "put", key: orgPrefix + seqPart(r.seq), value: INDEX_MARKER });
      ops.push({ type: "put", key: K.byTime(r.recordedMs, r.seq), value: INDEX_MARKER });
      if (r.requestId !== undefined)
        ops.push({ type: "put", key: K.requestId(r.organization, r.requestId), value: enc(r.seq) });
    }
    return ops;
  }

  async getEntryJcs(seq: number): Promise<string | undefined> {
    return (await this.getRaw(K.entry(seq)))?.toString("utf8");
  }

  /** Entry `seq`: its stored JCS text and the entry it decodes to (StoreCorruptError if none). */
  async getEntry(seq: number): Promise<{ jcs: string; entry: Entry } | undefined> {
    const jcs = await this.getEntryJcs(seq);
    return jcs === undefined ? undefined : { jcs, entry: decodeEntry(K.entry(seq), jcs) };
  }

  async getEntriesJcs(seqs: number[]): Promise<Array<string | undefined>> {
    return (await this.getManyRaw(seqs.map(K.entry))).map((b) => b?.toString("utf8"));
  }

  /** Entries with seq in [fromSeq, toSeq), in order. */
  async *scanEntries(fromSeq: number, toSeq: number): AsyncGenerator<[number, string]> {
    for await (const [k, v] of this.db.iterator({ gte: K.entry(fromSeq), lt: K.entry(toSeq) })) {
      yield [parseSeqPart(k.slice(K.entryPrefix.length)), v.toString("utf8")];
    }
  }

  /**
   * Makes sure the body keys of seqs up to `lastSeq` exist before `appendOps` seals bodies
   * with them (a key is written and synced once per EPOCH_SEQS seqs).
   */
  async prepareAppend(lastSeq: number): Promise<void> {
    await this.bodyKeys.ensure(lastSeq);
  }

  async getBody(seq: number): Promise<StoredBody | undefined> {
    return (await this.getBodies([seq]))[0];
  }

  async getBodies(seqs: number[]): Promise<Array<StoredBody | undefined>> {
    return (await this.getBodiesJson(seqs)).map((b, i) => this.decodeBody(seqs[i]!, b));
  }

  /** An opened body's JSON as the StoredBody it holds (StoreCorruptError if it does not). */
  decodeBody(seq: number, json: Buffer | undefined): StoredBody | undefined {
    return json === undefined
      ? undefined
      : (decodeJson(K.body(seq), json, StoredBodySchema) as StoredBody);
  }

  /** Bodies as JSON text (UTF-8), opened; undefined where there is none (never, or erased). */
  async getBodiesJson(seqs: number[]): Promise<Array<Buffer | undefined>> {
    const raws = await this.getManyRaw(seqs.map(K.body));
    const out = raws.map((raw, i) =>
      raw === undefined ? undefined : this.openBody(seqs[i]!, raw),
    );
    // A body read just before an erasure re-keyed its epoch opens under the new key only: read
    // it again (the re-encrypted one is on disk by the time the old key is gone).
    for (let i = 0; i < seqs.length; i++) {
      for (let tries = 0; out[i] === null && tries < 3; tries++) {
        const raw = await this.getRaw(K.body(seqs[i]!));
        out[i] = raw === undefined ? undefined : this.openBody(seqs[i]!, raw);
      }
      if (out[i] === null) throw new BodyUnreadable(seqs[i]!, "the key it names does not exist");
    }
    return out as Array<Buffer | undefined>;
  }

  /**
   * A stored body value as JSON text: opened with its epoch key, or as stored when written
   * before bodies were sealed. null when its key no longer exists (erased, or re-keyed since
   * it was read); throws when it does not open under the key it names (altered on disk).
   */
  openBody(seq: number, raw: Buffer): Buffer | null {
    return openSealedBody(seq, raw, this.bodyKeys);
  }

  /**
   * Copies of the body keys of the epochs of seqs [fromSeq, toSeq), for the regulator's audit,
   * which opens bodies on its worker threads (sealed-body.ts).
   */
  bodyKeysOf(fromSeq: number, toSeq: number): EpochKeys[] {
    const out: EpochKeys[] = [];
    if (toSeq <= fromSeq) return out;
    for (let epoch = epochOf(fromSeq); epoch <= epochOf(toSeq - 1); epoch++)
      out.push(this.bodyKeys.copyOf(epoch));
    return out;
  }

  private sealBody(
    seq: number,
    plain: Buffer,
    key = this.bodyKeys.current(seq),
    nonce: Buffer = randomBytes(NONCE_BYTES),
  ): Buffer {
    const out = Buffer.allocUnsafe(SEALED_HEAD + plain.length + TAG_BYTES);
    out[0] = SEALED_BODY;
    out.writeUInt32BE(key.generation, 1);
    nonce.copy(out, 5);
    const cipher = createCipheriv("aes-256-gcm", key.key, nonce);
    cipher.setAAD(Buffer.from(K.body(seq), "latin1"));
    let at = SEALED_HEAD;
    at += cipher.update(plain).copy(out, at);
    at += cipher.final().copy(out, at);
    cipher.getAuthTag().copy(out, at);
    return out;
  }

  /**
   * Erases one event's body and salt for good (GDPR Art. 17), with the tombstone written in
   * the same synced batch. Bodies reach LevelDB only sealed under their epoch's key
   * (body-keys.ts), so erasing re-seals every other body of the epoch under a fresh key, deletes
   * this one, and then overwrites the old key in its file: when this resolves, no file holds
   * the body in a form anyone can open. The caller keeps appends out meanwhile (the epoch's
   * key changes under them). Returns whether the body had been written before bodies were
   * sealed: such plain text stays in LevelDB's files until a compaction rewrites them.
   */
  async eraseBody(seq: number, tombstone: unknown): Promise<{ legacyPlaintext: boolean }> {
    const epoch = epochOf(seq);
    const legacyPlaintext = (await this.getRaw(K.body(seq)))?.[0] === 0x7b;
    const next = await this.bodyKeys.beginRotation(epoch);
    const ops: BatchOp[] = [];
    for await (const [key, raw] of this.db.iterator({
      gte: K.body(epoch * EPOCH_SEQS),
      lt: K.body((epoch + 1) * EPOCH_SEQS),
    })) {
      const other = parseSeqPart(key.slice(K.bodyPrefix.length));
      if (other === seq) continue;
      const plain = this.openBody(other, raw);
      if (plain === null) throw new Error(`invariant violated: body ${other} has no key`);
      ops.push({ type: "put", key, value: this.sealBody(other, plain, next) });
      plain.fill(0);
    }
    ops.push({ type: "del", key: K.body(seq) });
    ops.push({ type: "put", key: K.tombstone(seq), value: enc(tombstone) });
    await this.write(ops, true);
    await this.bodyKeys.finishRotation(epoch);
    return { legacyPlaintext };
  }

  /**
   * An erasure interrupted by a crash left a pending key: if any body of the epoch is still
   * sealed under the current key, the re-sealing batch never landed (it is atomic) and the
   * pending key is dropped; otherwise it landed and the old key is destroyed now.
   */
  private async settleInterruptedErasures(): Promise<void> {
    for (const epoch of this.bodyKeys.interrupted) {
      const current = this.bodyKeys.current(epoch * EPOCH_SEQS).generation;
      let underCurrent = false;
      for await (const raw of this.db.values({
        gte: K.body(epoch * EPOCH_SEQS),
        lt: K.body((epoch + 1) * EPOCH_SEQS),
      })) {
        if (raw[0] === SEALED_BODY && raw.readUInt32BE(1) === current) {
          underCurrent = true;
          break;
        }
      }
      if (underCurrent) await this.bodyKeys.abortRotation(epoch);
      else await this.bodyKeys.finishRotation(epoch);
    }
  }

  // ---- sealing --------------------------------------------------------------------------------

  /** Marks batch `batchNo`'s index update as being written in slices (ledger/subject-index-store.ts). */
  sealMarkerOp(batchNo: number): BatchOp {
    return this.putJsonOp(K.sealing, { batchNo });
  }

  /** Clears the marker: goes in the write that stores the batch record. */
  sealMarkerClearOp(): BatchOp {
    return { type: "del", key: K.sealing };
  }

  /**
   * A batch whose index update was being written in slices when the process stopped (or a
   * write failed): every index node it changed is put back from its undo records (the node
   * before the batch, or none), the undo records are dropped, then the marker. Each slice
   * restores and drops the same records, so a rollback cut short is finished by the next. The
   * batch record was never written (it clears the marker in the same atomic write), so the
   * batch is sealed again from its entries. Returns the rolled-back batch, if any.
   */
  async settleInterruptedSeal(): Promise<number | undefined> {
    const marker = await this.getJson(K.sealing, SealMarkerSchema);
    if (marker === undefined) return undefined;
    const { batchNo } = marker;
    if ((await this.getRaw(K.batch(batchNo))) === undefined) {
      let ops: BatchOp[] = [];
      const restore = (path: string, before: Uint8Array | undefined) =>
        ops.push(
          before === undefined
            ? { type: "del", key: K.indexNode(path) }
            : { type: "put", key: K.indexNode(path), value: Buffer.from(before) },
        );
      const packed = K.indexUndoChunkPrefix(batchNo);
      for await (const [key, chunk] of this.scan({ gte: packed, lt: prefixEnd(packed) })) {
        for (const r of undoChunkRecords(chunk)) restore(r.key, r.before);
        ops.push({ type: "del", key });
        if (ops.length >= ROLLBACK_SLICE_OPS) ops = await this.writeAndEmpty(ops);
      }
      // Seals written before undo records were packed: one record per node.
      const legacy = K.indexUndoPrefix(batchNo);
      for await (const [key, before] of this.scan({ gte: legacy, lt: prefixEnd(legacy) })) {
        restore(key.slice(legacy.length), before.length === 0 ? undefined : before);
        ops.push({ type: "del", key });
        if (ops.length >= ROLLBACK_SLICE_OPS) ops = await this.writeAndEmpty(ops);
      }
      await this.write(ops, true);
    }
    await this.write([this.sealMarkerClearOp()], true);
    return batchNo;
  }

  private async writeAndEmpty(ops: BatchOp[]): Promise<BatchOp[]> {
    await this.write(ops, true);
    return [];
  }

  /**
   * Undo records on disk: those of batches up to `prunedThrough` are deleted (-1: none), and
   * batches up to `legacyThrough` were sealed with one record per node (`j:`; -1: none).
   */
  async undoRecordsState(): Promise<{ prunedThrough: number; legacyThrough: number }> {
    const pruned = await this.getJson(K.undoPruned, UndoPrunedSchema);
    const lastLegacy = await this.lastKey(K.legacyUndoPrefix);
    const legacyThrough =
      lastLegacy === undefined
        ? -1
        : parseInt(lastLegacy.slice(K.legacyUndoPrefix.length).split(":")[0]!, 16);
    return { prunedThrough: pruned?.through ?? -1, legacyThrough };
  }

  undoPrunedOp(through: number): BatchOp {
    return this.putJsonOp(K.undoPruned, { through });
  }

  /** The index's stored values, as the index updater reads them (index-records.ts). */
  readonly indexReads: IndexReads = {
    heads: (subjects) => this.getManyRaw(subjects.map(K.subjectHead)),
    nodes: (pathKeys) => this.getManyRaw(pathKeys.map(K.indexNode)),
  };

  /**
   * The index node at path `key` (index-records.ts pathKey) as it was right after batch
   * `batchNo`; batches up to `legacyThrough` have one undo record per node. The latest version
   * is read first, then the undo records of the batches after `batchNo` up to `newest()` (the
   * last sealed batch or the one being written, asked after that read): a batch writes all its
   * undo records before it changes any node, so a node read after it changed always finds that
   * batch's undo record, and the earliest newer batch that changed the node has its value at
   * `batchNo`.
   */
  async indexNodeAt(
    key: string,
    batchNo: number,
    newest: () => number,
    legacyThrough: number,
  ): Promise<SmtNode | undefined> {
    const latest = await this.getRaw(K.indexNode(key));
    const newestNow = newest();
    if (newestNow > batchNo) {
      const undo = await Promise.all(
        Array.from({ length: newestNow - batchNo }, (_, i) =>
          this.findIndexUndo(batchNo + 1 + i, key, batchNo + 1 + i <= legacyThrough),
        ),
      );
      const at = undo.findIndex((u) => u.found);
      const found = undo[at];
      if (found?.found)
        return found.before === undefined
          ? undefined
          : decodeIndexNode(K.indexUndo(batchNo + 1 + at, key), found.before);
    }
    return latest === undefined ? undefined : decodeIndexNode(K.indexNode(key), latest);
  }

  /** The undo record of index node `path` for batch `batchNo` (store/index-undo.ts). */
  private async findIndexUndo(
    batchNo: number,
    path: string,
    legacy: boolean,
  ): Promise<{ found: true; before: Buffer | undefined } | { found: false }> {
    if (legacy) {
      const raw = await this.getRaw(K.indexUndo(batchNo, path));
      if (raw !== undefined) return { found: true, before: raw.length === 0 ? undefined : raw };
    }
    const prefix = K.indexUndoChunkPrefix(batchNo);
    for await (const chunk of this.db.values({
      gte: prefix,
      lte: prefix + path,
      reverse: true,
      limit: 1,
    }))
      return findUndo(chunk, path);
    return { found: false };
  }

  /** Deletes the undo records of batches [from, through], a slice at a time, unsynced. */
  async deleteIndexUndo(from: number, through: number, legacy: boolean): Promise<void> {
    const ranges = [{ gte: K.indexUndoChunkPrefix(from), lt: K.indexUndoChunkPrefix(through + 1) }];
    if (legacy) ranges.push({ gte: K.indexUndoPrefix(from), lt: K.indexUndoPrefix(through + 1) });
    for (const range of ranges) {
      let ops: BatchOp[] = [];
      for await (const key of this.scanKeys(range)) {
        ops.push({ type: "del", key });
        if (ops.length >= ROLLBACK_SLICE_OPS) {
          await this.write(ops, false);
          ops = [];
        }
      }
      await this.write(ops, false);
    }
  }

  async getTombstone(seq: number): Promise<TombstoneRecord | undefined> {
    return this.getJson(K.tombstone(seq), TombstoneSchema);
  }

  async findRequest(organization: string, requestId: string): Promise<number | undefined> {
    return this.getJson(K.requestId(organization, requestId), RequestSeqSchema);
  }

  /** Seqs under an index prefix, ascending, strictly after `afterSeq`. */
  async seqsByPrefix(
    prefix: string,
    opts: { afterSeq?: number; beforeSeq?: number; limit: number },
  ) {
    const seqs: number[] = [];
    const gt =
      opts.afterSeq === undefined ? undefined : `${prefix}${K.entry(opts.afterSeq).slice(2)}`;
    const lt =
      opts.beforeSeq === undefined
        ? prefixEnd(prefix)
        : `${prefix}${K.entry(opts.beforeSeq).slice(2)}`;
    for await (const key of this.db.keys(
      gt === undefined ? { gte: prefix, lt, limit: opts.limit } : { gt, lt, limit: opts.limit },
    )) {
      seqs.push(parseSeqPart(key.slice(prefix.length)));
    }
    return seqs;
  }

  /** Whether `seq` is in the organization's and/or the subject's index (erased events too). */
  async isIndexed(
    seq: number,
    scope: { organization?: string; subject?: string },
  ): Promise<boolean> {
    const keys: string[] = [];
    if (scope.organization !== undefined) keys.push(K.byOrg(scope.organization, seq));
    if (scope.subject !== undefined) keys.push(K.bySubject(scope.subject, seq));
    const found = await this.getManyRaw(keys);
    return found.every((v) => v !== undefined);
  }

  async seqsBySubject(tag: string, opts: { afterSeq?: number; beforeSeq?: number; limit: number }) {
    return this.seqsByPrefix(K.bySubjectPrefix(tag), opts);
  }

  async seqsByOrg(org: string, opts: { afterSeq?: number; beforeSeq?: number; limit: number }) {
    return this.seqsByPrefix(K.byOrgPrefix(org), opts);
  }

  /** Seqs of events recorded in [fromMs, toMs), in (time, seq) order, after a (ms, seq) cursor. */
  async seqsByTime(opts: {
    fromMs: number;
    toMs: number;
    after?: { ms: number; seq: number };
    limit: number;
  }): Promise<Array<{ ms: number; seq: number }>> {
    const out: Array<{ ms: number; seq: number }> = [];
    const range = opts.after
      ? {
          gt: K.byTime(opts.after.ms, opts.after.seq),
          lt: K.byTime(opts.toMs, 0),
          limit: opts.limit,
        }
      : { gte: K.byTime(opts.fromMs, 0), lt: K.byTime(opts.toMs, 0), limit: opts.limit };
    for await (const key of this.db.keys(range)) {
      const [, , ms, seq] = key.split(":");
      out.push({ ms: Number(ms), seq: parseSeqPart(seq!) });
    }
    return out;
  }

  // ---- receipt groups -----------------------------------------------------------------------

  /** The ops that store one group commit's receipt group, header and per-event paths. */
  receiptGroupOps(
    group: ReceiptGroupRecord,
    header: ReceiptGroupHeader,
    paths: readonly Buffer[],
  ): BatchOp[] {
    const ops: BatchOp[] = [
      this.putJsonOp(K.group(group.firstSeq), group),
      this.putJsonOp(K.groupHeader(group.firstSeq), header),
    ];
    paths.forEach((value, i) =>
      ops.push({ type: "put", key: K.receiptPath(group.firstSeq + i), value }),
    );
    return ops;
  }

  /** Each seq's stored group audit path (receipt-group-record.ts), if it has one. */
  getReceiptPaths(seqs: readonly number[]): Promise<Array<Buffer | undefined>> {
    return this.getManyRaw(seqs.map(K.receiptPath));
  }

  /** The signed headers of the groups starting at `firstSeqs`. */
  async getGroupHeaders(
    firstSeqs: readonly number[],
  ): Promise<Array<ReceiptGroupHeader | undefined>> {
    const keys = firstSeqs.map(K.groupHeader);
    return (await this.getManyRaw(keys)).map((raw, i) =>
      raw === undefined
        ? undefined
        : (decodeJson(keys[i]!, raw, ReceiptGroupHeaderSchema) as ReceiptGroupHeader),
    );
  }

  async getGroupContaining(seq: number): Promise<ReceiptGroupRecord | undefined> {
    const found = await this.greatest({ gte: K.groupPrefix, lte: K.group(seq) });
    if (found === undefined) return undefined;
    const group = decodeJson(found[0], found[1], ReceiptGroupRecordSchema) as ReceiptGroupRecord;
    return seq < group.firstSeq + group.count ? group : undefined;
  }

  // ---- batches ------------------------------------------------------------------------------

  /** Batch `batchNo`'s record (from the cache when it is there; frozen: it is shared). */
  async getBatch(batchNo: number): Promise<BatchRecord | undefined> {
    const cached = this.batchCache.get(batchNo);
    if (cached) return cached;
    const writes = this.batchWrites;
    const key = K.batch(batchNo);
    const raw = await this.getRaw(key);
    if (raw === undefined) return undefined;
    const record = decodeBatchRecord(key, raw);
    if (writes === this.batchWrites) this.batchCache.put(record);
    return record;
  }

  /** The cached record of the batch holding `seq`, if it is cached (no read). */
  cachedBatchForSeq(seq: number): BatchRecord | undefined {
    return this.batchCache.forSeq(seq);
  }

  /** The op that stores a batch record, with its digest (record-codec.ts). */
  private batchOp(record: BatchRecord): BatchOp {
    // The schema's own check, so a bug never writes a record that could not be read back.
    if (!BatchRecordSchema.safeParse(record).success)
      throw new Error(`invariant violated: batch record ${record.header.batchNo} is malformed`);
    return { type: "put", key: K.batch(record.header.batchNo), value: encodeBatchRecord(record) };
  }

  /** A newly sealed batch: its record and the lookup of its first seq (written with its nodes). */
  newBatchOps(record: BatchRecord): BatchOp[] {
    const { batchNo, firstSeq } = record.header;
    return [
      this.batchOp(record),
      { type: "put", key: K.batchBySeq(firstSeq), value: Buffer.from(String(batchNo)) },
    ];
  }

  /** Replaces a batch's record (its state and anchor; the header never changes), synced. */
  async putBatch(record: BatchRecord): Promise<void> {
    await this.write([this.batchOp(record)], true);
  }

  async lastBatch(): Promise<BatchRecord | undefined> {
    const found = await this.greatest({ gte: K.batchPrefix, lt: prefixEnd(K.batchPrefix) });
    return found === undefined ? undefined : decodeBatchRecord(...found);
  }

  /** The number of the batch whose range contains `seq`, if it is sealed. */
  async batchNoForSeq(seq: number): Promise<number | undefined> {
    const found = await this.greatest({ gte: K.batchBySeqPrefix, lte: K.batchBySeq(seq) });
    return found === undefined ? undefined : decodeBatchNo(...found);
  }

  /**
   * Stored Merkle nodes as 0x-hex: node i is the 32 bytes at `offset[i]` of the value under
   * `keys[value[i]]` (node-layout.ts says where each node is). Each value is read once, and a
   * node cited several times (neighbouring audit paths share their upper levels) is encoded
   * once: the same string is returned for every citation.
   */
  async getNodesHex(at: {
    keys: string[];
    value: Uint32Array;
    offset: Uint32Array;
  }): Promise<string[]> {
    const values = await this.getManyRaw(at.keys);
    const hexOf = new Map<number, string>();
    const out = new Array<string>(at.value.length);
    for (let i = 0; i < out.length; i++) {
      const which = at.value[i]!;
      const offset = at.offset[i]!;
      // Stored values are a few KiB (offsets < 2^24): one number names a node.
      const name = which * 2 ** 24 + offset;
      let hex = hexOf.get(name);
      if (hex === undefined) {
        const stored = values[which];
        if (!stored || stored.length < offset + 32)
          throw new StoreCorruptError(
            at.keys[which]!,
            stored ? `too short for a node at byte ${offset}` : "missing",
          );
        hex = "0x" + stored.toString("hex", offset, offset + 32);
        hexOf.set(name, hex);
      }
      out[i] = hex;
    }
    return out;
  }

  /**
   * The first of a batch's stored Merkle node values (node-layout.ts `nodeValues`, computed by
   * the caller) that is missing or differs, by its key; none if all match.
   */
  async storedValuesDiffering(
    expected: ReadonlyArray<{ key: string; value: Uint8Array }>,
  ): Promise<{ key: string; missing: boolean } | undefined> {
    const stored = await this.getManyRaw(expected.map((v) => v.key));
    const bad = stored.findIndex((v, i) => v === undefined || !v.equals(expected[i]!.value));
    return bad < 0 ? undefined : { key: expected[bad]!.key, missing: stored[bad] === undefined };
  }

  async listBatches(opts: BatchPage): Promise<BatchRecord[]> {
    const out: BatchRecord[] = [];
    const range = opts.reverse
      ? {
          gte: K.batchPrefix,
          lte:
            opts.fromBatchNo === undefined ? prefixEnd(K.batchPrefix) : K.batch(opts.fromBatchNo),
          reverse: true,
          limit: opts.limit,
        }
      : { gte: K.batch(opts.fromBatchNo ?? 0), lt: prefixEnd(K.batchPrefix), limit: opts.limit };
    for await (const [k, v] of this.db.iterator(range)) out.push(decodeBatchRecord(k, v));
    return out;
  }

  // ---- whole-log reads, as stored (the regulator's audit replays them: log-scan.ts) ---------

  /** Values of one kind of per-seq record for seqs [0, total), in seq order, from now. */
  seqValues(kind: SeqRecordKind, total: number): SeqValues {
    return new SeqValues(this.db, SEQ_RECORD_PREFIX[kind], total);
  }

  /** The receipt-group records in seq order, from now. */
  groupRecords(): GroupRecords {
    return new GroupRecords(this.db);
  }

  /** Group `firstSeq`'s stored header as stored (undefined: none; groups before headers). */
  getGroupHeaderAsStored(firstSeq: number): Promise<Buffer | undefined> {
    return this.getRaw(K.groupHeader(firstSeq));
  }

  /**
   * Every batch record as stored, in batchNo order, undecoded: the audit decodes each
   * (decodeBatchRecordOf) and reports the ones that do not decode instead of stopping.
   */
  async *batchRecordsAsStored(): AsyncGenerator<[batchNo: number, raw: Buffer]> {
    for await (const [k, v] of this.scan({ gte: K.batchPrefix, lt: prefixEnd(K.batchPrefix) }))
      yield [parseInt(k.slice(K.batchPrefix.length), 16), v];
  }

  /** The batch-by-seq lookup as stored: each batch's number (NaN if unreadable) and first seq. */
  async *batchFirstSeqs(): AsyncGenerator<[batchNo: number, firstSeq: number]> {
    for await (const [k, v] of this.scan({
      gte: K.batchBySeqPrefix,
      lt: prefixEnd(K.batchBySeqPrefix),
    }))
      yield [Number(v.toString("utf8")), parseSeqPart(k.slice(K.batchBySeqPrefix.length))];
  }

  /** The number of the last batch record (-1: none), without reading it. */
  async lastBatchNo(): Promise<number> {
    const key = await this.lastKey(K.batchPrefix);
    return key === undefined ? -1 : parseInt(key.slice(K.batchPrefix.length), 16);
  }

  /** Seqs from `fromSeq` on that have a stored body, in order. */
  async *bodySeqsFrom(fromSeq: number): AsyncGenerator<number> {
    for await (const key of this.scanKeys({ gte: K.body(fromSeq), lt: prefixEnd(K.bodyPrefix) }))
      yield parseSeqPart(key.slice(K.bodyPrefix.length));
  }

  /** Every subject's history head as stored (index-records.ts), by subject tag. */
  async *subjectHeadsAsStored(): AsyncGenerator<[subject: Hex, raw: Buffer]> {
    const prefix = K.subjectHead("0x");
    for await (const [k, v] of this.scan({ gte: prefix, lt: prefixEnd(prefix) }))
      yield [`0x${k.slice(prefix.length)}` as Hex, v];
  }
}

export { BodyUnreadable };

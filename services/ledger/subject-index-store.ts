import type { Worker } from "node:worker_threads";
import { type Hex, fromHex } from "../core/hex.ts";
import {
  EMPTY_ROOT,
  type NodeReader,
  type SmtNode,
  proveKey,
  smtNodeHash,
} from "../core/subject-index.ts";
import type { SubjectIndexProof } from "../core/subject-index-proof.ts";
import { UNDO_CHUNK_NODES } from "../store/index-undo.ts";
import { type IndexReads, pathKey } from "../store/index-records.ts";
import type { BatchOp, LedgerStore } from "../store/ledger-store.ts";
import { invariant } from "./errors.ts";
import { startTsWorker } from "./ts-worker.ts";
import {
  BatchOpSink,
  type IndexCacheOptions,
  type IndexedEvent,
  IndexUpdater,
  type PreparedSize,
  type UpdatePart,
} from "./index-updater.ts";
import { type FromWorker, type ToWorker, packEvents, packValues, unpackOps } from "./index-wire.ts";

export interface SubjectIndexOptions extends IndexCacheOptions {
  /**
   * Compute batch updates in a worker thread (index-worker.ts) instead of on the request
   * thread: the sealer's CPU work then runs on a second core while this thread serves requests.
   */
  worker?: boolean;
  /** The worker's V8 heap limit (old generation), MB. */
  workerHeapMb?: number;
  /** Index ops per write of a large update (default INDEX_WRITE_SLICE_OPS; tests set less). */
  writeSliceOps?: number;
}

/**
 * Index ops written per LevelDB write when a batch's update is written in slices. A batch of
 * 10,000 subjects changes ≈ 100,000 nodes; written as one atomic batch with its undo records
 * (≈ 200,000 ops), it was held at once as op objects, in LevelDB's write batch and in its
 * memtable, and the service's RSS jumped by 150–250 MB at every seal.
 */
export const INDEX_WRITE_SLICE_OPS = 8_192;

/** A batch's index update, computed and not yet written (SubjectIndex.prepareBatch). */
export interface PreparedIndexBatch {
  batchNo: number;
  root: Hex;
  size: PreparedSize;
}

/**
 * Undo records are kept for this many anchored batches before they are deleted: proofs are
 * served at the latest anchored batch, and a reorg that un-anchors recent batches (the anchor loop
 * re-checks ANCHOR_RECHECK_DEPTH of them, 16 by default) moves that batch back.
 */
export const UNDO_KEEP_ANCHORED_BATCHES = 16;

/**
 * The completeness index on LevelDB. The latest version of every node lives under `i:`; each
 * sealed batch also writes undo records (the nodes it changed as they were before it, packed:
 * store/index-undo.ts) so that proofs can be served at the latest *anchored* batch while newer
 * batches are sealed but not yet anchored, and so that a seal cut short can be rolled back.
 * Undo records of batches UNDO_KEEP_ANCHORED_BATCHES below the anchored ones are deleted
 * (`pruneUndo`). Batch updates are computed by an {@link IndexUpdater}, here or in the sealing
 * worker.
 *
 * A large update is written in slices (`writeBatch`) under a durable marker: first every undo
 * record, then the nodes, then the subject heads atomically with the batch record (which clears
 * the marker). A seal cut short (kill -9, a failed write) is rolled back from the undo records by
 * LedgerStore.settleInterruptedSeal, at the next open or before the next attempt, and the batch
 * is sealed again from its entries: the index a batch record commits to is always whole.
 */
export class SubjectIndex {
  private readonly updater: IndexUpdater | IndexWorkerClient;
  /** The batch whose update is being written in slices (its undo records come first). */
  private writing: number | undefined;
  /** A sliced write failed part-way: roll it back before the next batch is prepared. */
  private interrupted = false;
  private readonly sliceOps: number;
  /** Batches whose undo records are deleted (all up to this one), and the last legacy one. */
  private undoState: Promise<{ prunedThrough: number; legacyThrough: number }> | undefined;
  /** Batches proofs are being read at now (count each): their undo records are not pruned. */
  private readonly readingAt = new Map<number, number>();
  private pruning: Promise<void> = Promise.resolve();
  private closing = false;

  constructor(
    private readonly store: LedgerStore,
    private latestBatchNo: number,
    opts: SubjectIndexOptions = {},
  ) {
    this.sliceOps = opts.writeSliceOps ?? INDEX_WRITE_SLICE_OPS;
    const reads = store.indexReads;
    this.updater = opts.worker
      ? new IndexWorkerClient(reads, latestBatchNo, opts)
      : new IndexUpdater(reads, latestBatchNo, opts);
  }

  /** Latest nodes held in memory now: upper ones (bounded by their levels) and deep ones. */
  get cachedNodes(): { upper: number; deep: number } {
    return this.updater.cachedNodes;
  }

  /** Computes the index update for one batch; `writeBatch` then writes it. */
  async prepareBatch(batchNo: number, events: IndexedEvent[]): Promise<PreparedIndexBatch> {
    invariant(batchNo === this.latestBatchNo + 1, "index batches are applied in order");
    if (this.interrupted) {
      await this.store.settleInterruptedSeal();
      this.interrupted = false;
      this.writing = undefined;
    }
    const { root, size } = await this.updater.prepare(batchNo, events);
    return { batchNo, root, size };
  }

  /** Ops of changes (or heads) [from, to) of one part of a prepared update. */
  async ops(prepared: PreparedIndexBatch, part: UpdatePart, from = 0, to = Infinity) {
    if (this.updater instanceof IndexWorkerClient)
      return this.updater.emit(prepared.batchNo, part, from, to);
    const sink = new BatchOpSink();
    this.updater.emit(prepared.batchNo, part, from, to, sink);
    return sink.ops;
  }

  /**
   * Writes a prepared update durably, with `withOps` (the batch record and the batch's own
   * nodes) in its last, atomic write, and marks it committed. A small update is one atomic
   * write; a large one is written in slices (INDEX_WRITE_SLICE_OPS; see the class comment).
   */
  async writeBatch(prepared: PreparedIndexBatch, withOps: BatchOp[]): Promise<void> {
    const { batchNo, size } = prepared;
    invariant(batchNo === this.latestBatchNo + 1, "index batches are written in order");
    // Changes per slice, a whole number of packed undo values.
    const slice = Math.max(UNDO_CHUNK_NODES, this.sliceOps - (this.sliceOps % UNDO_CHUNK_NODES));
    if (Math.ceil(size.nodes / UNDO_CHUNK_NODES) + size.nodes + size.heads <= this.sliceOps) {
      const ops = [
        ...(await this.ops(prepared, "undo")),
        ...(await this.ops(prepared, "nodes")),
        ...(await this.ops(prepared, "heads")),
        ...withOps,
      ];
      await this.store.write(ops, true);
    } else {
      this.writing = batchNo;
      this.interrupted = true;
      await this.store.write([this.store.sealMarkerOp(batchNo)], true);
      for (const part of ["undo", "nodes"] as const)
        for (let from = 0; from < size.nodes; from += slice)
          await this.store.write(await this.ops(prepared, part, from, from + slice), true);
      const last = await this.ops(prepared, "heads");
      for (const op of withOps) last.push(op);
      last.push(this.store.sealMarkerClearOp());
      await this.store.write(last, true);
      this.interrupted = false;
      this.writing = undefined;
    }
    this.latestBatchNo = batchNo;
    this.updater.committed(batchNo);
  }

  /** The sealing worker's V8 heap after its last batch (bytes); undefined without a worker. */
  get workerHeapBytes(): number | undefined {
    return this.updater instanceof IndexWorkerClient ? this.updater.heapBytes : undefined;
  }

  /** CPU time the sealing worker thread had used at its last batch (s); undefined without one. */
  get workerCpuSeconds(): number | undefined {
    return this.updater instanceof IndexWorkerClient ? this.updater.cpuMicros / 1e6 : undefined;
  }

  /** Stops the worker, if one runs, and pruning after the batch it is at. */
  async close(): Promise<void> {
    this.closing = true;
    await this.pruning;
    if (this.updater instanceof IndexWorkerClient) await this.updater.close();
  }

  private undo(): Promise<{ prunedThrough: number; legacyThrough: number }> {
    this.undoState ??= this.store.undoRecordsState();
    return this.undoState;
  }

  /**
   * A reader of the index as it was right after batch `batchNo` was applied: each node from its
   * latest version and the undo records of the batches after `batchNo`, including one being
   * written now (LedgerStore.indexNodeAt).
   */
  private async readerAt(batchNo: number): Promise<NodeReader> {
    invariant(batchNo <= this.latestBatchNo, "cannot read the index ahead of the sealed batches");
    const { prunedThrough, legacyThrough } = await this.undo();
    invariant(
      batchNo >= prunedThrough,
      `the index at batch ${batchNo} is no longer readable: undo records are kept for the last ${UNDO_KEEP_ANCHORED_BATCHES} anchored batches (deleted through batch ${prunedThrough})`,
    );
    const newest = () => this.writing ?? this.latestBatchNo;
    return (path) => this.store.indexNodeAt(pathKey(path), batchNo, newest, legacyThrough);
  }

  /** Runs `read` with the undo records it needs kept from pruning. */
  private async reading<T>(batchNo: number, read: (reader: NodeReader) => Promise<T>): Promise<T> {
    this.readingAt.set(batchNo, (this.readingAt.get(batchNo) ?? 0) + 1);
    try {
      return await read(await this.readerAt(batchNo));
    } finally {
      const n = this.readingAt.get(batchNo)! - 1;
      if (n === 0) this.readingAt.delete(batchNo);
      else this.readingAt.set(batchNo, n);
    }
  }

  async rootAt(batchNo: number): Promise<Uint8Array> {
    return this.reading(batchNo, async (reader) => {
      const node: SmtNode | undefined = await reader("");
      return node === undefined ? EMPTY_ROOT : smtNodeHash(node);
    });
  }

  async proveAt(batchNo: number, subject: Hex): Promise<SubjectIndexProof> {
    return this.reading(batchNo, (reader) => proveKey(reader, fromHex(subject)));
  }

  /**
   * Deletes the undo records of batches up to `anchoredBatchNo - UNDO_KEEP_ANCHORED_BATCHES`
   * (fewer while a proof is read at one of them), after earlier prunes. The new line is stored
   * before any record goes, so a reader never relies on a deleted record.
   */
  pruneUndo(anchoredBatchNo: number): Promise<void> {
    const run = this.pruning.then(async () => {
      const target = Math.min(anchoredBatchNo - UNDO_KEEP_ANCHORED_BATCHES, this.latestBatchNo);
      // A batch at a time, each line stored before its records go: a stop in between leaves
      // no record below the line.
      for (;;) {
        const state = await this.undo();
        // No await from here to the new line: a proof that starts later sees the line.
        let through = target;
        for (const reading of this.readingAt.keys()) through = Math.min(through, reading);
        const b = state.prunedThrough + 1;
        if (b > through || this.closing) return;
        this.undoState = Promise.resolve({ ...state, prunedThrough: b });
        await this.store.write([this.store.undoPrunedOp(b)], true);
        await this.store.deleteIndexUndo(b, b, b <= state.legacyThrough);
      }
    });
    this.pruning = run.catch(() => undefined);
    return run;
  }
}

/**
 * The request thread's side of the sealing worker: forwards prepare/committed, and serves the
 * worker's reads from the store (the worker holds no database handle).
 */
class IndexWorkerClient {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (message: FromWorker) => void; reject: (e: Error) => void }
  >();
  private cached = { upper: 0, deep: 0 };
  heapBytes = 0;
  cpuMicros = 0;
  private failure: Error | undefined;

  constructor(
    private readonly reads: IndexReads,
    latestBatchNo: number,
    opts: SubjectIndexOptions,
  ) {
    this.worker = startTsWorker(
      new URL("./index-worker.ts", import.meta.url),
      opts.workerHeapMb !== undefined
        ? { maxOldGenerationSizeMb: opts.workerHeapMb, maxYoungGenerationSizeMb: 16 }
        : undefined,
    );
    this.worker.unref();
    this.worker.on("message", (message: FromWorker) => this.onMessage(message));
    this.worker.on("error", (error) => this.fail(error));
    this.worker.on("exit", (code) => {
      if (code !== 0) this.fail(new Error(`the sealing worker exited with code ${code}`));
    });
    this.post({
      type: "init",
      latestBatchNo,
      ...(opts.nodeCacheMax !== undefined ? { nodeCacheMax: opts.nodeCacheMax } : {}),
      ...(opts.upperLevels !== undefined ? { upperLevels: opts.upperLevels } : {}),
    });
  }

  get cachedNodes(): { upper: number; deep: number } {
    return this.cached;
  }

  async prepare(
    batchNo: number,
    events: IndexedEvent[],
  ): Promise<{ root: Hex; size: PreparedSize }> {
    const packed = packEvents(events);
    const answer = await this.ask({ type: "prepare", batchNo, events: packed }, [
      packed.seqs.buffer as ArrayBuffer,
    ]);
    invariant(answer.type === "prepared", "the worker answers prepare with prepared");
    this.cached = answer.cachedNodes;
    this.heapBytes = answer.heapBytes;
    this.cpuMicros = answer.cpuMicros;
    return { root: answer.root, size: answer.size };
  }

  async emit(batchNo: number, part: UpdatePart, from: number, to: number): Promise<BatchOp[]> {
    const answer = await this.ask({
      type: "emit",
      batchNo,
      part,
      from,
      to: Math.min(to, Number.MAX_SAFE_INTEGER),
    });
    invariant(answer.type === "emitted", "the worker answers emit with emitted");
    const o = answer.ops;
    return unpackOps(Buffer.from(o.buffer, o.byteOffset, o.byteLength));
  }

  committed(batchNo: number): void {
    this.post({ type: "committed", batchNo });
  }

  async close(): Promise<void> {
    this.failure ??= new Error("the sealing worker is stopped");
    await this.worker.terminate();
  }

  /** Sends a request (its id added) and resolves with the worker's answer to it. */
  private ask(
    request: DistributiveOmit<Extract<ToWorker, { id: number }>, "id">,
    transfer: ArrayBuffer[] = [],
  ): Promise<FromWorker> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ ...request, id } as ToWorker, transfer);
    });
  }

  private post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  private onMessage(message: FromWorker): void {
    if (message.type === "read") {
      const ids = message.ids;
      const read =
        message.kind === "heads" ? this.reads.heads(ids as Hex[]) : this.reads.nodes(ids);
      read.then(
        (values) => {
          const packed = packValues(values);
          this.post({ type: "values", id: message.id, values: packed }, [
            packed.buffer as ArrayBuffer,
          ]);
        },
        (error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))),
      );
      return;
    }
    const p = this.pending.get(message.id);
    this.pending.delete(message.id);
    if (message.type === "failed") {
      const error = new Error(message.message);
      if (message.stack) error.stack = message.stack;
      p?.reject(error);
    } else {
      p?.resolve(message);
    }
  }

  /** The worker is gone or its reads failed: every pending and later request fails. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** Omit over each member of a union (Omit of a union keeps only the common keys). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

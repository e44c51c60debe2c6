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

  /** Restarts of the sealing worker and batches prepared here instead; undefined without one. */
  get workerStatus(): SealWorkerStatus | undefined {
    return this.updater instanceof IndexWorkerClient ? this.updater.status : undefined;
  }

  /**
   * Ends the sealing worker as a crash would (tests): the batch it holds fails and is sealed
   * again by a new worker.
   */
  async terminateWorker(): Promise<void> {
    if (this.updater instanceof IndexWorkerClient) await this.updater.terminateWorker();
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
 * The sealing worker was lost (it ran out of heap, crashed or was terminated) while it held the
 * update of `batchNo`: nothing of that batch is committed. The sealer tries the batch again; a new
 * worker is started for it, with a cold cache, from what the store holds.
 */
export class SealWorkerLostError extends Error {
  readonly code = "SEAL_WORKER_LOST";
  constructor(
    message: string,
    readonly batchNo: number | undefined,
  ) {
    super(message);
    this.name = "SealWorkerLostError";
  }
}

/** The first restart waits this long, then twice as long after each further loss, up to the max. */
const RESTART_DELAY_MIN_MS = 100;
const RESTART_DELAY_MAX_MS = 5_000;

/**
 * A batch whose update lost the worker this many times in a row is prepared on the request
 * thread instead: a batch too large for the worker's heap limit still gets sealed (its receipts'
 * anchor deadline outranks the worker's memory bound), and the next batch goes to a new worker.
 */
const LOSSES_BEFORE_LOCAL = 2;

/** What the request thread's side of the sealing worker counts (metrics, logs). */
export interface SealWorkerStatus {
  /** Workers started after one was lost. */
  restarts: number;
  /** Batches prepared on the request thread after their update lost the worker repeatedly. */
  localBatches: number;
  /** Why the last worker was lost, if one was. */
  lastLoss?: string;
}

/**
 * The request thread's side of the sealing worker: forwards prepare/committed, and serves the
 * worker's reads from the store (the worker holds no database handle). It supervises the worker:
 * one that is lost (out of heap, crashed) fails the requests it held with a SealWorkerLostError
 * and is replaced at the next batch, after a delay that grows with repeated losses; the new one
 * starts at the last committed batch and reads what it needs from the store, so nothing
 * acknowledged is lost and sealing resumes (subject-index-store.ts rolls back a sliced write the
 * loss cut short). A batch that keeps losing its worker is prepared on this thread.
 */
class IndexWorkerClient {
  private worker: Worker | undefined;
  /** The updater on this thread that prepares the current batch, when the worker could not. */
  private local: IndexUpdater | undefined;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (message: FromWorker) => void; reject: (e: Error) => void }
  >();
  private cached = { upper: 0, deep: 0 };
  heapBytes = 0;
  cpuMicros = 0;
  /** CPU time of the workers lost so far (µs): the thread CPU metric never goes back. */
  private lostCpuMicros = 0;
  private closed = false;
  private latestBatchNo: number;
  /** The batch the current worker (or this thread) is preparing, and losses in a row on it. */
  private preparing: number | undefined;
  private losses = { batchNo: -1, count: 0, inRow: 0 };
  private lossAt = 0;
  readonly status: SealWorkerStatus = { restarts: 0, localBatches: 0 };

  constructor(
    private readonly reads: IndexReads,
    latestBatchNo: number,
    private readonly opts: SubjectIndexOptions,
  ) {
    this.latestBatchNo = latestBatchNo;
    this.worker = this.startWorker();
  }

  get cachedNodes(): { upper: number; deep: number } {
    return this.local?.cachedNodes ?? this.cached;
  }

  async prepare(
    batchNo: number,
    events: IndexedEvent[],
  ): Promise<{ root: Hex; size: PreparedSize }> {
    if (this.closed) throw new Error("the sealing worker is stopped");
    this.preparing = batchNo;
    this.local = undefined;
    if (this.losses.batchNo === batchNo && this.losses.count >= LOSSES_BEFORE_LOCAL) {
      this.status.localBatches++;
      this.local = new IndexUpdater(this.reads, this.latestBatchNo, this.opts);
      return this.local.prepare(batchNo, events);
    }
    if (!this.worker) {
      // Not in a tight loop: a worker lost again at once waits longer before the next one.
      const delay = Math.min(
        RESTART_DELAY_MAX_MS,
        RESTART_DELAY_MIN_MS * 2 ** Math.max(0, this.losses.inRow - 1),
      );
      const wait = this.lossAt + delay - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (this.closed) throw new Error("the sealing worker is stopped");
      this.status.restarts++;
      this.worker = this.startWorker();
    }
    const packed = packEvents(events);
    const answer = await this.ask({ type: "prepare", batchNo, events: packed }, [
      packed.seqs.buffer as ArrayBuffer,
    ]);
    invariant(answer.type === "prepared", "the worker answers prepare with prepared");
    this.cached = answer.cachedNodes;
    this.heapBytes = answer.heapBytes;
    this.cpuMicros = this.lostCpuMicros + answer.cpuMicros;
    this.losses.inRow = 0;
    return { root: answer.root, size: answer.size };
  }

  async emit(batchNo: number, part: UpdatePart, from: number, to: number): Promise<BatchOp[]> {
    if (this.local) {
      const sink = new BatchOpSink();
      this.local.emit(batchNo, part, from, to, sink);
      return sink.ops;
    }
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
    this.latestBatchNo = batchNo;
    this.preparing = undefined;
    if (this.local) {
      // The worker's cache missed this batch's writes: the next batch gets a new worker.
      this.local = undefined;
      this.retire(this.worker);
      return;
    }
    this.worker?.postMessage({ type: "committed", batchNo } satisfies ToWorker);
  }

  /** Ends the current worker on purpose (its requests fail as if it were lost). For tests. */
  async terminateWorker(): Promise<void> {
    await this.worker?.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.rejectPending(new Error("the sealing worker is stopped"));
    await worker?.terminate();
  }

  private startWorker(): Worker {
    const worker = startTsWorker(
      new URL("./index-worker.ts", import.meta.url),
      this.opts.workerHeapMb !== undefined
        ? { maxOldGenerationSizeMb: this.opts.workerHeapMb, maxYoungGenerationSizeMb: 16 }
        : undefined,
    );
    worker.unref();
    let error: Error | undefined;
    worker.on("message", (message: FromWorker) => {
      if (worker === this.worker) this.onMessage(message);
    });
    worker.on("error", (e) => (error = e));
    worker.on("exit", (code) => {
      if (worker !== this.worker) return;
      this.lost(
        error
          ? `${(error as NodeJS.ErrnoException).code ?? error.name}: ${error.message}`
          : `exited with code ${code}`,
      );
    });
    worker.postMessage({
      type: "init",
      latestBatchNo: this.latestBatchNo,
      ...(this.opts.nodeCacheMax !== undefined ? { nodeCacheMax: this.opts.nodeCacheMax } : {}),
      ...(this.opts.upperLevels !== undefined ? { upperLevels: this.opts.upperLevels } : {}),
    } satisfies ToWorker);
    return worker;
  }

  /** The current worker is gone: what it held fails; the next batch starts another. */
  private lost(reason: string): void {
    this.worker = undefined;
    if (this.closed) return;
    this.lostCpuMicros = this.cpuMicros;
    this.lossAt = Date.now();
    this.losses.inRow++;
    const batchNo = this.preparing;
    if (batchNo !== undefined) {
      if (this.losses.batchNo === batchNo) this.losses.count++;
      else this.losses = { ...this.losses, batchNo, count: 1 };
    }
    this.status.lastLoss = reason;
    this.rejectPending(
      new SealWorkerLostError(
        `the sealing worker was lost (${reason})${batchNo === undefined ? "" : ` while it prepared batch ${batchNo}`}; a new one takes over from the store`,
        batchNo,
      ),
    );
  }

  /** Stops a worker whose state is stale; it is not counted as lost. */
  private retire(worker: Worker | undefined): void {
    if (worker === undefined) return;
    if (worker === this.worker) this.worker = undefined;
    void worker.terminate();
  }

  private rejectPending(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  /** Sends a request (its id added) and resolves with the worker's answer to it. */
  private ask(
    request: DistributiveOmit<Extract<ToWorker, { id: number }>, "id">,
    transfer: ArrayBuffer[] = [],
  ): Promise<FromWorker> {
    const worker = this.worker;
    if (this.closed) return Promise.reject(new Error("the sealing worker is stopped"));
    if (!worker)
      return Promise.reject(
        new SealWorkerLostError(
          `the sealing worker was lost (${this.status.lastLoss ?? "unknown"}) before batch ${this.preparing} was written`,
          this.preparing,
        ),
      );
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id } as ToWorker, transfer);
    });
  }

  private onMessage(message: FromWorker): void {
    if (message.type === "read") {
      const worker = this.worker!;
      const ids = message.ids;
      const read =
        message.kind === "heads" ? this.reads.heads(ids as Hex[]) : this.reads.nodes(ids);
      read.then(
        (values) => {
          if (worker !== this.worker) return;
          const packed = packValues(values);
          worker.postMessage(
            { type: "values", id: message.id, values: packed } satisfies ToWorker,
            [packed.buffer as ArrayBuffer],
          );
        },
        (error: unknown) => {
          // The worker waits for values that will not come: what it was asked fails with the
          // store's error, and it is replaced at the next batch.
          if (worker !== this.worker) return;
          this.rejectPending(error instanceof Error ? error : new Error(String(error)));
          this.retire(worker);
        },
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
}

/** Omit over each member of a union (Omit of a union keeps only the common keys). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

import type { Worker } from "node:worker_threads";
import { type Hex, fromHex } from "../core/hex.ts";
import {
  EMPTY_ROOT,
  type NodeReader,
  type SmtNode,
  decodeSmtNode,
  proveKey,
  smtNodeHash,
} from "../core/subject-index.ts";
import type { SubjectIndexProof } from "../core/subject-index-proof.ts";
import { K } from "../store/keys.ts";
import type { BatchOp, LedgerStore } from "../store/ledger-store.ts";
import { invariant } from "./errors.ts";
import { startTsWorker } from "./ts-worker.ts";
import {
  BatchOpSink,
  type IndexCacheOptions,
  type IndexedEvent,
  IndexUpdater,
  pathKey,
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
}

/**
 * The completeness index on LevelDB. The latest version of every node lives under `i:`; each
 * sealed batch also writes an undo record (`j:<batchNo>:<path>`, the node as it was before that
 * batch) so that proofs can be served at the latest *anchored* batch while newer batches are
 * sealed but not yet anchored. Undo records at or below the anchored batch are pruned. Batch
 * updates are computed by an {@link IndexUpdater}, here or in the sealing worker.
 */
export class SubjectIndex {
  private readonly updater: IndexUpdater | IndexWorkerClient;

  constructor(
    private readonly store: LedgerStore,
    private latestBatchNo: number,
    opts: SubjectIndexOptions = {},
  ) {
    const reads = (keys: string[]) => store.getManyRaw(keys);
    this.updater = opts.worker
      ? new IndexWorkerClient(reads, latestBatchNo, opts)
      : new IndexUpdater(reads, latestBatchNo, opts);
  }

  /** Latest nodes held in memory now: upper ones (bounded by their levels) and deep ones. */
  get cachedNodes(): { upper: number; deep: number } {
    return this.updater.cachedNodes;
  }

  /** Computes the index update for one batch; the caller writes `ops` with the batch record. */
  async prepareBatch(
    batchNo: number,
    events: IndexedEvent[],
  ): Promise<{ root: Hex; ops: BatchOp[] }> {
    invariant(batchNo === this.latestBatchNo + 1, "index batches are applied in order");
    if (this.updater instanceof IndexWorkerClient) return this.updater.prepare(batchNo, events);
    const sink = new BatchOpSink();
    const { root } = await this.updater.prepare(batchNo, events, sink);
    return { root, ops: sink.ops };
  }

  /** The batch's writes are durable. */
  committed(batchNo: number): void {
    this.latestBatchNo = batchNo;
    this.updater.committed(batchNo);
  }

  /** The sealing worker's V8 heap after its last batch (bytes); undefined without a worker. */
  get workerHeapBytes(): number | undefined {
    return this.updater instanceof IndexWorkerClient ? this.updater.heapBytes : undefined;
  }

  /** Stops the worker, if one runs. */
  async close(): Promise<void> {
    if (this.updater instanceof IndexWorkerClient) await this.updater.close();
  }

  /** A reader of the index as it was right after batch `batchNo` was applied. */
  readerAt(batchNo: number): NodeReader {
    invariant(batchNo <= this.latestBatchNo, "cannot read the index ahead of the sealed batches");
    const newer: number[] = [];
    for (let b = batchNo + 1; b <= this.latestBatchNo; b++) newer.push(b);
    return async (path) => {
      const key = pathKey(path);
      if (newer.length > 0) {
        const undo = await this.store.getManyRaw(newer.map((b) => K.indexUndo(b, key)));
        // The earliest newer batch that touched this node remembers its value at `batchNo`.
        const found = undo.find((u) => u !== undefined);
        if (found !== undefined) return found.length === 0 ? undefined : decodeSmtNode(found);
      }
      const raw = await this.store.getRaw(K.indexNode(key));
      return raw === undefined ? undefined : decodeSmtNode(raw);
    };
  }

  async rootAt(batchNo: number): Promise<Uint8Array> {
    const node: SmtNode | undefined = await this.readerAt(batchNo)("");
    return node === undefined ? EMPTY_ROOT : smtNodeHash(node);
  }

  async proveAt(batchNo: number, subject: Hex): Promise<SubjectIndexProof> {
    return proveKey(this.readerAt(batchNo), fromHex(subject));
  }

  /** Drops undo records no proof can need any more: those of batches ≤ the anchored one. */
  async prune(anchoredBatchNo: number, fromBatchNo: number): Promise<number> {
    let removed = 0;
    for (let b = fromBatchNo; b <= anchoredBatchNo; b++) {
      const ops: BatchOp[] = [];
      const prefix = K.indexUndoPrefix(b);
      for await (const key of this.store.scanKeys({ gte: prefix, lt: `${prefix}~` }))
        ops.push({ type: "del", key });
      await this.store.write(ops, false);
      removed += ops.length;
    }
    return removed;
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
    { resolve: (r: { root: Hex; ops: BatchOp[] }) => void; reject: (e: Error) => void }
  >();
  private cached = { upper: 0, deep: 0 };
  heapBytes = 0;
  private failure: Error | undefined;

  constructor(
    private readonly reads: (keys: string[]) => Promise<Array<Buffer | undefined>>,
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

  prepare(batchNo: number, events: IndexedEvent[]): Promise<{ root: Hex; ops: BatchOp[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const packed = packEvents(events);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: "prepare", id, batchNo, events: packed }, [
        packed.seqs.buffer as ArrayBuffer,
      ]);
    });
  }

  committed(batchNo: number): void {
    this.post({ type: "committed", batchNo });
  }

  async close(): Promise<void> {
    this.failure ??= new Error("the sealing worker is stopped");
    await this.worker.terminate();
  }

  private post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  private onMessage(message: FromWorker): void {
    switch (message.type) {
      case "read":
        this.reads(message.keys).then(
          (values) => {
            const packed = packValues(values);
            this.post({ type: "values", id: message.id, values: packed });
          },
          (error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))),
        );
        break;
      case "prepared": {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        this.cached = message.cachedNodes;
        this.heapBytes = message.heapBytes;
        const o = message.ops;
        p?.resolve({
          root: message.root,
          ops: unpackOps(Buffer.from(o.buffer, o.byteOffset, o.byteLength)),
        });
        break;
      }
      case "failed": {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        const error = new Error(message.message);
        if (message.stack) error.stack = message.stack;
        p?.reject(error);
        break;
      }
    }
  }

  /** The worker is gone or its reads failed: every pending and later prepare fails. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

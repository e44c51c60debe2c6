import { type Hex, fromHex, toHex } from "../core/hex.ts";
import {
  EMPTY_ROOT,
  type NodePath,
  type NodeReader,
  type SmtUpdate,
  applyUpdates,
  decodeSmtNode,
  SMT_NODE_BYTES,
  extendChain,
  historyValueHash,
  writeSmtNode,
} from "../core/subject-index.ts";
import { UNDO_CHUNK_NODES } from "../store/index-undo.ts";
import {
  type IndexReads,
  type OpSink,
  type SubjectHead,
  decodeSubjectHead,
  encodeSubjectHead,
  pathKey,
  putIndexNode,
  putSubjectHead,
  putUndoChunk,
} from "../store/index-records.ts";
import type { BatchOp } from "../store/ledger-store.ts";
import { invariant } from "./errors.ts";
import { IndexNodeCache } from "./index-node-cache.ts";

/** One event of a batch as the completeness index takes it. */
export interface IndexedEvent {
  subject: Hex;
  seq: number;
  leafHash: Uint8Array;
}

/**
 * Collects a prepared update's ops as BatchOp objects (what LedgerStore.write takes) on the
 * calling thread; the sealing worker packs them into one buffer instead (index-wire.ts), so it
 * makes no object per op.
 */
export class BatchOpSink implements OpSink {
  readonly ops: BatchOp[] = [];
  put(key: string, value: Uint8Array): void {
    this.ops.push({
      type: "put",
      key,
      value: Buffer.isBuffer(value)
        ? value
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength),
    });
  }
  del(key: string): void {
    this.ops.push({ type: "del", key });
  }
}

export interface IndexCacheOptions {
  nodeCacheMax?: number;
  upperLevels?: number;
}

/**
 * A batch touches up to BATCH_MAX_EVENTS subjects and ≈ 10 nodes each: its update is prepared a
 * slice at a time, with a turn of the event loop between, so requests are not held up by it
 * when it runs on the request thread.
 */
const YIELD_EVERY = 2_048;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Latest index nodes kept in memory (index-node-cache.ts): every node down to UPPER_LEVELS (at
 * most 2^17 of them, the levels every batch of 10,000 subjects touches almost entirely), and at
 * most NODE_CACHE_MAX deeper ones (65 bytes each in a slab plus a Map entry: ≈ 80 bytes; the
 * service sets its own bound, INDEX_NODE_CACHE_MAX). A log of 1,000,000 events over 100,000
 * subjects has ≈ 200,000 nodes, all held; at 10,000,000 events and 1,000,000 subjects the deep
 * ones come and go.
 */
const UPPER_LEVELS = 16;
const NODE_CACHE_MAX = 1_000_000;

/** The parts of a prepared update, in the order the sealer writes them (subject-index-store.ts). */
export type UpdatePart = "undo" | "nodes" | "heads";

/** How many ops each part of a prepared update has. */
export interface PreparedSize {
  /** Changed nodes: one node write (and one packed undo record) each. */
  nodes: number;
  /** Subject heads: one per subject of the batch. */
  heads: number;
}

/** One changed node of a prepared update: its key part, and its value before and after. */
interface NodeChange {
  path: NodePath;
  key: string;
  before: Buffer | undefined;
  after: Uint8Array | undefined;
}

/**
 * Computes each batch's completeness-index update: the new subject heads, the changed nodes of
 * the sparse Merkle tree, and their undo records (their values before the batch, packed:
 * store/index-undo.ts). It holds the latest nodes in a bounded cache; misses are read through
 * `reads`. Pure computation over those reads: it runs on the request thread or in the sealing
 * worker (index-worker.ts) alike. The update is kept until the batch is committed and handed
 * out a slice of one part at a time (`emit`), so no thread ever holds all of a batch's ops at
 * once (≈ 200,000 for 10,000 subjects).
 */
export class IndexUpdater {
  private readonly cache: IndexNodeCache;
  private prepared:
    { batchNo: number; heads: Array<[Hex, Buffer]>; changes: NodeChange[] } | undefined;

  constructor(
    private readonly reads: IndexReads,
    private latestBatchNo: number,
    opts: IndexCacheOptions = {},
  ) {
    this.cache = new IndexNodeCache(
      opts.upperLevels ?? UPPER_LEVELS,
      opts.nodeCacheMax ?? NODE_CACHE_MAX,
    );
  }

  get cachedNodes(): { upper: number; deep: number } {
    return this.cache.size;
  }

  /** Computes the update of batch `batchNo`; its ops are then taken with `emit`. */
  async prepare(
    batchNo: number,
    events: IndexedEvent[],
  ): Promise<{ root: Hex; size: PreparedSize }> {
    invariant(batchNo === this.latestBatchNo + 1, "index batches are applied in order");
    this.prepared = undefined;
    const bySubject = new Map<Hex, Array<{ seq: number; leafHash: Uint8Array }>>();
    for (const e of events) {
      let list = bySubject.get(e.subject);
      if (!list) bySubject.set(e.subject, (list = []));
      list.push(e);
    }
    const subjects = [...bySubject.keys()];
    const stored = await this.reads.heads(subjects);
    const heads: Array<[Hex, Buffer]> = [];
    const updates: SmtUpdate[] = [];
    for (let i = 0; i < subjects.length; i++) {
      if (i > 0 && i % YIELD_EVERY === 0) await turn();
      const subject = subjects[i]!;
      const raw = stored[i];
      const head: SubjectHead = raw
        ? decodeSubjectHead(subject, raw)
        : { count: 0, chain: toHex(EMPTY_ROOT) };
      let chain = fromHex(head.chain);
      let count = head.count;
      for (const e of bySubject.get(subject)!) {
        chain = extendChain(chain, e.seq, e.leafHash);
        count++;
      }
      const next: SubjectHead = { count, chain: toHex(chain) };
      heads.push([subject, encodeSubjectHead(next)]);
      updates.push({ key: fromHex(subject), valueHash: historyValueHash(count, chain) });
    }

    const before = new Map<NodePath, Buffer | undefined>();
    const decode = (raw: Buffer | undefined) =>
      raw === undefined ? undefined : decodeSmtNode(raw);
    const readRaw = async (paths: NodePath[]) => {
      const raws = await this.latestRaw(paths);
      paths.forEach((p, i) => before.set(p, raws[i]));
      return raws;
    };
    const reader: NodeReader = Object.assign(
      async (path: NodePath) => decode((await readRaw([path]))[0]),
      { many: async (paths: NodePath[]) => (await readRaw(paths)).map(decode) },
    );
    const result = await applyUpdates(reader, updates);
    const unread = result.writes.filter((w) => !before.has(w.path)).map((w) => w.path);
    const unreadValues = await this.latestRaw(unread);
    unread.forEach((p, i) => before.set(p, unreadValues[i]));
    const changes: NodeChange[] = new Array(result.writes.length);
    // The new nodes' encodings side by side in one buffer: ≈ 100,000 of them for 10,000
    // subjects, which as one small typed array each were most of this thread's heap and garbage.
    const encoded = Buffer.allocUnsafeSlow(SMT_NODE_BYTES * result.writes.length);
    for (let i = 0; i < result.writes.length; i++) {
      if (i > 0 && i % YIELD_EVERY === 0) await turn();
      const w = result.writes[i]!;
      let after: Uint8Array | undefined;
      if (w.node !== null) {
        after = encoded.subarray(SMT_NODE_BYTES * i, SMT_NODE_BYTES * (i + 1));
        writeSmtNode(after, w.node);
      }
      changes[i] = { path: w.path, key: pathKey(w.path), before: before.get(w.path), after };
    }
    // In key order: the undo records are packed and looked up by path (index-undo.ts).
    changes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.prepared = { batchNo, heads, changes };
    return { root: toHex(result.root), size: { nodes: changes.length, heads: heads.length } };
  }

  /**
   * The ops of changes [from, to) (or heads [from, to)) of one part of the prepared update of
   * `batchNo` into `sink`: `undo`, the changed nodes' values before the batch, packed
   * UNDO_CHUNK_NODES to an op (`u:`, index-undo.ts; `from` is then a multiple of it); `nodes`,
   * each changed node's new value (`i:`, deleted when it has none); `heads`, the subjects' new
   * heads (`v:`).
   */
  emit(batchNo: number, part: UpdatePart, from: number, to: number, sink: OpSink): void {
    const prepared = this.prepared;
    invariant(prepared?.batchNo === batchNo, `batch ${batchNo} is the prepared one`);
    if (part === "heads") {
      const heads = prepared.heads;
      for (let i = from; i < Math.min(to, heads.length); i++)
        putSubjectHead(sink, heads[i]![0], heads[i]![1]);
      return;
    }
    const changes = prepared.changes;
    const end = Math.min(to, changes.length);
    if (part === "undo") {
      invariant(from % UNDO_CHUNK_NODES === 0, "undo records are emitted in whole packed values");
      for (let i = from; i < end; i += UNDO_CHUNK_NODES) {
        const records = changes.slice(i, Math.min(i + UNDO_CHUNK_NODES, end));
        putUndoChunk(sink, batchNo, records);
      }
      return;
    }
    for (let i = from; i < end; i++) putIndexNode(sink, changes[i]!.key, changes[i]!.after);
  }

  /** The batch's writes are durable: the cache takes the prepared nodes. */
  committed(batchNo: number): void {
    const prepared = this.prepared;
    this.prepared = undefined;
    this.latestBatchNo = batchNo;
    if (prepared?.batchNo === batchNo) {
      for (const c of prepared.changes) this.cache.set(c.path, c.after);
    } else {
      this.cache.clear();
    }
  }

  // Every batch reads the nodes on the paths of the subjects it touches; the upper levels are
  // the same for every batch. Latest (`i:`) nodes are cached (bounded; only the sealer writes
  // them, and the cache takes a batch's writes once they are durable); the nodes of one level
  // that miss are read in one multi-get.

  /** The latest stored nodes at `paths`: cached ones from memory, the rest in one multi-get. */
  private async latestRaw(paths: NodePath[]): Promise<Array<Buffer | undefined>> {
    const out = new Array<Buffer | undefined>(paths.length);
    const missing: number[] = [];
    paths.forEach((p, i) => {
      const cached = this.cache.get(p);
      if (cached === null) missing.push(i);
      else out[i] = cached;
    });
    if (missing.length > 0) {
      const raws = await this.reads.nodes(missing.map((i) => pathKey(paths[i]!)));
      missing.forEach((i, k) => {
        out[i] = raws[k];
        this.cache.set(paths[i]!, raws[k]);
      });
    }
    return out;
  }
}

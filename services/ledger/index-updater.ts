import { type Hex, bytesEqual, fromHex, toHex } from "../core/hex.ts";
import {
  EMPTY_ROOT,
  type NodePath,
  type NodeReader,
  type SmtUpdate,
  applyUpdates,
  decodeSmtNode,
  NodeSlab,
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
  /** Subjects applied to the tree at a time (default PREPARE_CHUNK_SUBJECTS; tests set less). */
  chunkSubjects?: number;
}

/**
 * A batch's subjects are applied to the tree this many at a time, in key order, each slice over
 * the nodes the earlier ones changed. The node objects a slice reads and builds (≈ 15 per
 * subject) are garbage once it is done, so the heap a batch takes beyond its changed nodes is
 * bounded by this, not by BATCH_MAX_EVENTS: applied at once, 10,000 subjects took ≈ 40 MB more
 * heap than the sealing worker's cache and the update it keeps. The result is the same tree and
 * the same changed nodes (a sparse Merkle tree does not depend on the order of its updates).
 */
export const PREPARE_CHUNK_SUBJECTS = 1_024;

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

/** No value: the node did not exist before the batch, or is deleted by it. */
const NONE = -1;

/**
 * The nodes a batch changes, with their values before the batch and after it: ≈ 10 per
 * subject, ≈ 100,000 for a batch of 10,000 subjects, kept until the batch is written. The
 * values sit in two slabs of 65-byte slots, so the heap holds a path, a key and two slot numbers
 * per node; as an object with two small typed arrays per node (one value read, one encoded),
 * the update of a large batch took more heap than the sealing worker's limit.
 */
class ChangedNodes {
  private readonly index = new Map<NodePath, number>();
  readonly paths: NodePath[] = [];
  private readonly beforeSlots: number[] = [];
  private readonly afterSlots: number[] = [];
  /** Values before the batch that are not node-sized (stored so; undo records keep them as read). */
  private readonly oddBefore = new Map<number, Buffer>();
  private readonly beforeSlab = new NodeSlab();
  private readonly afterSlab = new NodeSlab();
  /** Change numbers in key order, once `seal` has run; keys by change number. */
  order: Int32Array = new Int32Array(0);
  keys: string[] = [];

  get size(): number {
    return this.order.length;
  }

  has(path: NodePath): boolean {
    return this.index.has(path);
  }

  /**
   * The value the batch has given `path` so far: undefined when it deleted it, null when it
   * has not changed it. A view, valid until `path` changes again.
   */
  latest(path: NodePath): Uint8Array | undefined | null {
    const i = this.index.get(path);
    if (i === undefined) return null;
    const slot = this.afterSlots[i]!;
    return slot === NONE ? undefined : this.afterSlab.view(slot);
  }

  /** Records that the batch sets `path` to `after` (copied); `before` is its value before the batch. */
  set(path: NodePath, before: Buffer | undefined, after: Uint8Array | undefined): void {
    let i = this.index.get(path);
    if (i === undefined) {
      i = this.paths.length;
      this.index.set(path, i);
      this.paths.push(path);
      let slot = NONE;
      if (before !== undefined) {
        if (before.length === SMT_NODE_BYTES) {
          slot = this.beforeSlab.allocate();
          this.beforeSlab.view(slot).set(before);
        } else this.oddBefore.set(i, Buffer.from(before));
      }
      this.beforeSlots.push(slot);
      this.afterSlots.push(NONE);
    }
    let slot = this.afterSlots[i]!;
    if (after === undefined) {
      if (slot !== NONE) this.afterSlab.release(slot);
      this.afterSlots[i] = NONE;
    } else {
      if (slot === NONE) this.afterSlots[i] = slot = this.afterSlab.allocate();
      this.afterSlab.view(slot).set(after);
    }
  }

  /**
   * Done changing: drops the nodes a later slice set back to their value before the batch (no
   * change at all) and puts the rest in key order (the undo records are packed and looked up by
   * path: index-undo.ts).
   */
  seal(): void {
    const kept: number[] = [];
    for (let i = 0; i < this.paths.length; i++) {
      const before = this.before(i);
      const after = this.after(i);
      if (
        before === undefined
          ? after === undefined
          : after !== undefined && bytesEqual(before, after)
      )
        continue;
      kept.push(i);
    }
    this.index.clear();
    this.keys = this.paths.map((p) => pathKey(p));
    const keys = this.keys;
    kept.sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
    this.order = Int32Array.from(kept);
  }

  /** The value of change `i` before the batch (a view). */
  before(i: number): Uint8Array | undefined {
    const slot = this.beforeSlots[i]!;
    return slot === NONE ? this.oddBefore.get(i) : this.beforeSlab.view(slot);
  }

  /** The value change `i` gives its node (a view), undefined when it deletes it. */
  after(i: number): Uint8Array | undefined {
    const slot = this.afterSlots[i]!;
    return slot === NONE ? undefined : this.afterSlab.view(slot);
  }
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
    { batchNo: number; heads: Array<[Hex, Buffer]>; changes: ChangedNodes } | undefined;

  private readonly chunkSubjects: number;

  constructor(
    private readonly reads: IndexReads,
    private latestBatchNo: number,
    opts: IndexCacheOptions = {},
  ) {
    this.chunkSubjects = Math.max(1, opts.chunkSubjects ?? PREPARE_CHUNK_SUBJECTS);
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
    // In key order (subject tags are fixed-length lowercase hex): each slice of updates is then
    // one stretch of the tree, and the slices share only the few nodes above them.
    const subjects = [...bySubject.keys()].sort();
    const heads: Array<[Hex, Buffer]> = [];
    // The tree takes the updates a slice of subjects at a time (see PREPARE_CHUNK_SUBJECTS),
    // each slice over the nodes the earlier ones changed.
    const changes = new ChangedNodes();
    const decode = (raw: Uint8Array | undefined) =>
      raw === undefined ? undefined : decodeSmtNode(raw);
    const chunk = this.chunkSubjects;
    let root: Uint8Array = EMPTY_ROOT;
    for (let from = 0; from === 0 || from < subjects.length; from += chunk) {
      const updates = await this.headUpdates(subjects.slice(from, from + chunk), bySubject, heads);
      /** Values before the batch of the nodes this slice read (not changed by earlier slices). */
      const before = new Map<NodePath, Buffer | undefined>();
      const latest = async (paths: NodePath[]): Promise<Array<Uint8Array | undefined>> => {
        const out = new Array<Uint8Array | undefined>(paths.length);
        const unchanged: number[] = [];
        paths.forEach((p, i) => {
          const value = changes.latest(p);
          if (value === null) unchanged.push(i);
          else out[i] = value;
        });
        const raws = await this.latestRaw(unchanged.map((i) => paths[i]!));
        unchanged.forEach((i, k) => {
          before.set(paths[i]!, raws[k]);
          out[i] = raws[k];
        });
        return out;
      };
      const reader: NodeReader = Object.assign(
        async (path: NodePath) => decode((await latest([path]))[0]),
        { many: async (paths: NodePath[]) => (await latest(paths)).map(decode) },
      );
      const result = await applyUpdates(reader, updates);
      root = result.root;
      const unread = result.writes
        .filter((w) => !changes.has(w.path) && !before.has(w.path))
        .map((w) => w.path);
      const unreadValues = await this.latestRaw(unread);
      unread.forEach((p, i) => before.set(p, unreadValues[i]));
      // Every new node is encoded before any is recorded: the nodes of `result` may hold views
      // into values of this batch's earlier slices that recording overwrites.
      const encoded = Buffer.allocUnsafeSlow(SMT_NODE_BYTES * result.writes.length);
      for (let i = 0; i < result.writes.length; i++) {
        if (i > 0 && i % YIELD_EVERY === 0) await turn();
        const node = result.writes[i]!.node;
        if (node !== null)
          writeSmtNode(encoded.subarray(SMT_NODE_BYTES * i, SMT_NODE_BYTES * (i + 1)), node);
      }
      result.writes.forEach((w, i) =>
        changes.set(
          w.path,
          before.get(w.path),
          w.node === null
            ? undefined
            : encoded.subarray(SMT_NODE_BYTES * i, SMT_NODE_BYTES * (i + 1)),
        ),
      );
    }
    changes.seal();
    // The heads in the order the batch first names each subject, as they were always written.
    const headOf = new Map(heads.map(([subject, head]) => [subject, head]));
    const ordered = [...bySubject.keys()].map((subject): [Hex, Buffer] => [
      subject,
      headOf.get(subject)!,
    ]);
    this.prepared = { batchNo, heads: ordered, changes };
    return { root: toHex(root), size: { nodes: changes.size, heads: heads.length } };
  }

  /**
   * The new heads of `subjects` (appended to `heads`) and their updates of the tree: each
   * subject's history chain extended with its events of the batch.
   */
  private async headUpdates(
    subjects: Hex[],
    bySubject: Map<Hex, Array<{ seq: number; leafHash: Uint8Array }>>,
    heads: Array<[Hex, Buffer]>,
  ): Promise<SmtUpdate[]> {
    const stored = await this.reads.heads(subjects);
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
    return updates;
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
    const { order, keys } = changes;
    const end = Math.min(to, order.length);
    if (part === "undo") {
      invariant(from % UNDO_CHUNK_NODES === 0, "undo records are emitted in whole packed values");
      for (let i = from; i < end; i += UNDO_CHUNK_NODES) {
        const records = Array.from(order.subarray(i, Math.min(i + UNDO_CHUNK_NODES, end)), (c) => ({
          key: keys[c]!,
          before: changes.before(c),
        }));
        putUndoChunk(sink, batchNo, records);
      }
      return;
    }
    for (let i = from; i < end; i++) putIndexNode(sink, keys[order[i]!]!, changes.after(order[i]!));
  }

  /** The batch's writes are durable: the cache takes the prepared nodes. */
  committed(batchNo: number): void {
    const prepared = this.prepared;
    this.prepared = undefined;
    this.latestBatchNo = batchNo;
    if (prepared?.batchNo === batchNo) {
      const changes = prepared.changes;
      for (const c of changes.order) this.cache.set(changes.paths[c]!, changes.after(c));
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

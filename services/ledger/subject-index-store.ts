import { type Hex, fromHex, toHex } from "../core/hex.ts";
import {
  EMPTY_ROOT,
  type NodePath,
  type NodeReader,
  type SmtNode,
  type SmtUpdate,
  applyUpdates,
  decodeSmtNode,
  encodeNodePath,
  encodeSmtNode,
  extendChain,
  historyValueHash,
  proveKey,
  smtNodeHash,
} from "../core/subject-index.ts";
import type { SubjectIndexProof } from "../core/subject-index-proof.ts";
import { K } from "../store/keys.ts";
import type { BatchOp, LedgerStore } from "../store/ledger-store.ts";
import { invariant } from "./errors.ts";
import { IndexNodeCache } from "./index-node-cache.ts";

/** A subject's history digest as of the latest sealed batch. */
interface SubjectHead {
  count: number;
  chain: Hex;
}

const EMPTY = Buffer.alloc(0);

/**
 * A batch touches up to BATCH_MAX_EVENTS subjects and ≈ 10 nodes each: its update is prepared a
 * slice at a time, with a turn of the event loop between, so requests are not held up by it.
 */
const YIELD_EVERY = 2_048;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Latest index nodes kept in memory (index-node-cache.ts): every node down to UPPER_LEVELS (at
 * most 2^17 of them, the levels every batch of 10,000 subjects touches almost entirely), and at
 * most NODE_CACHE_MAX deeper ones (65 bytes each in a slab plus a Map entry: ≈ 100 MB when
 * full). A log of 1,000,000 events over 100,000 subjects has ≈ 200,000 nodes, all held; at
 * 10,000,000 events and 1,000,000 subjects the deep ones come and go.
 */
const UPPER_LEVELS = 16;
const NODE_CACHE_MAX = 1_000_000;

function pathKey(path: NodePath): string {
  return Buffer.from(encodeNodePath(path)).toString("hex");
}

/**
 * The completeness index on LevelDB. The latest version of every node lives under `i:`; each
 * sealed batch also writes an undo record (`j:<batchNo>:<path>`, the node as it was before that
 * batch) so that proofs can be served at the latest *anchored* batch while newer batches are
 * sealed but not yet anchored. Undo records at or below the anchored batch are pruned.
 */
export class SubjectIndex {
  private readonly cache: IndexNodeCache;

  constructor(
    private readonly store: LedgerStore,
    private latestBatchNo: number,
    opts: { nodeCacheMax?: number; upperLevels?: number } = {},
  ) {
    this.cache = new IndexNodeCache(
      opts.upperLevels ?? UPPER_LEVELS,
      opts.nodeCacheMax ?? NODE_CACHE_MAX,
    );
  }

  /** Latest nodes held in memory now: upper ones (bounded by their levels) and deep ones. */
  get cachedNodes(): { upper: number; deep: number } {
    return this.cache.size;
  }

  /** Computes the index update for one batch; the caller writes `ops` with the batch record. */
  async prepareBatch(
    batchNo: number,
    events: Array<{ subject: Hex; seq: number; leafHash: Uint8Array }>,
  ): Promise<{ root: Hex; ops: BatchOp[] }> {
    invariant(batchNo === this.latestBatchNo + 1, "index batches are applied in order");
    const bySubject = new Map<Hex, Array<{ seq: number; leafHash: Uint8Array }>>();
    for (const e of events) {
      let list = bySubject.get(e.subject);
      if (!list) bySubject.set(e.subject, (list = []));
      list.push(e);
    }
    const subjects = [...bySubject.keys()];
    const heads = await this.store.getManyRaw(subjects.map(K.subjectHead));
    const ops: BatchOp[] = [];
    const updates: SmtUpdate[] = [];
    for (let i = 0; i < subjects.length; i++) {
      if (i > 0 && i % YIELD_EVERY === 0) await turn();
      const subject = subjects[i]!;
      const raw = heads[i];
      const head: SubjectHead = raw
        ? (JSON.parse(raw.toString("utf8")) as SubjectHead)
        : { count: 0, chain: toHex(EMPTY_ROOT) };
      let chain = fromHex(head.chain);
      let count = head.count;
      for (const e of bySubject.get(subject)!) {
        chain = extendChain(chain, e.seq, e.leafHash);
        count++;
      }
      ops.push(
        this.store.putJsonOp(K.subjectHead(subject), {
          count,
          chain: toHex(chain),
        } satisfies SubjectHead),
      );
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
    const written: Array<[NodePath, Buffer | undefined]> = [];
    for (let i = 0; i < result.writes.length; i++) {
      if (i > 0 && i % YIELD_EVERY === 0) await turn();
      const w = result.writes[i]!;
      const key = pathKey(w.path);
      ops.push({ type: "put", key: K.indexUndo(batchNo, key), value: before.get(w.path) ?? EMPTY });
      if (w.node === null) {
        ops.push({ type: "del", key: K.indexNode(key) });
        written.push([w.path, undefined]);
      } else {
        const value = Buffer.from(encodeSmtNode(w.node));
        ops.push({ type: "put", key: K.indexNode(key), value });
        written.push([w.path, value]);
      }
    }
    this.prepared = { batchNo, written };
    return { root: toHex(result.root), ops };
  }

  /** The batch's writes are durable. */
  committed(batchNo: number): void {
    this.latestBatchNo = batchNo;
    const prepared = this.prepared;
    this.prepared = undefined;
    if (prepared?.batchNo === batchNo) {
      for (const [path, raw] of prepared.written) this.cache.set(path, raw);
    } else {
      this.cache.clear();
    }
  }

  // ---- the latest nodes, cached --------------------------------------------------------------
  // Every batch reads the nodes on the paths of the subjects it touches; the upper levels are
  // the same for every batch. Latest (`i:`) nodes are cached (bounded; only the sealer writes
  // them, and the cache takes a batch's writes once they are durable); the nodes of one level
  // that miss are read in one multi-get.

  private prepared: { batchNo: number; written: Array<[NodePath, Buffer | undefined]> } | undefined;

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
      const raws = await this.store.getManyRaw(missing.map((i) => K.indexNode(pathKey(paths[i]!))));
      missing.forEach((i, k) => {
        out[i] = raws[k];
        this.cache.set(paths[i]!, raws[k]);
      });
    }
    return out;
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

import { type Hex, fromHex, toHex } from "../core/hex.ts";
import {
  EMPTY_ROOT,
  type NodePath,
  type NodeReader,
  type SmtNode,
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

/** A subject's history digest as of the latest sealed batch. */
interface SubjectHead {
  count: number;
  chain: Hex;
}

const EMPTY = Buffer.alloc(0);

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
  constructor(
    private readonly store: LedgerStore,
    private latestBatchNo: number,
  ) {}

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
    const updates = subjects.map((subject, i) => {
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
      return { key: fromHex(subject), valueHash: historyValueHash(count, chain) };
    });

    const before = new Map<NodePath, Buffer | undefined>();
    const reader: NodeReader = async (path) => {
      const raw = await this.store.getRaw(K.indexNode(pathKey(path)));
      before.set(path, raw);
      return raw === undefined ? undefined : decodeSmtNode(raw);
    };
    const result = await applyUpdates(reader, updates);
    const unread = result.writes.filter((w) => !before.has(w.path)).map((w) => w.path);
    const unreadValues = await this.store.getManyRaw(unread.map((p) => K.indexNode(pathKey(p))));
    unread.forEach((p, i) => before.set(p, unreadValues[i]));
    for (const w of result.writes) {
      const key = pathKey(w.path);
      ops.push({ type: "put", key: K.indexUndo(batchNo, key), value: before.get(w.path) ?? EMPTY });
      if (w.node === null) ops.push({ type: "del", key: K.indexNode(key) });
      else
        ops.push({ type: "put", key: K.indexNode(key), value: Buffer.from(encodeSmtNode(w.node)) });
    }
    return { root: toHex(result.root), ops };
  }

  /** The batch's writes are durable. */
  committed(batchNo: number): void {
    this.latestBatchNo = batchNo;
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

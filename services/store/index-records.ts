/**
 * The completeness index's records as the store keeps them (keys.ts): the latest node at each
 * path (`i:<path>`), the packed undo records of each sealed batch (`u:<batchNo>:<path>`,
 * index-undo.ts) and each subject's history head (`v:<subjectTag>`, JSON `{count, chain}`).
 *
 * No LevelDB here: the sealing worker computes a batch's update (ledger/index-updater.ts) and
 * emits its records through these functions into an {@link OpSink}; its reads come back through
 * {@link IndexReads}, which the store answers (LedgerStore.indexReads). Paths are named by
 * {@link pathKey}, the hex of the encoded path, which is also their key order.
 */
import { type NodePath, encodeNodePath } from "../core/subject-index.ts";
import type { Hex } from "../core/hex.ts";
import { type UndoRecord, encodeUndoChunk } from "./index-undo.ts";
import { K } from "./keys.ts";
import { SubjectHeadSchema, decodeJson } from "./record-codec.ts";

/** A subject's history digest as of the latest sealed batch (the `v:` record). */
export interface SubjectHead {
  count: number;
  chain: Hex;
}

/** Where a batch's index records go: a BatchOp list here, a packed buffer in the worker. */
export interface OpSink {
  put(key: string, value: Uint8Array): void;
  del(key: string): void;
}

/** Stored values of the index, as stored (undefined: none). Keys are built by the store. */
export interface IndexReads {
  /** The stored `v:` records of `subjects` (decode with {@link decodeSubjectHead}). */
  heads(subjects: readonly Hex[]): Promise<Array<Buffer | undefined>>;
  /** The latest stored nodes at the paths named by `pathKeys`. */
  nodes(pathKeys: readonly string[]): Promise<Array<Buffer | undefined>>;
}

/** The index's two kinds of read, as they cross to the sealing worker and back. */
export type IndexReadKind = keyof IndexReads;

/** A node's path as its keys name it: the hex of the encoded path (key order = path order). */
export function pathKey(path: NodePath): string {
  return Buffer.from(encodeNodePath(path)).toString("hex");
}

export function encodeSubjectHead(head: SubjectHead): Buffer {
  return Buffer.from(JSON.stringify(head), "utf8");
}

/** A stored head of `subject` (StoreCorruptError naming its key if it is not one). */
export function decodeSubjectHead(subject: Hex, raw: Buffer): SubjectHead {
  return decodeJson(K.subjectHead(subject), raw, SubjectHeadSchema) as SubjectHead;
}

/** Writes `subject`'s new head (encoded by {@link encodeSubjectHead}). */
export function putSubjectHead(sink: OpSink, subject: Hex, encoded: Uint8Array): void {
  sink.put(K.subjectHead(subject), encoded);
}

/** Writes the latest node at `key` (a {@link pathKey}), or deletes it (`node` undefined). */
export function putIndexNode(sink: OpSink, key: string, node: Uint8Array | undefined): void {
  if (node === undefined) sink.del(K.indexNode(key));
  else sink.put(K.indexNode(key), node);
}

/** Writes one packed value of batch `batchNo`'s undo records (sorted by key; index-undo.ts). */
export function putUndoChunk(sink: OpSink, batchNo: number, records: readonly UndoRecord[]): void {
  sink.put(K.indexUndoChunk(batchNo, records[0]!.key), encodeUndoChunk(records));
}

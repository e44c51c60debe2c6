/**
 * Packed undo records of the completeness index. A sealed batch changes ≈ 10 index nodes per
 * subject; proofs served at an older batch (the latest anchored one, while newer ones are sealed)
 * and the rollback of a seal cut short need each changed node's value before the batch. Stored
 * one LevelDB value per node, those records were half of a seal's writes and, never pruned, most
 * of a large log's size (≈ 950 bytes per event). Packed, UNDO_CHUNK_NODES records share a value:
 *
 *   key    u:<batchNo>:<path of its first record>   (paths as in `i:` keys: hex of the encoded path)
 *   value  per record, in path order: u8 path length, the path (encoded, bytes),
 *          u8 value length (0: no node there before the batch), the node as stored in `i:`
 *
 * The record of a path is in the value whose key is the greatest at or below `u:<batchNo>:<path>`.
 */

/** Records per packed value (≈ 18 KiB): a lookup reads one such value. */
export const UNDO_CHUNK_NODES = 256;

/** One changed node: its path (hex, as in `i:` keys) and its stored value before the batch. */
export interface UndoRecord {
  key: string;
  before: Uint8Array | undefined;
}

/** Packs records (sorted by key, fewer than 256 bytes each) into one value. */
export function encodeUndoChunk(records: readonly UndoRecord[]): Buffer {
  let size = 0;
  for (const r of records) size += 2 + r.key.length / 2 + (r.before?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const r of records) {
    const pathBytes = r.key.length / 2;
    out[at++] = pathBytes;
    at += out.write(r.key, at, pathBytes, "hex");
    const before = r.before ?? EMPTY;
    out[at++] = before.length;
    out.set(before, at);
    at += before.length;
  }
  return out;
}

/** The records of a packed value, in order. `before` values are views into `chunk`. */
export function* undoChunkRecords(chunk: Buffer): Generator<UndoRecord> {
  let at = 0;
  while (at < chunk.length) {
    const pathBytes = chunk[at++]!;
    const key = chunk.toString("hex", at, at + pathBytes);
    at += pathBytes;
    const length = chunk[at++]!;
    yield { key, before: length === 0 ? undefined : chunk.subarray(at, at + length) };
    at += length;
  }
}

/**
 * The record of `key` in a packed value: found, with the node before the batch (undefined: there
 * was none); or not found (the batch did not change that node).
 */
export function findUndo(
  chunk: Buffer,
  key: string,
): { found: true; before: Buffer | undefined } | { found: false } {
  const want = Buffer.from(key, "hex");
  let at = 0;
  while (at < chunk.length) {
    const pathBytes = chunk[at]!;
    const order = Buffer.compare(chunk.subarray(at + 1, at + 1 + pathBytes), want);
    at += 1 + pathBytes;
    const length = chunk[at++]!;
    if (order === 0)
      return { found: true, before: length === 0 ? undefined : chunk.subarray(at, at + length) };
    if (order > 0) break;
    at += length;
  }
  return { found: false };
}

const EMPTY = new Uint8Array(0);

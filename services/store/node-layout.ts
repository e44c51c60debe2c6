/**
 * How a batch's Merkle nodes are stored, so that every inclusion proof is served from a few reads
 * and no tree is rebuilt (STYLE.md §2: the store only reads what a proof cites).
 *
 * Tiles (batches sealed now): the tree below the root is cut into subtrees of TILE_HEIGHT levels.
 * Tile (t, j) holds, for k = 0 … TILE_HEIGHT − 1, the nodes of level t·TILE_HEIGHT + k that lie
 * under node j of level (t + 1)·TILE_HEIGHT: 2^(TILE_HEIGHT − k) of them, fewer at the right
 * edge, level after level in one value. An audit path crosses one tile per TILE_HEIGHT levels,
 * so a path in a batch of up to 16,384 events is two reads (it was one read per level, 14, with
 * the level chunks below), and the events of one batch share their upper tile. A patient with
 * 5,000 events in a 10,000,000-event log has ≈ 5 events per batch: ≈ 6,000 reads for all
 * audit paths instead of ≈ 38,000.
 *
 * Level chunks (batches sealed before tiles; their records have no `tileHeight`): each level in
 * runs of LEVEL_CHUNK_NODES nodes. Still read, and audited, as stored.
 */
import type { MerkleNodeId } from "../core/merkle.ts";
import { K } from "./keys.ts";
import { type BatchRecord, LEVEL_CHUNK_NODES } from "./batch-record.ts";

/** Levels per tile: a full tile is 254 nodes (7.9 KiB); two tiles cover a 16,384-event batch. */
export const TILE_HEIGHT = 7;

export type NodeLayout = { kind: "tiles"; height: number } | { kind: "levels"; chunkNodes: number };

/** The layout a batch's nodes were stored in (its record says; absent means level chunks). */
export function nodeLayoutOf(record: Pick<BatchRecord, "tileHeight">): NodeLayout {
  return record.tileHeight === undefined
    ? { kind: "levels", chunkNodes: LEVEL_CHUNK_NODES }
    : { kind: "tiles", height: record.tileHeight };
}

/**
 * What to read for a list of nodes: the distinct stored values (`keys`), and for each node the
 * value it is in (`value[i]`, an index into `keys`) and its byte offset there (`offset[i]`).
 * A patient's history asks for ≈ 70,000 nodes that lie in a few thousand values: keys are
 * built once per value, not per node.
 */
export interface NodeReads {
  keys: string[];
  value: Uint32Array;
  offset: Uint32Array;
}

/** Nodes at `level` of a tree of `size` leaves (buildTree's levels: odd last nodes carried up). */
function width(size: number, level: number): number {
  return Math.ceil(size / 2 ** level);
}

/** Where each node id of batch `batchNo` (of `size` leaves) stored in `layout` is. */
export function nodeReads(
  batchNo: number,
  size: number,
  ids: readonly MerkleNodeId[],
  layout: NodeLayout,
): NodeReads {
  const keys: string[] = [];
  const value = new Uint32Array(ids.length);
  const offset = new Uint32Array(ids.length);
  // A stored value is named by one number: (level or tile level) · 2^32 + (chunk or tile).
  const seen = new Map<number, number>();
  const valueIndex = (group: number, within: number, key: () => string): number => {
    const name = group * 2 ** 32 + within;
    let i = seen.get(name);
    if (i === undefined) {
      seen.set(name, (i = keys.length));
      keys.push(key());
    }
    return i;
  };
  if (layout.kind === "levels") {
    const n = layout.chunkNodes;
    ids.forEach((id, i) => {
      const chunk = Math.floor(id.index / n);
      value[i] = valueIndex(id.level, chunk, () => K.levelChunk(batchNo, id.level, chunk));
      offset[i] = (id.index % n) * 32;
    });
    return { keys, value, offset };
  }
  const h = layout.height;
  ids.forEach((id, i) => {
    const t = Math.floor(id.level / h);
    const k = id.level - t * h;
    const j = Math.floor(id.index / 2 ** (h - k));
    let at = 0;
    for (let m = 0; m < k; m++) at += tileRowLength(size, t, j, m, h);
    value[i] = valueIndex(t, j, () => K.tile(batchNo, t, j));
    offset[i] = (at + id.index - j * 2 ** (h - k)) * 32;
  });
  return { keys, value, offset };
}

/** How many nodes row `m` of tile (t, j) holds. */
function tileRowLength(size: number, t: number, j: number, m: number, h: number): number {
  const span = 2 ** (h - m);
  return Math.min((j + 1) * span, width(size, t * h + m)) - j * span;
}

/**
 * Every stored value of a batch whose tree has `levels` (buildTree's, root level last), in
 * `layout`: what the sealer writes and what the audit expects to find.
 */
export function nodeValues(
  batchNo: number,
  levels: ReadonlyArray<ReadonlyArray<Uint8Array>>,
  layout: NodeLayout,
): Array<{ key: string; value: Buffer }> {
  const out: Array<{ key: string; value: Buffer }> = [];
  if (layout.kind === "levels") {
    const n = layout.chunkNodes;
    levels.forEach((level, levelNo) => {
      for (let chunk = 0; chunk * n < level.length; chunk++)
        out.push({
          key: K.levelChunk(batchNo, levelNo, chunk),
          value: Buffer.concat(level.slice(chunk * n, (chunk + 1) * n)),
        });
    });
    return out;
  }
  const h = layout.height;
  // Audit paths never cite the root: the levels below it are what tiles cover.
  const depth = levels.length - 1;
  for (let t = 0; t * h < depth; t++) {
    const rows = Math.min(h, depth - t * h);
    const tiles = Math.ceil(levels[t * h]!.length / 2 ** h);
    for (let j = 0; j < tiles; j++) {
      const parts: Uint8Array[] = [];
      for (let m = 0; m < rows; m++) {
        const span = 2 ** (h - m);
        const level = levels[t * h + m]!;
        for (let i = j * span; i < Math.min((j + 1) * span, level.length); i++)
          parts.push(level[i]!);
      }
      out.push({ key: K.tile(batchNo, t, j), value: Buffer.concat(parts) });
    }
  }
  return out;
}

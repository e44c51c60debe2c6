import { type NodePath, NodeSlab, SMT_NODE_BYTES } from "../core/subject-index.ts";

/**
 * Paths of up to this many bits are cached, named by one small integer (2^length + bits, below
 * 2^30: a V8 small integer). Deeper nodes are rare (a million random subjects put a few hundred
 * pairs below 30 shared bits) and are read from LevelDB.
 */
const MAX_CACHED_DEPTH = 29;

/** Cached as "no node here". */
const EMPTY = -1;

function pathId(path: NodePath): number {
  return path.length === 0 ? 1 : 2 ** path.length + parseInt(path, 2);
}

/**
 * The completeness index's latest nodes in memory: integer-keyed Maps of slots in a
 * {@link NodeSlab}, so a full cache of ≈ 1,100,000 nodes is ≈ 70 MB in a few dozen buffers and
 * two Maps of small integers. Held as a Buffer per node under a string path, as before, the same
 * cache was ≈ 2,200,000 heap objects: every full garbage collection walked them all, which at
 * 10,000,000 events added ≈ 300 ms to every other patient-history answer of the process and
 * ≈ 20 % to the sealer's time.
 *
 * Nodes down to `upperLevels` stay for good (every batch touches those levels); at most
 * `deepMax` deeper ones are held and, when there are more, the oldest quarter is dropped
 * (a Map keeps insertion order; an update keeps its node's place).
 */
export class IndexNodeCache {
  private readonly upper = new Map<number, number>();
  private readonly deep = new Map<number, number>();
  private readonly slab = new NodeSlab();

  constructor(
    private readonly upperLevels: number,
    private readonly deepMax: number,
  ) {}

  get size(): { upper: number; deep: number } {
    return { upper: this.upper.size, deep: this.deep.size };
  }

  /**
   * The cached value at `path`: a copy of the node's bytes, `undefined` when the cache knows
   * there is no node there, or `null` when it does not know (not cached).
   */
  get(path: NodePath): Buffer | undefined | null {
    if (path.length > MAX_CACHED_DEPTH) return null;
    const slot = this.mapFor(path).get(pathId(path));
    if (slot === undefined) return null;
    if (slot === EMPTY) return undefined;
    // A copy: the slot may be reused while the caller still holds the value.
    return Buffer.from(this.slab.view(slot));
  }

  /** Records the latest value at `path` (`undefined`: no node there). */
  set(path: NodePath, raw: Uint8Array | undefined): void {
    if (path.length > MAX_CACHED_DEPTH) return;
    const map = this.mapFor(path);
    const id = pathId(path);
    const slot = map.get(id);
    const held = slot !== undefined && slot !== EMPTY;
    if (raw !== undefined && raw.length === SMT_NODE_BYTES) {
      const target = held ? slot : this.slab.allocate();
      this.slab.view(target).set(raw);
      if (target !== slot) map.set(id, target);
    } else {
      if (held) this.slab.release(slot);
      // A value of another length is not a node (decoding refuses it): not cached.
      if (raw === undefined) map.set(id, EMPTY);
      else map.delete(id);
    }
    if (map === this.deep && map.size > this.deepMax) this.evict();
  }

  clear(): void {
    this.upper.clear();
    this.deep.clear();
    this.slab.clear();
  }

  private mapFor(path: NodePath): Map<number, number> {
    return path.length <= this.upperLevels ? this.upper : this.deep;
  }

  /** Drops the oldest quarter of the deep nodes. */
  private evict(): void {
    let drop = Math.max(1, Math.ceil(this.deepMax * 0.25));
    for (const [id, slot] of this.deep) {
      if (slot !== EMPTY) this.slab.release(slot);
      this.deep.delete(id);
      if (--drop === 0) break;
    }
  }
}

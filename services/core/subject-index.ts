/**
 * Per-patient completeness index (DESIGN.md "Per-patient completeness"): a compressed sparse
 * Merkle map from subjectTag to a digest of that subject's whole event history. Each batch header
 * carries its root as `indexRoot`.
 *
 * Byte formats — outside verifiers reimplement exactly these (H = SHA-256, || = concatenation):
 *
 *   key          subjectTag, 32 bytes. Bit i of a key is bit (7 - i % 8) of byte floor(i / 8),
 *                most significant bit first; bit d picks the child at depth d (0 = left, 1 = right).
 *   history      chain_0 = 32 zero bytes
 *                chain_n = H(chain_{n-1} || uint64be(seq_n) || leafHash_n)
 *                over the subject's events in strictly increasing seq; leafHash is the RFC 9162
 *                leaf hash of the event's entry (32 bytes).
 *   valueHash    H(0x04 || uint64be(count) || chain_count)
 *   leaf node    H(0x02 || key || valueHash)
 *   internal     H(0x03 || left || right)
 *   empty        32 zero bytes, for an empty subtree and for the root of the empty map.
 *
 * Shape: the node at bit-path p (depth d = length of p) is
 *   empty                  when no key starts with p,
 *   leaf(k, valueHash)     when exactly one key k starts with p,
 *   internal(p||0, p||1)   otherwise.
 * A leaf therefore sits at the shallowest depth where its prefix is unique (Diem/Aptos Jellyfish
 * "shortcut" leaves; depth ≈ log2(subjects)), and an internal node never has a leaf child next to
 * an empty one, so the root depends on the map's contents only, not on the order of updates.
 * Internal nodes with one empty child do occur, where two keys share a long prefix.
 * The prefixes 0x02/0x03/0x04 keep these hashes apart from the events tree's RFC 9162 0x00 leaf /
 * 0x01 node hashes and from each other, so no node can be passed off as a node of another kind.
 *
 * Storage (pure core, STYLE.md §1/§2): nodes are values keyed by their bit-path. A stored node
 * is its 65-byte hash preimage (`encodeSmtNode`): 0x02 || key || valueHash for a leaf,
 * 0x03 || left || right for an internal node; empty subtrees are not stored. The proof format and
 * its verifier live in subject-index-proof.ts.
 */
import { bytesEqual, concatBytes } from "./hex.ts";
import { sha256, sha256Of } from "./hash.ts";
import type { SubjectIndexProof } from "./subject-index-proof.ts";

export const SMT_KEY_BYTES = 32;
export const SMT_HASH_BYTES = 32;
/** Keys are 256 bits; two distinct keys differ at bit 255 at the latest, so leaves sit at depth ≤ 256. */
export const SMT_MAX_DEPTH = 256;

const LEAF_PREFIX = 0x02;
const INTERNAL_PREFIX = 0x03;
const VALUE_PREFIX = 0x04;
const NODE_BYTES = 1 + 2 * SMT_HASH_BYTES;

/** Root of the empty map, and the hash of every empty subtree. */
export const EMPTY_ROOT: Uint8Array = new Uint8Array(SMT_HASH_BYTES);

/** A node's position: its bit-path from the root as a string of '0'/'1' (the root is ""). */
export type NodePath = string;

export type SmtNode =
  | { kind: "leaf"; key: Uint8Array; valueHash: Uint8Array }
  | { kind: "internal"; left: Uint8Array; right: Uint8Array };

/**
 * Reads the node stored at `path`; undefined for an empty subtree. applyUpdates asks for a whole
 * level of paths at once (concurrent calls), so a LevelDB reader can serve them in parallel.
 */
export type NodeReader = ((path: NodePath) => Promise<SmtNode | undefined>) & {
  /** Optional: a whole level in one call (e.g. one LevelDB multi-get); same answers as one by one. */
  many?: (paths: NodePath[]) => Promise<Array<SmtNode | undefined>>;
};

/** One change to persist: put `node` at `path`, or delete the node at `path` when null. */
export interface NodeWrite {
  path: NodePath;
  node: SmtNode | null;
}

/** Sets a key's value hash; null removes the key from the map. */
export interface SmtUpdate {
  key: Uint8Array;
  valueHash: Uint8Array | null;
}

export interface ApplyUpdatesResult {
  root: Uint8Array;
  /** Every path whose node changes, each at most once; persist them as one atomic batch. */
  writes: NodeWrite[];
  /** SHA-256 calls and node reads this update cost (for metrics and the benchmark). */
  stats: { hashes: number; reads: number };
}

// ---------------------------------------------------------------------------------------------
// Hashing

// One preimage buffer reused by every node hash: a fresh 65-byte Uint8Array per hash is an
// off-heap allocation in V8 and dominated the cost of large batches. sha256 is synchronous and
// copies its input, so sharing is safe.
const preimage = new Uint8Array(NODE_BYTES);

function hashNode(tag: number, a: Uint8Array, b: Uint8Array): Uint8Array {
  assertLength(a, SMT_HASH_BYTES, "node field");
  assertLength(b, SMT_HASH_BYTES, "node field");
  preimage[0] = tag;
  preimage.set(a, 1);
  preimage.set(b, 1 + SMT_HASH_BYTES);
  return sha256(preimage);
}

export function leafNodeHash(key: Uint8Array, valueHash: Uint8Array): Uint8Array {
  return hashNode(LEAF_PREFIX, key, valueHash);
}

export function internalNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return hashNode(INTERNAL_PREFIX, left, right);
}

export function smtNodeHash(node: SmtNode): Uint8Array {
  return node.kind === "leaf"
    ? hashNode(LEAF_PREFIX, node.key, node.valueHash)
    : hashNode(INTERNAL_PREFIX, node.left, node.right);
}

function nodesEqual(a: SmtNode, b: SmtNode): boolean {
  if (a.kind === "leaf") {
    return b.kind === "leaf" && bytesEqual(a.key, b.key) && bytesEqual(a.valueHash, b.valueHash);
  }
  return b.kind === "internal" && bytesEqual(a.left, b.left) && bytesEqual(a.right, b.right);
}

function uint64be(value: number, what: string): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${value}`);
  }
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(value / 2 ** 32));
  view.setUint32(4, value >>> 0);
  return out;
}

function assertLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new TypeError(`${what} must be ${length} bytes`);
  }
}

/**
 * chain_{n-1} || uint64be(seq) || leafHash of the link being hashed: one buffer filled in place
 * (one link per event of every batch sealed or audited); hashing is synchronous and the digest
 * a new array, so the buffer is free again when extendChain returns.
 */
const CHAIN_INPUT = new Uint8Array(2 * SMT_HASH_BYTES + 8);
const CHAIN_SEQ = new DataView(CHAIN_INPUT.buffer, SMT_HASH_BYTES, 8);

/** chain_n = H(chain_{n-1} || uint64be(seq) || leafHash). */
export function extendChain(chain: Uint8Array, seq: number, leafHash: Uint8Array): Uint8Array {
  assertLength(chain, SMT_HASH_BYTES, "chain");
  assertLength(leafHash, SMT_HASH_BYTES, "leafHash");
  if (!Number.isSafeInteger(seq) || seq < 0)
    throw new RangeError(`seq must be a non-negative safe integer, got ${seq}`);
  CHAIN_INPUT.set(chain, 0);
  CHAIN_SEQ.setUint32(0, Math.floor(seq / 2 ** 32));
  CHAIN_SEQ.setUint32(4, seq >>> 0);
  CHAIN_INPUT.set(leafHash, SMT_HASH_BYTES + 8);
  return sha256Of(CHAIN_INPUT);
}

/** valueHash = H(0x04 || uint64be(count) || chain). */
export function historyValueHash(count: number, chain: Uint8Array): Uint8Array {
  assertLength(chain, SMT_HASH_BYTES, "chain");
  return sha256(concatBytes(Uint8Array.of(VALUE_PREFIX), uint64be(count, "count"), chain));
}

export interface HistoryDigest {
  count: number;
  chain: Uint8Array;
}

/**
 * The (count, chain) of a subject's events. Rejects unsorted or repeated seqs: the chain is
 * defined over strictly increasing seq, and a repeated event must not pass for two.
 */
export function historyChain(
  events: ReadonlyArray<{ seq: number; leafHash: Uint8Array }>,
): HistoryDigest {
  return extendHistory({ count: 0, chain: new Uint8Array(SMT_HASH_BYTES) }, events);
}

/**
 * Continues a subject's (count, chain) with its events in the next batch, so a ledger keeps one
 * digest per subject instead of re-chaining the whole history. `events` must come after every
 * event already in `previous`; only their order among themselves can be checked here.
 */
export function extendHistory(
  previous: HistoryDigest,
  events: ReadonlyArray<{ seq: number; leafHash: Uint8Array }>,
): HistoryDigest {
  let chain = previous.chain;
  let last = -1;
  for (const event of events) {
    if (!Number.isSafeInteger(event.seq) || event.seq <= last) {
      throw new RangeError(
        `history events must have strictly increasing seq; got ${event.seq} after ${last}`,
      );
    }
    chain = extendChain(chain, event.seq, event.leafHash);
    last = event.seq;
  }
  return { count: previous.count + events.length, chain };
}

// ---------------------------------------------------------------------------------------------
// Node and path encodings (LevelDB-friendly)

/** The node's 65-byte hash preimage, which is also how a store persists it. */
export function encodeSmtNode(node: SmtNode): Uint8Array {
  const out = new Uint8Array(NODE_BYTES);
  writeSmtNode(out, node);
  return out;
}

/** Writes the node's 65-byte encoding (encodeSmtNode) into `out`, which is that long. */
export function writeSmtNode(out: Uint8Array, node: SmtNode): void {
  const [tag, a, b] =
    node.kind === "leaf"
      ? [LEAF_PREFIX, node.key, node.valueHash]
      : [INTERNAL_PREFIX, node.left, node.right];
  assertLength(a, SMT_HASH_BYTES, node.kind === "leaf" ? "leaf key" : "internal left");
  assertLength(b, SMT_HASH_BYTES, node.kind === "leaf" ? "leaf valueHash" : "internal right");
  out[0] = tag;
  out.set(a, 1);
  out.set(b, 1 + SMT_HASH_BYTES);
}

/** Inverse of encodeSmtNode. The result's arrays are views into `bytes`. */
export function decodeSmtNode(bytes: Uint8Array): SmtNode {
  if (bytes.length !== NODE_BYTES) throw new TypeError(`a stored node is ${NODE_BYTES} bytes`);
  const a = bytes.subarray(1, 1 + SMT_HASH_BYTES);
  const b = bytes.subarray(1 + SMT_HASH_BYTES);
  if (bytes[0] === LEAF_PREFIX) return { kind: "leaf", key: a, valueHash: b };
  if (bytes[0] === INTERNAL_PREFIX) return { kind: "internal", left: a, right: b };
  throw new TypeError(`unknown node tag ${bytes[0]}`);
}

const PATH_RE = /^[01]*$/;

export function isNodePath(value: unknown): value is NodePath {
  return typeof value === "string" && value.length <= SMT_MAX_DEPTH && PATH_RE.test(value);
}

/** uint16be(depth) || the path's bits packed MSB first, zero-padded to a whole byte. */
export function encodeNodePath(path: NodePath): Uint8Array {
  if (!isNodePath(path)) throw new TypeError("node path must be a string of at most 256 '0'/'1'");
  const depth = path.length;
  const out = new Uint8Array(2 + Math.ceil(depth / 8));
  out[0] = depth >>> 8;
  out[1] = depth & 0xff;
  for (let i = 0; i < depth; i++) {
    if (path.charCodeAt(i) === 0x31) out[2 + (i >>> 3)]! |= 0x80 >>> (i & 7);
  }
  return out;
}

export function decodeNodePath(bytes: Uint8Array): NodePath {
  if (bytes.length < 2) throw new TypeError("encoded node path is too short");
  const depth = (bytes[0]! << 8) | bytes[1]!;
  if (depth > SMT_MAX_DEPTH || bytes.length !== 2 + Math.ceil(depth / 8)) {
    throw new TypeError("encoded node path has a bad length");
  }
  let path = "";
  for (let i = 0; i < depth; i++) path += keyBit(bytes.subarray(2), i) ? "1" : "0";
  // Padding bits must be zero, or two encodings would name one node.
  const tail = depth & 7;
  if (tail !== 0 && (bytes[bytes.length - 1]! & (0xff >>> tail)) !== 0) {
    throw new TypeError("encoded node path has non-zero padding bits");
  }
  return path;
}

/** The first `depth` bits of a key as a NodePath. */
export function keyPath(key: Uint8Array, depth: number): NodePath {
  let path = "";
  for (let i = 0; i < depth; i++) path += keyBit(key, i) ? "1" : "0";
  return path;
}

export function keyBit(key: Uint8Array, index: number): number {
  return (key[index >>> 3]! >>> (7 - (index & 7))) & 1;
}

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < SMT_KEY_BYTES; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

function isZero(hash: Uint8Array): boolean {
  return bytesEqual(hash, EMPTY_ROOT);
}

// ---------------------------------------------------------------------------------------------
// Batch update

type Subtree =
  | { kind: "empty" }
  /** Untouched by this batch; only its hash is known (it is not read unless it must move up). */
  | { kind: "kept"; hash: Uint8Array }
  | { kind: "leaf"; node: SmtNode & { kind: "leaf" }; hash: Uint8Array }
  | { kind: "internal"; node: SmtNode & { kind: "internal" }; hash: Uint8Array };

const EMPTY: Subtree = { kind: "empty" };

interface Update {
  key: Uint8Array;
  valueHash: Uint8Array | null;
}

/** A store that disagrees with its own parent hashes is our fault, not the caller's: crash loudly. */
function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`subject-index invariant broken: ${message}`);
}

/**
 * Which nodes a batch needs (STYLE.md §2: say which nodes, then fetch them): walking down level
 * by level, the node at every path some update passes through, plus — only where a removal could
 * leave a leaf next to an empty subtree — the untouched sibling that might have to move up.
 * Each level is fetched with concurrent reads (one await per level, not per node), each path once.
 */
async function fetchTouchedNodes(
  reader: NodeReader,
  updates: Update[],
): Promise<Map<NodePath, SmtNode | undefined>> {
  // removalsBefore[i] = removals among updates[0, i), to ask "any removal in [lo, hi)?" in O(1).
  const removalsBefore = new Uint32Array(updates.length + 1);
  updates.forEach((u, i) => {
    removalsBefore[i + 1] = removalsBefore[i]! + (u.valueHash === null ? 1 : 0);
  });
  const hasRemoval = (lo: number, hi: number) => removalsBefore[hi]! > removalsBefore[lo]!;

  const fetched = new Map<NodePath, SmtNode | undefined>();
  let level: Array<{ path: NodePath; lo: number; hi: number; mustExist: boolean }> = [
    { path: "", lo: 0, hi: updates.length, mustExist: false },
  ];
  while (level.length > 0) {
    const paths = level.map((task) => task.path);
    const nodes = reader.many
      ? await reader.many(paths)
      : await Promise.all(paths.map((path) => reader(path)));
    const next: typeof level = [];
    level.forEach(({ path, lo, hi, mustExist }, i) => {
      const node = nodes[i];
      invariant(node !== undefined || !mustExist, `node missing at path "${path}"`);
      fetched.set(path, node);
      if (node === undefined || node.kind === "leaf") return; // nothing stored below
      invariant(path.length < SMT_MAX_DEPTH, "internal node at depth 256");
      const mid = splitAt(updates, lo, hi, path.length);
      const halves = [
        { path: path + "0", hash: node.left, lo, hi: mid, otherHasRemoval: hasRemoval(mid, hi) },
        { path: path + "1", hash: node.right, lo: mid, hi, otherHasRemoval: hasRemoval(lo, mid) },
      ];
      for (const h of halves) {
        if (isZero(h.hash)) continue;
        if (h.lo < h.hi || h.otherHasRemoval) {
          next.push({ path: h.path, lo: h.lo, hi: h.hi, mustExist: true });
        }
      }
    });
    level = next;
  }
  return fetched;
}

/** The synchronous part of a batch update, over the nodes fetchTouchedNodes returned. */
class BatchUpdater {
  readonly writes: NodeWrite[] = [];
  hashes = 0;

  constructor(private readonly fetched: Map<NodePath, SmtNode | undefined>) {}

  private stored(path: NodePath): SmtNode {
    const node = this.fetched.get(path);
    invariant(node !== undefined, `node at path "${path}" was not fetched`);
    return node;
  }

  leaf(key: Uint8Array, valueHash: Uint8Array): Subtree {
    const node = { kind: "leaf" as const, key, valueHash };
    this.hashes++;
    return { kind: "leaf", node, hash: smtNodeHash(node) };
  }

  /** Puts `subtree` at `path`, where `existing` is stored now; writes only what changes. */
  place(path: NodePath, existing: SmtNode | undefined, subtree: Subtree): void {
    if (subtree.kind === "kept") return;
    if (subtree.kind === "empty") {
      if (existing !== undefined) this.writes.push({ path, node: null });
      return;
    }
    if (existing !== undefined && nodesEqual(existing, subtree.node)) return;
    this.writes.push({ path, node: subtree.node });
  }

  /** Joins two child subtrees into the subtree at `path`, placing the children that stay. */
  join(
    path: NodePath,
    left: Subtree,
    right: Subtree,
    leftExisting: SmtNode | undefined,
    rightExisting: SmtNode | undefined,
  ): Subtree {
    const leftPath = path + "0";
    const rightPath = path + "1";
    // An empty child next to an empty or leaf child: the pair collapses, a lone leaf moves up.
    if (left.kind === "empty" && (right.kind === "empty" || right.kind === "leaf")) {
      this.place(leftPath, leftExisting, EMPTY);
      this.place(rightPath, rightExisting, EMPTY);
      return right;
    }
    if (right.kind === "empty" && left.kind === "leaf") {
      this.place(leftPath, leftExisting, EMPTY);
      this.place(rightPath, rightExisting, EMPTY);
      return left;
    }
    invariant(left.kind !== "kept" || right.kind !== "kept", "join of two untouched children");
    this.place(leftPath, leftExisting, left);
    this.place(rightPath, rightExisting, right);
    const node = { kind: "internal" as const, left: hashOf(left), right: hashOf(right) };
    this.hashes++;
    return { kind: "internal", node, hash: smtNodeHash(node) };
  }

  /** Builds the subtree at `path` where nothing is stored below `path`. */
  build(path: NodePath, depth: number, updates: Update[], lo: number, hi: number): Subtree {
    if (hi === lo) return EMPTY;
    if (hi - lo === 1) {
      const u = updates[lo]!;
      return u.valueHash === null ? EMPTY : this.leaf(u.key, u.valueHash);
    }
    invariant(depth < SMT_MAX_DEPTH, "two updates for one key reached depth 256");
    const mid = splitAt(updates, lo, hi, depth);
    const left = this.build(path + "0", depth + 1, updates, lo, mid);
    const right = this.build(path + "1", depth + 1, updates, mid, hi);
    return this.join(path, left, right, undefined, undefined);
  }

  /**
   * Applies updates[lo, hi) (sorted, distinct, all starting with `path`) to the subtree whose
   * node at `path` is `existing`. Writes every changed node strictly below `path`; the caller
   * places the returned subtree at `path` itself, because a leaf may still move further up.
   */
  update(
    path: NodePath,
    depth: number,
    existing: SmtNode | undefined,
    updates: Update[],
    lo: number,
    hi: number,
  ): Subtree {
    if (existing === undefined) return this.build(path, depth, updates, lo, hi);
    if (existing.kind === "leaf") {
      // Nothing is stored below a leaf: rebuild this subtree from the leaf plus the updates.
      const merged = mergeLeaf(updates, lo, hi, existing);
      return this.build(path, depth, merged, 0, merged.length);
    }
    const mid = splitAt(updates, lo, hi, depth);
    const leftPath = path + "0";
    const rightPath = path + "1";
    let leftExisting = lo < mid && !isZero(existing.left) ? this.stored(leftPath) : undefined;
    let rightExisting = mid < hi && !isZero(existing.right) ? this.stored(rightPath) : undefined;
    let left = this.child(leftPath, depth + 1, existing.left, leftExisting, updates, lo, mid);
    let right = this.child(rightPath, depth + 1, existing.right, rightExisting, updates, mid, hi);
    // A removal can leave an untouched leaf next to an empty subtree; then that leaf moves up.
    if (right.kind === "empty" && left.kind === "kept") {
      leftExisting = this.stored(leftPath);
      left = this.resolveKept(leftPath, leftExisting, left.hash);
    }
    if (left.kind === "empty" && right.kind === "kept") {
      rightExisting = this.stored(rightPath);
      right = this.resolveKept(rightPath, rightExisting, right.hash);
    }
    return this.join(path, left, right, leftExisting, rightExisting);
  }

  private child(
    path: NodePath,
    depth: number,
    hash: Uint8Array,
    existing: SmtNode | undefined,
    updates: Update[],
    lo: number,
    hi: number,
  ): Subtree {
    if (lo === hi) return isZero(hash) ? EMPTY : { kind: "kept", hash };
    return this.update(path, depth, existing, updates, lo, hi);
  }

  private resolveKept(path: NodePath, node: SmtNode, hash: Uint8Array): Subtree {
    this.hashes++;
    invariant(bytesEqual(smtNodeHash(node), hash), `node at "${path}" mismatches its parent`);
    return node.kind === "leaf" ? { kind: "leaf", node, hash } : { kind: "internal", node, hash };
  }
}

function hashOf(subtree: Subtree): Uint8Array {
  return subtree.kind === "empty" ? EMPTY_ROOT : subtree.hash;
}

/** First index in [lo, hi) whose key has bit `depth` set (keys are sorted and share `depth` bits). */
function splitAt(updates: Update[], lo: number, hi: number, depth: number): number {
  let a = lo;
  let b = hi;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (keyBit(updates[m]!.key, depth) === 0) a = m + 1;
    else b = m;
  }
  return a;
}

/** updates[lo, hi) with the existing leaf added in key order, unless an update replaces it. */
function mergeLeaf(
  updates: Update[],
  lo: number,
  hi: number,
  leaf: SmtNode & { kind: "leaf" },
): Update[] {
  const merged: Update[] = [];
  let inserted = false;
  for (let i = lo; i < hi; i++) {
    const u = updates[i]!;
    if (!inserted) {
      const c = compareKeys(leaf.key, u.key);
      if (c === 0) inserted = true;
      else if (c < 0) {
        merged.push({ key: leaf.key, valueHash: leaf.valueHash });
        inserted = true;
      }
    }
    merged.push(u);
  }
  if (!inserted) merged.push({ key: leaf.key, valueHash: leaf.valueHash });
  return merged;
}

/**
 * Applies one batch of updates top-down: keys are sorted, each touched node is read at most once
 * (fetched level by level, then the new nodes are computed in one synchronous pass), and the work
 * is (keys touched) × (depth), independent of the map's size. Returns the new root
 * and exactly the node puts/deletes to persist atomically (one LevelDB batch). The store must not
 * change between the reads and persisting the writes.
 */
export async function applyUpdates(
  reader: NodeReader,
  updates: ReadonlyArray<SmtUpdate>,
): Promise<ApplyUpdatesResult> {
  const sorted: Update[] = updates.map((u, i) => {
    assertLength(u.key, SMT_KEY_BYTES, `updates[${i}].key`);
    if (u.valueHash !== null) assertLength(u.valueHash, SMT_HASH_BYTES, `updates[${i}].valueHash`);
    return { key: u.key, valueHash: u.valueHash };
  });
  sorted.sort((a, b) => compareKeys(a.key, b.key));
  for (let i = 1; i < sorted.length; i++) {
    if (compareKeys(sorted[i - 1]!.key, sorted[i]!.key) === 0) {
      throw new RangeError("applyUpdates: the same key appears twice in one batch");
    }
  }
  const fetched = await fetchTouchedNodes(reader, sorted);
  const existing = fetched.get("");
  if (sorted.length === 0) {
    return {
      root: existing === undefined ? EMPTY_ROOT : smtNodeHash(existing),
      writes: [],
      stats: { hashes: existing === undefined ? 0 : 1, reads: fetched.size },
    };
  }
  const updater = new BatchUpdater(fetched);
  const subtree = updater.update("", 0, existing, sorted, 0, sorted.length);
  updater.place("", existing, subtree);
  return {
    root: hashOf(subtree),
    writes: updater.writes,
    stats: { hashes: updater.hashes, reads: fetched.size },
  };
}

// ---------------------------------------------------------------------------------------------
// Proofs (the proof format and its verifier are in subject-index-proof.ts)

/**
 * Walks the key's path from the root and returns the siblings and the node the path ends in:
 * the key's own leaf (membership), or an empty subtree or another key's leaf (non-membership).
 * Reads one node per level.
 */
export async function proveKey(reader: NodeReader, key: Uint8Array): Promise<SubjectIndexProof> {
  assertLength(key, SMT_KEY_BYTES, "key");
  const topDown: Uint8Array[] = [];
  let path = "";
  let node = await reader(path);
  while (node !== undefined && node.kind === "internal") {
    const depth = path.length;
    invariant(depth < SMT_MAX_DEPTH, "internal node at depth 256");
    const bit = keyBit(key, depth);
    topDown.push(bit === 0 ? node.right : node.left);
    const childHash = bit === 0 ? node.left : node.right;
    path += bit === 0 ? "0" : "1";
    if (isZero(childHash)) {
      node = undefined;
      break;
    }
    node = await reader(path);
    invariant(node !== undefined, `node missing at path "${path}"`);
  }
  return {
    siblings: topDown.reverse(),
    leaf: node === undefined ? null : { key: node.key, valueHash: node.valueHash },
  };
}

// ---------------------------------------------------------------------------------------------
// In-memory store

const SLOTS_PER_CHUNK = 1 << 14; // 16,384 nodes × 65 bytes ≈ 1 MiB per chunk

/**
 * Fixed 65-byte slots (one encoded node each) in a few large buffers, freed slots reused: a
 * million nodes are ≈ 65 MB in ≈ 60 allocations, nothing a garbage collector has to walk, where
 * one Buffer per node is a million objects.
 */
export class NodeSlab {
  private readonly chunks: Uint8Array[] = [];
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;

  allocate(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.nextSlot % SLOTS_PER_CHUNK === 0) {
      this.chunks.push(new Uint8Array(SLOTS_PER_CHUNK * NODE_BYTES));
    }
    return this.nextSlot++;
  }

  release(slot: number): void {
    this.freeSlots.push(slot);
  }

  /** The slot's bytes, in place: valid until the slot is released and reused. */
  view(slot: number): Uint8Array {
    const chunk = this.chunks[Math.floor(slot / SLOTS_PER_CHUNK)]!;
    const offset = (slot % SLOTS_PER_CHUNK) * NODE_BYTES;
    return chunk.subarray(offset, offset + NODE_BYTES);
  }

  /** Forgets every slot and drops the buffers. */
  clear(): void {
    this.chunks.length = 0;
    this.freeSlots.length = 0;
    this.nextSlot = 0;
  }
}

/** Bytes of one encoded node (a slot of {@link NodeSlab}). */
export const SMT_NODE_BYTES = NODE_BYTES;

export class MemoryNodeStore {
  private readonly slots = new Map<NodePath, number>();
  private readonly slab = new NodeSlab();

  /** Returns copies, so a node read before `apply` stays intact after its slot is reused. */
  readonly reader: NodeReader = (path) => {
    const slot = this.slots.get(path);
    return Promise.resolve(slot === undefined ? undefined : this.copyOut(slot));
  };

  apply(writes: ReadonlyArray<NodeWrite>): void {
    for (const w of writes) {
      const slot = this.slots.get(w.path);
      if (w.node === null) {
        if (slot !== undefined) {
          this.slots.delete(w.path);
          this.slab.release(slot);
        }
        continue;
      }
      if (slot !== undefined) {
        writeSmtNode(this.slab.view(slot), w.node);
      } else {
        const fresh = this.slab.allocate();
        writeSmtNode(this.slab.view(fresh), w.node);
        this.slots.set(w.path, fresh);
      }
    }
  }

  /** Applies a batch of updates and returns the new root. */
  async update(updates: ReadonlyArray<SmtUpdate>): Promise<Uint8Array> {
    const result = await applyUpdates(this.reader, updates);
    this.apply(result.writes);
    return result.root;
  }

  prove(key: Uint8Array): Promise<SubjectIndexProof> {
    return proveKey(this.reader, key);
  }

  get root(): Uint8Array {
    const slot = this.slots.get("");
    return slot === undefined ? EMPTY_ROOT : sha256(this.slab.view(slot));
  }

  get size(): number {
    return this.slots.size;
  }

  /** Every stored node (tests compare the store with a from-scratch rebuild). */
  *entries(): IterableIterator<[NodePath, SmtNode]> {
    for (const [path, slot] of this.slots) yield [path, this.copyOut(slot)];
  }

  private copyOut(slot: number): SmtNode {
    const bytes = this.slab.view(slot);
    const a = bytes.slice(1, 1 + SMT_HASH_BYTES);
    const b = bytes.slice(1 + SMT_HASH_BYTES, NODE_BYTES);
    return bytes[0] === LEAF_PREFIX
      ? { kind: "leaf", key: a, valueHash: b }
      : { kind: "internal", left: a, right: b };
  }
}

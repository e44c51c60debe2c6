/**
 * RFC 9162 Merkle trees for one batch (DESIGN.md "Merkle trees"): hashing, the array-of-levels
 * builder, audit-path node ids, and the §2.1.3.2 inclusion verifier. Pure: no I/O, no Buffer,
 * so the browser verifier computes exactly what the service computes.
 */
import { sha256, sha256Of } from "./hash.ts";
import { bytesEqual, fromHexInto } from "./hex.ts";

/** Every leaf hash, node hash and root is a SHA-256 digest. */
export const MERKLE_HASH_LENGTH = 32;

// RFC 9162 §2.1.1 domain separation: a leaf can never be reinterpreted as an internal node
// (second-preimage attack), so a 64-byte entry cannot pose as two children.
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** The caller passed something that is not a valid argument (its bug, not a failed proof). */
export type MerkleArgumentErrorCode = "BAD_INDEX" | "BAD_SIZE" | "BAD_NODE_LENGTH";

/** The proof was well-formed but does not prove inclusion; each code names the failed step. */
export type MerkleProofErrorCode =
  "EMPTY_TREE" | "INDEX_OUT_OF_RANGE" | "PATH_TOO_LONG" | "PATH_TOO_SHORT" | "ROOT_MISMATCH";

export class MerkleArgumentError extends TypeError {
  override readonly name = "MerkleArgumentError";
  readonly code: MerkleArgumentErrorCode;
  constructor(code: MerkleArgumentErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export class MerkleProofError extends Error {
  override readonly name = "MerkleProofError";
  readonly code: MerkleProofErrorCode;
  constructor(code: MerkleProofErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** A stored node in the levels layout of {@link buildTree}: `levels[level][index]`. */
export interface MerkleNodeId {
  level: number;
  index: number;
}

export interface MerkleTree {
  /** RFC 9162 MTH over the leaves; SHA-256("") for the empty tree. */
  readonly root: Uint8Array;
  /** Number of leaves. */
  readonly size: number;
  /**
   * levels[0] are the leaf hashes; levels[k + 1][i] = nodeHash(levels[k][2i], levels[k][2i + 1]),
   * or levels[k][2i] itself when it is the odd last node. The last level holds the root
   * (except for the empty tree, whose only level is empty).
   */
  readonly levels: readonly (readonly Uint8Array[])[];
  /** RFC 9162 §2.1.3.1 audit path for leaf `index`, leaf to root, copied out of `levels`. */
  inclusionProof(index: number): Uint8Array[];
}

/** RFC 9162 §2.1.1: MTH({d}) = SHA-256(0x00 || d). */
export function leafHash(entryBytes: Uint8Array): Uint8Array {
  return sha256(LEAF_PREFIX, entryBytes);
}

/**
 * RFC 9162 §2.1.1: SHA-256(0x01 || left || right). Lengths are not checked here so the RFC 6962
 * hasher vectors (which hash short strings) apply; every tree and proof function checks that
 * its nodes are 32 bytes, which keeps the left/right boundary unambiguous.
 */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length === MERKLE_HASH_LENGTH && right.length === MERKLE_HASH_LENGTH) {
    NODE_INPUT.set(left, 1);
    NODE_INPUT.set(right, 1 + MERKLE_HASH_LENGTH);
    return sha256Of(NODE_INPUT);
  }
  return sha256(NODE_PREFIX, left, right);
}

/**
 * 0x01 || left || right of the node being hashed: one buffer, filled in place and hashed in a
 * single one-shot call (the hot loop of building and verifying trees). The digest is a new
 * array and hashing is synchronous, so the buffer is free again when nodeHash returns.
 */
const NODE_INPUT = new Uint8Array(1 + 2 * MERKLE_HASH_LENGTH);
NODE_INPUT[0] = NODE_PREFIX[0]!;

/** RFC 9162 §2.1.1: the MTH of the empty list is SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/**
 * Builds the tree level by level. Carrying an odd last node up unchanged (never duplicating it,
 * cf. CVE-2012-2459) gives exactly the RFC 9162 left-balanced tree: the carried node is the MTH of
 * the trailing leaves, which RFC 9162 pairs with the power-of-two subtree on its left.
 * The tree keeps references to the given leaf hashes; do not mutate them afterwards.
 */
export function buildTree(leafHashes: readonly Uint8Array[]): MerkleTree {
  for (let i = 0; i < leafHashes.length; i++) checkHash(leafHashes[i], `leafHashes[${i}]`);
  const levels: Uint8Array[][] = [leafHashes.slice()];
  // One 65-byte scratch buffer: a single-part SHA-256 call is the hot loop of sealing a batch.
  const scratch = new Uint8Array(1 + 2 * MERKLE_HASH_LENGTH);
  scratch[0] = NODE_PREFIX[0]!;
  let level = levels[0]!;
  while (level.length > 1) {
    const next: Uint8Array[] = new Array<Uint8Array>(Math.ceil(level.length / 2));
    const pairs = level.length >>> 1;
    for (let i = 0; i < pairs; i++) {
      scratch.set(level[2 * i]!, 1);
      scratch.set(level[2 * i + 1]!, 1 + MERKLE_HASH_LENGTH);
      next[i] = sha256Of(scratch);
    }
    if (level.length % 2 === 1) next[pairs] = level[level.length - 1]!;
    levels.push(next);
    level = next;
  }
  const size = leafHashes.length;
  const root = size === 0 ? emptyRoot() : level[0]!;
  return {
    root,
    size,
    levels,
    inclusionProof(index: number): Uint8Array[] {
      return inclusionProofNodeIds(index, size).map((id) => levels[id.level]![id.index]!.slice());
    },
  };
}

/**
 * Which stored nodes (levels layout of {@link buildTree}) form the RFC 9162 audit path of leaf
 * `index` in a tree of `size` leaves, leaf to root (STYLE.md §2: the store only reads these).
 * A level where the path's node is the odd last one contributes nothing: it is carried up.
 */
export function inclusionProofNodeIds(index: number, size: number): MerkleNodeId[] {
  checkSize(size);
  checkIndex(index);
  if (index >= size) {
    throw new MerkleArgumentError("BAD_INDEX", `index ${index} is not below tree size ${size}`);
  }
  const ids: MerkleNodeId[] = [];
  let node = index;
  let width = size;
  for (let level = 0; width > 1; level++) {
    const sibling = node % 2 === 1 ? node - 1 : node + 1;
    if (sibling < width) ids.push({ level, index: sibling });
    node = Math.floor(node / 2);
    width = Math.ceil(width / 2);
  }
  return ids;
}

/**
 * RFC 9162 §2.1.3.2 steps 1-4: the root that `proof` yields for `leafHash` at `leafIndex` in a
 * tree of `treeSize` leaves. Throws MerkleProofError when the path length does not fit the tree.
 * Arithmetic is done with division, not bit operators, so sizes up to 2^53 stay exact.
 */
export function rootFromInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  checkIndex(leafIndex);
  checkSize(treeSize);
  checkHash(leafHash, "leafHash");
  if (!Array.isArray(proof))
    throw new MerkleArgumentError("BAD_NODE_LENGTH", "proof is not an array");
  for (let i = 0; i < proof.length; i++) checkHash(proof[i], `proof[${i}]`);
  const work = pathWork(proof.length);
  for (let i = 0; i < proof.length; i++) work.set(proof[i]!, PATH_AT + i * MERKLE_HASH_LENGTH);
  return walkPath(leafIndex, treeSize, leafHash, proof.length);
}

/**
 * {@link rootFromInclusion} for an audit path in its JSON form (0x-prefixed lowercase hex, as
 * bundles and receipts carry it): the nodes are decoded into one reused buffer instead of an
 * array each. A node that is not hex of 32 bytes is a BAD_NODE_LENGTH argument error.
 */
export function rootFromInclusionHex(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly string[],
): Uint8Array {
  checkIndex(leafIndex);
  checkSize(treeSize);
  checkHash(leafHash, "leafHash");
  if (!Array.isArray(proof))
    throw new MerkleArgumentError("BAD_NODE_LENGTH", "proof is not an array");
  const work = pathWork(proof.length);
  for (let i = 0; i < proof.length; i++) {
    if (!fromHexInto(proof[i], MERKLE_HASH_LENGTH, work, PATH_AT + i * MERKLE_HASH_LENGTH))
      throw new MerkleArgumentError("BAD_NODE_LENGTH", `proof[${i}] ${NOT_HEX32}`);
  }
  return walkPath(leafIndex, treeSize, leafHash, proof.length);
}

const NOT_HEX32 = `must be 0x-prefixed lowercase hex of ${MERKLE_HASH_LENGTH} bytes`;

/**
 * One buffer for verifying a path without allocating: bytes 0..64 are the input of the node
 * hash being computed (0x01 || left || right), the path's nodes follow from PATH_AT, 32 bytes
 * each. Hashing is synchronous and nothing here calls out, so one buffer serves every call.
 */
const PATH_AT = 1 + 2 * MERKLE_HASH_LENGTH;
let work = new Uint8Array(PATH_AT + 64 * MERKLE_HASH_LENGTH);
let workNode = work.subarray(0, PATH_AT);

function pathWork(nodes: number): Uint8Array {
  if (work.length < PATH_AT + nodes * MERKLE_HASH_LENGTH) {
    work = new Uint8Array(PATH_AT + nodes * MERKLE_HASH_LENGTH);
    workNode = work.subarray(0, PATH_AT);
  }
  work[0] = NODE_PREFIX[0]!;
  return work;
}

/** The §2.1.3.2 loop over the `count` nodes in `work` from PATH_AT (see pathWork). */
function walkPath(leafIndex: number, treeSize: number, leafHash: Uint8Array, count: number) {
  if (treeSize === 0) throw new MerkleProofError("EMPTY_TREE", "an empty tree includes no leaf");
  if (leafIndex >= treeSize) {
    throw new MerkleProofError(
      "INDEX_OUT_OF_RANGE",
      `leaf index ${leafIndex} is not below tree size ${treeSize}`,
    );
  }
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  for (let i = 0; i < count; i++) {
    if (sn === 0) {
      throw new MerkleProofError(
        "PATH_TOO_LONG",
        `audit path has ${count} nodes, more than a tree of size ${treeSize} needs at index ${leafIndex}`,
      );
    }
    const node = PATH_AT + i * MERKLE_HASH_LENGTH;
    if (fn % 2 === 1 || fn === sn) {
      // r = nodeHash(p, r)
      work.copyWithin(1, node, node + MERKLE_HASH_LENGTH);
      work.set(r, 1 + MERKLE_HASH_LENGTH);
      r = sha256Of(workNode);
      // The path skips levels where this subtree is the right edge's odd node (carried up).
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      // r = nodeHash(r, p)
      work.set(r, 1);
      work.copyWithin(1 + MERKLE_HASH_LENGTH, node, node + MERKLE_HASH_LENGTH);
      r = sha256Of(workNode);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) {
    throw new MerkleProofError(
      "PATH_TOO_SHORT",
      `audit path has ${count} nodes, fewer than a tree of size ${treeSize} needs at index ${leafIndex}`,
    );
  }
  // A path of no nodes yields the leaf hash itself: hand out a copy, never the caller's array.
  return count === 0 ? r.slice() : r;
}

/** RFC 9162 §2.1.3.2 in full: throws unless `proof` proves `leafHash` is leaf `leafIndex` under `root`. */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  checkHash(root, "root");
  const computed = rootFromInclusion(leafIndex, treeSize, leafHash, proof);
  if (!bytesEqual(computed, root)) {
    throw new MerkleProofError("ROOT_MISMATCH", "audit path does not yield the expected root");
  }
}

/** {@link verifyInclusion} for a path and root in hex (see {@link rootFromInclusionHex}). */
export function verifyInclusionHex(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly string[],
  root: string,
): void {
  if (!fromHexInto(root, MERKLE_HASH_LENGTH, ROOT, 0))
    throw new MerkleArgumentError("BAD_NODE_LENGTH", `root ${NOT_HEX32}`);
  const computed = rootFromInclusionHex(leafIndex, treeSize, leafHash, proof);
  if (!bytesEqual(computed, ROOT)) {
    throw new MerkleProofError("ROOT_MISMATCH", "audit path does not yield the expected root");
  }
}

const ROOT = new Uint8Array(MERKLE_HASH_LENGTH);

function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new MerkleArgumentError(
      "BAD_INDEX",
      `index must be a non-negative safe integer, got ${String(index)}`,
    );
  }
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new MerkleArgumentError(
      "BAD_SIZE",
      `tree size must be a non-negative safe integer, got ${String(size)}`,
    );
  }
}

function checkHash(value: unknown, what: string): void {
  if (!(value instanceof Uint8Array) || value.length !== MERKLE_HASH_LENGTH) {
    const got = value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
    throw new MerkleArgumentError(
      "BAD_NODE_LENGTH",
      `${what} must be ${MERKLE_HASH_LENGTH} bytes, got ${got}`,
    );
  }
}

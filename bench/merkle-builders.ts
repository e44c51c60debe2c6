/**
 * DESIGN.md "Merkle trees": measure merkletreejs against the array-of-levels builder of
 * services/core/merkle.ts on the same pre-hashed leaves, after checking that both give the
 * RFC 9162 root. Run: node --import tsx bench/merkle-builders.ts [sizes...]
 */
import { pathToFileURL } from "node:url";
import { MerkleTree as MerkleTreeJs } from "merkletreejs";
import { sha256 } from "../services/core/hash.ts";
import { bytesEqual, utf8 } from "../services/core/hex.ts";
import { buildTree, leafHash } from "../services/core/merkle.ts";

export interface MerkleBuilderBenchRow {
  size: number;
  /** Median wall time of buildTree over the leaf hashes, ms. */
  levelsMs: number;
  /** Median wall time of `new MerkleTree(...)` (merkletreejs) over the same leaf hashes, ms. */
  merkletreejsMs: number;
  /** merkletreejsMs / levelsMs: how many times slower merkletreejs is (below 1: faster). */
  ratio: number;
}

const NODE_PREFIX = Buffer.of(0x01);

/**
 * The merkletreejs options that give the RFC 9162 shape: leaves already hashed (hashLeaves off),
 * no sorting of leaves or pairs, an odd last node carried up unchanged (duplicateOdd off, not a
 * Bitcoin tree, no fillDefaultHash padding, not "complete"), and a node hash that prefixes 0x01
 * to the concatenated children. These are also merkletreejs's defaults, spelled out so a changed
 * default cannot silently change the tree.
 */
export function merkletreejsRfc9162(leafHashes: readonly Uint8Array[]): MerkleTreeJs {
  return new MerkleTreeJs([...leafHashes], (data: Uint8Array) => sha256(data), {
    hashLeaves: false,
    sortLeaves: false,
    sortPairs: false,
    sort: false,
    duplicateOdd: false,
    isBitcoinTree: false,
    complete: false,
    // One buffer 0x01 || left || right, hashed in one call: the cheapest way to give
    // merkletreejs the RFC 9162 node hash, so the comparison is fair to it.
    concatenator: (children: Buffer[]) => Buffer.concat([NODE_PREFIX, ...children]),
  });
}

/**
 * Sizes in 0..maxSize where merkletreejs's root or any audit path differs from buildTree (which
 * the unit tests hold to the RFC reference). Expected: [0] only, because merkletreejs returns an
 * empty buffer as the root of an empty tree where RFC 9162 §2.1.1 says SHA-256("").
 */
export function merkletreejsDisagreements(maxSize: number, proofsUpTo = 64): number[] {
  const leaves = Array.from({ length: maxSize }, (_, i) => leafHash(utf8(`agree:${i}`)));
  const differ: number[] = [];
  for (let size = 0; size <= maxSize; size++) {
    const slice = leaves.slice(0, size);
    const ours = buildTree(slice);
    const theirs = merkletreejsRfc9162(slice);
    let same = bytesEqual(ours.root, theirs.getRoot());
    if (same && size <= proofsUpTo) {
      for (let i = 0; i < size && same; i++) {
        const path = theirs.getProof(Buffer.from(slice[i]!), i).map((step) => step.data);
        const want = ours.inclusionProof(i);
        same = path.length === want.length && path.every((node, k) => bytesEqual(node, want[k]!));
      }
    }
    if (!same) differ.push(size);
  }
  return differ;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function timeMs(run: () => void): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}

/** Times both builders on the same leaf hashes; refuses to time a builder that disagrees. */
export function benchMerkleBuilders(sizes: number[], runs = 9): MerkleBuilderBenchRow[] {
  return sizes.map((size) => {
    const leaves = Array.from({ length: size }, (_, i) => leafHash(utf8(`bench:${i}`)));
    // Warm-up, and a root check so a wrong builder is never reported as a fast one.
    const ours = buildTree(leaves);
    const theirs = merkletreejsRfc9162(leaves);
    if (size > 0 && !bytesEqual(ours.root, theirs.getRoot())) {
      throw new Error(`merkletreejs root differs from buildTree at size ${size}`);
    }
    const levels: number[] = [];
    const merkletreejs: number[] = [];
    // Interleaved so a noisy neighbour slows both builders alike.
    for (let r = 0; r < runs; r++) {
      levels.push(timeMs(() => buildTree(leaves)));
      merkletreejs.push(timeMs(() => merkletreejsRfc9162(leaves)));
    }
    const levelsMs = median(levels);
    const merkletreejsMs = median(merkletreejs);
    return { size, levelsMs, merkletreejsMs, ratio: merkletreejsMs / levelsMs };
  });
}

function renderRows(rows: MerkleBuilderBenchRow[]): string {
  const lines = ["| leaves | levels builder ms | merkletreejs ms | merkletreejs / levels |"];
  lines.push("|---:|---:|---:|---:|");
  for (const r of rows) {
    lines.push(
      `| ${r.size.toLocaleString("en")} | ${r.levelsMs.toFixed(2)} | ${r.merkletreejsMs.toFixed(2)} | ${r.ratio.toFixed(2)} |`,
    );
  }
  return lines.join("\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2).map(Number);
  const sizes = args.length > 0 ? args : [1_000, 10_000, 100_000];
  if (!sizes.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new Error(`sizes must be non-negative integers, got ${process.argv.slice(2).join(" ")}`);
  }
  const differ = merkletreejsDisagreements(1_000);
  process.stdout.write(
    `merkletreejs vs RFC 9162 (sizes 0..1000, every audit path up to 64): differs at [${differ.join(", ")}]\n\n`,
  );
  process.stdout.write(`${renderRows(benchMerkleBuilders(sizes))}\n`);
}

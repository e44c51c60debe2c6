import { readFileSync } from "node:fs";
import { expect } from "chai";
import fc from "fast-check";
import { fromHex, toHex } from "../../../services/core/hex.ts";
import {
  MerkleArgumentError,
  MerkleProofError,
  buildTree,
  leafHash,
  rootFromInclusion,
  rootFromInclusionHex,
  verifyInclusion,
  verifyInclusionHex,
} from "../../../services/core/merkle.ts";

/**
 * rootFromInclusionHex / verifyInclusionHex decode the path into a reused buffer; they must
 * give exactly what the byte versions give on the decoded path — same root, same error class
 * and code — on the RFC 9162 vectors and on random and tampered proofs.
 */

interface ProofCase {
  desc: string;
  leafIndex: number;
  treeSize: number;
  leafHash?: string;
  leafInput?: string;
  proof: string[];
  root: string;
}

function vectors(name: string): { cases: ProofCase[] } {
  const url = new URL(`../../vectors/merkle/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as { cases: ProofCase[] };
}

function outcome(run: () => unknown): string {
  try {
    const value = run();
    return value instanceof Uint8Array ? `ok ${toHex(value)}` : "ok";
  } catch (e) {
    if (e instanceof MerkleProofError || e instanceof MerkleArgumentError)
      return `${e.name} ${e.code}`;
    throw e;
  }
}

function expectSame(
  leafIndex: number,
  treeSize: number,
  leaf: Uint8Array,
  proof: string[],
  root: string,
): string {
  const bytes = outcome(() => rootFromInclusion(leafIndex, treeSize, leaf, proof.map(fromHex)));
  expect(outcome(() => rootFromInclusionHex(leafIndex, treeSize, leaf, proof))).to.equal(bytes);
  const verified = outcome(() =>
    verifyInclusion(leafIndex, treeSize, leaf, proof.map(fromHex), fromHex(root)),
  );
  expect(outcome(() => verifyInclusionHex(leafIndex, treeSize, leaf, proof, root))).to.equal(
    verified,
  );
  return verified;
}

describe("core/merkle: audit paths in hex", () => {
  it("RFC 9162 vectors (proofgen, upstream probes, broken.json): same result as the byte version", () => {
    let ok = 0;
    let checked = 0;
    for (const file of ["inclusion-proofs.json", "upstream-inclusion-probes.json", "broken.json"]) {
      for (const tc of vectors(file).cases) {
        const leaf =
          tc.leafHash !== undefined ? fromHex(tc.leafHash) : leafHash(fromHex(tc.leafInput!));
        if (expectSame(tc.leafIndex, tc.treeSize, leaf, tc.proof, tc.root) === "ok") ok++;
        checked++;
      }
    }
    expect(checked).to.be.greaterThan(100);
    expect(ok).to.be.greaterThan(0);
  });

  it("random trees: every proof verifies; tampered proofs fail with the same code", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom("none", "flip", "drop", "insert", "swap", "index", "size", "root", "leaf"),
        (size, at, where, how) => {
          const leaves = Array.from({ length: size }, (_, i) => {
            const l = new Uint8Array(32);
            l[0] = i & 0xff;
            l[1] = i >> 8;
            l[31] = size & 0xff;
            return l;
          });
          const tree = buildTree(leaves);
          let index = at % size;
          let treeSize = size;
          let leaf = leaves[index]!;
          let root = toHex(tree.root);
          const proof = tree.inclusionProof(index).map(toHex);
          const k = proof.length > 0 ? where % proof.length : 0;
          if (how === "flip" && proof.length > 0) {
            const b = fromHex(proof[k]!);
            b[where % 32] = b[where % 32]! ^ (1 + (where % 255));
            proof[k] = toHex(b);
          } else if (how === "drop" && proof.length > 0) proof.splice(k, 1);
          else if (how === "insert") proof.splice(k, 0, toHex(leaf));
          else if (how === "swap" && proof.length > 1) {
            const j = (k + 1) % proof.length;
            [proof[k], proof[j]] = [proof[j]!, proof[k]!];
          } else if (how === "index") index = (index + 1 + where) % (size + 2);
          else if (how === "size") treeSize = Math.max(0, size + (where % 5) - 2);
          else if (how === "root") root = toHex(leaves[0]!);
          else if (how === "leaf") leaf = leaves[(index + 1) % size]!;
          const result = expectSame(index, treeSize, leaf, proof, root);
          if (how === "none") expect(result).to.equal("ok");
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("nodes or roots that are not lowercase hex of 32 bytes are BAD_NODE_LENGTH", () => {
    const leaves = Array.from({ length: 5 }, (_, i) => new Uint8Array(32).fill(i));
    const tree = buildTree(leaves);
    const proof = tree.inclusionProof(2).map(toHex);
    const root = toHex(tree.root);
    verifyInclusionHex(2, 5, leaves[2]!, proof, root);
    const bad = [
      proof[0]!.toUpperCase(),
      proof[0]!.slice(0, -2),
      `${proof[0]!}00`,
      proof[0]!.slice(2),
      `${proof[0]!.slice(0, -1)}g`,
      1 as unknown as string,
    ];
    for (const node of bad) {
      const tampered = [node, ...proof.slice(1)];
      expect(outcome(() => verifyInclusionHex(2, 5, leaves[2]!, tampered, root))).to.equal(
        "MerkleArgumentError BAD_NODE_LENGTH",
      );
      expect(outcome(() => verifyInclusionHex(2, 5, leaves[2]!, proof, node))).to.equal(
        "MerkleArgumentError BAD_NODE_LENGTH",
      );
    }
    expect(
      outcome(() => rootFromInclusionHex(2, 5, leaves[2]!, "x" as unknown as string[])),
    ).to.equal("MerkleArgumentError BAD_NODE_LENGTH");
  });

  it("returns fresh arrays: a path of no nodes gives a copy of the leaf hash", () => {
    const leaf = new Uint8Array(32).fill(7);
    const root = rootFromInclusionHex(0, 1, leaf, []);
    expect(root).to.deep.equal(leaf);
    expect(root).to.not.equal(leaf);
    const viaBytes = rootFromInclusion(0, 1, leaf, []);
    expect(viaBytes).to.not.equal(leaf);
  });

  it("paths longer than the reused buffer (tree sizes up to 2^53)", () => {
    const leaf = new Uint8Array(32).fill(1);
    const proof = Array.from({ length: 80 }, (_, i) => toHex(new Uint8Array(32).fill(i)));
    const size = Number.MAX_SAFE_INTEGER;
    expect(outcome(() => rootFromInclusionHex(size - 1, size, leaf, proof))).to.equal(
      outcome(() => rootFromInclusion(size - 1, size, leaf, proof.map(fromHex))),
    );
    const short = proof.slice(0, 53);
    expect(outcome(() => rootFromInclusionHex(size - 1, size, leaf, short))).to.equal(
      outcome(() => rootFromInclusion(size - 1, size, leaf, short.map(fromHex))),
    );
  });
});

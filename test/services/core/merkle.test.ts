import { readFileSync } from "node:fs";
import { expect } from "chai";
import fc from "fast-check";
import { z } from "zod";
import { sha256 } from "../../../services/core/hash.ts";
import { bytesEqual, concatBytes, fromHex, toHex, utf8 } from "../../../services/core/hex.ts";
import {
  MerkleArgumentError,
  MerkleProofError,
  buildTree,
  emptyRoot,
  inclusionProofNodeIds,
  leafHash,
  nodeHash,
  rootFromInclusion,
  verifyInclusion,
} from "../../../services/core/merkle.ts";
import type {
  MerkleArgumentErrorCode,
  MerkleProofErrorCode,
  MerkleTree,
} from "../../../services/core/merkle.ts";
import { merkletreejsDisagreements } from "../../../bench/merkle-builders.ts";
import { seededRandom } from "../../support/seeded-random.ts";

// ---------- vectors ----------

const hex = z.string().regex(/^0x(?:[0-9a-f]{2})*$/);

function loadVectors<T extends z.ZodType>(name: string, schema: T): z.infer<T> {
  const url = new URL(`../../vectors/merkle/${name}`, import.meta.url);
  return schema.parse(JSON.parse(readFileSync(url, "utf8")));
}

const hasherVectors = loadVectors(
  "rfc6962-hasher.json",
  z.object({
    source: z.string(),
    cases: z.array(
      z.discriminatedUnion("kind", [
        z.object({ desc: z.string(), kind: z.literal("emptyRoot"), want: hex }),
        z.object({ desc: z.string(), kind: z.literal("leaf"), entry: hex, want: hex }),
        z.object({ desc: z.string(), kind: z.literal("node"), left: hex, right: hex, want: hex }),
      ]),
    ),
  }),
);

const referenceTree = loadVectors(
  "reference-tree.json",
  z.object({
    source: z.string(),
    leafInputs: z.array(hex).length(8),
    nodeHashes: z.array(z.array(hex)),
    rootsBySize: z.array(z.object({ desc: z.string(), size: z.number(), root: hex })).length(9),
  }),
);

const knownProofs = loadVectors(
  "inclusion-proofs.json",
  z.object({
    source: z.string(),
    cases: z.array(
      z.object({
        desc: z.string(),
        leafIndex: z.number(),
        treeSize: z.number(),
        leafInput: hex,
        proof: z.array(hex),
        root: hex,
      }),
    ),
  }),
);

const upstreamProbes = loadVectors(
  "upstream-inclusion-probes.json",
  z.object({
    source: z.string(),
    cases: z.array(
      z.object({
        desc: z.string(),
        leafIndex: z.number(),
        treeSize: z.number(),
        leafHash: hex,
        proof: z.array(hex),
        root: hex,
        wantErr: z.boolean(),
      }),
    ),
  }),
);

const nodeId = z.object({ level: z.number(), index: z.number() });
const nodeIdVectors = loadVectors(
  "node-ids.json",
  z.object({
    source: z.string(),
    cases: z.array(
      z.union([
        z.object({ desc: z.string(), index: z.number(), size: z.number(), want: z.array(nodeId) }),
        z.object({
          desc: z.string(),
          index: z.number(),
          size: z.number(),
          wantErr: z.literal("BAD_INDEX"),
        }),
      ]),
    ),
  }),
);

const proofCodes = [
  "EMPTY_TREE",
  "INDEX_OUT_OF_RANGE",
  "PATH_TOO_LONG",
  "PATH_TOO_SHORT",
  "ROOT_MISMATCH",
] as const satisfies readonly MerkleProofErrorCode[];
const argumentCodes = [
  "BAD_INDEX",
  "BAD_SIZE",
  "BAD_NODE_LENGTH",
] as const satisfies readonly MerkleArgumentErrorCode[];

const brokenVectors = loadVectors(
  "broken.json",
  z.object({
    source: z.string(),
    cases: z.array(
      z.union([
        z.object({
          desc: z.string(),
          leafIndex: z.number(),
          treeSize: z.number(),
          leafHash: hex,
          proof: z.array(hex),
          root: hex,
          errorKind: z.literal("proof"),
          wantErr: z.enum(proofCodes),
        }),
        z.object({
          desc: z.string(),
          leafIndex: z.number(),
          treeSize: z.number(),
          leafHash: hex,
          proof: z.array(hex),
          root: hex,
          errorKind: z.literal("argument"),
          wantErr: z.enum(argumentCodes),
        }),
      ]),
    ),
  }),
);

// ---------- reference implementation (STYLE.md §10) ----------

// RFC 9162 §2.1.1 MTH and §2.1.3.1 PATH, written straight from the RFC's recursive definitions
// over leaves[lo, hi) of leaf hashes, sharing no code with merkle.ts apart from SHA-256. MTH is
// memoised per leaf array (a pure function, so caching cannot change an answer): comparing every
// prefix size then costs the builder's hashing, not the reference's.
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
const mthMemo = new WeakMap<readonly Uint8Array[], Map<string, Uint8Array>>();
function referenceMth(leaves: readonly Uint8Array[], lo: number, hi: number): Uint8Array {
  if (hi - lo === 0) return sha256(new Uint8Array(0));
  if (hi - lo === 1) return leaves[lo]!;
  const memo = mthMemo.get(leaves) ?? new Map<string, Uint8Array>();
  mthMemo.set(leaves, memo);
  const k = lo + largestPowerOfTwoBelow(hi - lo);
  const hash =
    memo.get(`${lo}:${hi}`) ??
    sha256(Uint8Array.of(1), referenceMth(leaves, lo, k), referenceMth(leaves, k, hi));
  memo.set(`${lo}:${hi}`, hash);
  return hash;
}
function referencePath(
  m: number,
  leaves: readonly Uint8Array[],
  lo: number,
  hi: number,
): Uint8Array[] {
  if (hi - lo <= 1) return [];
  const k = lo + largestPowerOfTwoBelow(hi - lo);
  if (m < k) return [...referencePath(m, leaves, lo, k), referenceMth(leaves, k, hi)];
  return [...referencePath(m, leaves, k, hi), referenceMth(leaves, lo, k)];
}
function referenceRoot(leaves: readonly Uint8Array[]): Uint8Array {
  return referenceMth(leaves, 0, leaves.length);
}
/** Side of each audit-path sibling, leaf to root ("R": sibling on the right). No hashing. */
function referenceShape(m: number, n: number): string {
  if (n <= 1) return "";
  const k = largestPowerOfTwoBelow(n);
  return m < k ? referenceShape(m, k) + "R" : referenceShape(m - k, n - k) + "L";
}

// ---------- helpers ----------

function entriesFor(count: number, tag: string): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => utf8(`${tag}:${i}`));
}

/** Runs fn and returns what it threw; fails the test if it did not throw. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  expect.fail("expected a throw");
}

function expectProofError(fn: () => unknown, code: MerkleProofErrorCode): void {
  const err = thrownBy(fn);
  expect(err).to.be.instanceOf(MerkleProofError);
  expect((err as MerkleProofError).code).to.equal(code);
}

function expectArgumentError(fn: () => unknown, code: MerkleArgumentErrorCode): void {
  const err = thrownBy(fn);
  expect(err).to.be.instanceOf(MerkleArgumentError);
  expect(err).to.be.instanceOf(TypeError);
  expect((err as MerkleArgumentError).code).to.equal(code);
}

function flipBits(bytes: Uint8Array, at: number, mask: number): void {
  bytes[at] = bytes[at]! ^ mask;
}

// ---------- tests ----------

describe("core/merkle", () => {
  describe("RFC 6962 hasher vectors (transparency-dev/merkle)", () => {
    for (const tc of hasherVectors.cases) {
      it(tc.desc, () => {
        const got =
          tc.kind === "emptyRoot"
            ? emptyRoot()
            : tc.kind === "leaf"
              ? leafHash(fromHex(tc.entry))
              : nodeHash(fromHex(tc.left), fromHex(tc.right));
        expect(toHex(got)).to.equal(tc.want);
      });
    }

    it("separates leaves from nodes: a 64-byte entry left||right does not hash to node(left, right)", () => {
      const left = leafHash(utf8("Hello"));
      const right = leafHash(utf8("World"));
      expect(bytesEqual(left, right)).to.equal(false);
      const node = nodeHash(left, right);
      expect(bytesEqual(node, leafHash(concatBytes(left, right)))).to.equal(false);
      expect(bytesEqual(node, nodeHash(right, left))).to.equal(false);
      expect(toHex(node)).to.equal(toHex(sha256(Uint8Array.of(1), left, right)));
    });

    it("emptyRoot returns a fresh array each time", () => {
      const a = emptyRoot();
      a[0] = 0;
      expect(toHex(emptyRoot())).to.equal(hasherVectors.cases[0]!.want);
    });
  });

  /** Leaf hashes of the eight upstream leaf inputs. */
  const upstreamLeaves = () => referenceTree.leafInputs.map((h) => leafHash(fromHex(h)));

  describe("reference tree vectors (transparency-dev/merkle testonly)", () => {
    for (const { desc, size, root } of referenceTree.rootsBySize) {
      it(`buildTree: ${desc}`, () => {
        expect(toHex(buildTree(upstreamLeaves().slice(0, size)).root)).to.equal(root);
      });
    }

    it("stores every complete subtree hash at its level and index", () => {
      const leaves = upstreamLeaves();
      for (let size = 1; size <= 8; size++) {
        const { levels } = buildTree(leaves.slice(0, size));
        referenceTree.nodeHashes.forEach((level, l) =>
          level.forEach((want, i) => {
            // Only subtrees entirely inside the first `size` leaves exist in this tree.
            if ((i + 1) * 2 ** l <= size) expect(toHex(levels[l]![i]!)).to.equal(want);
          }),
        );
      }
      const full = buildTree(leaves).levels.map((level) => level.map(toHex));
      expect(full).to.deep.equal(referenceTree.nodeHashes);
    });
  });

  describe("known audit paths (transparency-dev/merkle proofgen)", () => {
    for (const tc of knownProofs.cases) {
      it(tc.desc, () => {
        const tree = buildTree(upstreamLeaves().slice(0, tc.treeSize));
        expect(toHex(tree.root)).to.equal(tc.root);
        expect(tree.inclusionProof(tc.leafIndex).map(toHex)).to.deep.equal(tc.proof);
        const leaf = leafHash(fromHex(tc.leafInput));
        const proof = tc.proof.map(fromHex);
        expect(toHex(rootFromInclusion(tc.leafIndex, tc.treeSize, leaf, proof))).to.equal(tc.root);
        verifyInclusion(tc.leafIndex, tc.treeSize, leaf, proof, fromHex(tc.root));
      });
    }
  });

  describe("upstream inclusion probes (transparency-dev/merkle testdata/inclusion)", () => {
    it("has the 98 upstream probes, 6 of them valid", () => {
      expect(upstreamProbes.cases).to.have.length(98);
      expect(upstreamProbes.cases.filter((c) => !c.wantErr)).to.have.length(6);
    });
    for (const tc of upstreamProbes.cases) {
      it(`${tc.desc} -> ${tc.wantErr ? "rejected" : "accepted"}`, () => {
        const run = () =>
          verifyInclusion(
            tc.leafIndex,
            tc.treeSize,
            fromHex(tc.leafHash),
            tc.proof.map(fromHex),
            fromHex(tc.root),
          );
        if (!tc.wantErr) {
          run();
          return;
        }
        const err = thrownBy(run);
        // Whatever the failure, it is one of ours with a code, never a stray exception.
        expect(err instanceof MerkleProofError || err instanceof MerkleArgumentError).to.equal(
          true,
        );
      });
    }
  });

  describe("inclusionProofNodeIds (node-ids.json)", () => {
    for (const tc of nodeIdVectors.cases) {
      it(tc.desc, () => {
        if ("wantErr" in tc) {
          expectArgumentError(() => inclusionProofNodeIds(tc.index, tc.size), tc.wantErr);
        } else {
          expect(inclusionProofNodeIds(tc.index, tc.size)).to.deep.equal(tc.want);
        }
      });
    }

    it("rejects non-integer, negative and unsafe arguments", () => {
      expectArgumentError(() => inclusionProofNodeIds(0.5, 4), "BAD_INDEX");
      expectArgumentError(() => inclusionProofNodeIds(-1, 4), "BAD_INDEX");
      expectArgumentError(() => inclusionProofNodeIds(Number.NaN, 4), "BAD_INDEX");
      expectArgumentError(() => inclusionProofNodeIds(0, -4), "BAD_SIZE");
      expectArgumentError(() => inclusionProofNodeIds(0, 2 ** 53), "BAD_SIZE");
      expectArgumentError(() => inclusionProofNodeIds(0, Infinity), "BAD_SIZE");
    });

    it("matches the RFC path shape for sizes beyond 2^32 (no 32-bit bit operators)", () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          (size, fraction) => {
            const index = Math.min(size - 1, Math.floor(fraction * size));
            const ids = inclusionProofNodeIds(index, size);
            const shape = ids
              .map((id) => (id.index < Math.floor(index / 2 ** id.level) ? "L" : "R"))
              .join("");
            expect(shape).to.equal(referenceShape(index, size));
            ids.forEach((id, k) => {
              if (k > 0) expect(id.level).to.be.greaterThan(ids[k - 1]!.level);
              expect(id.index).to.be.below(Math.ceil(size / 2 ** id.level));
            });
            // The verifier agrees on the path length for the same (index, size).
            const path = ids.map(() => new Uint8Array(32));
            rootFromInclusion(index, size, new Uint8Array(32), path);
            expectProofError(
              () =>
                rootFromInclusion(index, size, new Uint8Array(32), [...path, new Uint8Array(32)]),
              "PATH_TOO_LONG",
            );
            if (path.length > 0) {
              expectProofError(
                () => rootFromInclusion(index, size, new Uint8Array(32), path.slice(1)),
                "PATH_TOO_SHORT",
              );
            }
          },
        ),
        { numRuns: 500 },
      );
    });
  });

  describe("broken proofs (broken.json)", () => {
    it("covers every error code", () => {
      const seen = new Set(brokenVectors.cases.map((c) => c.wantErr));
      for (const code of [...proofCodes, ...argumentCodes])
        expect(seen.has(code), code).to.equal(true);
    });
    for (const tc of brokenVectors.cases) {
      it(`${tc.desc} -> ${tc.wantErr}`, () => {
        const leaf = fromHex(tc.leafHash);
        const proof = tc.proof.map(fromHex);
        const root = fromHex(tc.root);
        const run = () => verifyInclusion(tc.leafIndex, tc.treeSize, leaf, proof, root);
        if (tc.errorKind === "proof") expectProofError(run, tc.wantErr);
        else expectArgumentError(run, tc.wantErr);
      });
    }
  });

  describe("buildTree", () => {
    it("empty tree: root is SHA-256(''), one empty level, no proofs", () => {
      const tree = buildTree([]);
      expect(tree.size).to.equal(0);
      expect(toHex(tree.root)).to.equal(toHex(emptyRoot()));
      expect(tree.levels).to.deep.equal([[]]);
      expectArgumentError(() => tree.inclusionProof(0), "BAD_INDEX");
    });

    it("rejects leaf hashes that are not 32 bytes", () => {
      expectArgumentError(
        () => buildTree([new Uint8Array(32), new Uint8Array(31)]),
        "BAD_NODE_LENGTH",
      );
      expectArgumentError(() => buildTree([new Uint8Array(33)]), "BAD_NODE_LENGTH");
    });

    it("level k holds ceil(size / 2^k) nodes; carried nodes are the same bytes, not rehashed", () => {
      const leaves = entriesFor(13, "shape").map(leafHash);
      const { levels } = buildTree(leaves);
      expect(levels.map((l) => l.length)).to.deep.equal([13, 7, 4, 2, 1]);
      // Leaf 12 is the odd one out at level 0 and level 1, then pairs at level 2.
      expect(toHex(levels[1]![6]!)).to.equal(toHex(leaves[12]!));
      expect(toHex(levels[2]![3]!)).to.equal(toHex(leaves[12]!));
    });

    it("inclusionProof returns copies: mutating a proof does not change the tree", () => {
      const tree = buildTree(entriesFor(5, "copy").map(leafHash));
      const proof = tree.inclusionProof(0);
      flipBits(proof[0]!, 0, 0xff);
      verifyInclusion(0, 5, tree.levels[0]![0]!, tree.inclusionProof(0), tree.root);
    });

    it("matches the recursive reference root for every size 0..2000", function () {
      this.timeout(60_000);
      const leaves = entriesFor(2000, "root").map(leafHash);
      for (let size = 0; size <= 2000; size++) {
        const tree = buildTree(leaves.slice(0, size));
        if (!bytesEqual(tree.root, referenceMth(leaves, 0, size))) {
          expect.fail(`root differs at size ${size}`);
        }
        expect(tree.size).to.equal(size);
      }
    });

    it("matches the reference audit path for every leaf of sizes 1..130", function () {
      this.timeout(60_000);
      const leaves = entriesFor(130, "path").map(leafHash);
      for (let size = 1; size <= 130; size++) {
        const slice = leaves.slice(0, size);
        const tree = buildTree(slice);
        for (let i = 0; i < size; i++) {
          const want = referencePath(i, leaves, 0, size);
          const got = tree.inclusionProof(i);
          if (got.length !== want.length || got.some((n, k) => !bytesEqual(n, want[k]!))) {
            expect.fail(`path differs at size ${size}, leaf ${i}`);
          }
          verifyInclusion(i, size, slice[i]!, got, tree.root);
        }
      }
    });

    it("matches the reference audit path for sampled leaves of sizes 131..2000", function () {
      this.timeout(60_000);
      const random = seededRandom(9162);
      const leaves = entriesFor(2000, "sample").map(leafHash);
      const sizes = new Set<number>();
      for (let size = 131; size <= 2000; size += 17) sizes.add(size);
      for (let p = 256; p <= 2000; p *= 2) [p - 1, p, p + 1].forEach((s) => sizes.add(s));
      sizes.add(2000);
      for (const size of sizes) {
        const slice = leaves.slice(0, size);
        const tree = buildTree(slice);
        const indices = [0, size - 1, Math.floor(random() * size), Math.floor(random() * size)];
        for (const i of indices) {
          const want = referencePath(i, leaves, 0, size);
          const got = tree.inclusionProof(i);
          expect(got.map(toHex), `size ${size}, leaf ${i}`).to.deep.equal(want.map(toHex));
          verifyInclusion(i, size, slice[i]!, got, tree.root);
        }
      }
    });
  });

  describe("verifyInclusion arguments vs proof failures", () => {
    let leaves: Uint8Array[];
    let tree: MerkleTree;
    let proof: Uint8Array[];
    before(() => {
      leaves = entriesFor(6, "args").map(leafHash);
      tree = buildTree(leaves);
      proof = tree.inclusionProof(2);
    });

    it("accepts a valid proof and returns nothing", () => {
      expect(verifyInclusion(2, 6, leaves[2]!, proof, tree.root)).to.equal(undefined);
    });

    it("argument errors are MerkleArgumentError (a TypeError), not MerkleProofError", () => {
      expectArgumentError(() => verifyInclusion(2.5, 6, leaves[2]!, proof, tree.root), "BAD_INDEX");
      expectArgumentError(() => verifyInclusion(2, -6, leaves[2]!, proof, tree.root), "BAD_SIZE");
      expectArgumentError(() => verifyInclusion(2, 6.1, leaves[2]!, proof, tree.root), "BAD_SIZE");
      expectArgumentError(
        () => verifyInclusion(2, 6, leaves[2]!, [...proof, new Uint8Array(0)], tree.root),
        "BAD_NODE_LENGTH",
      );
      expectArgumentError(
        () => verifyInclusion(2, 6, leaves[2]!, proof, tree.root.subarray(1)),
        "BAD_NODE_LENGTH",
      );
      const notBytes = "0x" + "00".repeat(32);
      expectArgumentError(
        () => verifyInclusion(2, 6, notBytes as unknown as Uint8Array, proof, tree.root),
        "BAD_NODE_LENGTH",
      );
    });

    it("tree size is not self-authenticating: take it from the anchored batch header", () => {
      // (index 0, size 5) and (index 0, size 6) walk the same left/right shape, so a size-5 proof
      // also passes as size 6; only an authenticated size (batch.count on-chain) pins it down.
      expect(referenceShape(0, 5)).to.equal(referenceShape(0, 6));
      const five = buildTree(leaves.slice(0, 5));
      verifyInclusion(0, 6, leaves[0]!, five.inclusionProof(0), five.root);
      // Likewise an internal node verifies as a leaf of a smaller claimed tree; the verifier must
      // compute the leaf hash itself from the entry (0x00 prefix) rather than accept one.
      const eight = buildTree(entriesFor(8, "confusion").map(leafHash));
      const internal = eight.levels[1]![0]!;
      verifyInclusion(0, 4, internal, [eight.levels[1]![1]!, eight.levels[2]![1]!], eight.root);
      expectProofError(
        () =>
          verifyInclusion(0, 8, internal, [eight.levels[1]![1]!, eight.levels[2]![1]!], eight.root),
        "PATH_TOO_SHORT",
      );
    });
  });

  describe("merkletreejs with RFC 9162 options (bench/merkle-builders.ts)", () => {
    it("agrees with buildTree on every root for sizes 1..300 and every audit path up to 64", () => {
      // Size 0 is the one difference: merkletreejs gives an empty buffer, RFC 9162 SHA-256("").
      expect(merkletreejsDisagreements(300)).to.deep.equal([0]);
    });
  });

  describe("properties (fast-check)", () => {
    const entrySets = fc.array(fc.uint8Array({ maxLength: 48 }), { minLength: 1, maxLength: 70 });
    /** A tree, one of its leaves and that leaf's valid proof. */
    const treeAndLeaf = entrySets.chain((entries) =>
      fc.record({
        entries: fc.constant(entries),
        index: fc.nat({ max: entries.length - 1 }),
      }),
    );
    const prepare = ({ entries, index }: { entries: Uint8Array[]; index: number }) => {
      const leaves = entries.map(leafHash);
      const tree = buildTree(leaves);
      return {
        leaves,
        tree,
        index,
        size: leaves.length,
        leaf: leaves[index]!,
        proof: tree.inclusionProof(index),
      };
    };

    it("every leaf's proof verifies and the root equals the reference", () => {
      fc.assert(
        fc.property(entrySets, (entries) => {
          const leaves = entries.map(leafHash);
          const tree = buildTree(leaves);
          expect(toHex(tree.root)).to.equal(toHex(referenceRoot(leaves)));
          leaves.forEach((leaf, i) => {
            const proof = tree.inclusionProof(i);
            verifyInclusion(i, leaves.length, leaf, proof, tree.root);
            expect(toHex(rootFromInclusion(i, leaves.length, leaf, proof))).to.equal(
              toHex(tree.root),
            );
          });
        }),
        { numRuns: 150 },
      );
    });

    it("flipping bits in any byte of any path node fails with ROOT_MISMATCH", () => {
      fc.assert(
        fc.property(
          treeAndLeaf.filter(({ entries }) => entries.length > 1),
          fc.nat(),
          fc.nat({ max: 31 }),
          fc.integer({ min: 1, max: 255 }),
          (input, nodePick, byte, mask) => {
            const { tree, index, size, leaf, proof } = prepare(input);
            const k = nodePick % proof.length;
            flipBits(proof[k]!, byte, mask);
            expectProofError(
              () => verifyInclusion(index, size, leaf, proof, tree.root),
              "ROOT_MISMATCH",
            );
          },
        ),
        { numRuns: 300 },
      );
    });

    it("flipping bits in the leaf hash or the root fails with ROOT_MISMATCH", () => {
      fc.assert(
        fc.property(
          treeAndLeaf,
          fc.boolean(),
          fc.nat({ max: 31 }),
          fc.integer({ min: 1, max: 255 }),
          (input, inLeaf, byte, mask) => {
            const { tree, index, size, leaf, proof } = prepare(input);
            const target = (inLeaf ? leaf : tree.root).slice();
            flipBits(target, byte, mask);
            const run = inLeaf
              ? () => verifyInclusion(index, size, target, proof, tree.root)
              : () => verifyInclusion(index, size, leaf, proof, target);
            expectProofError(run, "ROOT_MISMATCH");
          },
        ),
        { numRuns: 200 },
      );
    });

    it("dropping any node fails with PATH_TOO_SHORT, inserting one with PATH_TOO_LONG", () => {
      fc.assert(
        fc.property(
          treeAndLeaf,
          fc.nat(),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          (input, at, extra) => {
            const { tree, index, size, leaf, proof } = prepare(input);
            const longer = [...proof];
            longer.splice(at % (proof.length + 1), 0, extra);
            expectProofError(
              () => verifyInclusion(index, size, leaf, longer, tree.root),
              "PATH_TOO_LONG",
            );
            if (proof.length > 0) {
              const shorter = proof.filter((_, k) => k !== at % proof.length);
              expectProofError(
                () => verifyInclusion(index, size, leaf, shorter, tree.root),
                "PATH_TOO_SHORT",
              );
            }
          },
        ),
        { numRuns: 300 },
      );
    });

    it("a changed index fails (out of range, wrong path length, or root mismatch)", () => {
      fc.assert(
        fc.property(treeAndLeaf, fc.nat({ max: 200 }), (input, otherIndex) => {
          const { tree, leaves, index, size, leaf, proof } = prepare(input);
          fc.pre(otherIndex !== index);
          // Two equal leaves that are siblings share a path: the proof is then genuinely valid
          // at either index (the tree holds that leaf at both), so such sets prove nothing here.
          const other = leaves[otherIndex];
          fc.pre(other === undefined || !bytesEqual(other, leaf));
          const run = () => verifyInclusion(otherIndex, size, leaf, proof, tree.root);
          if (otherIndex >= size) return expectProofError(run, "INDEX_OUT_OF_RANGE");
          // Within one size the left/right shape encodes the index, so it must differ.
          const shape = referenceShape(otherIndex, size);
          expect(shape).to.not.equal(referenceShape(index, size));
          if (shape.length < proof.length) expectProofError(run, "PATH_TOO_LONG");
          else if (shape.length > proof.length) expectProofError(run, "PATH_TOO_SHORT");
          else expectProofError(run, "ROOT_MISMATCH");
        }),
        { numRuns: 300 },
      );
    });

    it("a changed size fails unless it walks exactly the same path shape", () => {
      fc.assert(
        fc.property(
          treeAndLeaf,
          fc.oneof(fc.integer({ min: 0, max: 160 }), fc.integer({ min: 0, max: 2 ** 40 })),
          (input, otherSize) => {
            const { tree, index, size, leaf, proof } = prepare(input);
            fc.pre(otherSize !== size);
            const run = () => verifyInclusion(index, otherSize, leaf, proof, tree.root);
            if (otherSize === 0) return expectProofError(run, "EMPTY_TREE");
            if (index >= otherSize) return expectProofError(run, "INDEX_OUT_OF_RANGE");
            const shape = referenceShape(index, otherSize);
            if (shape === referenceShape(index, size)) return run(); // same hashing steps, see above
            if (shape.length < proof.length) expectProofError(run, "PATH_TOO_LONG");
            else if (shape.length > proof.length) expectProofError(run, "PATH_TOO_SHORT");
            else expectProofError(run, "ROOT_MISMATCH");
          },
        ),
        { numRuns: 300 },
      );
    });

    it("a proof for one leaf does not verify another leaf's hash", () => {
      fc.assert(
        fc.property(treeAndLeaf, fc.nat(), (input, pick) => {
          const { leaves, tree, index, size, proof } = prepare(input);
          const other = leaves[pick % size]!;
          fc.pre(!bytesEqual(other, leaves[index]!));
          expectProofError(
            () => verifyInclusion(index, size, other, proof, tree.root),
            "ROOT_MISMATCH",
          );
        }),
        { numRuns: 200 },
      );
    });
  });
});

import { expect } from "chai";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { sha256 } from "../../../services/core/hash.ts";
import { bytesEqual, concatBytes, fromHex, toHex } from "../../../services/core/hex.ts";
import {
  EMPTY_ROOT,
  MemoryNodeStore,
  applyUpdates,
  decodeNodePath,
  decodeSmtNode,
  encodeNodePath,
  encodeSmtNode,
  extendChain,
  extendHistory,
  historyChain,
  historyValueHash,
  internalNodeHash,
  keyPath,
  leafNodeHash,
  proveKey,
} from "../../../services/core/subject-index.ts";
import type {
  NodePath,
  NodeReader,
  SmtNode,
  SmtUpdate,
} from "../../../services/core/subject-index.ts";
import {
  SubjectIndexProofError,
  subjectIndexProofFromJson,
  subjectIndexProofToJson,
  verifyCompleteness,
  verifySubjectIndexProof,
} from "../../../services/core/subject-index-proof.ts";
import type {
  SubjectIndexClaim,
  SubjectIndexProof,
} from "../../../services/core/subject-index-proof.ts";
import { seededBytes, seededRandom } from "../../support/seeded-random.ts";

// ---------------------------------------------------------------------------------------------
// Reference: the map's definition written out recursively, independent of the optimised code.

const ZERO = new Uint8Array(32);

function bitsOf(key: Uint8Array): string {
  return Array.from(key, (b) => b.toString(2).padStart(8, "0")).join("");
}

type Model = Map<string, Uint8Array>; // hex key -> valueHash

/** Root and every stored node of the map holding `model`, rebuilt from scratch. */
function reference(model: Model): { root: Uint8Array; nodes: Map<NodePath, SmtNode> } {
  const nodes = new Map<NodePath, SmtNode>();
  const entries = [...model].map(([k, v]) => ({ key: fromHex(k), bits: "", valueHash: v }));
  for (const e of entries) e.bits = bitsOf(e.key);
  const build = (path: string, group: typeof entries): Uint8Array => {
    if (group.length === 0) return ZERO;
    if (group.length === 1) {
      const { key, valueHash } = group[0]!;
      nodes.set(path, { kind: "leaf", key, valueHash });
      return sha256(concatBytes(Uint8Array.of(2), key, valueHash));
    }
    const depth = path.length;
    const left = build(
      path + "0",
      group.filter((e) => e.bits[depth] === "0"),
    );
    const right = build(
      path + "1",
      group.filter((e) => e.bits[depth] === "1"),
    );
    nodes.set(path, { kind: "internal", left, right });
    return sha256(concatBytes(Uint8Array.of(3), left, right));
  };
  return { root: build("", entries), nodes };
}

function expectStoreMatches(store: MemoryNodeStore, model: Model): void {
  const ref = reference(model);
  expect(toHex(store.root)).to.equal(toHex(ref.root));
  const stored = new Map([...store.entries()].map(([p, n]) => [p, toHex(encodeSmtNode(n))]));
  const wanted = new Map([...ref.nodes].map(([p, n]) => [p, toHex(encodeSmtNode(n))]));
  expect(stored).to.deep.equal(wanted);
}

// ---------------------------------------------------------------------------------------------
// Generators

function keyWith(first: number, last: number): Uint8Array {
  const key = new Uint8Array(32);
  key[0] = first;
  key[31] = last;
  return key;
}

/** Random keys, plus keys sharing long prefixes (deep chains, leaves down to depth 256). */
const keyArb = fc.oneof(
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc
    .tuple(fc.constantFrom(0x00, 0x40, 0x80, 0xc0), fc.integer({ min: 0, max: 255 }))
    .map(([first, last]) => keyWith(first, last)),
  fc.integer({ min: 0, max: 15 }).map((n) => keyWith(n << 4, 0)),
);

const poolArb = fc.uniqueArray(keyArb, { minLength: 1, maxLength: 24, selector: toHex });

/** Batches of (pool index, value or removal). */
const batchesArb = fc.array(
  fc.array(
    fc.record({
      index: fc.nat(),
      value: fc.option(fc.integer({ min: 1, max: 255 }), { freq: 5, nil: null }),
    }),
    { maxLength: 12 },
  ),
  { minLength: 1, maxLength: 6 },
);

function batchUpdates(
  pool: Uint8Array[],
  batch: Array<{ index: number; value: number | null }>,
): SmtUpdate[] {
  const byKey = new Map<string, SmtUpdate>();
  for (const { index, value } of batch) {
    const key = pool[index % pool.length]!;
    byKey.set(toHex(key), {
      key,
      valueHash: value === null ? null : new Uint8Array(32).fill(value),
    });
  }
  return [...byKey.values()];
}

function applyToModel(model: Model, updates: SmtUpdate[]): void {
  for (const u of updates) {
    if (u.valueHash === null) model.delete(toHex(u.key));
    else model.set(toHex(u.key), u.valueHash);
  }
}

function claimOf(root: Uint8Array, key: Uint8Array, proof: SubjectIndexProof): SubjectIndexClaim {
  return verifySubjectIndexProof(root, key, proof);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof SubjectIndexProofError) return err.code;
    throw err;
  }
  return undefined;
}

function copyProof(proof: SubjectIndexProof): SubjectIndexProof {
  return {
    siblings: proof.siblings.map((s) => s.slice()),
    leaf:
      proof.leaf === null
        ? null
        : { key: proof.leaf.key.slice(), valueHash: proof.leaf.valueHash.slice() },
  };
}

// ---------------------------------------------------------------------------------------------

describe("core/subject-index", () => {
  describe("byte formats", () => {
    it("hashes leaves, internal nodes and values with their own prefixes", () => {
      const key = new Uint8Array(32).fill(0xaa);
      const value = new Uint8Array(32).fill(0xbb);
      expect(toHex(leafNodeHash(key, value))).to.equal(
        toHex(sha256(concatBytes(Uint8Array.of(2), key, value))),
      );
      expect(toHex(internalNodeHash(key, value))).to.equal(
        toHex(sha256(concatBytes(Uint8Array.of(3), key, value))),
      );
      const count = Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 2); // 2^32 + 2
      expect(toHex(historyValueHash(2 ** 32 + 2, value))).to.equal(
        toHex(sha256(concatBytes(Uint8Array.of(4), count, value))),
      );
      expect(toHex(EMPTY_ROOT)).to.equal(toHex(ZERO));
    });

    it("chains (seq, leafHash) from 32 zero bytes", () => {
      const a = new Uint8Array(32).fill(1);
      const b = new Uint8Array(32).fill(2);
      const c1 = sha256(concatBytes(ZERO, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 7), a));
      const c2 = sha256(concatBytes(c1, Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 0), b));
      expect(toHex(extendChain(ZERO, 7, a))).to.equal(toHex(c1));
      const history = historyChain([
        { seq: 7, leafHash: a },
        { seq: 256, leafHash: b },
      ]);
      expect(history.count).to.equal(2);
      expect(toHex(history.chain)).to.equal(toHex(c2));
      expect(historyChain([])).to.deep.equal({ count: 0, chain: ZERO });
    });

    it("extends a history batch by batch to the same digest as chaining it whole", () => {
      const next = seededRandom(5);
      const events = Array.from({ length: 40 }, (_, i) => ({
        seq: i * 3 + Math.floor(next() * 3),
        leafHash: seededBytes(next, 32),
      }));
      const whole = historyChain(events);
      let digest = historyChain([]);
      for (let i = 0; i < events.length; i += 7)
        digest = extendHistory(digest, events.slice(i, i + 7));
      expect(digest.count).to.equal(40);
      expect(toHex(digest.chain)).to.equal(toHex(whole.chain));
      expect(() => extendHistory(digest, [events[1]!, events[0]!])).to.throw(RangeError);
    });

    it("rejects unsorted, repeated and malformed history events", () => {
      const h = new Uint8Array(32);
      expect(() =>
        historyChain([
          { seq: 2, leafHash: h },
          { seq: 1, leafHash: h },
        ]),
      ).to.throw(RangeError);
      expect(() =>
        historyChain([
          { seq: 1, leafHash: h },
          { seq: 1, leafHash: h },
        ]),
      ).to.throw(RangeError);
      expect(() => historyChain([{ seq: -1, leafHash: h }])).to.throw(RangeError);
      expect(() => historyChain([{ seq: 1.5, leafHash: h }])).to.throw(RangeError);
      expect(() => historyChain([{ seq: 0, leafHash: new Uint8Array(31) }])).to.throw(TypeError);
      expect(() => historyValueHash(-1, ZERO)).to.throw(RangeError);
    });

    it("round-trips node paths through their compact encoding", () => {
      fc.assert(
        fc.property(fc.string({ unit: fc.constantFrom("0", "1"), maxLength: 256 }), (path) => {
          const bytes = encodeNodePath(path);
          expect(bytes.length).to.equal(2 + Math.ceil(path.length / 8));
          expect(decodeNodePath(bytes)).to.equal(path);
        }),
      );
      expect(toHex(encodeNodePath(""))).to.equal("0x0000");
      expect(toHex(encodeNodePath("101"))).to.equal("0x0003a0");
      expect(encodeNodePath("1".repeat(256)).length).to.equal(34);
      expect(() => encodeNodePath("012")).to.throw(TypeError);
      expect(() => encodeNodePath("0".repeat(257))).to.throw(TypeError);
      expect(() => decodeNodePath(Uint8Array.of(0, 3, 0xa1))).to.throw(/padding/);
      expect(() => decodeNodePath(Uint8Array.of(0, 9, 0xff))).to.throw(/length/);
      expect(() => decodeNodePath(Uint8Array.of(1, 1))).to.throw(/length/);
    });

    it("stores a node as its 65-byte hash preimage", () => {
      const leaf: SmtNode = { kind: "leaf", key: new Uint8Array(32).fill(5), valueHash: ZERO };
      const bytes = encodeSmtNode(leaf);
      expect(bytes.length).to.equal(65);
      expect(bytes[0]).to.equal(2);
      expect(toHex(sha256(bytes))).to.equal(toHex(leafNodeHash(leaf.key, leaf.valueHash)));
      expect(toHex(encodeSmtNode(decodeSmtNode(bytes)))).to.equal(toHex(bytes));
      const internal: SmtNode = { kind: "internal", left: ZERO, right: ZERO };
      expect(decodeSmtNode(encodeSmtNode(internal)).kind).to.equal("internal");
      expect(() => decodeSmtNode(new Uint8Array(65))).to.throw(/tag/);
      expect(() => decodeSmtNode(new Uint8Array(64))).to.throw(/65/);
    });
  });

  describe("applyUpdates", () => {
    it("matches the from-scratch reference, node for node, over random batches", async () => {
      await fc.assert(
        fc.asyncProperty(poolArb, batchesArb, async (pool, batches) => {
          const store = new MemoryNodeStore();
          const model: Model = new Map();
          for (const batch of batches) {
            const updates = batchUpdates(pool, batch);
            const { root, writes } = await applyUpdates(store.reader, updates);
            const paths = writes.map((w) => w.path);
            expect(new Set(paths).size, "each path written once").to.equal(paths.length);
            store.apply(writes);
            applyToModel(model, updates);
            expect(toHex(root)).to.equal(toHex(store.root));
            expectStoreMatches(store, model);
          }
        }),
        { numRuns: 150 },
      );
    });

    it("gives the same root whatever the batching and order of the same final contents", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(keyArb, { minLength: 1, maxLength: 30, selector: toHex }),
          fc.integer({ min: 1, max: 5 }),
          async (keys, cut) => {
            const updates = keys.map((key, i) => ({
              key,
              valueHash: new Uint8Array(32).fill(i + 1),
            }));
            const oneBatch = new MemoryNodeStore();
            await oneBatch.update(updates);
            const many = new MemoryNodeStore();
            const reversed = [...updates].reverse();
            for (let i = 0; i < reversed.length; i += cut) {
              await many.update(reversed.slice(i, i + cut));
            }
            expect(toHex(many.root)).to.equal(toHex(oneBatch.root));
          },
        ),
        { numRuns: 100 },
      );
    });

    it("matches the reference for 2,000 random subjects over 10 batches", async () => {
      const next = seededRandom(42);
      const store = new MemoryNodeStore();
      const model: Model = new Map();
      const keys = Array.from({ length: 2000 }, () => seededBytes(next, 32));
      for (let batch = 0; batch < 10; batch++) {
        const touched = new Map<string, SmtUpdate>();
        for (let i = 0; i < 400; i++) {
          const key = keys[Math.floor(next() * keys.length)]!;
          const remove = next() < 0.05;
          touched.set(toHex(key), { key, valueHash: remove ? null : seededBytes(next, 32) });
        }
        const updates = [...touched.values()];
        await store.update(updates);
        applyToModel(model, updates);
      }
      expectStoreMatches(store, model);
    });

    it("reads each node at most once and does work proportional to the keys touched", async () => {
      const next = seededRandom(7);
      const store = new MemoryNodeStore();
      const subjects = 8_000;
      const keys = Array.from({ length: subjects }, () => seededBytes(next, 32));
      for (let i = 0; i < subjects; i += 2000) {
        await store.update(keys.slice(i, i + 2000).map((key) => ({ key, valueHash: key })));
      }
      const touched = 200;
      const updates: SmtUpdate[] = [];
      for (let i = 0; i < touched; i++) {
        const key = i % 2 === 0 ? keys[i * 20]! : seededBytes(next, 32);
        updates.push({ key, valueHash: seededBytes(next, 32) });
      }
      const readPaths: NodePath[] = [];
      const counting: NodeReader = (path) => {
        readPaths.push(path);
        return store.reader(path);
      };
      const { stats, writes } = await applyUpdates(counting, updates);
      expect(new Set(readPaths).size, "no node read twice").to.equal(readPaths.length);
      expect(stats.reads).to.equal(readPaths.length);
      // ~log2(8,000) ≈ 13 levels, minus the top levels shared by the batch.
      const bound = touched * (Math.log2(subjects) + 4);
      expect(stats.hashes).to.be.below(bound);
      expect(stats.reads).to.be.below(bound);
      expect(writes.length).to.be.below(bound);
      expect(stats.hashes).to.be.above(touched); // sanity: the counter counts
    });

    it("gives the same result whatever order a slow store answers reads in", async () => {
      const next = seededRandom(9);
      const store = new MemoryNodeStore();
      const keys = Array.from({ length: 600 }, () => seededBytes(next, 32));
      await store.update(keys.slice(0, 500).map((key) => ({ key, valueHash: key })));
      const updates: SmtUpdate[] = keys.slice(450).map((key, i) => ({
        key,
        valueHash: i % 10 === 0 ? null : sha256(key),
      }));
      const jittery: NodeReader = (path) =>
        new Promise((resolve) => {
          setTimeout(() => resolve(store.reader(path)), Math.floor(next() * 3));
        });
      const fast = await applyUpdates(store.reader, updates);
      const slow = await applyUpdates(jittery, updates);
      expect(toHex(slow.root)).to.equal(toHex(fast.root));
      const asMap = (writes: typeof fast.writes) =>
        new Map(writes.map((w) => [w.path, w.node && toHex(encodeSmtNode(w.node))]));
      expect(asMap(slow.writes)).to.deep.equal(asMap(fast.writes));
      store.apply(slow.writes);
      const model: Model = new Map(keys.slice(0, 500).map((k) => [toHex(k), k]));
      applyToModel(model, updates);
      expectStoreMatches(store, model);
    });

    it("writes nothing for a batch that changes nothing", async () => {
      const store = new MemoryNodeStore();
      const k1 = keyWith(0x00, 1);
      const k2 = keyWith(0x80, 2);
      await store.update([
        { key: k1, valueHash: k1 },
        { key: k2, valueHash: k2 },
      ]);
      const root = store.root;
      const same = await applyUpdates(store.reader, [{ key: k1, valueHash: k1 }]);
      expect(same.writes).to.deep.equal([]);
      expect(toHex(same.root)).to.equal(toHex(root));
      const absent = await applyUpdates(store.reader, [{ key: keyWith(0x40, 0), valueHash: null }]);
      expect(absent.writes).to.deep.equal([]);
      const none = await applyUpdates(store.reader, []);
      expect(toHex(none.root)).to.equal(toHex(root));
    });

    it("moves a leaf up when its sibling is removed, down to the empty map", async () => {
      const store = new MemoryNodeStore();
      const a = keyWith(0x00, 0);
      const b = keyWith(0x00, 1); // shares 255 bits with a: both leaves at depth 256
      const c = keyWith(0x80, 0);
      await store.update([a, b, c].map((key) => ({ key, valueHash: key })));
      expect(store.size).to.equal(1 + 255 + 2 + 1); // root, chain to depth 255, two leaves, c
      await store.update([{ key: b, valueHash: null }]);
      expect(store.size).to.equal(3);
      expectStoreMatches(store, new Map([a, c].map((k) => [toHex(k), k])));
      await store.update([
        { key: a, valueHash: null },
        { key: c, valueHash: null },
      ]);
      expect(store.size).to.equal(0);
      expect(toHex(store.root)).to.equal(toHex(EMPTY_ROOT));
    });

    it("rejects malformed and duplicate updates, and a store missing a node", async () => {
      const store = new MemoryNodeStore();
      const key = keyWith(1, 1);
      let err: unknown;
      try {
        await applyUpdates(store.reader, [
          { key, valueHash: ZERO },
          { key: key.slice(), valueHash: key },
        ]);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(RangeError);
      err = undefined;
      try {
        await applyUpdates(store.reader, [{ key: new Uint8Array(31), valueHash: ZERO }]);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(TypeError);

      await store.update([
        { key: keyWith(0x00, 0), valueHash: ZERO },
        { key: keyWith(0x80, 0), valueHash: ZERO },
      ]);
      const broken: NodeReader = (path) =>
        path === "0" ? Promise.resolve(undefined) : store.reader(path);
      err = undefined;
      try {
        await applyUpdates(broken, [{ key: keyWith(0x01, 0), valueHash: ZERO }]);
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/invariant broken: node missing at path "0"/);
    });
  });

  describe("proofs", () => {
    it("proves every present key's value and every absent key's absence", async () => {
      await fc.assert(
        fc.asyncProperty(poolArb, batchesArb, keyArb, async (pool, batches, extra) => {
          const store = new MemoryNodeStore();
          const model: Model = new Map();
          for (const batch of batches) {
            const updates = batchUpdates(pool, batch);
            await store.update(updates);
            applyToModel(model, updates);
          }
          const root = store.root;
          for (const key of [...pool, extra]) {
            const proof = await store.prove(key);
            const claim = claimOf(root, key, proof);
            const value = model.get(toHex(key));
            if (value === undefined) {
              expect(claim.member).to.equal(false);
            } else {
              expect(claim.member).to.equal(true);
              expect(claim.member && toHex(claim.valueHash)).to.equal(toHex(value));
            }
            const viaJson = subjectIndexProofFromJson(
              JSON.parse(JSON.stringify(subjectIndexProofToJson(proof))),
            );
            expect(claimOf(root, key, viaJson)).to.deep.equal(claim);
          }
        }),
        { numRuns: 150 },
      );
    });

    it("rejects every mutation of a proof: sibling bytes, leaf bytes, depth, terminal, key", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(keyArb, { minLength: 1, maxLength: 20, selector: toHex }),
          keyArb,
          fc.nat(),
          fc.nat(),
          fc.integer({ min: 1, max: 255 }),
          async (keys, absent, which, at, xor) => {
            const store = new MemoryNodeStore();
            await store.update(keys.map((key) => ({ key, valueHash: sha256(key) })));
            const root = store.root;
            const target = which % 2 === 0 ? keys[which % keys.length]! : absent;
            const proof = await store.prove(target);
            const truth = claimOf(root, target, proof);

            const mutants: Array<[string, SubjectIndexProof, Uint8Array]> = [];
            const flip = (bytes: Uint8Array) => {
              bytes[at % 32]! ^= xor;
            };
            if (proof.siblings.length > 0) {
              const m = copyProof(proof);
              flip(m.siblings[at % m.siblings.length]!);
              mutants.push(["sibling byte", m, target]);
              const shorter = copyProof(proof);
              shorter.siblings.splice(at % shorter.siblings.length, 1);
              mutants.push(["sibling removed", shorter, target]);
              const swapped = copyProof(proof);
              swapped.siblings[0] = proof.siblings[proof.siblings.length - 1]!;
              swapped.siblings[proof.siblings.length - 1] = proof.siblings[0]!;
              if (!bytesEqual(swapped.siblings[0]!, proof.siblings[0]!)) {
                mutants.push(["siblings reordered", swapped, target]);
              }
            }
            const longer = copyProof(proof);
            longer.siblings.splice(at % (longer.siblings.length + 1), 0, sha256(target));
            mutants.push(["sibling added", longer, target]);
            if (proof.leaf !== null) {
              const k = copyProof(proof);
              flip(k.leaf!.key);
              mutants.push(["leaf key byte", k, target]);
              const v = copyProof(proof);
              flip(v.leaf!.valueHash);
              mutants.push(["leaf valueHash byte", v, target]);
              mutants.push(["leaf dropped", { ...copyProof(proof), leaf: null }, target]);
            } else {
              const forged = { ...copyProof(proof), leaf: { key: target, valueHash: ZERO } };
              mutants.push(["empty turned into a leaf", forged, target]);
            }
            for (const [what, mutant, key] of mutants) {
              let claim: SubjectIndexClaim | undefined;
              try {
                claim = claimOf(root, key, mutant);
              } catch (err) {
                expect(err, what).to.be.instanceOf(SubjectIndexProofError);
                continue;
              }
              expect.fail(
                `${what}: accepted, claiming ${JSON.stringify(claim)} (truth ${truth.member})`,
              );
            }
          },
        ),
        { numRuns: 250 },
      );
    });

    it("a proof for one key never passes for another key with a different answer", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(keyArb, { minLength: 2, maxLength: 20, selector: toHex }),
          keyArb,
          async (keys, other) => {
            const store = new MemoryNodeStore();
            await store.update(keys.map((key) => ({ key, valueHash: sha256(key) })));
            const root = store.root;
            const target = keys[0]!;
            const proof = await store.prove(target);
            let claim: SubjectIndexClaim;
            try {
              claim = claimOf(root, other, proof);
            } catch (err) {
              expect(err).to.be.instanceOf(SubjectIndexProofError);
              return;
            }
            // Accepted only when it tells the truth about `other`.
            const present = keys.some((k) => bytesEqual(k, other));
            expect(claim.member).to.equal(present);
            if (claim.member) expect(toHex(claim.valueHash)).to.equal(toHex(sha256(other)));
          },
        ),
        { numRuns: 200 },
      );
    });

    it("cannot forge non-membership for a present key", async () => {
      const next = seededRandom(3);
      const store = new MemoryNodeStore();
      const keys = Array.from({ length: 64 }, () => seededBytes(next, 32));
      await store.update(keys.map((key) => ({ key, valueHash: sha256(key) })));
      const root = store.root;
      for (const key of keys) {
        const proof = await store.prove(key);
        expect(proof.leaf).to.not.equal(null);
        // The same path with the leaf claimed empty.
        expect(codeOf(() => claimOf(root, key, { ...proof, leaf: null }))).to.equal(
          "ROOT_MISMATCH",
        );
        // Another leaf presented as the terminal on this key's path.
        const neighbour = keys.find((k) => k !== key)!;
        const nproof = await store.prove(neighbour);
        expect(codeOf(() => claimOf(root, key, nproof))).to.be.oneOf([
          "KEY_MISMATCH",
          "ROOT_MISMATCH",
        ]);
        // A shallower cut of the path, ending on an internal node presented as empty.
        for (let cut = 1; cut < proof.siblings.length; cut++) {
          const cutProof = { siblings: proof.siblings.slice(cut), leaf: null };
          expect(codeOf(() => claimOf(root, key, cutProof))).to.not.equal(undefined);
        }
      }
    });

    it("rejects a shape that hashes correctly but no canonical map has", () => {
      const key = keyWith(0x00, 1);
      const valueHash = sha256(key);
      // A leaf one level below the root next to an empty subtree: it should have moved up.
      const root = internalNodeHash(leafNodeHash(key, valueHash), EMPTY_ROOT);
      const proof = { siblings: [EMPTY_ROOT], leaf: { key, valueHash } };
      expect(codeOf(() => verifySubjectIndexProof(root, key, proof))).to.equal("NON_CANONICAL");
      const emptyPair = internalNodeHash(EMPTY_ROOT, EMPTY_ROOT);
      expect(
        codeOf(() =>
          verifySubjectIndexProof(emptyPair, key, { siblings: [EMPTY_ROOT], leaf: null }),
        ),
      ).to.equal("NON_CANONICAL");
    });

    it("checks the shape of decoded and JSON proofs", () => {
      const key = keyWith(0, 0);
      const bad = (proof: unknown) =>
        codeOf(() => verifySubjectIndexProof(EMPTY_ROOT, key, proof as SubjectIndexProof));
      expect(bad({ siblings: [new Uint8Array(31)], leaf: null })).to.equal("BAD_PROOF_SHAPE");
      expect(bad({ siblings: Array(257).fill(ZERO), leaf: null })).to.equal("BAD_PROOF_SHAPE");
      expect(bad({ siblings: [], leaf: { key, valueHash: new Uint8Array(33) } })).to.equal(
        "BAD_PROOF_SHAPE",
      );
      expect(bad({ leaf: null })).to.equal("BAD_PROOF_SHAPE");
      expect(
        codeOf(() =>
          verifySubjectIndexProof(new Uint8Array(31), key, { siblings: [], leaf: null }),
        ),
      ).to.equal("BAD_INPUT");
      expect(bad({ siblings: [], leaf: null })).to.equal(undefined); // the empty map's proof

      const fromJson = (json: unknown) => codeOf(() => subjectIndexProofFromJson(json));
      const h = toHex(ZERO);
      expect(fromJson({ siblings: [h], leaf: null })).to.equal(undefined);
      expect(fromJson({ siblings: [h.toUpperCase().replace("0X", "0x")], leaf: null })).to.equal(
        undefined, // digits only: still lowercase
      );
      expect(fromJson({ siblings: ["0x" + "AB".repeat(32)], leaf: null })).to.equal(
        "BAD_PROOF_SHAPE",
      );
      expect(fromJson({ siblings: [h.slice(0, -2)], leaf: null })).to.equal("BAD_PROOF_SHAPE");
      expect(fromJson({ siblings: [], leaf: null, extra: 1 })).to.equal("BAD_PROOF_SHAPE");
      expect(fromJson({ siblings: [], leaf: { key: h } })).to.equal("BAD_PROOF_SHAPE");
      expect(fromJson({ siblings: Array(257).fill(h), leaf: null })).to.equal("BAD_PROOF_SHAPE");
      expect(fromJson("proof")).to.equal("BAD_PROOF_SHAPE");
    });
  });

  describe("verifyCompleteness", () => {
    /** A small log: events spread over subjects and batches, the index updated per batch. */
    async function simulateLog(seed: number) {
      const next = seededRandom(seed);
      const subjects = Array.from({ length: 40 }, () => seededBytes(next, 32));
      const histories = new Map<string, Array<{ seq: number; leafHash: Uint8Array }>>();
      const store = new MemoryNodeStore();
      let seq = 0;
      for (let batch = 0; batch < 6; batch++) {
        const touched = new Set<string>();
        for (let i = 0; i < 30; i++) {
          const subject = toHex(subjects[Math.floor(next() * 30)]!); // the last 10 stay absent
          const history = histories.get(subject) ?? [];
          history.push({ seq: seq++, leafHash: seededBytes(next, 32) });
          histories.set(subject, history);
          touched.add(subject);
        }
        await store.update(
          [...touched].map((subject) => {
            const { count, chain } = historyChain(histories.get(subject)!);
            return { key: fromHex(subject), valueHash: historyValueHash(count, chain) };
          }),
        );
      }
      return { subjects, histories, store };
    }

    it("accepts each subject's full history, in any order, and an absent subject with none", async () => {
      const { subjects, histories, store } = await simulateLog(11);
      let present = 0;
      for (const subjectTag of subjects) {
        const events = histories.get(toHex(subjectTag)) ?? [];
        const proof = await store.prove(subjectTag);
        const shuffled = [...events].reverse();
        const result = verifyCompleteness({
          indexRoot: store.root,
          subjectTag,
          events: shuffled,
          proof: subjectIndexProofToJson(proof),
        });
        expect(result).to.deep.equal({ ok: true, count: events.length });
        if (events.length > 0) present++;
      }
      expect(present).to.be.above(15);
    });

    it("catches a history with an event left out, added, or altered", async () => {
      const { subjects, histories, store } = await simulateLog(12);
      let checked = 0;
      for (const subjectTag of subjects) {
        const events = histories.get(toHex(subjectTag)) ?? [];
        if (events.length === 0) continue;
        const proof = await store.prove(subjectTag);
        const check = (shown: typeof events) =>
          verifyCompleteness({ indexRoot: store.root, subjectTag, events: shown, proof });
        for (let i = 0; i < events.length; i++) {
          const missing = events.filter((_, j) => j !== i);
          expect(check(missing)).to.include({ ok: false, code: "INCOMPLETE_HISTORY" });
        }
        const extra = [...events, { seq: 10_000, leafHash: ZERO }];
        expect(check(extra)).to.include({ ok: false, code: "INCOMPLETE_HISTORY" });
        const altered = events.map((e, j) => (j === 0 ? { ...e, seq: e.seq + 100_000 } : e));
        expect(check(altered)).to.include({ ok: false, code: "INCOMPLETE_HISTORY" });
        const twice = [...events, events[0]!];
        expect(check(twice)).to.include({ ok: false, code: "BAD_HISTORY" });
        checked++;
      }
      expect(checked).to.be.above(15);
    });

    it("rejects events shown for a subject the index proves absent", async () => {
      const { subjects, store } = await simulateLog(13);
      const absent = subjects[39]!;
      const proof = await store.prove(absent);
      const result = verifyCompleteness({
        indexRoot: store.root,
        subjectTag: absent,
        events: [{ seq: 3, leafHash: ZERO }],
        proof,
      });
      expect(result).to.include({ ok: false, code: "UNEXPECTED_EVENTS" });
    });

    it("reports proof failures as codes instead of throwing", async () => {
      const { subjects, histories, store } = await simulateLog(14);
      const subjectTag = subjects[0]!;
      const events = histories.get(toHex(subjectTag)) ?? [];
      const proof = await store.prove(subjectTag);
      const wrongRoot = sha256(store.root);
      expect(verifyCompleteness({ indexRoot: wrongRoot, subjectTag, events, proof })).to.include({
        ok: false,
        code: "ROOT_MISMATCH",
      });
      const json = subjectIndexProofToJson(proof);
      expect(
        verifyCompleteness({
          indexRoot: store.root,
          subjectTag,
          events,
          proof: { ...json, siblings: [...json.siblings, "0x12"] } as typeof json,
        }),
      ).to.include({ ok: false, code: "BAD_PROOF_SHAPE" });
      expect(
        verifyCompleteness({ indexRoot: store.root, subjectTag: ZERO.subarray(1), events, proof }),
      ).to.include({ ok: false, code: "BAD_INPUT" });
    });
  });

  describe("test vectors", () => {
    interface ProofCase {
      desc: string;
      key: string;
      proof: unknown;
      want?: { member: boolean; valueHash?: string };
      wantErr?: string;
    }
    interface MapCase {
      desc: string;
      entries: Array<{ key: string; valueHash: string }>;
      root: string;
      proofs: ProofCase[];
    }
    const dir = new URL("../../vectors/subject-index/", import.meta.url);
    const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, dir), "utf8")) as T;

    it("history.json: chains and value hashes", () => {
      const cases = load<
        Array<{
          desc: string;
          events: Array<{ seq: number; leafHash: string }>;
          count?: number;
          chain?: string;
          valueHash?: string;
          wantErr?: string;
        }>
      >("history.json");
      expect(cases.length).to.be.above(3);
      for (const c of cases) {
        const events = c.events.map((e) => ({ seq: e.seq, leafHash: fromHex(e.leafHash) }));
        if (c.wantErr !== undefined) {
          expect(() => historyChain(events), c.desc).to.throw(RangeError);
          continue;
        }
        const { count, chain } = historyChain(events);
        expect(count, c.desc).to.equal(c.count);
        expect(toHex(chain), c.desc).to.equal(c.chain);
        expect(toHex(historyValueHash(count, chain)), c.desc).to.equal(c.valueHash);
      }
    });

    it("maps.json: roots, proofs the prover produces, and broken proofs", async () => {
      const maps = load<MapCase[]>("maps.json");
      let proofs = 0;
      let broken = 0;
      for (const m of maps) {
        const store = new MemoryNodeStore();
        await store.update(
          m.entries.map((e) => ({ key: fromHex(e.key), valueHash: fromHex(e.valueHash) })),
        );
        expect(toHex(store.root), m.desc).to.equal(m.root);
        for (const p of m.proofs) {
          const desc = `${m.desc} / ${p.desc}`;
          const key = fromHex(p.key);
          const run = () =>
            verifySubjectIndexProof(fromHex(m.root), key, subjectIndexProofFromJson(p.proof));
          if (p.wantErr !== undefined) {
            expect(codeOf(run), desc).to.equal(p.wantErr);
            broken++;
            continue;
          }
          const claim = run();
          expect(claim.member, desc).to.equal(p.want!.member);
          if (claim.member) expect(toHex(claim.valueHash), desc).to.equal(p.want!.valueHash);
          // Valid vectors are exactly what the prover returns.
          expect(subjectIndexProofToJson(await proveKey(store.reader, key)), desc).to.deep.equal(
            p.proof,
          );
          proofs++;
        }
      }
      expect(proofs).to.be.above(8);
      expect(broken).to.be.above(8);
    });

    it("completeness.json: a patient's verdicts", () => {
      const cases = load<
        Array<{
          desc: string;
          indexRoot: string;
          subjectTag: string;
          events: Array<{ seq: number; leafHash: string }>;
          proof: unknown;
          want?: { ok: true; count: number };
          wantErr?: string;
        }>
      >("completeness.json");
      expect(cases.length).to.be.above(4);
      for (const c of cases) {
        const result = verifyCompleteness({
          indexRoot: fromHex(c.indexRoot),
          subjectTag: fromHex(c.subjectTag),
          events: c.events.map((e) => ({ seq: e.seq, leafHash: fromHex(e.leafHash) })),
          proof: c.proof as never,
        });
        if (c.wantErr !== undefined)
          expect(result, c.desc).to.include({ ok: false, code: c.wantErr });
        else expect(result, c.desc).to.deep.equal(c.want);
      }
    });
  });

  it("keyPath spells a key's first bits", () => {
    expect(keyPath(keyWith(0xa0, 0), 4)).to.equal("1010");
    expect(keyPath(keyWith(0, 1), 256)).to.equal("0".repeat(255) + "1");
  });
});

import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Hex, fromHex, toHex } from "../../../services/core/hex.ts";
import { verifyCompleteness } from "../../../services/core/subject-index-proof.ts";
import {
  type PreparedIndexBatch,
  SubjectIndex,
} from "../../../services/ledger/subject-index-store.ts";
import { UNDO_CHUNK_NODES, undoChunkRecords } from "../../../services/store/index-undo.ts";
import { K, prefixEnd } from "../../../services/store/keys.ts";
import { type BatchOp, LedgerStore } from "../../../services/store/ledger-store.ts";
import { seededBytes, seededRandom } from "../../support/seeded-random.ts";

type BatchEvents = Array<{ subject: Hex; seq: number; leafHash: Uint8Array }>;

/** Applies one batch the way the sealer does (without a batch record). */
async function apply(index: SubjectIndex, batchNo: number, events: BatchEvents) {
  const prepared = await index.prepareBatch(batchNo, events);
  await index.writeBatch(prepared, []);
  return prepared.root;
}

/** Every op of a prepared update, part by part, as text. */
async function allOps(index: SubjectIndex, prepared: PreparedIndexBatch): Promise<string[]> {
  const out: string[] = [];
  for (const part of ["undo", "nodes", "heads"] as const)
    for (const op of await index.ops(prepared, part))
      out.push(op.type === "put" ? `${op.key}=${op.value.toString("hex")}` : `-${op.key}`);
  return out;
}

describe("ledger/subject-index-store (LevelDB)", function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const stores: LedgerStore[] = [];

  async function openStore(): Promise<LedgerStore> {
    const dir = await mkdtemp(path.join(tmpdir(), "veritrail-index-"));
    dirs.push(dir);
    const store = await LedgerStore.open(dir);
    stores.push(store);
    return store;
  }

  after(async () => {
    for (const store of stores) await store.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("gives the same roots and valid proofs when its node cache is far smaller than the tree", async () => {
    // 40 batches over 300 subjects (≈ 600 nodes): with the upper 2 levels always held (≤ 7
    // nodes), a cache of 24 deeper nodes evicts in every batch.
    const small = await openStore();
    const large = await openStore();
    const CACHE = 24;
    const tight = new SubjectIndex(small, -1, { nodeCacheMax: CACHE, upperLevels: 2 });
    const roomy = new SubjectIndex(large, -1);
    const subjects = Array.from({ length: 300 }, () => toHex(randomBytes(32)));
    const history = new Map<Hex, Array<{ seq: number; leafHash: Uint8Array }>>();
    let seq = 0;
    let maxCached = 0;
    for (let batchNo = 0; batchNo < 40; batchNo++) {
      const events: BatchEvents = [];
      for (let i = 0; i < 25; i++) {
        const subject = subjects[Math.floor(Math.random() * subjects.length)]!;
        const e = { subject, seq: seq++, leafHash: new Uint8Array(randomBytes(32)) };
        events.push(e);
        history.set(subject, [...(history.get(subject) ?? []), e]);
      }
      const a = await apply(tight, batchNo, events);
      const b = await apply(roomy, batchNo, events);
      expect(a, `batch ${batchNo}`).to.equal(b);
      const { upper, deep } = tight.cachedNodes;
      expect(upper).to.be.at.most(7);
      maxCached = Math.max(maxCached, deep);
    }
    expect(maxCached).to.be.at.most(CACHE);
    const held = roomy.cachedNodes;
    expect(held.upper + held.deep).to.be.greaterThan(CACHE * 10);

    const root = await tight.rootAt(39);
    expect(toHex(root)).to.equal(toHex(await roomy.rootAt(39)));
    for (const subject of subjects.slice(0, 50)) {
      const result = verifyCompleteness({
        indexRoot: root,
        subjectTag: fromHex(subject),
        events: history.get(subject) ?? [],
        proof: await tight.proveAt(39, subject),
      });
      expect(result, subject).to.deep.equal({
        ok: true,
        count: history.get(subject)?.length ?? 0,
      });
    }
  });

  it("computes the same update in the sealing worker as on the calling thread (ops byte for byte)", async () => {
    const here = await openStore();
    const there = await openStore();
    const local = new SubjectIndex(here, -1, { nodeCacheMax: 50, upperLevels: 3 });
    const worker = new SubjectIndex(there, -1, { nodeCacheMax: 50, upperLevels: 3, worker: true });
    try {
      const subjects = Array.from({ length: 400 }, () => toHex(randomBytes(32)));
      let seq = 0;
      for (let batchNo = 0; batchNo < 12; batchNo++) {
        const events: BatchEvents = Array.from({ length: 150 }, () => ({
          subject: subjects[Math.floor(Math.random() * subjects.length)]!,
          seq: seq++,
          leafHash: new Uint8Array(randomBytes(32)),
        }));
        const a = await local.prepareBatch(batchNo, events);
        const b = await worker.prepareBatch(batchNo, events);
        expect(b.root, `batch ${batchNo}`).to.equal(a.root);
        expect(b.size).to.deep.equal(a.size);
        expect(await allOps(worker, b), `batch ${batchNo}`).to.deep.equal(await allOps(local, a));
        // A slice of a part is that part's ops [from, to).
        const nodes = await local.ops(a, "nodes");
        expect((await worker.ops(b, "nodes", 7, 19)).map((op) => op.key)).to.deep.equal(
          nodes.slice(7, 19).map((op) => op.key),
        );
        await local.writeBatch(a, []);
        await worker.writeBatch(b, []);
      }
      expect(worker.cachedNodes.deep).to.be.within(1, 50);
      expect(toHex(await worker.rootAt(11))).to.equal(toHex(await local.rootAt(11)));
    } finally {
      await worker.close();
    }
    // A stopped worker refuses further work instead of hanging.
    const refused = await worker.prepareBatch(12, []).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(Error);
  });

  it("applies a batch's subjects to the tree a slice at a time: same roots and ops byte for byte as all at once", async () => {
    const here = await openStore();
    const there = await openStore();
    const whole = new SubjectIndex(here, -1, { chunkSubjects: 1_000_000 });
    const sliced = new SubjectIndex(there, -1, {
      chunkSubjects: 7,
      nodeCacheMax: 40,
      upperLevels: 2,
    });
    const subjects = Array.from({ length: 400 }, () => toHex(randomBytes(32)));
    let seq = 0;
    for (let batchNo = 0; batchNo < 10; batchNo++) {
      // Some batches touch a handful of subjects (one slice), most many (dozens of slices).
      const n = batchNo % 3 === 0 ? 5 : 150;
      const events: BatchEvents = Array.from({ length: n }, () => ({
        subject: subjects[Math.floor(Math.random() * subjects.length)]!,
        seq: seq++,
        leafHash: new Uint8Array(randomBytes(32)),
      }));
      const a = await whole.prepareBatch(batchNo, events);
      const b = await sliced.prepareBatch(batchNo, events);
      expect(b.root, `batch ${batchNo}`).to.equal(a.root);
      expect(b.size).to.deep.equal(a.size);
      expect(await allOps(sliced, b), `batch ${batchNo}`).to.deep.equal(await allOps(whole, a));
      await whole.writeBatch(a, []);
      await sliced.writeBatch(b, []);
    }
    const empty = await sliced.prepareBatch(10, []);
    expect(empty.root).to.equal((await whole.prepareBatch(10, [])).root);
    expect(empty.size).to.deep.equal({ nodes: 0, heads: 0 });
  });

  it("proves at older batches from packed undo records, reads logs with one record per node, and prunes what anchored batches no longer need", async function () {
    this.timeout(120_000);
    const store = await openStore();
    const index = new SubjectIndex(store, -1);
    const subjects = Array.from({ length: 300 }, () => toHex(randomBytes(32)));
    const events: BatchEvents[] = [];
    const roots: Hex[] = [];
    let seq = 0;
    for (let b = 0; b < 40; b++) {
      events.push(
        Array.from({ length: 25 }, () => ({
          subject: subjects[Math.floor(Math.random() * subjects.length)]!,
          seq: seq++,
          leafHash: new Uint8Array(randomBytes(32)),
        })),
      );
      roots.push(await apply(index, b, events[b]!));
    }
    /** Proofs at batch `at` for a sample of subjects verify against that batch's root. */
    async function provesAt(reader: SubjectIndex, at: number): Promise<void> {
      expect(toHex(await reader.rootAt(at)), `root at ${at}`).to.equal(roots[at]);
      const history = events.slice(0, at + 1).flat();
      for (const subject of subjects.slice(0, 30)) {
        const mine = history.filter((e) => e.subject === subject);
        const result = verifyCompleteness({
          indexRoot: fromHex(roots[at]!),
          subjectTag: fromHex(subject),
          events: mine,
          proof: await reader.proveAt(at, subject),
        });
        expect(result, `${subject} at ${at}`).to.deep.equal({ ok: true, count: mine.length });
      }
    }
    for (const at of [0, 10, 25, 39]) await provesAt(index, at);

    // A log sealed before undo records were packed has one record per node (`j:`): batches
    // 0..19 rewritten that way read the same.
    for (let b = 0; b < 20; b++) {
      const prefix = K.indexUndoChunkPrefix(b);
      for await (const [key, chunk] of store.scan({ gte: prefix, lt: prefixEnd(prefix) })) {
        const ops: BatchOp[] = [{ type: "del", key }];
        for (const r of undoChunkRecords(chunk))
          ops.push({
            type: "put",
            key: K.indexUndo(b, r.key),
            value: Buffer.from(r.before ?? new Uint8Array(0)),
          });
        await store.write(ops, false);
      }
    }
    const upgraded = new SubjectIndex(store, 39);
    for (const at of [0, 10, 25, 39]) await provesAt(upgraded, at);

    // Anchored through batch 35, then 39: records of batches up to 35 - 16 = 19 go (all the
    // old-format ones), then up to 23, except while a proof is read at a batch that needs them.
    const left = async (prefix: string) => {
      const batches = new Set<number>();
      for await (const key of store.scanKeys({ gte: prefix, lt: prefixEnd(prefix) }))
        batches.add(parseInt(key.split(":")[1]!, 16));
      return [...batches].sort((a, b) => a - b);
    };
    await upgraded.pruneUndo(35);
    expect(await left("j:")).to.deep.equal([]);
    expect(await left("u:")).to.deep.equal(Array.from({ length: 20 }, (_, i) => 20 + i));
    // A proof at batch 20 held in its first read while pruning runs keeps batches 21.. whole.
    const getRaw = store.getRaw.bind(store);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    store.getRaw = async (key) => {
      await held;
      return getRaw(key);
    };
    const during = upgraded.proveAt(20, subjects[0]!);
    await upgraded.pruneUndo(39);
    expect(await left("u:")).to.deep.equal(Array.from({ length: 19 }, (_, i) => 21 + i));
    release();
    store.getRaw = getRaw;
    const mine = events
      .slice(0, 21)
      .flat()
      .filter((e) => e.subject === subjects[0]);
    expect(
      verifyCompleteness({
        indexRoot: fromHex(roots[20]!),
        subjectTag: fromHex(subjects[0]!),
        events: mine,
        proof: await during,
      }),
    ).to.deep.equal({ ok: true, count: mine.length });
    await upgraded.pruneUndo(39);
    expect(await left("u:")).to.deep.equal(Array.from({ length: 16 }, (_, i) => 24 + i));
    for (const at of [23, 30, 39]) await provesAt(upgraded, at);
    // Below the line proofs fail loudly instead of reading a deleted record as "unchanged".
    const refused = await upgraded.proveAt(22, subjects[0]!).catch((e: unknown) => e);
    expect(String(refused)).to.match(/no longer readable/);
    // The line is stored: a new reader of the same log knows it.
    const reopened = new SubjectIndex(store, 39);
    expect(await reopened.proveAt(22, subjects[0]!).catch((e: unknown) => e)).to.be.instanceOf(
      Error,
    );
    await provesAt(reopened, 23);
  });

  describe("a large update written in slices", () => {
    const SLICE = 64;
    // A fixed sample: how many nodes batch 3 changes (and so how many slices the cuts below
    // walk through) depends on the subjects drawn, and a random draw can touch as few as 512.
    const random = seededRandom(2143);
    const subjects = Array.from({ length: 600 }, () => toHex(seededBytes(random, 32)));
    let seq = 0;
    const batches: BatchEvents[] = Array.from({ length: 4 }, () =>
      Array.from({ length: 150 }, () => ({
        subject: subjects[Math.floor(random() * subjects.length)]!,
        seq: seq++,
        leafHash: seededBytes(random, 32),
      })),
    );

    /** The index's stored state: latest nodes, undo records, heads, the seal marker. */
    async function dump(store: LedgerStore): Promise<string[]> {
      const out: string[] = [];
      for (const prefix of ["i:", "j:", "u:", "v:", "s:"])
        for await (const [k, v] of store.scan({ gte: prefix, lt: prefixEnd(prefix) }))
          out.push(`${k}=${v.toString("hex")}`);
      return out;
    }

    /** A store with batches 0..2 applied, and the index over it. */
    async function threeBatches(): Promise<{ dir: string; store: LedgerStore; roots: Hex[] }> {
      const dir = await mkdtemp(path.join(tmpdir(), "veritrail-index-"));
      dirs.push(dir);
      const store = await LedgerStore.open(dir);
      const index = new SubjectIndex(store, -1, { writeSliceOps: SLICE });
      const roots: Hex[] = [];
      for (let b = 0; b < 3; b++) roots.push(await apply(index, b, batches[b]!));
      return { dir, store, roots };
    }

    /** Makes the store's writes fail from the `n`-th one on (1-based), as a crash would. */
    function failWritesFrom(store: LedgerStore, n: number): () => number {
      const write = store.write.bind(store);
      let count = 0;
      store.write = async (ops, sync) => {
        if (++count >= n) throw new Error(`write ${count} cut short`);
        return write(ops, sync);
      };
      return () => count;
    }

    it("rolls back a seal cut short after any of its writes, then seals the batch to the same root", async function () {
      this.timeout(300_000);
      // The batch written without interruption, for reference.
      const reference = await threeBatches();
      const index = new SubjectIndex(reference.store, 2, { writeSliceOps: SLICE });
      const prepared = await index.prepareBatch(3, batches[3]!);
      const counted = failWritesFrom(reference.store, Infinity);
      await index.writeBatch(prepared, []);
      // Marker, the undo slices, the node slices, the last write.
      const writes = counted();
      expect(writes).to.equal(2 + 2 * Math.ceil(prepared.size.nodes / UNDO_CHUNK_NODES));
      expect(writes, "the update spans several slices").to.be.above(6);
      const want = await dump(reference.store);
      await reference.store.close();

      for (let cut = 1; cut < writes; cut++) {
        const { dir, store, roots } = await threeBatches();
        const before = await dump(store);
        const interrupted = new SubjectIndex(store, 2, { writeSliceOps: SLICE });
        const p = await interrupted.prepareBatch(3, batches[3]!);
        failWritesFrom(store, cut + 1);
        const failed = await interrupted.writeBatch(p, []).catch((e: unknown) => e);
        expect(failed, `cut after write ${cut}`).to.be.instanceOf(Error);
        await store.close();

        // The next open puts the index back as it was before the batch.
        const reopened = await LedgerStore.open(dir);
        try {
          expect(await dump(reopened), `cut after write ${cut}`).to.deep.equal(before);
          const again = new SubjectIndex(reopened, 2, { writeSliceOps: SLICE });
          expect(toHex(await again.rootAt(2))).to.equal(roots[2]);
          expect(await apply(again, 3, batches[3]!)).to.equal(prepared.root);
          expect(await dump(reopened), `cut after write ${cut}`).to.deep.equal(want);
        } finally {
          await reopened.close();
        }
      }
    });

    it("finishes a rollback that was itself cut short, and rolls back before the next attempt in the same process", async function () {
      this.timeout(120_000);
      const { dir, store, roots } = await threeBatches();
      const before = await dump(store);
      const index = new SubjectIndex(store, 2, { writeSliceOps: SLICE });
      const p = await index.prepareBatch(3, batches[3]!);
      // Cut in the middle of the node slices: some nodes are already the batch's.
      const writes = 2 + 2 * Math.ceil(p.size.nodes / UNDO_CHUNK_NODES);
      const restore = store.write;
      failWritesFrom(store, writes - 2);
      expect(await index.writeBatch(p, []).catch((e: unknown) => e)).to.be.instanceOf(Error);
      store.write = restore;
      // While the batch is half written, a proof at the last whole batch still reads it whole.
      expect(toHex(await index.rootAt(2))).to.equal(roots[2]);
      for (const subject of subjects.slice(0, 20)) {
        const history = batches
          .slice(0, 3)
          .flat()
          .filter((e) => e.subject === subject);
        const proof = await index.proveAt(2, subject);
        expect(
          verifyCompleteness({
            indexRoot: fromHex(roots[2]!),
            subjectTag: fromHex(subject),
            events: history,
            proof,
          }),
        ).to.deep.equal({ ok: true, count: history.length });
      }
      // The same process tries again: the half-written batch is rolled back first.
      const retried = await index.prepareBatch(3, batches[3]!);
      await index.writeBatch(retried, []);
      const whole = await dump(store);
      await store.close();

      // A rollback cut short after its first write is finished at the next open.
      const { dir: dir2, store: store2 } = await threeBatches();
      const index2 = new SubjectIndex(store2, 2, { writeSliceOps: SLICE });
      const p2 = await index2.prepareBatch(3, batches[3]!);
      failWritesFrom(store2, writes - 2);
      await index2.writeBatch(p2, []).catch(() => undefined);
      store2.write = restore.bind(store2);
      const write = store2.write.bind(store2);
      let rollbackWrites = 0;
      store2.write = async (ops, sync) => {
        if (++rollbackWrites === 2) throw new Error("rollback cut short");
        return write(ops, sync);
      };
      expect(await store2.settleInterruptedSeal().catch((e: unknown) => e)).to.be.instanceOf(Error);
      await store2.close();
      const reopened = await LedgerStore.open(dir2);
      try {
        expect(await dump(reopened)).to.deep.equal(before);
        const again = new SubjectIndex(reopened, 2, { writeSliceOps: SLICE });
        expect(await apply(again, 3, batches[3]!)).to.equal(retried.root);
      } finally {
        await reopened.close();
      }
      const check = await LedgerStore.open(dir);
      try {
        expect(await dump(check)).to.deep.equal(whole);
      } finally {
        await check.close();
      }
    });
  });
});

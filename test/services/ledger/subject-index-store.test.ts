import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Hex, fromHex, toHex } from "../../../services/core/hex.ts";
import { verifyCompleteness } from "../../../services/core/subject-index-proof.ts";
import { SubjectIndex } from "../../../services/ledger/subject-index-store.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";

type BatchEvents = Array<{ subject: Hex; seq: number; leafHash: Uint8Array }>;

/** Applies one batch the way the sealer does: prepare, write the ops, mark committed. */
async function apply(
  store: LedgerStore,
  index: SubjectIndex,
  batchNo: number,
  events: BatchEvents,
) {
  const { root, ops } = await index.prepareBatch(batchNo, events);
  await store.write(ops, false);
  index.committed(batchNo);
  return root;
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
      const a = await apply(small, tight, batchNo, events);
      const b = await apply(large, roomy, batchNo, events);
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
        const show = (ops: typeof a.ops) =>
          ops.map((op) =>
            op.type === "put" ? `${op.key}=${op.value.toString("hex")}` : `-${op.key}`,
          );
        expect(show(b.ops), `batch ${batchNo}`).to.deep.equal(show(a.ops));
        await here.write(a.ops, false);
        await there.write(b.ops, false);
        local.committed(batchNo);
        worker.committed(batchNo);
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
});

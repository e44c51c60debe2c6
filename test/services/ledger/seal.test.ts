/**
 * The Sealer on its own, over a real LevelDB store: events accepted by a ledger (and closed
 * before they were sealed) are sealed into contiguous batches of at most `maxEvents`, each
 * header's eventsRoot is the RFC 9162 root of its entries' leaf hashes (checked against a plain
 * recursive MTH), its record and seq lookup are stored, and the stored nodes prove every event.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { sha256 } from "../../../services/core/hash.ts";
import { type Hex, toHex, utf8 } from "../../../services/core/hex.ts";
import { jcs } from "../../../services/core/jcs.ts";
import { leafHash, verifyInclusionHex } from "../../../services/core/merkle.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { Ledger, type LedgerOptions } from "../../../services/ledger/ledger.ts";
import { Sealer } from "../../../services/ledger/seal.ts";
import { SubjectIndex } from "../../../services/ledger/subject-index-store.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

/** RFC 9162 §2.1.1 Merkle Tree Hash, recursively: the reference the sealed roots must match. */
function mth(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(new Uint8Array([0x01, ...mth(leaves.slice(0, k)), ...mth(leaves.slice(k))]));
}

function options(location: string): LedgerOptions {
  return {
    location,
    receiptSigner: new Wallet("0x" + "22".repeat(32)),
    // Never seals on its own: the events are left for the Sealer under test.
    batchMaxEvents: 1_000_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  };
}

function event(i: number) {
  const base = makeNativeEvent();
  delete base.requestId;
  return { ...base, patient: { system: "urn:oid:2.16.840.1.113883.4.1", value: `p${i % 3}` } };
}

describe("ledger/seal: the Sealer (real LevelDB)", function () {
  this.timeout(60_000);
  let dir: string;
  let logId: Hex;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-seal-"));
    const ledger = await Ledger.open(options(dir));
    logId = ledger.logId as Hex;
    await ledger.ingest(Array.from({ length: 10 }, (_, i) => event(i)));
    expect(ledger.sealedThrough).to.equal(0);
    await ledger.close();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs a Sealer over the store in `dir`, as the ledger would after a restart. */
  async function seal(
    maxEvents: number,
    run: (sealer: Sealer) => Promise<void>,
  ): Promise<BatchRecord[]> {
    const store = await LedgerStore.open(dir);
    const sealed: BatchRecord[] = [];
    try {
      const last = await store.lastBatch();
      const index = new SubjectIndex(store, last ? last.header.batchNo : -1);
      const sealer = new Sealer(store, index, last, await store.nextSeq(), {
        logId,
        maxEvents,
        maxWaitMs: 50,
        onSealed: (r) => sealed.push(r),
        onError: (e) => {
          throw e;
        },
      });
      await run(sealer);
      await sealer.stop();
      await index.close();
    } finally {
      await store.close();
    }
    return sealed;
  }

  it("seals the backlog into contiguous batches with RFC 9162 roots, stored with their lookups", async () => {
    const sealed = await seal(4, (s) => s.sealAll());
    expect(sealed.map((r) => [r.header.batchNo, r.header.firstSeq, r.header.count])).to.deep.equal([
      [0, 0, 4],
      [1, 4, 4],
      [2, 8, 2],
    ]);
    const store = await LedgerStore.open(dir);
    try {
      for (const r of sealed) {
        expect(r.state).to.equal("sealed");
        expect(r.header.logId).to.equal(logId);
        expect(await store.getBatch(r.header.batchNo)).to.deep.equal(r);
        const leaves: Uint8Array[] = [];
        for await (const [, jcs] of store.scanEntries(
          r.header.firstSeq,
          r.header.firstSeq + r.header.count,
        ))
          leaves.push(leafHash(utf8(jcs)));
        expect(r.header.eventsRoot).to.equal(toHex(mth(leaves)));
        for (let seq = r.header.firstSeq; seq < r.header.firstSeq + r.header.count; seq++)
          expect(await store.batchNoForSeq(seq)).to.equal(r.header.batchNo);
      }
    } finally {
      await store.close();
    }
  });

  it("the stored nodes prove every event; a restarted Sealer numbers on", async () => {
    await seal(4, (s) => s.sealAll());
    const ledger = await Ledger.open(options(dir));
    try {
      for (let seq = 0; seq < 10; seq++) {
        const bundle = await ledger.prove(seq);
        const batch = bundle.batch!;
        expect(() =>
          verifyInclusionHex(
            seq - batch.firstSeq,
            batch.count,
            leafHash(utf8(jcs(bundle.entry))),
            bundle.inclusion,
            batch.eventsRoot,
          ),
        ).not.to.throw();
      }
      await ledger.ingest([event(10), event(11), event(12)]);
    } finally {
      await ledger.close();
    }
    const more = await seal(4, (s) => s.sealAll());
    expect(more.map((r) => r.header)).to.have.length(1);
    expect(more[0]!.header).to.include({ batchNo: 3, firstSeq: 10, count: 3 });
  });

  it("sealAll while the batch timer runs: each batch is sealed once, in order", async () => {
    const store = await LedgerStore.open(dir);
    const sealed: BatchRecord[] = [];
    const errors: unknown[] = [];
    try {
      const index = new SubjectIndex(store, -1);
      // Each index update takes longer than the batch wait, as a large one in the sealing
      // worker does: the timer armed when the first seals end (2 events left) fires while
      // sealAll seals those 2.
      const prepare = index.prepareBatch.bind(index);
      index.prepareBatch = async (batchNo, events) => {
        await new Promise((r) => setTimeout(r, 40));
        return prepare(batchNo, events);
      };
      const sealer = new Sealer(store, index, undefined, await store.nextSeq(), {
        logId,
        maxEvents: 4,
        maxWaitMs: 5,
        onSealed: (r) => sealed.push(r),
        onError: (e) => errors.push(e),
      });
      sealer.start();
      await sealer.sealAll();
      await new Promise((r) => setTimeout(r, 100));
      await sealer.stop();
      await index.close();
    } finally {
      await store.close();
    }
    expect(errors.map(String)).to.deep.equal([]);
    expect(sealed.map((r) => [r.header.batchNo, r.header.firstSeq, r.header.count])).to.deep.equal([
      [0, 0, 4],
      [1, 4, 4],
      [2, 8, 2],
    ]);
  });

  it("once started, seals a backlog older than maxWaitMs on its own", async () => {
    const sealed = await seal(1_000, async (sealer) => {
      sealer.start();
      const until = Date.now() + 5_000;
      while (sealer.unsealed > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    });
    expect(sealed.map((r) => r.header.count)).to.deep.equal([10]);
  });
});

/**
 * The whole-log reads the regulator's audit replays (store/log-scan.ts and the LedgerStore
 * methods over it), on a real LevelDB directory. Records are written under the keys the ledger
 * has always used, spelled out here, so the reads are checked against the format on disk and
 * not against the key layout they are built from.
 */
import { expect } from "chai";
import type { LedgerStore } from "../../../services/store/ledger-store.ts";
import type { SeqValues } from "../../../services/store/log-scan.ts";
import { storeOnDisk } from "../../support/store-on-disk.ts";

const hex12 = (n: number) => n.toString(16).padStart(12, "0");
const put = (key: string, value: string | Buffer) => ({
  type: "put" as const,
  key,
  value: typeof value === "string" ? Buffer.from(value) : value,
});

/** Every value of `values` for seqs [0, total), asked in order as the audit does. */
async function readAll(values: SeqValues, total: number): Promise<Array<string | undefined>> {
  const out: Array<string | undefined> = [];
  for (let seq = 0; seq < total; seq++) {
    await values.load(seq);
    out.push(values.get(seq)?.toString());
  }
  await values.close();
  return out;
}

describe("store/log-scan (LevelDB on disk)", () => {
  const disk = storeOnDisk("log-scan");
  let store: LedgerStore;
  beforeEach(() => {
    store = disk.store;
  });

  it("per-seq records in seq order across read pages, gaps answered as absent", async () => {
    const total = 2_600;
    const missing = new Set([0, 1_023, 1_024, 1_025, 2_047, 2_599]);
    const ops = [];
    for (let seq = 0; seq < total; seq++) {
      if (missing.has(seq)) continue;
      ops.push(put(`e:${hex12(seq)}`, `entry ${seq}`));
      if (seq % 3 === 0) ops.push(put(`b:${hex12(seq)}`, `body ${seq}`));
      ops.push(put(`r:${hex12(seq)}`, `path ${seq}`));
    }
    // Past `total`, and records of other kinds between them: never read.
    ops.push(put(`e:${hex12(total)}`, "later"), put("f:0", "other"), put("d:0", "other"));
    await store.write(ops);

    const entries = await readAll(store.seqValues("entries", total), total);
    const bodies = await readAll(store.seqValues("bodies", total), total);
    const paths = await readAll(store.seqValues("receiptPaths", total), total);
    for (let seq = 0; seq < total; seq++) {
      expect(entries[seq]).to.equal(missing.has(seq) ? undefined : `entry ${seq}`);
      expect(bodies[seq]).to.equal(missing.has(seq) || seq % 3 !== 0 ? undefined : `body ${seq}`);
      expect(paths[seq]).to.equal(missing.has(seq) ? undefined : `path ${seq}`);
    }
  });

  it("reads as of when it was opened: a later write does not show up half-way", async () => {
    await store.write([put(`e:${hex12(0)}`, "entry 0"), put(`e:${hex12(2)}`, "entry 2")]);
    const values = store.seqValues("entries", 3);
    await store.write([put(`e:${hex12(1)}`, "entry 1"), put(`e:${hex12(2)}`, "changed")]);
    expect(await readAll(values, 3)).to.deep.equal(["entry 0", undefined, "entry 2"]);
  });

  it("receipt groups one at a time by the seq of their key, and their headers", async () => {
    await store.write([
      put(`g:${hex12(0)}`, '{"firstSeq":0}'),
      put(`g:${hex12(5)}`, '{"firstSeq":5}'),
      put(`h:${hex12(5)}`, '{"header":5}'),
      put(`f:${hex12(1)}`, "not a group"),
    ]);
    const groups = store.groupRecords();
    const seen = [];
    for (let g = await groups.next(); g !== undefined; g = await groups.next())
      seen.push([g.keySeq, g.raw.toString()]);
    await groups.close();
    expect(seen).to.deep.equal([
      [0, '{"firstSeq":0}'],
      [5, '{"firstSeq":5}'],
    ]);
    expect((await store.getGroupHeaderAsStored(5))?.toString()).to.equal('{"header":5}');
    expect(await store.getGroupHeaderAsStored(0)).to.equal(undefined);
  });

  it("batch records undecoded, the batch-by-seq lookup and the last batch number", async () => {
    expect(await store.lastBatchNo()).to.equal(-1);
    await store.write([
      put(`k:${hex12(0)}`, "record 0"),
      put(`k:${hex12(17)}`, "not even JSON"),
      put(`q:${hex12(0)}`, "0"),
      put(`q:${hex12(40)}`, "17"),
      put(`q:${hex12(90)}`, "x"),
    ]);
    const records = [];
    for await (const [batchNo, raw] of store.batchRecordsAsStored())
      records.push([batchNo, raw.toString()]);
    expect(records).to.deep.equal([
      [0, "record 0"],
      [17, "not even JSON"],
    ]);
    const firstSeqs = [];
    for await (const pair of store.batchFirstSeqs()) firstSeqs.push(pair);
    expect(firstSeqs).to.deep.equal([
      [0, 0],
      [17, 40],
      [NaN, 90],
    ]);
    expect(await store.lastBatchNo()).to.equal(17);
  });

  it("bodies from a seq on, and every subject head by its subject tag", async () => {
    const tag = "ab".repeat(32);
    await store.write([
      put(`b:${hex12(3)}`, "b3"),
      put(`b:${hex12(7)}`, "b7"),
      put(`b:${hex12(300)}`, "b300"),
      put(`v:${tag}`, '{"count":1}'),
      put(`u:${hex12(0)}:00`, "undo, not a head"),
      put(`w:${tag}`, "not a head"),
    ]);
    const seqs = [];
    for await (const seq of store.bodySeqsFrom(5)) seqs.push(seq);
    expect(seqs).to.deep.equal([7, 300]);
    const heads = [];
    for await (const [subject, raw] of store.subjectHeadsAsStored())
      heads.push([subject, raw.toString()]);
    expect(heads).to.deep.equal([[`0x${tag}`, '{"count":1}']]);
  });
});

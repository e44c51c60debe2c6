/**
 * The store on its own, on a real LevelDB directory: what the ledger appends comes back by seq,
 * by index and by idempotency key; bodies are sealed on disk and open only at their own seq;
 * erasing a body leaves its tombstone and every other body of its epoch readable; and all of it
 * survives closing and reopening.
 */
import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { K } from "../../../services/store/keys.ts";
import {
  type AppendRecord,
  BodyUnreadable,
  LedgerStore,
} from "../../../services/store/ledger-store.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { StoreCorruptError } from "../../../services/store/record-codec.ts";

const SUBJECT = `0x${"5a".repeat(32)}`;
const T0 = Date.parse("2026-03-01T08:00:00.000Z");

function record(seq: number, over: Partial<AppendRecord> = {}): AppendRecord {
  const body = {
    event: { note: `event ${seq}`, secret: `patient-${seq}` },
    salt: `0x${"11".repeat(32)}`,
  };
  return {
    seq,
    entryBytes: new TextEncoder().encode(`{"seq":${seq},"v":1}`),
    bodyJson: JSON.stringify(body),
    subject: seq % 2 === 0 ? SUBJECT : null,
    organization: seq < 3 ? "org:hospital" : "org:lab",
    recordedMs: T0 + seq * 1_000,
    requestId: `req-${seq}`,
    ...over,
  };
}

describe("store/ledger-store (LevelDB on disk)", () => {
  let dir: string;
  let store: LedgerStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-store-"));
    store = await LedgerStore.open(dir);
  });

  afterEach(async () => {
    if (store.isOpen) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function append(records: AppendRecord[]): Promise<void> {
    await store.prepareAppend(records[records.length - 1]!.seq);
    await store.write(store.appendOps(records));
  }

  it("an empty log starts at seq 0 and has no meta, batch or group", async () => {
    expect(await store.nextSeq()).to.equal(0);
    expect(await store.getMeta()).to.equal(undefined);
    expect(await store.lastBatch()).to.equal(undefined);
    expect(await store.batchNoForSeq(0)).to.equal(undefined);
    expect(await store.getGroupContaining(0)).to.equal(undefined);
  });

  it("appended events come back by seq, by subject, organization, time and request id", async () => {
    await append([0, 1, 2, 3, 4, 5].map((s) => record(s)));
    expect(await store.nextSeq()).to.equal(6);
    expect(await store.getEntryJcs(4)).to.equal('{"seq":4,"v":1}');
    expect(await store.getEntriesJcs([5, 9])).to.deep.equal(['{"seq":5,"v":1}', undefined]);
    const scanned = [];
    for await (const e of store.scanEntries(2, 5)) scanned.push(e[0]);
    expect(scanned).to.deep.equal([2, 3, 4]);

    expect((await store.getBody(3))?.event).to.deep.equal({ note: "event 3", secret: "patient-3" });
    expect(await store.seqsBySubject(SUBJECT, { limit: 10 })).to.deep.equal([0, 2, 4]);
    expect(await store.seqsBySubject(SUBJECT, { afterSeq: 0, limit: 1 })).to.deep.equal([2]);
    expect(await store.seqsBySubject(SUBJECT, { beforeSeq: 4, limit: 10 })).to.deep.equal([0, 2]);
    expect(await store.seqsByOrg("org:lab", { limit: 10 })).to.deep.equal([3, 4, 5]);
    expect(await store.seqsByOrg("org:none", { limit: 10 })).to.deep.equal([]);
    expect(
      await store.seqsByTime({ fromMs: T0 + 1_000, toMs: T0 + 4_000, limit: 10 }),
    ).to.deep.equal([1, 2, 3].map((seq) => ({ ms: T0 + seq * 1_000, seq })));
    expect(
      await store.seqsByTime({
        fromMs: T0,
        toMs: T0 + 10_000,
        after: { ms: T0 + 4_000, seq: 4 },
        limit: 10,
      }),
    ).to.deep.equal([{ ms: T0 + 5_000, seq: 5 }]);
    expect(await store.findRequest("org:lab", "req-4")).to.equal(4);
    expect(await store.findRequest("org:hospital", "req-4"), "scoped by organization").to.equal(
      undefined,
    );
  });

  it("bodies are sealed on disk and open only under their own seq", async () => {
    await append([record(0), record(1)]);
    const raw0 = await store.getRaw(K.body(0));
    const raw1 = await store.getRaw(K.body(1));
    expect(raw0, "stored").not.to.equal(undefined);
    expect(raw0!.toString("latin1")).not.to.include("patient-0");
    expect(raw0![0], "sealed format").to.equal(0x01);
    // Body 1's sealed bytes moved under seq 0: the key name is bound in, so it does not open.
    expect(() => store.openBody(0, raw1!)).to.throw(BodyUnreadable, /does not open/);
    const altered = Buffer.from(raw0!);
    altered[altered.length - 1]! ^= 1;
    expect(() => store.openBody(0, altered)).to.throw(BodyUnreadable, /altered on disk/);
    expect(JSON.parse(store.openBody(0, raw0!)!.toString("utf8"))).to.have.property("salt");
  });

  it("erasing a body leaves its tombstone; the epoch's other bodies still open, also reopened", async () => {
    await append([0, 1, 2].map((s) => record(s)));
    const tombstone = {
      seq: 1,
      erasedAt: "2026-03-02T00:00:00.000Z",
      legalBasis: "GDPR Art. 17(1)(b)",
      keyId: "key-admin",
      reason: "request of the data subject",
      erasureSeq: 3,
    };
    await store.eraseBody(1, tombstone);
    expect(await store.getBody(1)).to.equal(undefined);
    expect(await store.getTombstone(1)).to.deep.equal(tombstone);
    expect(await store.getEntryJcs(1), "the entry stays").to.equal('{"seq":1,"v":1}');
    expect((await store.getBody(0))?.event).to.deep.include({ note: "event 0" });
    expect((await store.getBody(2))?.event).to.deep.include({ note: "event 2" });

    await store.close();
    store = await LedgerStore.open(dir);
    expect(await store.nextSeq()).to.equal(3);
    expect(await store.getBody(1)).to.equal(undefined);
    expect((await store.getBody(2))?.event).to.deep.include({ note: "event 2" });
    expect(await store.findRequest("org:hospital", "req-2")).to.equal(2);
  });

  it("every body of one append is sealed under its own nonce", async () => {
    // AES-GCM with a repeated nonce under one key leaks the XOR of the plaintexts and the
    // authentication key: the nonces of a group come from one draw, and none may repeat.
    const records = Array.from({ length: 300 }, (_, seq) => record(seq));
    await store.prepareAppend(299);
    const ops = store.appendOps(records);
    const bodyOps = ops.filter((op) => op.type === "put" && op.key.startsWith(K.bodyPrefix));
    expect(bodyOps).to.have.length(300);
    const nonces = new Set(
      bodyOps.map((op) => Buffer.from(op.type === "put" ? op.value : []).toString("hex", 5, 17)),
    );
    expect(nonces.size).to.equal(300);
    await store.write(ops);
    expect((await store.getBody(299))?.event).to.deep.include({ note: "event 299" });
  });

  it("appends write no empty value (classic-level leaks the copy of an empty value)", async () => {
    const records = Array.from({ length: 20 }, (_, seq) => record(seq));
    await store.prepareAppend(19);
    const ops = store.appendOps(records);
    const empty = ops.filter((op) => op.type === "put" && op.value.length === 0);
    expect(empty.map((op) => op.key)).to.deep.equal([]);
    await store.write(ops);
    expect(await store.seqsByOrg("org:lab", { limit: 100 })).to.not.have.length(0);
  });

  it("one write of more ops than one slice lands whole", async () => {
    const records = Array.from({ length: 1_500 }, (_, seq) =>
      record(seq, { requestId: undefined }),
    );
    await store.prepareAppend(1_499);
    const ops = store.appendOps(records);
    expect(ops.length, "more than one 4,096-op slice").to.be.greaterThan(4_096);
    await store.write(ops);
    expect(await store.nextSeq()).to.equal(1_500);
    expect(await store.seqsByOrg("org:lab", { limit: 5_000 })).to.have.length(1_497);
  });

  it("writes LevelDB tables no larger than tableFileBytes (the mapped part of RSS is 64 of them at most)", async function () {
    this.timeout(60_000);
    await store.close();
    const small = await LedgerStore.open(dir, { tableFileBytes: 1024 * 1024 });
    try {
      // 12 MiB of incompressible values in 12 writes, each spread over the whole key range (so
      // the memtable flushes overlap and must be merged), then compacted down: every table a
      // compaction writes is cut at the size asked (a flush writes one of the write buffer's).
      for (let w = 0; w < 12; w++)
        await small.write(
          Array.from({ length: 1_024 }, (_, i) => ({
            type: "put" as const,
            key: `x:${String(i * 12 + w).padStart(8, "0")}`,
            value: randomBytes(1_024),
          })),
        );
      await small.compact();
      const tables = (await readdir(dir)).filter((f) => f.endsWith(".ldb"));
      const sizes = await Promise.all(
        tables.map(async (f) => (await stat(path.join(dir, f))).size),
      );
      expect(sizes.length, `tables: ${sizes.join(", ")}`).to.be.at.least(10);
      expect(Math.max(...sizes)).to.be.at.most(1024 * 1024 + 64 * 1024);
    } finally {
      await small.close();
    }
  });

  it("log metadata and batch records round-trip", async () => {
    const meta = {
      logId: `0x${"ab".repeat(32)}`,
      logSecret: `0x${"cd".repeat(32)}`,
      createdAt: "2026-03-01T00:00:00.000Z",
      formatVersion: 1 as const,
    };
    await store.putMeta(meta, { purge: true });
    expect(await store.getMeta()).to.deep.equal(meta);

    const batch = (batchNo: number, firstSeq: number): BatchRecord => ({
      header: {
        logId: meta.logId,
        batchNo,
        firstSeq,
        count: 2,
        eventsRoot: `0x${"e1".repeat(32)}`,
        indexRoot: `0x${"f2".repeat(32)}`,
      },
      state: "sealed",
      sealedAt: "2026-03-01T00:00:01.000Z",
      tileHeight: 7,
    });
    await store.write([...store.newBatchOps(batch(0, 0)), ...store.newBatchOps(batch(1, 2))]);
    expect(await store.getBatch(1)).to.deep.equal(batch(1, 2));
    expect(await store.lastBatch()).to.deep.equal(batch(1, 2));
    expect(await store.batchNoForSeq(3)).to.equal(1);
    expect(await store.batchNoForSeq(1)).to.equal(0);
    expect(await store.listBatches({ limit: 10 })).to.deep.equal([batch(0, 0), batch(1, 2)]);
    expect(await store.listBatches({ limit: 1, reverse: true })).to.deep.equal([batch(1, 2)]);
    expect(await store.listBatches({ fromBatchNo: 1, limit: 10 })).to.deep.equal([batch(1, 2)]);
  });

  it("a stored record that does not decode is a StoreCorruptError naming its key", async () => {
    await store.write([
      { type: "put", key: K.batch(0), value: Buffer.from('{"header":') },
      { type: "put", key: K.tombstone(4), value: Buffer.from('{"seq":"four"}') },
      { type: "put", key: K.batchBySeq(0), value: Buffer.from("zero") },
    ]);
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      );
    const batch = await failure(store.getBatch(0));
    expect(batch).to.be.instanceOf(StoreCorruptError);
    expect((batch as StoreCorruptError).message).to.match(
      /^stored record k:0+ is corrupt: not JSON/,
    );
    expect(await failure(store.getTombstone(4))).to.have.property("kind", "tombstone");
    expect(await failure(store.batchNoForSeq(0))).to.have.property("key", K.batchBySeq(0));
  });
});

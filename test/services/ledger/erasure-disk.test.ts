/**
 * Erasure leaves nothing (issue 19): once `eraseEvent` returns, no byte of the erased body, its
 * salt or its field salts is readable anywhere under the data directory — LevelDB table files
 * (every block decompressed), the write-ahead log, the manifest, the body key file, anything —
 * and the key the body was sealed under is gone too. Real LevelDB on disk, no mocks; also with
 * other events being written while the erasure runs.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { jcs } from "../../../services/core/jcs.ts";
import { auditLog } from "../../../services/ledger/audit.ts";
import { eraseEvent } from "../../../services/ledger/erasure.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { BODY_KEYS_FILE, EPOCH_SEQS, epochOf } from "../../../services/store/body-keys.ts";
import { K } from "../../../services/store/keys.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { filesContaining, readEverything } from "../../support/leveldb-files.ts";

const signer = new Wallet(`0x${"33".repeat(32)}`);

async function openLedger(location: string): Promise<Ledger> {
  return Ledger.open({
    location,
    receiptSigner: signer,
    batchMaxEvents: 1_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  });
}

/** An event whose every identifying value is unique to `tag`. */
function markedEvent(tag: string) {
  const e = makeNativeEvent({ requestId: `req-${tag}` });
  e.patient = { system: "urn:oid:1.2.3", value: `PAT-${tag}` };
  const clinician = e.agents[2]!;
  clinician.who = { system: "urn:staff", value: `staff-${tag}`, display: `Dr. ${tag}` };
  clinician.userName = `user-${tag}`;
  clinician.altId = `alt-${tag}`;
  clinician.network = { address: `net-${tag}`, type: "1" };
  e.entities[0]!.description = `note-${tag}`;
  return e;
}

/** Filler events: enough of them (≈ 2 KB each) that LevelDB writes table files, not only its log. */
function filler(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => {
    const e = makeNativeEvent({ requestId: `${prefix}-${i}` });
    e.entities[0]!.description = `${prefix}-${i}-${"x".repeat(1_500)}`;
    return e;
  });
}

/** What of event `seq` must not survive its erasure: its content, salt and field salts. */
async function needlesOf(
  ledger: Ledger,
  seq: number,
  tag: string,
): Promise<Array<string | Buffer>> {
  const stored = await ledger.getEvent(seq);
  expect(stored.event, `seq ${seq} has a body before erasure`).to.not.equal(null);
  const body = (await ledger.store.getBodiesJson([seq]))[0]!;
  const fieldSalts = (JSON.parse(body.toString("utf8")) as { fieldSalts?: Record<string, string> })
    .fieldSalts;
  const salts = [stored.salt!, ...Object.values(fieldSalts ?? {})];
  return [
    `PAT-${tag}`,
    `staff-${tag}`,
    `Dr. ${tag}`,
    `user-${tag}`,
    `alt-${tag}`,
    `net-${tag}`,
    `note-${tag}`,
    jcs(stored.event),
    body,
    ...salts.map((s) => s.slice(2)),
    ...salts.map((s) => Buffer.from(s.slice(2), "hex")),
  ];
}

/** The 32-byte keys in the body key file now (its slots: generation u32 + key, twice). */
async function bodyKeysOnDisk(dir: string): Promise<Buffer[]> {
  const file = await readFile(path.join(dir, BODY_KEYS_FILE));
  const keys: Buffer[] = [];
  for (let at = 16; at + 80 <= file.length; at += 80)
    for (const off of [0, 36])
      if (file.readUInt32BE(at + off) !== 0) keys.push(file.subarray(at + off + 4, at + off + 36));
  return keys;
}

async function erase(ledger: Ledger, seq: number) {
  return eraseEvent(ledger, {
    seq,
    legalBasis: "GDPR Art. 17(1)(a)",
    reason: "test",
    keyId: "key_00000000000000ee",
  });
}

describe("ledger/erasure on disk: nothing of an erased body is left under the data directory", function () {
  this.timeout(180_000);
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-erasure-disk-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a fresh log, the event still in the memtable: no byte of it in the table the erasure's flush writes", async () => {
    // The finding of issue 19: the compaction after the delete ran before the memtable was
    // flushed; the flush wrote body and delete marker together into one table, out of reach.
    const location = path.join(dir, "ledger");
    const ledger = await openLedger(location);
    const tag = randomBytes(6).toString("hex");
    const receipts = await ledger.ingest([
      ...filler(50, "m"),
      markedEvent(tag),
      ...filler(50, "n"),
    ]);
    const seq = receipts[50]!.receipt.seq;
    const needles = await needlesOf(ledger, seq, tag);
    const entryJcs = (await ledger.store.getEntryJcs(seq))!;
    await erase(ledger, seq);
    await ledger.store.compact();
    const contents = await readEverything(dir);
    expect(filesContaining(contents, [entryJcs]).length).to.be.greaterThan(0);
    expect(filesContaining(contents, needles)).to.deep.equal([]);
    await ledger.close();
  });

  it("an event in tables and in the write-ahead log: no byte of body, salt or field salts, and its key is destroyed", async () => {
    const location = path.join(dir, "ledger");
    let ledger = await openLedger(location);
    const tag = randomBytes(6).toString("hex");
    const receipts = await ledger.ingest([
      ...filler(400, "a"),
      markedEvent(tag),
      ...filler(400, "b"),
    ]);
    const seq = receipts[400]!.receipt.seq;
    await ledger.sealPending();
    // Reopening turns the write-ahead log into table files (Snappy-compressed blocks).
    await ledger.close();
    ledger = await openLedger(location);
    // And a second copy of the body in the write-ahead log, as a just-written event would be.
    const [again] = await ledger.ingest([markedEvent(`${tag}-wal`)]);
    const needles = [
      ...(await needlesOf(ledger, seq, tag)),
      ...(await needlesOf(ledger, again!.receipt.seq, `${tag}-wal`)),
    ];
    const keysBefore = await bodyKeysOnDisk(location);
    const entryJcs = (await ledger.store.getEntryJcs(seq))!;

    const result = await erase(ledger, seq);
    await erase(ledger, again!.receipt.seq);

    const contents = await readEverything(dir);
    // The reader is not vacuous: it decompressed table blocks and finds what must stay there.
    expect(contents.reduce((n, c) => n + c.decompressedBlocks, 0)).to.be.greaterThan(0);
    expect(filesContaining(contents, [entryJcs]).length).to.be.greaterThan(0);
    expect(contents.map((c) => c.file)).to.include.members([
      `ledger/${BODY_KEYS_FILE}`,
      "ledger/CURRENT",
    ]);
    expect(filesContaining(contents, needles)).to.deep.equal([]);
    expect(result.residue).to.equal("none");
    // The key the erased body was sealed under is in no file either.
    const keysAfter = await bodyKeysOnDisk(location);
    const gone = keysBefore.filter((k) => !keysAfter.some((a) => a.equals(k)));
    expect(gone.length).to.be.greaterThan(0);
    expect(filesContaining(contents, gone)).to.deep.equal([]);
    // Every other event still reads and matches its commitment.
    const audit = await auditLog(ledger.store);
    expect(audit.findings, JSON.stringify(audit.findings.slice(0, 3))).to.deep.equal([]);
    expect(audit.erased).to.equal(2);
    expect(await ledger.store.getRaw(K.body(seq))).to.equal(undefined);
    await ledger.close();
  });

  it("under load: erasures in an old epoch and in the one being written, while writers go on", async () => {
    const location = path.join(dir, "ledger");
    const ledger = await openLedger(location);
    const old = randomBytes(6).toString("hex");
    const recent = randomBytes(6).toString("hex");
    const first = await ledger.ingest([markedEvent(old), ...filler(EPOCH_SEQS + 100, "c")]);
    const oldSeq = first[0]!.receipt.seq;
    let stop = false;
    let written = 0;
    const writers = Array.from({ length: 3 }, async (_, w) => {
      for (let round = 0; !stop; round++) {
        const rs = await ledger.ingest(filler(20, `load-${w}-${round}`));
        written += rs.length;
      }
    });
    const [r] = await ledger.ingest([markedEvent(recent)]);
    const recentSeq = r!.receipt.seq;
    expect(epochOf(recentSeq)).to.be.greaterThan(epochOf(oldSeq));
    const needles = [
      ...(await needlesOf(ledger, oldSeq, old)),
      ...(await needlesOf(ledger, recentSeq, recent)),
    ];
    await erase(ledger, oldSeq);
    await erase(ledger, recentSeq);
    // Checked while the writers are still writing.
    const during = await readEverything(dir);
    stop = true;
    await Promise.all(writers);
    expect(written).to.be.greaterThan(0);
    expect(filesContaining(during, needles)).to.deep.equal([]);
    await ledger.sealPending();
    expect(filesContaining(await readEverything(dir), needles)).to.deep.equal([]);
    const audit = await auditLog(ledger.store);
    expect(audit.findings, JSON.stringify(audit.findings.slice(0, 3))).to.deep.equal([]);
    expect(audit.erased).to.equal(2);
    expect(audit.events).to.equal(ledger.nextSeq);
    await ledger.close();
  });

  it("a log written before bodies were sealed: its plain bodies still read; erasing one says plain text may remain", async () => {
    const location = path.join(dir, "ledger");
    const ledger = await Ledger.open({
      location,
      receiptSigner: signer,
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 3_600_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
      entryVersion: () => 1,
    });
    const rs = await ledger.ingest([markedEvent("legacy-a"), markedEvent("legacy-b")]);
    const [a, b] = rs.map((r) => r.receipt.seq) as [number, number];
    // As an earlier version stored them: the body as plain JSON.
    for (const seq of [a, b]) {
      const plain = (await ledger.store.getBodiesJson([seq]))[0]!;
      await ledger.store.write([{ type: "put", key: K.body(seq), value: plain }]);
    }
    const before = await ledger.getEvent(b);
    const result = await erase(ledger, a);
    expect(result.residue).to.equal("plaintext-until-compaction");
    expect((await ledger.getEvent(a)).event).to.equal(null);
    // The other body of the epoch was re-sealed on the way and reads as before.
    expect((await ledger.store.getRaw(K.body(b)))![0]).to.equal(0x01);
    expect(await ledger.getEvent(b)).to.deep.equal(before);
    const audit = await auditLog(ledger.store);
    expect(audit.findings).to.deep.equal([]);
    await ledger.close();
  });

  it("an erasure interrupted after its batch landed is finished at the next open (the old key goes)", async () => {
    const location = path.join(dir, "ledger");
    const ledger = await openLedger(location);
    const tag = randomBytes(6).toString("hex");
    const rs = await ledger.ingest([markedEvent(tag), ...filler(10, "d")]);
    const seq = rs[0]!.receipt.seq;
    const keysBefore = await bodyKeysOnDisk(location);
    // The erasure's steps up to the re-sealing batch, then "the process dies".
    const store = ledger.store as unknown as {
      bodyKeys: {
        beginRotation(e: number): Promise<unknown>;
        finishRotation(e: number): Promise<void>;
      };
    };
    const realFinish = store.bodyKeys.finishRotation.bind(store.bodyKeys);
    store.bodyKeys.finishRotation = () =>
      Promise.reject(new Error("crash before the key is overwritten"));
    const failed = await erase(ledger, seq).catch((e: unknown) => e);
    expect(String(failed)).to.include("crash before the key is overwritten");
    store.bodyKeys.finishRotation = realFinish;
    expect((await bodyKeysOnDisk(location)).length).to.equal(keysBefore.length + 1);
    await ledger.close();
    const reopened = await openLedger(location);
    const keysAfter = await bodyKeysOnDisk(location);
    expect(keysAfter).to.have.length(keysBefore.length);
    expect(keysAfter.some((k) => k.equals(keysBefore[0]!))).to.equal(false);
    expect((await reopened.getEvent(seq)).event).to.equal(null);
    const audit = await auditLog(reopened.store);
    expect(audit.findings).to.deep.equal([]);
    await reopened.close();
  });
});

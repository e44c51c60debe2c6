import { rebuildCommitted } from "../../../services/core/disclosure.ts";
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  entryLeafHash,
  eventCommitment,
  patientKey,
  subjectTag,
} from "../../../services/core/entry.ts";
import { sha256 } from "../../../services/core/hash.ts";
import { fromHex, toHex, utf8 } from "../../../services/core/hex.ts";
import { verifyInclusion } from "../../../services/core/merkle.ts";
import { verifyReceipt } from "../../../services/core/receipt.ts";
import {
  MemoryNodeStore,
  extendChain,
  historyValueHash,
  EMPTY_ROOT,
} from "../../../services/core/subject-index.ts";
import { verifySubjectIndexProof } from "../../../services/core/subject-index-proof.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { Ledger, type LedgerOptions } from "../../../services/ledger/ledger.ts";
import { K } from "../../../services/store/keys.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

const signer = new Wallet("0x" + "11".repeat(32));

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), "veritrail-ledger-"));
}

function options(location: string, overrides: Partial<LedgerOptions> = {}): LedgerOptions {
  return {
    location,
    receiptSigner: signer,
    batchMaxEvents: 1_000,
    batchMaxWaitMs: 60_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
    ...overrides,
  };
}

/** An access to `patient`'s record; no requestId unless given, so each call is a new event. */
function patientEvent(
  patient: string,
  org = "Organization/hospital-a",
  extra: Record<string, unknown> = {},
) {
  const base = makeNativeEvent();
  delete base.requestId;
  return {
    ...base,
    patient: { system: "urn:oid:2.16.840.1.113883.4.1", value: patient },
    ...extra,
    source: { ...base.source, organization: org },
  };
}

describe("ledger (real LevelDB)", function () {
  this.timeout(60_000);
  let dir: string;
  let ledger: Ledger | undefined;

  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    if (ledger && ledger.store.isOpen) await ledger.close();
    ledger = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("assigns contiguous seqs from 0 and continues after reopening", async () => {
    ledger = await Ledger.open(options(dir));
    const first = await ledger.ingest([patientEvent("p1"), patientEvent("p2"), patientEvent("p3")]);
    expect(first.map((r) => r.receipt.seq)).to.deep.equal([0, 1, 2]);
    const logId = ledger.logId;
    await ledger.close();

    ledger = await Ledger.open(options(dir));
    expect(ledger.logId).to.equal(logId);
    const second = await ledger.ingest([patientEvent("p4")]);
    expect(second[0]!.receipt.seq).to.equal(3);
    const stored = await ledger.getEvent(1);
    expect(stored.entry.seq).to.equal(1);
    expect(stored.event).to.deep.equal(patientEvent("p2"));
  });

  it("shares one synced write among concurrent callers and keeps seqs gap-free", async () => {
    ledger = await Ledger.open(options(dir));
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => ledger!.ingest([patientEvent(`p${i}`)])),
    );
    const seqs = results.map((r) => r[0]!.receipt.seq).sort((a, b) => a - b);
    expect(seqs).to.deep.equal(Array.from({ length: 200 }, (_, i) => i));
    const groups = new Set(results.map((r) => r[0]!.receipt.group.firstSeq));
    expect(groups.size).to.be.lessThan(200);
    expect(ledger.nextSeq).to.equal(200);
  });

  it("answers a retried requestId with the original receipt and writes nothing new", async () => {
    ledger = await Ledger.open(options(dir));
    const e = patientEvent("p1", "Organization/hospital-a", { requestId: "req-0001" });
    const [original] = await ledger.ingest([e]);
    expect(original!.duplicate).to.equal(false);
    const [retry] = await ledger.ingest([e]);
    expect(retry!.duplicate).to.equal(true);
    expect(retry!.receipt).to.deep.equal(original!.receipt);
    expect(ledger.nextSeq).to.equal(1);

    // The same requestId from another organization is another request.
    const [other] = await ledger.ingest([
      patientEvent("p1", "Organization/lab-b", { requestId: "req-0001" }),
    ]);
    expect(other!.duplicate).to.equal(false);
    expect(other!.receipt.seq).to.equal(1);

    // Concurrent retries and repeats inside one call share one seq.
    const twin = patientEvent("p9", "Organization/hospital-a", { requestId: "req-0002" });
    const [a, b, c] = await Promise.all([
      ledger.ingest([twin]),
      ledger.ingest([twin]),
      ledger.ingest([twin, twin]),
    ]);
    const seqs = [a![0]!, b![0]!, c![0]!, c![1]!].map((r) => r.receipt.seq);
    expect(new Set(seqs).size).to.equal(1);
    expect(ledger.nextSeq).to.equal(3);

    // Still recognised after a restart.
    await ledger.close();
    ledger = await Ledger.open(options(dir));
    const [afterRestart] = await ledger.ingest([e]);
    expect(afterRestart!.duplicate).to.equal(true);
    expect(afterRestart!.receipt).to.deep.equal(original!.receipt);
  });

  it("seals at BATCH_MAX_EVENTS and at BATCH_MAX_WAIT_MS, with contiguous headers", async () => {
    const sealed: BatchRecord[] = [];
    ledger = await Ledger.open(
      options(dir, { batchMaxEvents: 10, batchMaxWaitMs: 300, onSealed: (r) => sealed.push(r) }),
    );
    await ledger.ingest(Array.from({ length: 25 }, (_, i) => patientEvent(`p${i % 4}`)));
    await waitFor(() => sealed.length >= 2, 2_000);
    expect(sealed.slice(0, 2).map((r) => r.header.count)).to.deep.equal([10, 10]);
    const t0 = Date.now();
    await waitFor(() => sealed.length >= 3, 3_000);
    expect(Date.now() - t0).to.be.lessThan(2_000);
    expect(sealed[2]!.header.count).to.equal(5);
    sealed.forEach((r, i) => {
      expect(r.header.batchNo).to.equal(i);
      expect(r.header.firstSeq).to.equal(i * 10);
      expect(r.header.logId).to.equal(ledger!.logId);
      expect(r.state).to.equal("sealed");
    });
  });

  it("seals events that were accepted but not sealed before a close, after reopening", async () => {
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 100, batchMaxWaitMs: 3_600_000 }));
    await ledger.ingest(Array.from({ length: 7 }, (_, i) => patientEvent(`p${i}`)));
    expect(ledger.sealedThrough).to.equal(0);
    await ledger.close();
    const sealed: BatchRecord[] = [];
    ledger = await Ledger.open(
      options(dir, {
        batchMaxEvents: 100,
        batchMaxWaitMs: 3_600_000,
        onSealed: (r) => sealed.push(r),
      }),
    );
    await waitFor(() => sealed.length === 1, 3_000);
    expect(sealed[0]!.header).to.include({ batchNo: 0, firstSeq: 0, count: 7 });
  });

  it("re-issues every receipt byte for byte, from stored paths and (older data) from the group", async () => {
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 50 }));
    const issued = [
      ...(await ledger.ingest(Array.from({ length: 37 }, (_, i) => patientEvent(`p${i % 5}`)))),
      ...(
        await Promise.all(
          Array.from({ length: 9 }, (_, i) => ledger!.ingest([patientEvent(`q${i}`)])),
        )
      ).flat(),
      ...(await ledger.ingest(Array.from({ length: 130 }, (_, i) => patientEvent(`r${i % 11}`)))),
    ].map((r) => r.receipt);
    const seqs = issued.map((r) => r.seq);
    expect(seqs).to.deep.equal(Array.from({ length: 176 }, (_, i) => i));
    expect(await ledger.receipts(seqs)).to.deep.equal(issued);
    expect(await ledger.receipts([...seqs].reverse())).to.deep.equal([...issued].reverse());
    for (const seq of [0, 36, 37, 45, 46, 175])
      expect(await ledger.receipt(seq)).to.deep.equal(issued[seq]);
    // A log written before receipt paths were stored has only the group records: same receipts.
    await ledger.store.write(
      seqs.map((seq) => ({ type: "del" as const, key: K.receiptPath(seq) })),
    );
    await ledger.close();
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 50 }));
    expect(await ledger.receipts(seqs)).to.deep.equal(issued);
    await expectRejected(ledger.receipts([0, 176]), "NOT_FOUND");
  });

  it("seals a batch of 100,000 events touching 100,000 subjects in one go", async function () {
    this.timeout(180_000);
    ledger = await Ledger.open(
      options(dir, { batchMaxEvents: 100_000, batchMaxWaitMs: 3_600_000 }),
    );
    for (let i = 0; i < 100_000; i += 4_000)
      await ledger.ingest(Array.from({ length: 4_000 }, (_, j) => patientEvent(`big-${i + j}`)));
    await ledger.sealPending();
    expect(ledger.sealedThrough).to.equal(100_000);
    const bundle = await ledger.prove(99_999);
    expect(bundle.batch).to.include({ batchNo: 0, firstSeq: 0, count: 100_000 });
  });

  it("proves any event: commitment, entry ↔ batch, RFC 9162 path and the signed receipt", async () => {
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 37 }));
    await ledger.ingest(Array.from({ length: 100 }, (_, i) => patientEvent(`p${i % 7}`)));
    const unsealedBundle = await ledger.prove(99);
    expect(unsealedBundle.status).to.equal("unsealed");
    expect(unsealedBundle.batch).to.equal(null);
    await ledger.sealPending();
    for (const seq of [0, 1, 36, 37, 50, 73, 74, 99]) {
      const bundle = await ledger.prove(seq);
      expect(bundle.status).to.equal("sealed");
      expect(bundle.anchor).to.equal(null);
      // Entry v2: the commitment is over C(event), rebuilt from the disclosed field salts.
      expect(bundle.entry.v).to.equal(2);
      const rebuilt = rebuildCommitted(bundle.event!, bundle.disclosures);
      if (!rebuilt.ok) expect.fail(rebuilt.reason);
      expect(bundle.entry.commitment).to.equal(
        eventCommitment(fromHex(bundle.salt!), rebuilt.committed),
      );
      expect(bundle.entry.seq).to.equal(bundle.batch!.firstSeq + bundle.leafIndex!);
      expect(bundle.entry.log).to.equal(bundle.batch!.logId);
      const leaf = entryLeafHash(bundle.entry as Parameters<typeof entryLeafHash>[0]);
      verifyInclusion(
        bundle.leafIndex!,
        bundle.batch!.count,
        leaf,
        bundle.inclusion.map(fromHex),
        fromHex(bundle.batch!.eventsRoot),
      );
      expect(bundle.receipt.leafHash).to.equal(toHex(leaf));
      expect(verifyReceipt(bundle.receipt).signer).to.equal(signer.address);
    }
    await expectRejected(ledger.prove(100), "NOT_FOUND");
  });

  it("a proof served from the cached batch record follows the record's saved state", async () => {
    ledger = await Ledger.open(
      options(dir, { batchMaxEvents: 10, store: { batchCacheRecords: 2 } }),
    );
    await ledger.ingest(Array.from({ length: 40 }, (_, i) => patientEvent(`p${i % 3}`)));
    await ledger.sealPending();
    // Batches 0..3 read in turn through a cache of 2: every one is evicted and read again.
    for (const seq of [5, 15, 25, 35, 5])
      expect((await ledger.prove(seq)).status).to.equal("sealed");
    const record = await ledger.getBatch(0);
    const anchor = {
      chainId: 31337,
      contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
      txHash: `0x${"ab".repeat(32)}`,
      blockNumber: 12,
      blockHash: `0x${"cd".repeat(32)}`,
      gasUsed: 57_445,
      anchoredAt: new Date().toISOString(),
    };
    await ledger.saveBatchState({ ...record, state: "anchored", anchor });
    const bundle = await ledger.prove(7);
    expect(bundle.status).to.equal("anchored");
    expect(bundle.anchor?.txHash).to.equal(anchor.txHash);
    expect((await ledger.prove(27)).status).to.equal("sealed");
    // What a reader was handed cannot be changed behind the ledger's back.
    const held = await ledger.getBatch(0);
    expect(() => {
      (held as { state: string }).state = "sealed";
    }).to.throw(TypeError);
    expect((await ledger.getBatch(0)).state).to.equal("anchored");
    await ledger.close();
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 10 }));
    expect((await ledger.prove(7)).status).to.equal("anchored");
  });

  it("commits each batch's indexRoot to every subject's full history", async () => {
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 16 }));
    const patients = ["alice", "bob", "carol", "dave", "erin"];
    const reference = new MemoryNodeStore();
    const heads = new Map<string, { count: number; chain: Uint8Array }>();
    for (let round = 0; round < 4; round++) {
      await ledger.ingest(
        Array.from({ length: 16 }, (_, i) =>
          patientEvent(patients[(i * (round + 1)) % patients.length]!),
        ),
      );
      await ledger.sealPending();
      const record = await ledger.getBatch(round);
      const updates = new Map<string, Uint8Array>();
      for (
        let seq = record.header.firstSeq;
        seq < record.header.firstSeq + record.header.count;
        seq++
      ) {
        const { entry } = await ledger.getEvent(seq);
        const head = heads.get(entry.subject!) ?? { count: 0, chain: EMPTY_ROOT };
        const next = {
          count: head.count + 1,
          chain: extendChain(head.chain, seq, entryLeafHash(entry)),
        };
        heads.set(entry.subject!, next);
        updates.set(entry.subject!, historyValueHash(next.count, next.chain));
      }
      await reference.update([...updates].map(([k, v]) => ({ key: fromHex(k), valueHash: v })));
      expect(record.header.indexRoot).to.equal(toHex(reference.root));
    }
    // Proofs at an older batch still verify against that batch's root.
    const batch1 = await ledger.getBatch(1);
    const someSubject = [...heads.keys()][0]!;
    const proof = await ledger.subjectIndex.proveAt(1, someSubject as `0x${string}`);
    const claim = verifySubjectIndexProof(
      fromHex(batch1.header.indexRoot),
      fromHex(someSubject),
      proof,
    );
    expect(claim.member).to.equal(true);
  });

  it("a new log records its subject derivation (jcs); a log created before keeps system|value", async () => {
    ledger = await Ledger.open(options(dir));
    expect(ledger.meta.subjectDerivation).to.equal("jcs");
    const p = { system: "urn:a", value: "b|PAT" };
    expect(ledger.subjectTagOf(p)).to.equal(subjectTag(fromHex(ledger.meta.logSecret), p, "jcs"));
    // A log written before the derivation was recorded: its metadata has no such field.
    const { subjectDerivation: _recorded, ...older } = ledger.meta;
    await ledger.store.putMeta(older);
    await ledger.close();
    ledger = await Ledger.open(options(dir));
    expect(ledger.subjectDerivation).to.equal("pipe");
    expect(ledger.subjectTagOf(p)).to.equal(subjectTag(fromHex(ledger.meta.logSecret), p, "pipe"));
    const [r] = await ledger.ingest([patientEvent("PIPE-1")]);
    expect(r!.receipt.seq).to.equal(0);
    expect((await ledger.getEvent(0)).entry.subject).to.equal(
      ledger.subjectTagOf({ system: "urn:oid:2.16.840.1.113883.4.1", value: "PIPE-1" }),
    );
  });

  it("keeps patient identifiers out of entries, batch headers and stored indexes", async () => {
    ledger = await Ledger.open(options(dir, { batchMaxEvents: 5 }));
    const ids = ["MRN-4471-SECRET", "MRN-9902-SECRET"];
    await ledger.ingest(ids.flatMap((id) => [patientEvent(id), patientEvent(id)]));
    await ledger.sealPending();
    const needles = ids.flatMap((id) => {
      const p = { system: "urn:oid:2.16.840.1.113883.4.1", value: id };
      return [
        id,
        toHex(sha256(utf8(id))).slice(2),
        toHex(sha256(utf8(patientKey(p, "jcs")))).slice(2),
        toHex(sha256(utf8(patientKey(p, "pipe")))).slice(2),
      ];
    });
    for await (const [key, value] of ledger.store.scan({})) {
      if (key.startsWith("b:")) continue; // the event body itself, never anchored or shared
      for (const needle of needles) {
        expect(key, key).to.not.include(needle);
        expect(value.toString("utf8"), key).to.not.include(needle);
        expect(value.toString("hex"), key).to.not.include(Buffer.from(needle).toString("hex"));
      }
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function expectRejected(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect((e as { code?: string }).code).to.equal(code);
    return;
  }
  expect.fail("expected a rejection");
}

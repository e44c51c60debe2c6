import { expect } from "chai";
import { JsonRpcProvider, Network, Wallet } from "ethers";
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AuditReport, auditLog } from "../../../services/ledger/audit.ts";
import { ChainReads } from "../../../services/verifier/chain-reads.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { K } from "../../../services/store/keys.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";

function kinds(r: AuditReport): string[] {
  return r.findings.map((f) => f.kind);
}

function explain(r: AuditReport): string {
  return r.findings
    .map((f) => `${f.kind} b${f.batchNo ?? "-"} s${f.seq ?? "-"} ${f.message}`)
    .join("\n");
}

describe("ledger/audit: auditLog (Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let provider: JsonRpcProvider;
  let log: AnchoredLog;

  before(async () => {
    node = await HardhatNode.start();
    provider = new JsonRpcProvider(node.url, Network.from(31337), {
      staticNetwork: Network.from(31337),
    });
    log = await AnchoredLog.create(node);
    const mrns = ["MRN-1", "MRN-2", "MRN-3", "MRN-4"];
    for (let b = 0; b < 3; b++) {
      await log.ledger.ingest(
        Array.from({ length: 9 + b }, (_, i) => patientEvent(mrns[(i * 7 + b) % mrns.length]!)),
      );
      await log.sealAndAnchor();
    }
    // An event without a patient, an erased event, and an accepted-but-unsealed tail.
    await log.ledger.ingest([patientEvent("MRN-1", { patient: undefined })]);
    await log.ledger.sealPending();
    await log.ledger.ingest([patientEvent("MRN-2"), patientEvent("MRN-3")]);
    await log.ledger.store.write([{ type: "del", key: K.body(4) }]);
  });

  after(async () => {
    provider?.destroy();
    await log?.close();
    await node?.stop();
  });

  it("an honest log (erasure, unanchored and unsealed tail included) has no findings", async () => {
    const progress: string[] = [];
    const r = await auditLog(log.ledger.store, {
      chain: { reads: new ChainReads(provider) },
      onProgress: (p) => progress.push(p.phase),
    });
    expect(r.ok, explain(r)).to.equal(true);
    expect(r.findings).to.deep.equal([]);
    expect(r).to.include({
      events: 33,
      erased: 1,
      batches: 4,
      sealedEvents: 31,
      logId: log.ledger.logId,
    });
    expect(r.chain).to.deep.include({ contract: log.contract, anchoredBatches: 3, chainId: 31337 });
    expect(progress).to.include("replay");
    expect(progress).to.include("chain");
  });

  it("reports a stored header that differs from the chain's commitment", async () => {
    const key = K.batch(1);
    const original = (await log.ledger.store.getRaw(key))!;
    const record = JSON.parse(original.toString("utf8")) as { header: { eventsRoot: string } };
    const root = record.header.eventsRoot;
    record.header.eventsRoot = `0x${root[2] === "a" ? "b" : "a"}${root.slice(3)}`;
    await log.ledger.store.write([
      { type: "put", key, value: Buffer.from(JSON.stringify(record)) },
    ]);
    try {
      const r = await auditLog(log.ledger.store, {
        chain: { reads: new ChainReads(provider), contract: log.contract },
      });
      expect(kinds(r), explain(r)).to.include.members([
        "EVENTS_ROOT_MISMATCH",
        "CHAIN_HEADER_MISMATCH",
      ]);
      expect(r.findings.every((f) => f.batchNo === 1)).to.equal(true);
    } finally {
      await log.ledger.store.write([{ type: "put", key, value: original }]);
    }
  });

  it("reports a log cut short: the chain holds a batch the store does not have", async () => {
    const key = K.batch(3);
    const original = (await log.ledger.store.getRaw(key))!;
    // The last anchored batch (2) and the sealed one after it are removed from the store.
    const key2 = K.batch(2);
    const original2 = (await log.ledger.store.getRaw(key2))!;
    await log.ledger.store.write([
      { type: "del", key },
      { type: "del", key: key2 },
    ]);
    try {
      const r = await auditLog(log.ledger.store, { chain: { reads: new ChainReads(provider) } });
      expect(kinds(r), explain(r)).to.include("CHAIN_EXTRA_BATCH");
    } finally {
      await log.ledger.store.write([
        { type: "put", key, value: original },
        { type: "put", key: key2, value: original2 },
      ]);
    }
  });

  it("reports a batch recorded as anchored that the chain does not hold", async () => {
    const key = K.batch(3);
    const original = (await log.ledger.store.getRaw(key))!;
    const record = JSON.parse(original.toString("utf8")) as Record<string, unknown>;
    record["state"] = "anchored";
    await log.ledger.store.write([
      { type: "put", key, value: Buffer.from(JSON.stringify(record)) },
    ]);
    try {
      const r = await auditLog(log.ledger.store, {
        chain: { reads: new ChainReads(provider), contract: log.contract },
      });
      expect(kinds(r), explain(r)).to.deep.equal(["CHAIN_NOT_ANCHORED"]);
    } finally {
      await log.ledger.store.write([{ type: "put", key, value: original }]);
    }
  });

  it("property: flipping any byte of a stored entry, body (event or salt) or batch header is reported", async () => {
    const store = log.ledger.store;
    const targets: Array<{ key: string; start: number; end: number }> = [];
    for (let seq = 0; seq < 33; seq++) {
      const e = (await store.getRaw(K.entry(seq)))!;
      targets.push({ key: K.entry(seq), start: 0, end: e.length });
      const b = await store.getRaw(K.body(seq));
      if (b) targets.push({ key: K.body(seq), start: 0, end: b.length });
    }
    for (let batchNo = 0; batchNo < 4; batchNo++) {
      const raw = (await store.getRaw(K.batch(batchNo)))!.toString("utf8");
      const start = raw.indexOf('"header":{') + '"header":'.length;
      targets.push({ key: K.batch(batchNo), start, end: raw.indexOf("}", start) + 1 });
    }
    await fc.assert(
      fc.asyncProperty(
        fc.nat(targets.length - 1),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (t, position, mask) => {
          const target = targets[t]!;
          const original = (await store.getRaw(target.key))!;
          const tampered = Buffer.from(original);
          const at = target.start + (position % (target.end - target.start));
          tampered[at] = tampered[at]! ^ mask;
          await store.write([{ type: "put", key: target.key, value: tampered }], false);
          try {
            const r = await auditLog(store);
            expect(r.ok, `${target.key}@${at}^${mask} not reported`).to.equal(false);
            expect(r.findings.length).to.be.greaterThan(0);
          } finally {
            await store.write([{ type: "put", key: target.key, value: original }], false);
          }
        },
      ),
      { numRuns: 150 },
    );
    expect((await auditLog(store)).ok).to.equal(true);
  });

  it("reports a batch whose index update left an event out (INDEX_ROOT_MISMATCH)", async () => {
    const forged = await AnchoredLog.create(node);
    try {
      await forged.ledger.ingest([patientEvent("MRN-X"), patientEvent("MRN-Y")]);
      await forged.sealAndAnchor();
      await forged.ledger.ingest([patientEvent("MRN-X"), patientEvent("MRN-X")]);
      await forged.sealForged(3);
      await forged.anchorAll();
      const r = await auditLog(forged.ledger.store, { chain: { reads: new ChainReads(provider) } });
      expect(r.ok).to.equal(false);
      // The header is anchored as sealed: only the rebuilt index disagrees with it.
      expect(kinds(r), explain(r)).to.deep.equal([
        "INDEX_ROOT_MISMATCH",
        "STORED_INDEX_MISMATCH",
        "SUBJECT_HEAD_MISMATCH",
      ]);
      expect(r.findings[0]).to.include({ kind: "INDEX_ROOT_MISMATCH", batchNo: 1 });
    } finally {
      await forged.close();
    }
  });

  it("reports missing entries and seq gaps", async () => {
    const key = K.entry(7);
    const original = (await log.ledger.store.getRaw(key))!;
    await log.ledger.store.write([{ type: "del", key }]);
    try {
      const r = await auditLog(log.ledger.store);
      expect(r.findings[0], explain(r)).to.include({
        kind: "BATCH_ENTRIES_MISSING",
        seq: 7,
        batchNo: 0,
      });
    } finally {
      await log.ledger.store.write([{ type: "put", key, value: original }]);
    }
  });
});

describe("ledger/audit: a log of several read pages (real LevelDB, no chain)", function () {
  this.timeout(60_000);
  let dir: string;
  let ledger: Ledger;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-audit-pages-"));
    // Groups of 700 and batches of 1,000 fall across the replay's 1,024-key pages.
    ledger = await Ledger.open({
      location: dir,
      receiptSigner: new Wallet("0x" + "44".repeat(32)),
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 700,
    });
    for (let i = 0; i < 3_000; i += 500)
      await ledger.ingest(
        Array.from({ length: 500 }, (_, j) => patientEvent(`MRN-${(i + j) % 50}`)),
      );
    await ledger.sealPending();
  });

  after(async () => {
    await ledger?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Applies `ops`, audits, and puts the original values back. */
  async function auditWith(
    change: (raw: Map<string, Buffer>) => Array<{ key: string; value?: Buffer }>,
    keys: string[],
  ): Promise<AuditReport> {
    const store = ledger.store;
    const originals = new Map<string, Buffer>();
    for (const key of keys) originals.set(key, (await store.getRaw(key))!);
    await store.write(
      change(originals).map((c) =>
        c.value === undefined
          ? { type: "del" as const, key: c.key }
          : { type: "put" as const, key: c.key, value: c.value },
      ),
    );
    try {
      return await auditLog(store);
    } finally {
      await store.write(
        [...originals].map(([key, value]) => ({ type: "put" as const, key, value })),
      );
    }
  }

  it("an honest log has no findings", async () => {
    const r = await auditLog(ledger.store);
    expect(r.findings, explain(r)).to.deep.equal([]);
    expect(r).to.include({ events: 3_000, batches: 3, sealedEvents: 3_000, erased: 0 });
  });

  it("on worker threads: the same report as on one thread, honest and tampered", async () => {
    const same = async () => {
      const one = await auditLog(ledger.store, { workers: 0 });
      const two = await auditLog(ledger.store, { workers: 2 });
      const { durationMs: _a, ...oneReport } = one;
      const { durationMs: _b, ...twoReport } = two;
      expect(twoReport).to.deep.equal(oneReport);
      return two;
    };
    expect((await same()).findings).to.deep.equal([]);
    const keys = [K.entry(5), K.body(1_500), K.entry(2_999), K.body(2_000)];
    const originals = await Promise.all(keys.map(async (k) => (await ledger.store.getRaw(k))!));
    // Byte 20 of an entry is a hex digit of its commitment: it is changed to another hex digit,
    // so the entry still parses and the change is a commitment mismatch (a bit flip would make
    // 'a' or 'f' a non-hex character, and the entry merely malformed, in 1 run of 8).
    const flipped = (b: Buffer) => {
      const c = Buffer.from(b);
      c[20] = c[20] === 0x30 ? 0x31 : 0x30;
      return c;
    };
    await ledger.store.write([
      { type: "put", key: K.entry(5), value: flipped(originals[0]!) },
      { type: "put", key: K.body(1_500), value: flipped(originals[1]!) },
      { type: "del", key: K.entry(2_999) },
      { type: "del", key: K.body(2_000) },
    ]);
    try {
      const r = await same();
      const kinds = new Set(r.findings.map((f) => f.kind));
      expect([...kinds]).to.include.members(["COMMITMENT_MISMATCH", "BATCH_ENTRIES_MISSING"]);
      expect(r.findings.some((f) => f.seq === 5)).to.equal(true);
      expect(r.erased).to.equal(1);
    } finally {
      await ledger.store.write(
        keys.map((key, i) => ({ type: "put" as const, key, value: originals[i]! })),
      );
    }
  });

  it("entries missing at page edges are reported one by one; an erased body is counted", async () => {
    const gone = [1_023, 1_024, 2_047];
    const r = await auditWith(
      () => [...gone.map((seq) => ({ key: K.entry(seq) })), { key: K.body(2_048) }],
      [...gone.map((seq) => K.entry(seq)), K.body(2_048)],
    );
    const missing = r.findings.filter((f) => f.kind === "BATCH_ENTRIES_MISSING");
    expect(missing.map((f) => f.seq)).to.deep.equal(gone);
    expect(missing.map((f) => f.batchNo)).to.deep.equal([1, 1, 2]);
    expect(r.erased).to.equal(1);
  });

  it("reports stored receipt paths, group headers and group leaves that receipts would not match", async () => {
    const flip = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at] = c[at]! ^ 0x01;
      return c;
    };
    const r = await auditWith(
      (raw) => {
        const header = JSON.parse(raw.get(K.groupHeader(0))!.toString("utf8")) as Record<
          string,
          unknown
        >;
        const group = JSON.parse(raw.get(K.group(500))!.toString("utf8")) as Record<
          string,
          unknown
        >;
        return [
          { key: K.receiptPath(10), value: flip(raw.get(K.receiptPath(10))!, 40) },
          { key: K.receiptPath(11), value: flip(raw.get(K.receiptPath(11))!, 2) },
          { key: K.receiptPath(1_025) },
          {
            key: K.groupHeader(0),
            value: Buffer.from(
              JSON.stringify({ ...header, issuedAt: Number(header.issuedAt) + 1 }),
            ),
          },
          {
            key: K.group(500),
            value: Buffer.from(JSON.stringify({ ...group, leavesRoot: "0x" + "00".repeat(32) })),
          },
        ];
      },
      [K.receiptPath(10), K.receiptPath(11), K.receiptPath(1_025), K.groupHeader(0), K.group(500)],
    );
    const found = r.findings.map((f) => `${f.kind}@${f.seq}`);
    expect(found, explain(r)).to.have.members([
      "RECEIPT_PATH_MISMATCH@10",
      "RECEIPT_PATH_MISMATCH@11",
      "RECEIPT_PATH_MISSING@1025",
      "RECEIPT_HEADER_MISMATCH@0",
      "RECEIPT_GROUP_ROOT_MISMATCH@500",
      // The header of group 500 no longer matches its (tampered) record either.
      "RECEIPT_HEADER_MISMATCH@500",
    ]);
  });

  it("bodies and entries laid out otherwise than ingest writes them get the full check", async () => {
    const r = await auditWith(
      (raw) => {
        const body = (seq: number) =>
          JSON.parse(ledger.store.openBody(seq, raw.get(K.body(seq))!)!.toString("utf8")) as {
            event: unknown;
            salt: string;
            fieldSalts: unknown;
          };
        const reordered = body(1_500);
        const upper = body(1_501);
        const entry = raw.get(K.entry(1_502))!.toString("utf8");
        return [
          // Same event and salt, other member order: valid, the commitment still matches.
          {
            key: K.body(1_500),
            value: Buffer.from(
              JSON.stringify({
                salt: reordered.salt,
                event: reordered.event,
                fieldSalts: reordered.fieldSalts,
              }),
            ),
          },
          {
            key: K.body(1_501),
            value: Buffer.from(JSON.stringify({ ...upper, salt: upper.salt.toUpperCase() })),
          },
          { key: K.entry(1_502), value: Buffer.from(`{ ${entry.slice(1)}`) },
        ];
      },
      [K.body(1_500), K.body(1_501), K.entry(1_502)],
    );
    expect(r.findings.filter((f) => f.seq === 1_500)).to.deep.equal([]);
    expect(r.findings.find((f) => f.seq === 1_501)).to.include({ kind: "BODY_MALFORMED" });
    expect(r.findings.filter((f) => f.seq === 1_502).map((f) => f.kind)).to.include.members([
      "ENTRY_NOT_CANONICAL",
      "RECEIPT_LEAF_MISMATCH",
    ]);
  });
});

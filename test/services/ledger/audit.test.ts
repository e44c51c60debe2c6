import { expect } from "chai";
import { JsonRpcProvider, Network, Wallet } from "ethers";
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AuditReport, auditLog } from "../../../services/ledger/audit.ts";
import { ChainReads } from "../../../services/verifier/chain-reads.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { K } from "../../../services/store/keys.ts";
import type { ChainRpc } from "../../../services/verifier/chain-reads.ts";
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

  /**
   * Rewrites batch `batchNo`'s record as someone with write access and this code would: the
   * record re-encoded by the store, its digest recomputed. Runs `check`, then restores it.
   */
  async function withRewrittenBatch(
    batchNo: number,
    mutate: (record: BatchRecord) => void,
    check: () => Promise<void>,
  ): Promise<void> {
    const store = log.ledger.store;
    const key = K.batch(batchNo);
    const original = (await store.getRaw(key))!;
    const record = structuredClone((await store.getBatch(batchNo))!);
    mutate(record);
    await store.putBatch(record);
    try {
      await check();
    } finally {
      await store.write([{ type: "put", key, value: original }]);
    }
  }

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
    expect(r.chain).to.deep.include({
      contract: log.contract,
      anchoredBatches: 3,
      chainId: 31337,
      // Every recorded anchor checked against its transaction receipt, block and block hash.
      anchorEvidence: { receipt: 3, state: 0, unverifiable: 0 },
    });
    expect(progress).to.include("replay");
    expect(progress).to.include("chain");
  });

  it("reports a stored header that differs from the chain's commitment", async () => {
    await withRewrittenBatch(
      1,
      (record) => {
        const root = record.header.eventsRoot;
        record.header.eventsRoot = `0x${root[2] === "a" ? "b" : "a"}${root.slice(3)}`;
      },
      async () => {
        const r = await auditLog(log.ledger.store, {
          chain: { reads: new ChainReads(provider), contract: log.contract },
        });
        expect(kinds(r), explain(r)).to.include.members([
          "EVENTS_ROOT_MISMATCH",
          "CHAIN_HEADER_MISMATCH",
        ]);
        expect(r.findings.every((f) => f.batchNo === 1)).to.equal(true);
      },
    );
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
    const anchorOf2 = (await log.ledger.store.getBatch(2))!.anchor!;
    await withRewrittenBatch(
      3,
      (record) => {
        record.state = "anchored";
        record.anchor = { ...anchorOf2 };
      },
      async () => {
        const r = await auditLog(log.ledger.store, {
          chain: { reads: new ChainReads(provider), contract: log.contract },
        });
        expect(kinds(r), explain(r)).to.deep.equal(["CHAIN_NOT_ANCHORED"]);
      },
    );
  });

  describe("every anchor field a batch record stores is compared with the chain", () => {
    /** Batch 1's record as anchored, and batch 0's anchor (another real anchoring). */
    let b1: BatchRecord;
    let b0: BatchRecord;
    before(async () => {
      b1 = (await log.ledger.store.getBatch(1))!;
      b0 = (await log.ledger.store.getBatch(0))!;
      expect(b1.state).to.equal("anchored");
      expect(b1.submission, "the loop records what it sent").to.not.equal(undefined);
    });
    const flip = (hex: string) => `${hex.slice(0, -1)}${hex.endsWith("0") ? "1" : "0"}`;
    const cases: Array<{ field: string; mutate: (r: BatchRecord) => void; expect: string[] }> = [
      {
        field: "anchor.blockHash",
        mutate: (r) => (r.anchor!.blockHash = flip(r.anchor!.blockHash)),
        expect: ["ANCHOR_BLOCK_NOT_CANONICAL", "ANCHOR_TX_MISMATCH"],
      },
      {
        field: "anchor.blockNumber (another block)",
        mutate: (r) => (r.anchor!.blockNumber = b0.anchor!.blockNumber),
        expect: ["ANCHOR_BLOCK_NOT_CANONICAL", "ANCHOR_TX_MISMATCH"],
      },
      {
        field: "anchor.blockNumber and blockHash (another real block)",
        mutate: (r) => {
          r.anchor!.blockNumber = b0.anchor!.blockNumber;
          r.anchor!.blockHash = b0.anchor!.blockHash;
        },
        expect: ["ANCHOR_TX_MISMATCH"],
      },
      {
        field: "anchor.txHash (unknown to the chain)",
        mutate: (r) => (r.anchor!.txHash = flip(r.anchor!.txHash)),
        expect: ["ANCHOR_TX_MISMATCH"],
      },
      {
        field: "anchor.txHash and gasUsed (another batch's anchoring)",
        // Its gas too, so that only where it was mined and what it emitted can tell.
        mutate: (r) => {
          r.anchor!.txHash = b0.anchor!.txHash;
          r.anchor!.gasUsed = b0.anchor!.gasUsed;
        },
        expect: ["ANCHOR_TX_MISMATCH", "ANCHOR_TX_NO_HEADER"],
      },
      {
        field: "anchor.gasUsed",
        mutate: (r) => (r.anchor!.gasUsed += 1),
        expect: ["ANCHOR_GAS_MISMATCH"],
      },
      {
        field: "anchor.contract",
        mutate: (r) => (r.anchor!.contract = "0x000000000000000000000000000000000000dEaD"),
        expect: ["ANCHOR_CONTRACT_MISMATCH"],
      },
      {
        field: "anchor.chainId",
        mutate: (r) => (r.anchor!.chainId = 1),
        expect: ["ANCHOR_CHAIN_MISMATCH"],
      },
      {
        field: "submission.contract",
        mutate: (r) => (r.submission!.contract = "0x000000000000000000000000000000000000dEaD"),
        expect: ["ANCHOR_CONTRACT_MISMATCH"],
      },
      {
        field: "submission.chainId",
        mutate: (r) => (r.submission!.chainId = 5),
        expect: ["ANCHOR_CHAIN_MISMATCH"],
      },
      {
        field: "submission.nonce",
        mutate: (r) => (r.submission!.nonce += 1),
        expect: ["SUBMISSION_MISMATCH"],
      },
      {
        field: "state (sealed, anchor kept)",
        mutate: (r) => (r.state = "sealed"),
        expect: ["BATCH_STATE_INCONSISTENT"],
      },
    ];
    for (const c of cases)
      it(`${c.field}: ${c.expect.join(", ")}`, async () => {
        await withRewrittenBatch(1, c.mutate, async () => {
          const r = await auditLog(log.ledger.store, {
            chain: { reads: new ChainReads(provider), contract: log.contract },
          });
          expect([...new Set(kinds(r))].sort(), explain(r)).to.deep.equal([...c.expect].sort());
          expect(r.findings.every((f) => f.batchNo === 1)).to.equal(true);
        });
      });

    it("a pruned receipt (EIP-4444) falls back to the registry state at the block, and says so", async () => {
      // A node that serves no transaction receipts, as execution clients do for old blocks.
      const pruned: ChainRpc = {
        call: (tx) => provider.call(tx),
        getBlockNumber: () => provider.getBlockNumber(),
        getTransactionReceipt: () => Promise.resolve(null),
        getNetwork: () => provider.getNetwork(),
        getBlock: (n) => provider.getBlock(n),
        getTransaction: (hash) => provider.getTransaction(hash),
      };
      const clean = await auditLog(log.ledger.store, {
        chain: { reads: new ChainReads(pruned), contract: log.contract },
      });
      expect(clean.ok, explain(clean)).to.equal(true);
      expect(clean.chain?.anchorEvidence).to.deep.equal({ receipt: 0, state: 3, unverifiable: 0 });
      await withRewrittenBatch(
        1,
        (r) => {
          r.anchor!.blockNumber = b0.anchor!.blockNumber;
          r.anchor!.blockHash = b0.anchor!.blockHash;
        },
        async () => {
          const r = await auditLog(log.ledger.store, {
            chain: { reads: new ChainReads(pruned), contract: log.contract },
          });
          expect(kinds(r), explain(r)).to.include("ANCHOR_STATE_MISMATCH");
        },
      );
    });

    it("an anchor the loop found in state alone (zero tx hash, the block it was seen in) is checked against the state", async () => {
      const zero = `0x${"00".repeat(32)}`;
      const head = await provider.getBlock("latest");
      // What the loop records when the node serves no logs (EIP-4444): the head it saw it at.
      await withRewrittenBatch(
        1,
        (r) => {
          r.anchor!.txHash = zero;
          r.anchor!.gasUsed = 0;
          r.anchor!.blockNumber = head!.number;
          r.anchor!.blockHash = head!.hash!;
        },
        async () => {
          const r = await auditLog(log.ledger.store, {
            chain: { reads: new ChainReads(provider), contract: log.contract },
          });
          expect(r.ok, explain(r)).to.equal(true);
          expect(r.chain?.anchorEvidence).to.deep.equal({ receipt: 2, state: 1, unverifiable: 0 });
        },
      );
      // Seen in a block before the batch was anchored: the state there does not hold it.
      await withRewrittenBatch(
        1,
        (r) => {
          r.anchor!.txHash = zero;
          r.anchor!.blockNumber = b0.anchor!.blockNumber;
          r.anchor!.blockHash = b0.anchor!.blockHash;
        },
        async () => {
          const r = await auditLog(log.ledger.store, {
            chain: { reads: new ChainReads(provider), contract: log.contract },
          });
          expect(kinds(r), explain(r)).to.deep.equal(["ANCHOR_STATE_MISMATCH"]);
        },
      );
    });

    it("operational fields outside the chain's reach are guarded by the record's digest", async () => {
      const store = log.ledger.store;
      const key = K.batch(1);
      const original = (await store.getRaw(key))!;
      const text = original.toString("utf8");
      const at = text.indexOf('"sealedAt":"') + '"sealedAt":"'.length + 3; // a digit of the year
      const tampered = Buffer.from(text);
      tampered[at] = text.charCodeAt(at) === 0x36 ? 0x37 : 0x36;
      await store.write([{ type: "put", key, value: tampered }]);
      try {
        const r = await auditLog(store, {
          chain: { reads: new ChainReads(provider), contract: log.contract },
        });
        expect(kinds(r), explain(r)).to.include("BATCH_MALFORMED");
        expect(explain(r)).to.match(/digest .* does not match its content/);
        const seq = b1.header.firstSeq;
        const error = await log.ledger.prove(seq).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).to.have.property("code", "STORE_CORRUPT");
        expect((error as Error).message).to.match(/^stored record k:0+1 is corrupt: its digest/);
      } finally {
        await store.write([{ type: "put", key, value: original }]);
      }
    });
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

  it("a body that is JSON but no object (null, a number) is a finding, not a failed audit", async () => {
    const r = await auditWith(
      () => [
        { key: K.body(1_600), value: Buffer.from("null") },
        { key: K.body(1_601), value: Buffer.from("42") },
      ],
      [K.body(1_600), K.body(1_601)],
    );
    expect(r.findings.map((f) => `${f.kind}@${f.seq}`)).to.have.members([
      "BODY_MALFORMED@1600",
      "BODY_MALFORMED@1601",
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

describe("ledger/audit: worker threads give the one-thread report (real LevelDB, no chain)", function () {
  this.timeout(120_000);
  let dir: string;
  let ledger: Ledger;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-audit-workers-"));
    // Receipt groups of 700 (one per call) across batches of 1,000: group 700 spans batches 0
    // and 1, group 1,400 batches 1 and 2, so two ranges checked apart reach the same group.
    ledger = await Ledger.open({
      location: dir,
      receiptSigner: new Wallet("0x" + "45".repeat(32)),
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 700,
    });
    for (let i = 0; i < 2_100; i += 700)
      await ledger.ingest(
        Array.from({ length: 700 }, (_, j) => patientEvent(`MRN-${(i + j) % 37}`)),
      );
    await ledger.sealPending();
  });

  after(async () => {
    await ledger?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("tampered entries, bodies, receipt paths, groups, Merkle nodes and heads: one report field by field", async () => {
    const store = ledger.store;
    let head: [string, Buffer] | undefined;
    for await (const h of store.subjectHeadsAsStored()) {
      head = h;
      break;
    }
    const [subject, headRaw] = head!;
    const flipHex = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at] = c[at] === 0x30 ? 0x31 : 0x30;
      return c;
    };
    const flipBit = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at] = c[at]! ^ 0x01;
      return c;
    };
    const keys = [
      K.entry(1_500),
      K.body(300),
      K.group(700),
      K.receiptPath(1_200),
      K.receiptPath(1_950),
      K.tile(1, 0, 0),
      K.subjectHead(subject),
    ];
    const originals = new Map<string, Buffer>();
    for (const key of keys) originals.set(key, (await store.getRaw(key))!);
    const group = JSON.parse(originals.get(K.group(700))!.toString("utf8")) as Record<
      string,
      unknown
    >;
    const storedHead = JSON.parse(headRaw.toString("utf8")) as { count: number; chain: string };
    await store.write([
      // A hex digit of the commitment: the leaf, the batch's root and the subject's chain change.
      { type: "put", key: K.entry(1_500), value: flipHex(originals.get(K.entry(1_500))!, 20) },
      { type: "del", key: K.body(300) },
      {
        type: "put",
        key: K.group(700),
        value: Buffer.from(JSON.stringify({ ...group, leavesRoot: "0x" + "00".repeat(32) })),
      },
      {
        type: "put",
        key: K.receiptPath(1_200),
        value: flipBit(originals.get(K.receiptPath(1_200))!, 40),
      },
      { type: "del", key: K.receiptPath(1_950) },
      { type: "put", key: K.tile(1, 0, 0), value: flipBit(originals.get(K.tile(1, 0, 0))!, 7) },
      {
        type: "put",
        key: K.subjectHead(subject),
        value: Buffer.from(JSON.stringify({ ...storedHead, count: storedHead.count + 1 })),
      },
    ]);
    try {
      const { durationMs: _a, ...one } = await auditLog(store, { workers: 0 });
      for (const workers of [1, 2, 3]) {
        const { durationMs: _b, ...parallel } = await auditLog(store, { workers });
        expect(parallel, `${workers} workers`).to.deep.equal(one);
      }
      const found = one.findings.map((f) => `${f.kind}@${f.batchNo ?? "-"}/${f.seq ?? "-"}`);
      const count = (what: string) => found.filter((f) => f === what).length;
      // The group that two ranges reach is reported once.
      expect(count("RECEIPT_GROUP_ROOT_MISMATCH@-/700"), explain(one as AuditReport)).to.equal(1);
      expect(count("RECEIPT_HEADER_MISMATCH@-/700")).to.equal(1);
      expect(found).to.include.members([
        "COMMITMENT_MISMATCH@-/1500",
        "RECEIPT_LEAF_MISMATCH@-/1500",
        "EVENTS_ROOT_MISMATCH@1/-",
        "INDEX_ROOT_MISMATCH@1/-",
        "INDEX_ROOT_MISMATCH@2/-",
        "STORED_LEVELS_MISMATCH@1/-",
        "RECEIPT_PATH_MISMATCH@-/1200",
        "RECEIPT_PATH_MISSING@-/1950",
        "STORED_INDEX_MISMATCH@-/-",
        "SUBJECT_HEAD_MISMATCH@-/-",
      ]);
      expect(one.erased).to.equal(1);
      expect(one.findings.filter((f) => f.message.includes(subject))).to.have.length(1);
    } finally {
      await store.write(
        [...originals].map(([key, value]) => ({ type: "put" as const, key, value })),
      );
    }
    const clean = await auditLog(store, { workers: 2 });
    expect(clean.findings, explain(clean)).to.deep.equal([]);
  });
});

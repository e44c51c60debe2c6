/**
 * The reconcile's decisions, table by table: chain state and batch records in, actions out.
 * Pure functions, so every case is one line of input and the one action it must produce.
 */
import { expect } from "chai";
import { ZeroHash, getAddress } from "ethers";
import type { LogInfo } from "../../../services/chain/registry-client.ts";
import { type BatchHeader, batchHeaderHash } from "../../../services/core/batch-header.ts";
import type { LostRange } from "../../../services/ledger/lost-ranges.ts";
import type { AnchorRecord, BatchRecord } from "../../../services/store/batch-record.ts";
import {
  type AnchoringTx,
  type ChainHeadView,
  checkChainHead,
  checkRegistration,
  isAnchoredOn,
  lostAnchors,
  planBelowHead,
  planRecheck,
  relocate,
  resetToSealed,
  settle,
} from "../../../services/anchoring/reconcile.ts";

const LOG_ID = "0x" + "ab".repeat(32);
const ANCHORER = getAddress("0x" + "11".repeat(20));
const OTHER = getAddress("0x" + "22".repeat(20));
const SIGNER = getAddress("0x" + "33".repeat(20));
const CONTRACT = getAddress("0x" + "44".repeat(20));
const REGISTRY = { chainId: 31337, contract: CONTRACT };
const NOW = new Date("2026-01-02T03:04:05.000Z");

function header(batchNo: number): BatchHeader {
  return {
    logId: LOG_ID,
    batchNo,
    firstSeq: batchNo * 10,
    count: 10,
    eventsRoot: "0x" + (batchNo + 1).toString(16).padStart(64, "0"),
    indexRoot: "0x" + "cd".repeat(32),
  };
}

const anchorOf = (batchNo: number, over: Partial<AnchorRecord> = {}): AnchorRecord => ({
  ...REGISTRY,
  txHash: "0x" + `a${batchNo}`.padStart(64, "0"),
  blockNumber: 100 + batchNo,
  blockHash: "0x" + `b${batchNo}`.padStart(64, "0"),
  gasUsed: 57_000,
  anchoredAt: "2026-01-01T00:00:00.000Z",
  ...over,
});

function record(batchNo: number, state: BatchRecord["state"] = "sealed"): BatchRecord {
  const r: BatchRecord = { header: header(batchNo), state, sealedAt: "2026-01-01T00:00:00.000Z" };
  if (state === "submitted")
    r.submission = {
      ...REGISTRY,
      txHash: "0x" + `5${batchNo}`.padStart(64, "0"),
      nonce: 7,
      submittedAt: "2026-01-01T00:00:01.000Z",
      attempts: 2,
    };
  if (state === "anchored") r.anchor = anchorOf(batchNo);
  return r;
}

const local = (batchNo: number) => batchHeaderHash(header(batchNo));
const ELSE = "0x" + "ee".repeat(32);

const tx = (confirmations: number, over: Partial<AnchoringTx> = {}): AnchoringTx => ({
  txHash: "0x" + "77".repeat(32),
  blockNumber: 500,
  blockHash: "0x" + "88".repeat(32),
  gasUsed: 57_123,
  confirmations,
  ...over,
});

function log(over: Partial<LogInfo> = {}): LogInfo {
  return {
    registered: true,
    anchorer: ANCHORER,
    receiptSigner: SIGNER,
    nextBatchNo: 5,
    nextSeq: 50,
    registeredAt: 1,
    ...over,
  };
}

function lostRange(fromBatchNo: number, batches: number): LostRange {
  return {
    fromBatchNo,
    batches,
    firstSeq: fromBatchNo * 10,
    count: batches * 10,
    detectedAt: NOW.toISOString(),
    cause: "restore",
    restoredFrom: { createdAt: NOW.toISOString(), headSeq: 0, manifestSha256: "00" },
    chain: { chainId: 31337, contract: CONTRACT, blockNumber: 1 },
    anchors: [],
  };
}

describe("anchoring reconcile (pure)", () => {
  describe("checkRegistration: the log's registration against this service", () => {
    const cases: Array<{ desc: string; log: LogInfo | undefined; want: object }> = [
      {
        desc: "no registry code → register again (CONTRACT_MISSING)",
        log: undefined,
        want: { kind: "register-again", code: "CONTRACT_MISSING" },
      },
      {
        desc: "log not registered → register again (LOG_NOT_REGISTERED)",
        log: log({ registered: false }),
        want: { kind: "register-again", code: "LOG_NOT_REGISTERED" },
      },
      {
        desc: "another anchorer → ANCHORER_MISMATCH alarm",
        log: log({ anchorer: OTHER }),
        want: { kind: "alarm", code: "ANCHORER_MISMATCH" },
      },
      {
        desc: "this anchorer, lowercase on-chain → ok, chain head passed on",
        log: log({ anchorer: ANCHORER.toLowerCase() }),
        want: { kind: "ok", receiptSignerRegistered: true, chainNext: 5 },
      },
      {
        desc: "a rotated receipt signer → ok, receipt signer not registered",
        log: log({ receiptSigner: OTHER, nextBatchNo: 9 }),
        want: { kind: "ok", receiptSignerRegistered: false, chainNext: 9 },
      },
    ];
    for (const c of cases)
      it(c.desc, () => {
        const got = checkRegistration({
          contract: CONTRACT,
          logId: LOG_ID,
          log: c.log,
          anchorer: ANCHORER,
          receiptSigner: SIGNER,
        });
        expect(got).to.deep.include(c.want);
      });

    it("says which registry and which anchorers", () => {
      const missing = checkRegistration({
        contract: CONTRACT,
        logId: LOG_ID,
        log: undefined,
        anchorer: ANCHORER,
        receiptSigner: SIGNER,
      });
      expect(missing).to.have.property("why").that.includes(CONTRACT);
      const mismatch = checkRegistration({
        contract: CONTRACT,
        logId: LOG_ID,
        log: log({ anchorer: OTHER }),
        anchorer: ANCHORER,
        receiptSigner: SIGNER,
      });
      expect(mismatch).to.have.property("message").that.includes(OTHER).and.includes(ANCHORER);
    });
  });

  describe("checkChainHead: the log's head on-chain against the ledger and the cursor", () => {
    const view = (over: Partial<ChainHeadView>): ChainHeadView => ({
      chainNext: 5,
      lastSealed: 6,
      sealedEnd: 7,
      lostAtChainNext: undefined,
      cursor: 5,
      confirmations: 2,
      ...over,
    });
    const cases: Array<{ desc: string; view: ChainHeadView; want: object }> = [
      { desc: "chain head inside what is sealed → ok", view: view({}), want: { kind: "ok" } },
      {
        desc: "chain head at the end of what is sealed → ok",
        view: view({ chainNext: 7, cursor: 7 }),
        want: { kind: "ok" },
      },
      {
        desc: "cursor unknown yet → ok",
        view: view({ cursor: undefined }),
        want: { kind: "ok" },
      },
      {
        desc: "chain holds batches the ledger never sealed → FORK_DETECTED at lastSealed + 1",
        view: view({ chainNext: 8 }),
        want: { kind: "alarm", code: "FORK_DETECTED", batchNo: 7 },
      },
      {
        desc: "chain head past a lost range the ledger continues after → ok",
        view: view({ chainNext: 9, lastSealed: 6, sealedEnd: 9, cursor: 9 }),
        want: { kind: "ok" },
      },
      {
        desc: "chain head inside a range lost in a restore → LOST_BATCHES_UNANCHORED",
        view: view({ chainNext: 3, cursor: 9, lostAtChainNext: lostRange(2, 3) }),
        want: { kind: "alarm", code: "LOST_BATCHES_UNANCHORED", batchNo: 3 },
      },
      {
        desc: "fewer batches on-chain than confirmed → read the last confirmed commitment first",
        view: view({ chainNext: 3 }),
        want: { kind: "read-commitment", batchNo: 4 },
      },
      {
        desc: "fewer batches, last confirmed still in state (a lagging node) → ok",
        view: view({ chainNext: 3, lastConfirmedGone: false }),
        want: { kind: "ok" },
      },
      {
        desc: "fewer batches, last confirmed gone → deep reorg from the chain's head",
        view: view({ chainNext: 3, lastConfirmedGone: true }),
        want: { kind: "deep-reorg", fromBatchNo: 3 },
      },
    ];
    for (const c of cases)
      it(c.desc, () => {
        expect(checkChainHead(c.view)).to.deep.include(c.want);
      });

    it("a deep reorg names the confirmations it beat (at least 1)", () => {
      const got = checkChainHead(view({ chainNext: 3, confirmations: 0, lastConfirmedGone: true }));
      expect(got).to.have.property("reason").that.includes("5 had 1 confirmations");
    });
  });

  describe("planBelowHead: records below the chain's head against their commitments", () => {
    const records = [record(3, "submitted"), record(4), record(5)];
    const cases: Array<{ desc: string; commitments: (string | undefined)[]; want: object[] }> = [
      {
        desc: "every commitment this ledger's → settle each, in order",
        commitments: [local(3), local(4), local(5)],
        want: [
          { kind: "settle", batchNo: 3 },
          { kind: "settle", batchNo: 4 },
          { kind: "settle", batchNo: 5 },
        ],
      },
      {
        desc: "a zero commitment → the chain moved: stop there",
        commitments: [local(3), ZeroHash, local(5)],
        want: [
          { kind: "settle", batchNo: 3 },
          { kind: "chain-moved", batchNo: 4 },
        ],
      },
      {
        desc: "a missing answer → the chain moved",
        commitments: [undefined, local(4), local(5)],
        want: [{ kind: "chain-moved", batchNo: 3 }],
      },
      {
        desc: "another header's commitment → FORK_DETECTED for that batch, nothing after",
        commitments: [local(3), ELSE, local(5)],
        want: [
          { kind: "settle", batchNo: 3 },
          { kind: "alarm", code: "FORK_DETECTED", batchNo: 4 },
        ],
      },
      {
        desc: "the neighbour's commitment (batches swapped) → FORK_DETECTED",
        commitments: [local(4), local(3), local(5)],
        want: [{ kind: "alarm", code: "FORK_DETECTED", batchNo: 3 }],
      },
    ];
    for (const c of cases)
      it(c.desc, () => {
        const got = planBelowHead(records, c.commitments).map((s) =>
          s.kind === "settle"
            ? { kind: s.kind, batchNo: s.record.header.batchNo }
            : s.kind === "chain-moved"
              ? s
              : { kind: s.kind, code: s.code, batchNo: s.batchNo },
        );
        expect(got).to.deep.equal(c.want);
      });
  });

  describe("settle: a batch whose commitment is on-chain", () => {
    const at = (confirmations: number, flight?: { nonce: number; attempts: number }) => ({
      registry: REGISTRY,
      confirmations,
      ...(flight ? { flight } : {}),
      now: NOW,
    });

    it("enough confirmations → anchored, with the transaction's block and gas", () => {
      const got = settle(record(4, "submitted"), tx(3), at(3));
      expect(got.kind).to.equal("anchored");
      const anchor = {
        ...REGISTRY,
        txHash: tx(3).txHash,
        blockNumber: 500,
        blockHash: tx(3).blockHash,
        gasUsed: 57_123,
        anchoredAt: NOW.toISOString(),
      };
      expect(got).to.deep.include({ anchor });
      expect(got.save).to.deep.include({ state: "anchored", anchor });
      expect(got.save?.submission, "the submission stays on the record").to.deep.equal(
        record(4, "submitted").submission,
      );
    });

    it("CONFIRMATIONS=0 counts as 1: mined is anchored, not yet in a block is not", () => {
      expect(settle(record(4), tx(1), at(0)).kind).to.equal("anchored");
      expect(settle(record(4), tx(0), at(0)).kind).to.equal("wait");
    });

    const waiting: Array<{
      desc: string;
      record: BatchRecord;
      tx: AnchoringTx;
      flight?: { nonce: number; attempts: number };
      want: object | undefined;
    }> = [
      {
        desc: "mined, too shallow, record sealed, sent by this run → submitted with the run's nonce",
        record: record(4),
        tx: tx(1),
        flight: { nonce: 12, attempts: 3 },
        want: { txHash: tx(1).txHash, nonce: 12, attempts: 3, submittedAt: NOW.toISOString() },
      },
      {
        desc: "too shallow, recorded with another hash (a replacement mined) → that hash, first submission time kept",
        record: record(4, "submitted"),
        tx: tx(1),
        want: {
          txHash: tx(1).txHash,
          nonce: 7,
          attempts: 2,
          submittedAt: "2026-01-01T00:00:01.000Z",
        },
      },
      {
        desc: "too shallow, found through the event and never sent here → nonce −1, 0 attempts",
        record: record(4),
        tx: tx(1),
        want: { txHash: tx(1).txHash, nonce: -1, attempts: 0 },
      },
      {
        desc: "too shallow, recorded with this very hash → wait, nothing to write",
        record: record(4, "submitted"),
        tx: tx(1, { txHash: record(4, "submitted").submission!.txHash }),
        want: undefined,
      },
    ];
    for (const c of waiting)
      it(c.desc, () => {
        const got = settle(c.record, c.tx, at(2, c.flight));
        expect(got.kind).to.equal("wait");
        if (c.want === undefined) return expect(got.save).to.equal(undefined);
        expect(got.save?.state).to.equal("submitted");
        expect(got.save?.submission).to.deep.include({ ...REGISTRY, ...c.want });
      });
  });

  describe("planRecheck: the latest anchored batches against reorgs", () => {
    const anchored = [3, 4, 5].map((n) => record(n, "anchored"));
    const cases: Array<{
      desc: string;
      evidence: Array<{ commitment: string; canonical: boolean }>;
      want: object[];
    }> = [
      {
        desc: "every commitment in state, every block canonical → nothing to do",
        evidence: [3, 4, 5].map((n) => ({ commitment: local(n), canonical: true })),
        want: [],
      },
      {
        desc: "in state, block replaced (re-included elsewhere) → relocate it, go on",
        evidence: [
          { commitment: local(3), canonical: true },
          { commitment: local(4), canonical: false },
          { commitment: local(5), canonical: false },
        ],
        want: [
          { kind: "relocate", batchNo: 4 },
          { kind: "relocate", batchNo: 5 },
        ],
      },
      {
        desc: "commitment gone with its block → deep reorg from that batch, nothing after",
        evidence: [
          { commitment: local(3), canonical: false },
          { commitment: ZeroHash, canonical: false },
          { commitment: local(5), canonical: false },
        ],
        want: [
          { kind: "relocate", batchNo: 3 },
          { kind: "deep-reorg", fromBatchNo: 4 },
        ],
      },
      {
        desc: "commitment gone though the block reads canonical → still a deep reorg",
        evidence: [{ commitment: ZeroHash, canonical: true }],
        want: [{ kind: "deep-reorg", fromBatchNo: 3 }],
      },
      {
        desc: "another header's commitment → FORK_DETECTED",
        evidence: [
          { commitment: local(3), canonical: true },
          { commitment: ELSE, canonical: true },
        ],
        want: [{ kind: "alarm", code: "FORK_DETECTED", batchNo: 4 }],
      },
    ];
    for (const c of cases)
      it(c.desc, () => {
        const evidence = c.evidence.map((e, i) => ({ record: anchored[i]!, ...e }));
        const got = planRecheck(evidence).map((s) =>
          s.kind === "relocate"
            ? { kind: s.kind, batchNo: s.record.header.batchNo }
            : s.kind === "deep-reorg"
              ? { kind: s.kind, fromBatchNo: s.fromBatchNo }
              : { kind: s.kind, code: s.code, batchNo: s.batchNo },
        );
        expect(got).to.deep.equal(c.want);
      });

    it("relocate keeps the anchor's registry and time, takes the new block; gas kept when unknown", () => {
      const r = record(4, "anchored");
      const moved = relocate(r, tx(5, { gasUsed: 0 }));
      expect(moved.anchor).to.deep.equal({
        ...r.anchor,
        txHash: tx(5).txHash,
        blockNumber: 500,
        blockHash: tx(5).blockHash,
        gasUsed: r.anchor!.gasUsed,
      });
      expect(relocate(r, tx(5)).anchor?.gasUsed).to.equal(57_123);
    });
  });

  describe("starting over from a batch", () => {
    const cases: Array<{
      desc: string;
      record: BatchRecord;
      reorged: boolean;
      want: object | undefined;
    }> = [
      { desc: "sealed → nothing to write", record: record(2), reorged: true, want: undefined },
      {
        desc: "submitted → sealed, submission dropped",
        record: record(2, "submitted"),
        reorged: true,
        want: {
          state: "sealed",
          submission: undefined,
          anchor: undefined,
          reorgedAnchors: undefined,
        },
      },
      {
        desc: "anchored, chain reset → sealed, the anchor dropped",
        record: record(2, "anchored"),
        reorged: false,
        want: { state: "sealed", anchor: undefined, reorgedAnchors: undefined },
      },
      {
        desc: "anchored, deep reorg → sealed, the lost anchor kept in reorgedAnchors",
        record: record(2, "anchored"),
        reorged: true,
        want: { state: "sealed", anchor: undefined, reorgedAnchors: [anchorOf(2)] },
      },
      {
        desc: "anchored again after an earlier deep reorg → both lost anchors, oldest first",
        record: { ...record(2, "anchored"), reorgedAnchors: [anchorOf(2, { blockNumber: 1 })] },
        reorged: true,
        want: { reorgedAnchors: [anchorOf(2, { blockNumber: 1 }), anchorOf(2)] },
      },
    ];
    for (const c of cases)
      it(c.desc, () => {
        const got = resetToSealed(c.record, c.reorged);
        if (c.want === undefined) return expect(got).to.equal(undefined);
        for (const [key, value] of Object.entries(c.want))
          expect((got as unknown as Record<string, unknown>)[key], key).to.deep.equal(value);
        expect(got?.header).to.deep.equal(c.record.header);
      });

    it("the lost anchors of a deep reorg: anchored records below the cursor only", () => {
      const records = [record(3, "anchored"), record(4, "submitted"), record(5, "anchored")];
      expect(lostAnchors(records, 5)).to.deep.equal([
        {
          batchNo: 3,
          txHash: anchorOf(3).txHash,
          blockNumber: 103,
          blockHash: anchorOf(3).blockHash,
        },
      ]);
    });

    it("anchored on this registry: same chain, same contract (any letter case)", () => {
      const r = record(1, "anchored");
      expect(isAnchoredOn(r, REGISTRY)).to.equal(true);
      expect(
        isAnchoredOn(
          { ...r, anchor: { ...r.anchor!, contract: CONTRACT.toLowerCase() } },
          REGISTRY,
        ),
      ).to.equal(true);
      expect(isAnchoredOn(r, { ...REGISTRY, chainId: 1 })).to.equal(false);
      expect(isAnchoredOn(r, { ...REGISTRY, contract: OTHER })).to.equal(false);
      expect(isAnchoredOn(record(1, "submitted"), REGISTRY)).to.equal(false);
    });
  });
});

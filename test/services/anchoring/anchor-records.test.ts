/**
 * The record side of reconciliation on a real LevelDB ledger: where anchoring resumes after a
 * restart, and what starting over after a reorg or a chain reset writes. The chain-facing paths
 * (settling below the head, the reorg re-check) run against a real Hardhat node in
 * anchor-loop.test.ts.
 */
import { expect } from "chai";
import { Wallet, getAddress } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { AnchorLoopEvent } from "../../../services/anchoring/anchor-events.ts";
import { AnchorProgress } from "../../../services/anchoring/anchor-progress.ts";
import { AnchorRecords } from "../../../services/anchoring/anchor-records.ts";
import { AnchorTransactions } from "../../../services/anchoring/anchor-transactions.ts";
import { AnchoredWaiters } from "../../../services/anchoring/anchored-waiters.ts";
import { ChainSession } from "../../../services/anchoring/chain-session.ts";
import { RegistryClient, makeProvider } from "../../../services/chain/registry-client.ts";
import { loadConfig } from "../../../services/config.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import type { AnchorRecord, BatchRecord } from "../../../services/store/batch-record.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS } from "../../support/hardhat-node.ts";

const DEFAULTS = loadConfig({});
const CHAIN_ID = 31337;
const HERE = getAddress("0x" + "44".repeat(20));
const OLD_REGISTRY = getAddress("0x" + "55".repeat(20));
/** Nothing listens here: these paths never reach the chain. */
const NO_RPC = "http://127.0.0.1:9";

const anchor = (batchNo: number, contract = HERE): AnchorRecord => ({
  chainId: CHAIN_ID,
  contract,
  txHash: "0x" + `a${batchNo}`.padStart(64, "0"),
  blockNumber: 10 + batchNo,
  blockHash: "0x" + `b${batchNo}`.padStart(64, "0"),
  gasUsed: 57_000,
  anchoredAt: new Date().toISOString(),
});

describe("anchor records (real LevelDB)", () => {
  let dir: string;
  let ledger: Ledger;
  let client: RegistryClient;
  let events: AnchorLoopEvent[];
  let progress: AnchorProgress;
  let records: AnchorRecords;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-anchor-records-"));
    ledger = await Ledger.open({
      location: dir,
      receiptSigner: new Wallet(HARDHAT_ACCOUNTS[2].privateKey),
      batchMaxEvents: DEFAULTS.BATCH_MAX_EVENTS,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: DEFAULTS.ANCHOR_DEADLINE_MS,
      groupCommitMaxEvents: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
    });
    for (let b = 0; b < 5; b++) {
      await ledger.ingest([makeNativeEvent({ requestId: `records-${process.pid}-${b}` })]);
      await ledger.sealPending();
    }
    client = new RegistryClient(makeProvider(NO_RPC, CHAIN_ID), CHAIN_ID, HERE);
    events = [];
    const emit = (e: AnchorLoopEvent) => events.push(e);
    const session = new ChainSession({
      rpcUrl: NO_RPC,
      chainMode: "production",
      contractAddress: HERE,
      anchorer: new Wallet(HARDHAT_ACCOUNTS[1].privateKey),
    });
    const transactions = new AnchorTransactions({
      session,
      ledger,
      maxInFlight: 8,
      gasLimit: 150_000n,
      txTimeoutMs: 30_000,
      dropCheckMs: 3_000,
      emit,
    });
    progress = new AnchorProgress(ledger, emit);
    progress.sealedThrough(await ledger.lastBatchNo());
    records = new AnchorRecords({
      ledger,
      session,
      transactions,
      progress,
      waiters: new AnchoredWaiters(),
      confirmations: 2,
      recheckDepth: 16,
      recheckIntervalMs: 5_000,
      emit,
    });
  });

  afterEach(async () => {
    client.destroy();
    await ledger.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function mark(batchNo: number, patch: Partial<BatchRecord>): Promise<void> {
    await ledger.saveBatchState({ ...(await ledger.getBatch(batchNo)), ...patch });
  }

  it("resumes at the first batch not anchored on this registry (one anchored on an older registry counts as not)", async () => {
    await mark(0, { state: "anchored", anchor: anchor(0) });
    await mark(1, { state: "anchored", anchor: anchor(1) });
    await mark(2, { state: "anchored", anchor: anchor(2, OLD_REGISTRY) });
    await mark(3, { state: "anchored", anchor: anchor(3) });
    await records.findCursor(client);
    expect(progress.cursor).to.equal(2);
    expect(events).to.deep.equal([{ type: "backlog", reason: "restart", batches: 3 }]);
  });

  it("everything anchored here: the cursor is past the last batch, no backlog", async () => {
    for (let b = 0; b < 5; b++) await mark(b, { state: "anchored", anchor: anchor(b) });
    await records.findCursor(client);
    expect(progress.cursor).to.equal(5);
    expect(events).to.deep.equal([]);
  });

  it("a deep reorg from batch 1: the lost anchors are reported and kept, every later batch sealed again", async () => {
    for (let b = 0; b < 3; b++) await mark(b, { state: "anchored", anchor: anchor(b) });
    const submission = {
      chainId: CHAIN_ID,
      contract: HERE,
      txHash: "0x" + "cc".repeat(32),
      nonce: 3,
      submittedAt: new Date().toISOString(),
      attempts: 1,
    };
    await mark(3, { state: "submitted", submission });
    await records.findCursor(client);
    expect(progress.cursor).to.equal(3);
    events.length = 0;

    await records.deepReorgFrom(1, "block 11 left the chain");
    expect(events.map((e) => e.type)).to.deep.equal(["reorg", "deep-reorg"]);
    expect(progress.deepReorg).to.deep.include({ fromBatchNo: 1, batches: 2, confirmations: 2 });
    expect(progress.deepReorg?.lostAnchors.map((a) => [a.batchNo, a.txHash])).to.deep.equal([
      [1, anchor(1).txHash],
      [2, anchor(2).txHash],
    ]);
    expect(progress.cursor).to.equal(1);
    const after = await ledger.listBatches({ fromBatchNo: 0, limit: 10 });
    expect(after.map((r) => r.state)).to.deep.equal([
      "anchored",
      "sealed",
      "sealed",
      "sealed",
      "sealed",
    ]);
    expect(after[1]?.reorgedAnchors?.map((a) => [a.txHash, a.blockHash])).to.deep.equal([
      [anchor(1).txHash, anchor(1).blockHash],
    ]);
    expect(after[3]?.submission).to.equal(undefined);
    expect(after[3]?.reorgedAnchors, "never anchored: nothing lost").to.equal(undefined);
  });

  it("a chain reset starts over from batch 0 without keeping anchors (they name a registry that is gone)", async () => {
    for (let b = 0; b < 4; b++) await mark(b, { state: "anchored", anchor: anchor(b) });
    expect(await records.resetFrom(0)).to.equal(4);
    const after = await ledger.listBatches({ fromBatchNo: 0, limit: 10 });
    expect(after.every((r) => r.state === "sealed" && !r.anchor && !r.reorgedAnchors)).to.equal(
      true,
    );
    expect(progress.cursor).to.equal(0);
    expect(await records.resetFrom(0), "nothing left to reset").to.equal(0);
  });
});

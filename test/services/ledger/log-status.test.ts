import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { LogStatusSchema, logStatus } from "../../../services/ledger/log-status.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

describe("ledger/log-status", function () {
  this.timeout(60_000);
  let dir: string;
  let ledger: Ledger;
  const BATCHES = 300; // more than one page of the backwards scan (256)

  async function markAnchored(batchNo: number): Promise<void> {
    const record: BatchRecord = await ledger.getBatch(batchNo);
    await ledger.saveBatchState({
      ...record,
      state: "anchored",
      anchor: {
        chainId: 31337,
        contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        txHash: `0x${"ab".repeat(32)}`,
        blockNumber: batchNo + 1,
        blockHash: `0x${"cd".repeat(32)}`,
        gasUsed: 57_445,
        anchoredAt: new Date().toISOString(),
      },
    });
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-status-"));
    ledger = await Ledger.open({
      location: path.join(dir, "ledger"),
      receiptSigner: new Wallet("0x" + "45".repeat(32)),
      batchMaxEvents: 2,
      batchMaxWaitMs: 3_600_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
    });
  });
  after(async () => {
    await ledger?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("an empty log", async () => {
    const status = await logStatus(ledger, undefined);
    expect(LogStatusSchema.parse(status)).to.deep.equal(status);
    expect(status).to.deep.include({
      events: { accepted: 0, sealed: 0, anchored: 0 },
      batches: { sealed: 0, anchored: 0 },
      backlog: { unsealedEvents: 0, unanchoredBatches: 0, oldestUnanchoredMs: 0 },
      anchoring: null,
      alarms: [],
      trust: null,
    });
    expect(status.log).to.deep.equal({ id: ledger.logId, receiptSigner: ledger.signerAddress });
  });

  it("without an anchor loop, finds the anchored prefix from the end, across pages", async () => {
    const none = (i: number) => makeNativeEvent({ requestId: `status-${i}` });
    await ledger.ingest(Array.from({ length: BATCHES * 2 + 1 }, (_, i) => none(i)));
    await ledger.sealPending();
    // 2 events per batch: 301 batches (the last one holds one event).
    const sealed = BATCHES + 1;
    expect(await ledger.lastBatchNo()).to.equal(sealed - 1);
    let status = await logStatus(ledger, undefined);
    expect(status.batches).to.deep.equal({ sealed, anchored: 0 });
    expect(status.events).to.deep.equal({ accepted: 601, sealed: 601, anchored: 0 });
    expect(status.backlog.unanchoredBatches).to.equal(sealed);
    expect(status.backlog.oldestUnanchoredMs).to.be.at.least(0);

    for (let b = 0; b < 20; b++) await markAnchored(b);
    status = await logStatus(ledger, undefined);
    expect(status.batches).to.deep.equal({ sealed, anchored: 20 });
    expect(status.events.anchored).to.equal(40);
    expect(status.backlog.unanchoredBatches).to.equal(sealed - 20);

    await ledger.ingest([none(10_000)]);
    status = await logStatus(ledger, undefined);
    expect(status.events).to.deep.equal({ accepted: 602, sealed: 601, anchored: 40 });
    expect(status.backlog.unsealedEvents).to.equal(1);
  });

  it("with an anchor loop: its anchored count, state, alarm and the trust policy given", async () => {
    const status = await logStatus(
      ledger,
      {
        state: "alarm",
        lagBatches: 3,
        lagMs: 4_500,
        anchoredThrough: 5,
        inFlight: 2,
        contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        chainId: 31337,
        alarm: { code: "FORK_DETECTED", message: "batch 5 differs", recoverable: false },
      },
      { fingerprint: `0x${"12".repeat(32)}`, issuer: "Regulator", file: "/data/trust.json" },
    );
    expect(status.batches.anchored).to.equal(5);
    expect(status.events.anchored).to.equal(10);
    expect(status.backlog.oldestUnanchoredMs).to.equal(4_500);
    expect(status.anchoring).to.deep.equal({
      state: "alarm",
      contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      chainId: 31337,
      inFlight: 2,
      lastError: null,
      receiptSignerRegistered: null,
    });
    expect(status.alarms).to.deep.equal([
      { code: "FORK_DETECTED", message: "batch 5 differs", recoverable: false },
    ]);
    expect(status.trust?.issuer).to.equal("Regulator");
  });
});

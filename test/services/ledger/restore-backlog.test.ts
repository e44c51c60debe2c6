/**
 * A restored ledger and the ingest bounds: batches lost in a restore (anchored on-chain, missing
 * here) are never anchored again by this ledger, so they must count as anchored, or the
 * unanchored-batches bound would refuse every write from then on. Real LevelDB on disk.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import type { LostRange, RestoreMarker } from "../../../services/ledger/lost-ranges.ts";
import { K } from "../../../services/store/keys.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

const signer = new Wallet("0x" + "45".repeat(32));
let serial = 0;
const events = (n: number) =>
  Array.from({ length: n }, () => makeNativeEvent({ requestId: `restore-backlog-${serial++}` }));

const LIMITS = {
  maxUnsealedEvents: 1_000,
  maxUnsealedAgeMs: 60_000,
  maxUnanchoredBatches: 3,
  waitMs: 50,
};

function openLedger(location: string): Promise<Ledger> {
  return Ledger.open({
    location,
    receiptSigner: signer,
    batchMaxEvents: 10,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
    ingestLimits: LIMITS,
  });
}

async function markAnchored(ledger: Ledger, batchNo: number): Promise<void> {
  const record: BatchRecord = await ledger.getBatch(batchNo);
  await ledger.saveBatchState({
    ...record,
    state: "anchored",
    anchor: {
      chainId: 31337,
      contract: "0x" + "11".repeat(20),
      txHash: "0x" + "22".repeat(32),
      blockNumber: 10 + batchNo,
      blockHash: "0x" + "33".repeat(32),
      gasUsed: 57_000,
      anchoredAt: new Date().toISOString(),
    },
  });
}

describe("ledger: a restore's lost batches and the ingest bounds", function () {
  this.timeout(60_000);
  let root: string;
  let location: string;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "veritrail-restore-backlog-"));
    location = path.join(root, "ledger");
    // The copy: batches 0 and 1, both anchored, every event sealed.
    const ledger = await openLedger(location);
    await ledger.ingest(events(20));
    await ledger.sealPending();
    await markAnchored(ledger, 0);
    await markAnchored(ledger, 1);
    await ledger.close();
    // What `veritrail restore` leaves: the marker that holds ingest until reconciliation.
    const marker: RestoreMarker = {
      restoredAt: new Date().toISOString(),
      backup: {
        createdAt: new Date().toISOString(),
        headSeq: 20,
        lastSealedBatchNo: 1,
        lastAnchoredBatchNo: 1,
        manifestSha256: "0x" + "44".repeat(32),
      },
    };
    const store = await LedgerStore.open(location);
    await store.write([store.putJsonOp(K.restoreMarker, marker)], true);
    await store.close();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("counts lost batches as anchored, at the restore and after a reopen, so ingest goes on", async () => {
    // The chain holds batches 2..6 (seqs 20..69) beyond the copy: five lost batches, more than
    // the bound of three unanchored ones.
    const lost: LostRange = {
      fromBatchNo: 2,
      batches: 5,
      firstSeq: 20,
      count: 50,
      detectedAt: new Date().toISOString(),
      cause: "restore",
      restoredFrom: { createdAt: new Date().toISOString(), headSeq: 20, manifestSha256: "0x00" },
      chain: { chainId: 31337, contract: "0x" + "11".repeat(20), blockNumber: 99 },
      anchors: [],
    };
    let ledger = await openLedger(location);
    try {
      ledger.expectAnchoring();
      expect(ledger.restorePending).to.not.equal(undefined);
      await ledger.completeRestore(lost);
      expect(ledger.unanchoredBatches).to.equal(0);
      expect(ledger.backlog().saturated).to.equal(false);
      const [first] = await ledger.ingest(events(10));
      expect(first!.receipt.seq, "the log continues after the lost seqs").to.equal(70);
      await ledger.sealPending();
      expect(ledger.unanchoredBatches, "only the new batch 7 waits").to.equal(1);
    } finally {
      await ledger.close();
    }

    // Reopened: batch 7 waits to be anchored; the lost ones still count as anchored.
    ledger = await openLedger(location);
    try {
      ledger.expectAnchoring();
      expect(ledger.unanchoredBatches).to.equal(1);
      await markAnchored(ledger, 7);
      expect(ledger.unanchoredBatches).to.equal(0);
      for (let i = 0; i < 3; i++) {
        await ledger.ingest(events(10));
        await ledger.sealPending();
      }
      expect(ledger.unanchoredBatches).to.equal(3);
      // At the bound now, by batches this ledger sealed: the gate refuses, as it should.
      const refused = await ledger.ingest(events(1)).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).to.have.property("code", "OVERLOADED");
    } finally {
      await ledger.close();
    }
  });

  it("counts a lost range at the tail (nothing sealed after it yet) as anchored on open", async () => {
    const tail = path.join(root, "tail");
    let ledger = await openLedger(tail);
    await ledger.ingest(events(10));
    await ledger.sealPending();
    await markAnchored(ledger, 0);
    await ledger.close();
    const store = await LedgerStore.open(tail);
    await store.write(
      [
        store.putJsonOp(K.restoreMarker, {
          restoredAt: new Date().toISOString(),
          backup: {
            createdAt: new Date().toISOString(),
            headSeq: 10,
            lastSealedBatchNo: 0,
            lastAnchoredBatchNo: 0,
            manifestSha256: "0x00",
          },
        } satisfies RestoreMarker),
      ],
      true,
    );
    await store.close();
    ledger = await openLedger(tail);
    await ledger.completeRestore({
      fromBatchNo: 1,
      batches: 8,
      firstSeq: 10,
      count: 80,
      detectedAt: new Date().toISOString(),
      cause: "restore",
      restoredFrom: { createdAt: new Date().toISOString(), headSeq: 10, manifestSha256: "0x00" },
      chain: { chainId: 31337, contract: "0x" + "11".repeat(20), blockNumber: 99 },
      anchors: [],
    });
    await ledger.close();
    ledger = await openLedger(tail);
    try {
      ledger.expectAnchoring();
      expect(ledger.unanchoredBatches).to.equal(0);
      const [first] = await ledger.ingest(events(10));
      expect(first!.receipt.seq).to.equal(90);
      await ledger.sealPending();
      expect(ledger.unanchoredBatches, "only the new batch 9 waits").to.equal(1);
      await ledger.ingest(events(1));
    } finally {
      await ledger.close();
    }
  });
});

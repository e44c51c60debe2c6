import { expect } from "chai";
import type { AnchorLoopEvent } from "../../../services/anchoring/anchor-events.ts";
import { AnchorProgress } from "../../../services/anchoring/anchor-progress.ts";
import type { LostRange } from "../../../services/ledger/lost-ranges.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";

/** Sealed batches 0..n-1, batch b sealed at b seconds past the epoch; a lost range if given. */
function fakeLedger(n: number, lost: LostRange[] = []) {
  const records = Array.from(
    { length: n },
    (_, b) =>
      ({
        header: {
          logId: "0x" + "00".repeat(32),
          batchNo: b,
          firstSeq: b,
          count: 1,
          eventsRoot: "0x" + "11".repeat(32),
          indexRoot: "0x" + "22".repeat(32),
        },
        state: "sealed",
        sealedAt: new Date(b * 1_000).toISOString(),
      }) satisfies BatchRecord,
  );
  return {
    listBatches: async ({ fromBatchNo, limit }: { fromBatchNo: number; limit: number }) =>
      records.filter((r) => r.header.batchNo >= fromBatchNo).slice(0, limit),
    lostRanges: () => lost,
  };
}

function lostRange(fromBatchNo: number, batches: number): LostRange {
  return {
    fromBatchNo,
    batches,
    firstSeq: fromBatchNo,
    count: batches,
    detectedAt: new Date(0).toISOString(),
    cause: "restore",
    restoredFrom: { createdAt: new Date(0).toISOString(), headSeq: 0, manifestSha256: "00" },
    chain: { chainId: 31337, contract: "0x" + "44".repeat(20), blockNumber: 1 },
    anchors: [],
  };
}

function progressOver(ledger: ReturnType<typeof fakeLedger>) {
  const events: AnchorLoopEvent[] = [];
  return { progress: new AnchorProgress(ledger, (e) => events.push(e)), events };
}

const types = (events: AnchorLoopEvent[]) => events.map((e) => e.type);

describe("anchor progress", () => {
  it("before the chain was reached, the lag runs from the first seal this process saw", () => {
    const { progress } = progressOver(fakeLedger(0));
    expect(progress.lag(10_000)).to.deep.equal({ anchoredThrough: 0, lagBatches: 0, lagMs: 0 });
    progress.noteSealed(0, new Date(2_000).toISOString());
    progress.noteSealed(1, new Date(3_000).toISOString());
    expect(progress.lag(10_000)).to.deep.equal({ anchoredThrough: 0, lagBatches: 2, lagMs: 8_000 });
  });

  it("the lag runs from the seal time of the batch at the cursor; none once all is anchored", async () => {
    const { progress } = progressOver(fakeLedger(4));
    progress.sealedThrough(3);
    await progress.moveCursor(2);
    expect(progress.lag(10_000)).to.deep.equal({ anchoredThrough: 2, lagBatches: 2, lagMs: 8_000 });
    await progress.anchored(2, undefined);
    await progress.anchored(3, undefined);
    expect(progress.lag(10_000)).to.deep.equal({ anchoredThrough: 4, lagBatches: 0, lagMs: 0 });
  });

  it("the cursor steps over batch numbers lost in a restore", async () => {
    const { progress } = progressOver(fakeLedger(8, [lostRange(3, 2)]));
    progress.sealedThrough(7);
    await progress.moveCursor(3);
    expect(progress.cursor).to.equal(5);
    expect(progress.pastLost(4)).to.equal(5);
    expect(progress.pastLost(6)).to.equal(6);
  });

  it("a restart backlog is announced, and reported once its last batch is anchored", async () => {
    const { progress, events } = progressOver(fakeLedger(5));
    progress.sealedThrough(4);
    await progress.moveCursor(2);
    progress.noteBacklog("restart", 2);
    expect(events).to.deep.equal([{ type: "backlog", reason: "restart", batches: 3 }]);
    for (const b of [2, 3]) {
      await progress.anchored(b, undefined);
      progress.reportCaughtUp(b);
    }
    expect(types(events)).to.deep.equal(["backlog"]);
    await progress.anchored(4, undefined);
    progress.reportCaughtUp(4);
    expect(events[1]).to.deep.include({ type: "caught-up", reason: "restart", batches: 3 });
    progress.reportCaughtUp(4);
    expect(events, "reported once").to.have.length(2);
  });

  it("after an outage: recovered, then caught up at once or when the backlog is anchored", async () => {
    const { progress, events } = progressOver(fakeLedger(6));
    progress.sealedThrough(5);
    await progress.moveCursor(6);
    progress.recovered({ from: 3, returnedAt: 9_000, failures: 4, since: 1_000 });
    expect(events[0]).to.deep.equal({
      type: "recovered",
      failures: 4,
      downMs: 8_000,
      lagBatches: 3,
    });
    expect(events[1]).to.deep.include({ type: "caught-up", reason: "outage", batches: 3 });

    const later = progressOver(fakeLedger(6));
    later.progress.sealedThrough(5);
    await later.progress.moveCursor(3);
    later.progress.recovered({ from: 3, returnedAt: Date.now(), failures: 1, since: Date.now() });
    expect(types(later.events)).to.deep.equal(["recovered"]);
    await later.progress.anchored(5, undefined);
    later.progress.reportCaughtUp(5);
    expect(later.events[1]).to.deep.include({ type: "caught-up", reason: "outage", batches: 3 });

    const idle = progressOver(fakeLedger(2));
    idle.progress.sealedThrough(1);
    await idle.progress.moveCursor(2);
    idle.progress.recovered({ from: 2, returnedAt: 5, failures: 1, since: 0 });
    expect(types(idle.events), "no backlog: nothing to catch up").to.deep.equal(["recovered"]);
  });

  it("a deep reorg is reported (reorg, deep-reorg) and over once its batches are anchored again", async () => {
    const { progress, events } = progressOver(fakeLedger(6));
    progress.sealedThrough(5);
    await progress.moveCursor(2);
    progress.deepReorgFound({
      detectedAt: new Date().toISOString(),
      fromBatchNo: 2,
      batches: 2,
      reason: "gone",
      confirmations: 1,
      lostAnchors: [],
    });
    expect(types(events)).to.deep.equal(["reorg", "deep-reorg"]);
    expect(progress.deepReorgs).to.equal(1);
    await progress.anchored(2, undefined);
    expect(progress.deepReorg?.reanchoredAt).to.equal(undefined);
    await progress.anchored(3, undefined);
    expect(progress.deepReorg?.reanchoredAt).to.be.a("string");
    expect(events[2]).to.deep.include({ type: "reanchored", fromBatchNo: 2, batches: 2 });
    await progress.anchored(4, undefined);
    expect(types(events), "reported once").to.deep.equal(["reorg", "deep-reorg", "reanchored"]);
  });
});

import { expect } from "chai";
import { AnchoredWaiters } from "../../../services/anchoring/anchored-waiters.ts";

/** Watches a waiter from the moment it is made; `settled()` reads its state a tick later. */
function track(p: Promise<void>): { settled: () => Promise<string> } {
  let state = "pending";
  p.then(
    () => (state = "resolved"),
    (e: Error) => (state = `rejected: ${e.message}`),
  );
  return {
    settled: async () => {
      await new Promise((r) => setImmediate(r));
      return state;
    },
  };
}

describe("anchored waiters", () => {
  it("resolves each waiter once the batches through its batchNo are anchored", async () => {
    const waiters = new AnchoredWaiters();
    const w2 = track(waiters.add(2, 10_000, () => "late"));
    const w5 = track(waiters.add(5, 10_000, () => "late"));
    waiters.resolveThrough(1);
    expect(await w2.settled()).to.equal("pending");
    waiters.resolveThrough(3);
    expect(await w2.settled()).to.equal("resolved");
    expect(await w5.settled()).to.equal("pending");
    waiters.resolveThrough(5);
    expect(await w5.settled()).to.equal("resolved");
  });

  it("rejects every waiter at once (stop, alarm) and after its timeout with the message given then", async () => {
    const waiters = new AnchoredWaiters();
    const a = track(waiters.add(1, 10_000, () => "late"));
    const b = track(waiters.add(9, 10_000, () => "late"));
    waiters.rejectAll(new Error("anchor loop stopped"));
    expect(await a.settled()).to.equal("rejected: anchor loop stopped");
    expect(await b.settled()).to.equal("rejected: anchor loop stopped");
    let asked = 0;
    const timed = track(waiters.add(1, 5, () => `not anchored (asked ${++asked})`));
    await new Promise((r) => setTimeout(r, 30));
    expect(await timed.settled()).to.equal("rejected: not anchored (asked 1)");
    waiters.resolveThrough(1); // a timed-out waiter is gone: nothing resolves twice
    expect(asked).to.equal(1);
  });
});

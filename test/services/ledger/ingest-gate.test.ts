import { expect } from "chai";
import {
  IngestGate,
  type IngestLimits,
  IngestOverloadedError,
} from "../../../services/ledger/ingest-gate.ts";

/** A gate over a backlog the test sets by hand. */
function gateOver(limits: IngestLimits) {
  const backlog = { unsealed: 0, unanchored: 0, ageMs: 0 };
  const gate = new IngestGate(limits, {
    unsealedEvents: () => backlog.unsealed,
    oldestUnsealedMs: () => backlog.ageMs,
    unanchoredBatches: () => backlog.unanchored,
  });
  return { gate, backlog };
}

const limits = {
  maxUnsealedEvents: 100,
  maxUnsealedAgeMs: 5_000,
  maxUnanchoredBatches: 2,
  waitMs: 200,
};

describe("ledger: IngestGate", () => {
  it("admits while the backlog plus what is being written fits the bound", async () => {
    const { gate, backlog } = gateOver(limits);
    const a = await gate.admit(60);
    expect(gate.status()).to.include({ admittingEvents: 60, saturated: false });
    // 60 being written + 50 > 100: waits, then is refused.
    const refused = await gate.admit(50).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(IngestOverloadedError);
    expect(refused).to.include({ code: "OVERLOADED", bound: "unsealed-events" });
    expect((refused as IngestOverloadedError).retryAfterMs).to.be.within(1_000, 60_000);
    expect(gate.status().refused).to.equal(1);
    // Acknowledged: the events move from "being written" to the unsealed backlog.
    backlog.unsealed = 60;
    a();
    a(); // a second release changes nothing
    expect(gate.status().admittingEvents).to.equal(0);
    const b = await gate.admit(40);
    b();
  });

  it("a waiting caller is admitted, in arrival order, as soon as sealing makes room", async () => {
    const { gate, backlog } = gateOver({ ...limits, waitMs: 5_000 });
    backlog.unsealed = 100;
    const order: string[] = [];
    const first = gate.admit(30).then((release) => (order.push("first"), release));
    const second = gate.admit(10).then((release) => (order.push("second"), release));
    await new Promise((r) => setTimeout(r, 20));
    expect(gate.status()).to.include({ waiting: 2, saturated: true });
    // A newcomer that would fit does not overtake the waiting callers.
    backlog.unsealed = 70;
    const started = Date.now();
    gate.sealed(30);
    (await first)();
    (await second)();
    expect(order).to.deep.equal(["first", "second"]);
    expect(Date.now() - started).to.be.below(1_000);
  });

  it("a lone call larger than the bound still goes when nothing is ahead of it", async () => {
    const { gate } = gateOver(limits);
    (await gate.admit(500))();
  });

  it("refuses while too many sealed batches wait to be anchored, and admits once anchoring moves", async () => {
    const { gate, backlog } = gateOver({ ...limits, waitMs: 50 });
    backlog.unanchored = 2;
    const refused = await gate.admit(1).catch((e: unknown) => e);
    expect(refused).to.include({ code: "OVERLOADED", bound: "unanchored-batches" });
    expect(gate.status().saturated).to.equal(true);
    const waiting = gate.admit(1);
    backlog.unanchored = 1;
    gate.progress();
    (await waiting)();
  });

  it("refuses while the oldest unsealed event is older than the age bound, whatever the count", async () => {
    const { gate, backlog } = gateOver({ ...limits, waitMs: 50 });
    backlog.unsealed = 10;
    backlog.ageMs = 7_500;
    const refused = await gate.admit(1).catch((e: unknown) => e);
    expect(refused).to.include({ code: "OVERLOADED", bound: "unsealed-age" });
    // Retry-After: about when the oldest event is expected to be sealed (at least 1 s).
    expect((refused as IngestOverloadedError).retryAfterMs).to.equal(2_500);
    expect(gate.status().saturated).to.equal(true);
    backlog.ageMs = 4_000;
    (await gate.admit(1))();
  });

  it("close() refuses the callers still waiting", async () => {
    const { gate, backlog } = gateOver({ ...limits, waitMs: 10_000 });
    backlog.unsealed = 100;
    const waiting = gate.admit(1).catch((e: unknown) => e);
    gate.close();
    expect(await waiting).to.be.instanceOf(Error);
  });
});

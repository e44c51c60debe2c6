import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { committedForm } from "../../../services/core/disclosure.ts";
import { commitmentOfCanonical } from "../../../services/core/entry.ts";
import type { NativeEvent } from "../../../services/core/event.ts";
import { fromHex } from "../../../services/core/hex.ts";
import { jcs } from "../../../services/core/jcs.ts";
import { IdempotencyConflictError } from "../../../services/ledger/errors.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

const signer = new Wallet("0x" + "12".repeat(32));
const ORG = "Organization/hospital-a";

function event(patient: string, requestId: string, org = ORG): NativeEvent {
  const base = makeNativeEvent();
  return {
    ...base,
    requestId,
    patient: { system: "urn:oid:2.16.840.1.113883.4.1", value: patient },
    source: { ...base.source, organization: org },
  };
}

function openLedger(location: string): Promise<Ledger> {
  return Ledger.open({
    location,
    receiptSigner: signer,
    batchMaxEvents: 1_000,
    batchMaxWaitMs: 60_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  });
}

async function conflictOf(p: Promise<unknown>): Promise<IdempotencyConflictError> {
  try {
    await p;
  } catch (error) {
    expect(error).to.be.instanceOf(IdempotencyConflictError);
    return error as IdempotencyConflictError;
  }
  throw new Error("expected an idempotency conflict");
}

describe("ingest: idempotency keys (real LevelDB)", function () {
  this.timeout(60_000);
  let dir: string;
  let ledger: Ledger;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-ingest-"));
    ledger = await openLedger(dir);
  });
  afterEach(async () => {
    if (ledger.store.isOpen) await ledger.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("a reused requestId with a different event is refused, naming the requestId and the original seq", async () => {
    await ledger.ingest([event("p0", "other")]);
    const [first] = await ledger.ingest([event("p1", "req-1")]);
    const conflict = await conflictOf(ledger.ingest([event("p2", "req-1")]));
    expect(conflict.code).to.equal("IDEMPOTENCY_CONFLICT");
    expect(conflict.requestId).to.equal("req-1");
    expect(conflict.seq).to.equal(first!.receipt.seq);
    expect(conflict.index).to.equal(0);
    expect(conflict.message).to.include("req-1").and.to.include(`seq ${first!.receipt.seq}`);
    expect(ledger.nextSeq).to.equal(2);
    // The original is untouched.
    expect((await ledger.getEvent(1)).event).to.deep.equal(event("p1", "req-1"));
  });

  it("the identical event (same JCS, any key order) still gets the original receipt", async () => {
    const e = event("p1", "req-1");
    const [first] = await ledger.ingest([e]);
    const reordered = Object.fromEntries(Object.entries(e).reverse()) as unknown as NativeEvent;
    const [again] = await ledger.ingest([reordered]);
    expect(again!.duplicate).to.equal(true);
    expect(again!.receipt).to.deep.equal(first!.receipt);
  });

  it("one changed field anywhere in the event is a conflict", async () => {
    const e = event("p1", "req-1");
    await ledger.ingest([e]);
    const changed = { ...e, agents: [{ ...e.agents[0]!, requestor: !e.agents[0]!.requestor }] };
    await conflictOf(ledger.ingest([changed as NativeEvent]));
    expect(ledger.nextSeq).to.equal(1);
  });

  it("a bulk call with one conflicting event stores none of its events", async () => {
    await ledger.ingest([event("p1", "req-1")]);
    // A retry of req-1 inside a bulk call with fresh events is fine.
    const mixed = await ledger.ingest([event("p3", "req-3"), event("p1", "req-1")]);
    expect(mixed.map((r) => [r.receipt.seq, r.duplicate])).to.deep.equal([
      [1, false],
      [0, true],
    ]);
    const before = ledger.nextSeq;
    const refused = await conflictOf(
      ledger.ingest([event("p4", "req-4"), event("p5", "req-1"), event("p6", "req-6")]),
    );
    expect(refused.index).to.equal(1);
    expect(refused.seq).to.equal(0);
    expect(ledger.nextSeq).to.equal(before);
    // Nothing of the refused call is known afterwards: req-4 is fresh.
    const [r4] = await ledger.ingest([event("p4", "req-4")]);
    expect(r4!.duplicate).to.equal(false);
  });

  it("inside one call: repeats of the same event share a seq, a different event under the same requestId is refused", async () => {
    const e = event("p1", "req-1");
    const results = await ledger.ingest([e, event("p2", "req-2"), e]);
    expect(results[2]!.duplicate).to.equal(true);
    expect(results[2]!.receipt.seq).to.equal(results[0]!.receipt.seq);
    const conflict = await conflictOf(ledger.ingest([event("p7", "req-7"), event("p8", "req-7")]));
    expect(conflict.index).to.equal(1);
    expect(conflict.earlierIndex).to.equal(0);
    expect(conflict.seq).to.equal(undefined);
    expect(ledger.nextSeq).to.equal(2);
  });

  it("concurrent posts: identical ones share one seq, different ones are refused with that seq", async () => {
    const a = event("p1", "req-c");
    const b = event("p2", "req-c");
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => ledger.ingest([i % 2 === 0 ? a : b])),
    );
    const ok = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value[0]!] : []));
    const refused = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
    expect(ledger.nextSeq).to.equal(1);
    expect(new Set(ok.map((r) => r.receipt.seq))).to.deep.equal(new Set([0]));
    expect(ok.filter((r) => !r.duplicate)).to.have.length(1);
    expect(ok.length + refused.length).to.equal(10);
    expect(refused).to.have.length(5);
    for (const r of refused) {
      expect(r).to.be.instanceOf(IdempotencyConflictError);
      expect((r as IdempotencyConflictError).seq).to.equal(0);
    }
    // Whichever won, the stored event is the one all successful posts sent.
    const stored = (await ledger.getEvent(0)).event;
    const winner = ok.length === 5 && stored?.patient?.value === "p1" ? a : b;
    expect(stored).to.deep.equal(winner);
  });

  it("the rule survives a restart", async () => {
    await ledger.ingest([event("p1", "req-1")]);
    await ledger.close();
    ledger = await openLedger(dir);
    const conflict = await conflictOf(ledger.ingest([event("p2", "req-1")]));
    expect(conflict.seq).to.equal(0);
    const [same] = await ledger.ingest([event("p1", "req-1")]);
    expect(same!.duplicate).to.equal(true);
  });

  it("the same requestId from another organization is another request", async () => {
    await ledger.ingest([event("p1", "req-1")]);
    const [other] = await ledger.ingest([event("p2", "req-1", "Organization/lab-b")]);
    expect(other!.duplicate).to.equal(false);
    expect(other!.receipt.seq).to.equal(1);
  });
});

describe("ingest: random values of one group commit (real LevelDB)", function () {
  this.timeout(60_000);

  it("every event of a group has its own salt and its own field salt per redactable value", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "veritrail-ingest-"));
    const ledger = await openLedger(dir);
    try {
      // One call is one group: its salts and field salts are slices of one draw each.
      const events = Array.from({ length: 64 }, (_, i) => {
        const { requestId: _unused, ...base } = makeNativeEvent();
        return { ...base, entities: [{ ...base.entities[0]!, what: `Observation/${i}` }] };
      });
      const results = await ledger.ingest(events);
      const seqs = results.map((r) => r.receipt.seq);
      const bodies = await ledger.store.getBodies(seqs);
      const salts = bodies.map((b) => b!.salt);
      const fieldSalts = bodies.flatMap((b) => Object.values(b!.fieldSalts ?? {}));
      const perEvent = bodies.map((b) => Object.keys(b!.fieldSalts ?? {}).length);
      expect(perEvent[0], "the fixture has redactable values").to.be.greaterThan(1);
      expect(new Set(perEvent).size).to.equal(1);
      expect(new Set(salts).size).to.equal(64);
      for (const s of salts) expect(s).to.match(/^0x[0-9a-f]{64}$/);
      expect(new Set(fieldSalts).size).to.equal(fieldSalts.length);
      for (const s of fieldSalts) expect(s).to.match(/^0x[0-9a-f]{32}$/);
      // Each entry commits to its own event under its own salts.
      for (const [k, seq] of seqs.entries()) {
        const body = bodies[k]!;
        const { entry } = (await ledger.store.getEntry(seq))!;
        const committed = jcs(committedForm(body.event!, body.fieldSalts!));
        expect(entry.commitment).to.equal(commitmentOfCanonical(fromHex(body.salt!), committed));
      }
    } finally {
      await ledger.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

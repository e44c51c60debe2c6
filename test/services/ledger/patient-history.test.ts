import { expect } from "chai";
import { fromHex } from "../../../services/core/hex.ts";
import { type Entry, entryLeafHash } from "../../../services/core/entry.ts";
import { verifyCompleteness } from "../../../services/core/subject-index-proof.ts";
import { K } from "../../../services/store/keys.ts";
import { LedgerError } from "../../../services/ledger/errors.ts";
import {
  PATIENT_HISTORY_FORMAT,
  latestAnchoredBatch,
  patientHistory,
} from "../../../services/ledger/patient-history.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";

describe("ledger/patient-history (Hardhat)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let log: AnchoredLog;

  before(async () => {
    node = await HardhatNode.start();
    log = await AnchoredLog.create(node);
  });

  after(async () => {
    await log?.close();
    await node?.stop();
  });

  it("answers with no asOf and everything 'not yet covered' before any batch is anchored", async () => {
    await log.ledger.ingest([patientEvent("MRN-EARLY")]);
    const h = await patientHistory(log.ledger, log.tagOf("MRN-EARLY"), {
      staffIdentity: "withhold",
    });
    expect(await latestAnchoredBatch(log.ledger)).to.equal(undefined);
    expect(h.asOf).to.equal(null);
    expect(h.proof).to.equal(null);
    expect(h.events).to.deep.equal([]);
    expect(h.notYetCovered.map((e) => e.bundle.status)).to.deep.equal(["unsealed"]);
  });

  it("lists covered events with bundles equal to prove(seq), and later ones separately", async () => {
    // Batch 0 (with MRN-EARLY's event): A ×3 interleaved with B; batch 1: A ×2, C ×1.
    await log.ledger.ingest([
      patientEvent("MRN-A"),
      patientEvent("MRN-B"),
      patientEvent("MRN-A", { purposeOfUse: ["PATRQT"], action: "U" }),
      patientEvent("MRN-B"),
      patientEvent("MRN-A"),
    ]);
    await log.sealAndAnchor();
    await log.ledger.ingest([patientEvent("MRN-A"), patientEvent("MRN-C"), patientEvent("MRN-A")]);
    await log.sealAndAnchor();
    // Sealed, not anchored; and accepted, not sealed.
    await log.ledger.ingest([patientEvent("MRN-A")]);
    await log.ledger.sealPending();
    await log.ledger.ingest([patientEvent("MRN-A")]);

    const tag = log.tagOf("MRN-A");
    const h = await patientHistory(log.ledger, tag, { staffIdentity: "withhold" });
    expect(h.format).to.equal(PATIENT_HISTORY_FORMAT);
    expect(h.subjectTag).to.equal(tag);
    expect(h.asOf?.batch.batchNo).to.equal(1);
    expect(h.asOf?.anchor.contract).to.equal(log.contract);
    expect(h.events.map((e) => e.seq)).to.deep.equal([1, 3, 5, 6, 8]);
    expect(h.notYetCovered.map((e) => [e.seq, e.bundle.status])).to.deep.equal([
      [9, "sealed"],
      [10, "unsealed"],
    ]);
    for (const e of [...h.events, ...h.notYetCovered]) {
      expect(e.bundle, `seq ${e.seq}`).to.deep.equal(
        await log.ledger.prove(e.seq, { staffIdentity: "withhold" }),
      );
      expect(e.recorded).to.equal(e.bundle.entry.recorded);
      expect(e.bundle.entry.subject).to.equal(tag);
    }
    expect(h.events.every((e) => e.bundle.status === "anchored")).to.equal(true);
    expect(h.events[1]!.event).to.include({ action: "U" });
    expect(h.events[1]!.event?.purposeOfUse).to.deep.equal(["PATRQT"]);

    const result = verifyCompleteness({
      indexRoot: fromHex(h.asOf!.batch.indexRoot),
      subjectTag: fromHex(tag),
      events: h.events.map((e) => ({
        seq: e.seq,
        leafHash: entryLeafHash(e.bundle.entry as Entry),
      })),
      proof: h.proof!,
    });
    expect(result).to.deep.equal({ ok: true, count: 5 });
  });

  it("hides staff names unless the policy shows them", async () => {
    const tag = log.tagOf("MRN-A");
    const hidden = await patientHistory(log.ledger, tag, { staffIdentity: "withhold" });
    const shown = await patientHistory(log.ledger, tag, { staffIdentity: "disclose" });
    const agentsHidden = hidden.events[0]!.event!.agents;
    expect(agentsHidden.length).to.be.greaterThan(0);
    expect(agentsHidden.every((a) => a.who === undefined && a.userName === undefined)).to.equal(
      true,
    );
    expect(agentsHidden.every((a) => typeof a.organization === "string")).to.equal(true);
    expect(shown.events[0]!.event!.agents.every((a) => a.who !== undefined)).to.equal(true);
  });

  it("proves non-membership for a patient with no events", async () => {
    const tag = log.tagOf("MRN-NOBODY");
    const h = await patientHistory(log.ledger, tag, { staffIdentity: "withhold" });
    expect(h.events).to.deep.equal([]);
    expect(h.notYetCovered).to.deep.equal([]);
    const result = verifyCompleteness({
      indexRoot: fromHex(h.asOf!.batch.indexRoot),
      subjectTag: fromHex(tag),
      events: [],
      proof: h.proof!,
    });
    expect(result).to.deep.equal({ ok: true, count: 0 });
  });

  it("shows an erased event without its body, still covered", async () => {
    const tag = log.tagOf("MRN-B");
    await log.ledger.store.write([{ type: "del", key: K.body(2) }]);
    const h = await patientHistory(log.ledger, tag, { staffIdentity: "withhold" });
    expect(h.events.map((e) => [e.seq, e.erased])).to.deep.equal([
      [2, true],
      [4, false],
    ]);
    expect(h.events[0]!.event).to.equal(null);
    expect(h.events[0]!.bundle.event).to.equal(null);
  });

  it("finds each event's batch both when the events are dense and when few lie far apart", async () => {
    // 80 batches of two events: DENSE has one in each (its batches are read as one range),
    // SPARSE one in the first and one in the last (one seek per batch instead).
    const BATCHES = 80;
    for (let b = 0; b < BATCHES; b++) {
      const sparse = b === 0 || b === BATCHES - 1;
      await log.ledger.ingest([
        patientEvent(sparse ? "MRN-SPARSE" : "MRN-FILLER"),
        patientEvent("MRN-DENSE"),
      ]);
      await log.ledger.sealPending();
    }
    for (const [mrn, count] of [
      ["MRN-DENSE", BATCHES],
      ["MRN-SPARSE", 2],
    ] as const) {
      const h = await patientHistory(log.ledger, log.tagOf(mrn), { staffIdentity: "withhold" });
      const all = [...h.events, ...h.notYetCovered];
      expect(all.length, mrn).to.equal(count);
      for (const e of all) {
        expect(e.bundle.status, `${mrn} seq ${e.seq}`).to.equal("sealed");
        expect(e.bundle, `${mrn} seq ${e.seq}`).to.deep.equal(
          await log.ledger.prove(e.seq, { staffIdentity: "withhold" }),
        );
      }
    }
  });

  it("refuses a subject that is not a 32-byte tag", async () => {
    let error: unknown;
    try {
      await patientHistory(log.ledger, "0x1234" as `0x${string}`, { staffIdentity: "withhold" });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(LedgerError);
    expect((error as LedgerError).code).to.equal("VALIDATION_FAILED");
  });
});

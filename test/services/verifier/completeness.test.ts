import { expect } from "chai";
import { JsonRpcProvider, Network } from "ethers";
import { patientHistory, type PatientHistory } from "../../../services/ledger/patient-history.ts";
import {
  type HistoryVerdict,
  verifyPatientHistory,
} from "../../../services/verifier/completeness.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";
import { policyFor } from "../../support/trust.ts";
import type { TrustPolicy } from "../../../services/core/trust-policy.ts";

function explain(v: HistoryVerdict): string {
  return v.findings.map((f) => `${f.code} ${f.message}`).join("\n");
}

describe("verifier/completeness: verifyPatientHistory (Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let log: AnchoredLog;
  let provider: JsonRpcProvider;
  let opts: { confirmations: number; trust: TrustPolicy };
  const staff = { staffIdentity: "withhold" as const };

  before(async () => {
    node = await HardhatNode.start();
    provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
    log = await AnchoredLog.create(node);
    opts = {
      confirmations: 1,
      trust: policyFor({
        chainId: Number((await provider.getNetwork()).chainId),
        contract: log.contract,
        logIds: log.ledger.logId,
      }),
    };
  });

  after(async () => {
    provider?.destroy();
    await log?.close();
    await node?.stop();
  });

  it("a history before any anchor is pending (NOTHING_ANCHORED), not verified", async () => {
    await log.ledger.ingest([patientEvent("MRN-A")]);
    const v = await verifyPatientHistory(
      await patientHistory(log.ledger, log.tagOf("MRN-A"), staff),
      provider,
      opts,
    );
    expect(v.ok).to.equal(false);
    expect(v.status).to.equal("pending");
    expect(v.code).to.equal("NOTHING_ANCHORED");
    expect(v.notYetCovered.map((e) => e.verdict.status)).to.deep.equal(["pending"]);
  });

  describe("with anchored batches", () => {
    let good: PatientHistory;

    before(async () => {
      await log.ledger.ingest([
        patientEvent("MRN-B"),
        patientEvent("MRN-A"),
        patientEvent("MRN-B"),
        patientEvent("MRN-A"),
      ]);
      await log.sealAndAnchor();
      await log.ledger.ingest([patientEvent("MRN-A"), patientEvent("MRN-B")]);
      await log.sealAndAnchor();
      await log.ledger.ingest([patientEvent("MRN-A")]);
      good = await patientHistory(log.ledger, log.tagOf("MRN-A"), staff);
      expect(good.events.length).to.equal(4);
      expect(good.notYetCovered.length).to.equal(1);
    });

    const copy = () => structuredClone(good);

    it("verifies the honest history: every bundle, the asOf anchor, completeness", async () => {
      const v = await verifyPatientHistory(good, provider, opts);
      expect(v.ok, explain(v)).to.equal(true);
      expect(v.status).to.equal("verified");
      expect(v.count).to.equal(4);
      expect(v.asOf).to.deep.include({ batchNo: 1, contract: log.contract });
      expect(v.asOf?.blockNumber).to.equal(good.asOf!.anchor.blockNumber);
      expect(v.events.every((e) => e.verdict.status === "verified")).to.equal(true);
      expect(v.notYetCovered.map((e) => e.verdict.status)).to.deep.equal(["pending"]);
    });

    it("an event left out of the response → INCOMPLETE_HISTORY", async () => {
      const h = copy();
      h.events.splice(2, 1);
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.status, explain(v)).to.equal("failed");
      expect(v.code).to.equal("INCOMPLETE_HISTORY");
    });

    it("every event left out, the membership proof kept → INCOMPLETE_HISTORY", async () => {
      const h = copy();
      h.events = [];
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.code, explain(v)).to.equal("INCOMPLETE_HISTORY");
    });

    it("a forged non-membership proof for a patient who has events fails", async () => {
      const h = copy();
      h.events = [];
      // Another patient's proof, or an empty terminal on the path, does not hash to indexRoot.
      const other = await patientHistory(log.ledger, log.tagOf("MRN-NOBODY"), staff);
      h.proof = other.proof;
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.status, explain(v)).to.equal("failed");
      // Subject tags are random per log: when the other patient's path ends in this patient's
      // leaf, the "non-membership" proof in fact proves membership, and the empty history is
      // then caught as incomplete.
      expect(["ROOT_MISMATCH", "KEY_MISMATCH", "NON_CANONICAL", "INCOMPLETE_HISTORY"]).to.include(
        v.code,
      );
      const h2 = copy();
      h2.events = [];
      h2.proof = { siblings: good.proof!.siblings, leaf: null };
      const v2 = await verifyPatientHistory(h2, provider, opts);
      expect(v2.status, explain(v2)).to.equal("failed");
      expect(v2.code).to.equal("ROOT_MISMATCH");
    });

    it("a patient with no events gets a verifying non-membership proof", async () => {
      const h = await patientHistory(log.ledger, log.tagOf("MRN-NOBODY"), staff);
      expect(h.proof!.leaf === null || h.proof!.leaf.key !== h.subjectTag).to.equal(true);
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.ok, explain(v)).to.equal(true);
      expect(v.count).to.equal(0);
    });

    it("another patient's event slipped in → WRONG_SUBJECT", async () => {
      const h = copy();
      const b = await patientHistory(log.ledger, log.tagOf("MRN-B"), staff);
      h.events.push(b.events[0]!);
      h.events.sort((x, y) => x.seq - y.seq);
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.status).to.equal("failed");
      expect(
        v.findings.map((f) => f.code),
        explain(v),
      ).to.include("WRONG_SUBJECT");
    });

    it("a not-yet-covered event passed off as covered → OUT_OF_RANGE", async () => {
      const h = copy();
      h.events.push(h.notYetCovered.pop()!);
      const v = await verifyPatientHistory(h, provider, opts);
      expect(
        v.findings.map((f) => f.code),
        explain(v),
      ).to.include("OUT_OF_RANGE");
    });

    it("a tampered asOf header (indexRoot) → HEADER_MISMATCH", async () => {
      const h = copy();
      const root = h.asOf!.batch.indexRoot;
      h.asOf!.batch.indexRoot = `0x${root[2] === "0" ? "1" : "0"}${root.slice(3)}`;
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.status).to.equal("failed");
      expect(
        v.findings.map((f) => f.code),
        explain(v),
      ).to.include("HEADER_MISMATCH");
    });

    it("a view that disagrees with its bundle → VIEW_MISMATCH", async () => {
      const h = copy();
      h.events[0]!.event!.purposeOfUse = ["PUBHLTH"];
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.code, explain(v)).to.equal("VIEW_MISMATCH");
    });

    it("a tampered bundle → BUNDLE_INVALID naming the event", async () => {
      const h = copy();
      h.events[1]!.bundle.inclusion = [...h.events[1]!.bundle.inclusion].reverse();
      h.events[1]!.bundle.inclusion.push(h.events[1]!.bundle.batch!.eventsRoot);
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.code, explain(v)).to.equal("BUNDLE_INVALID");
      expect(v.findings[0]!.seq).to.equal(h.events[1]!.seq);
    });

    it("too deep a confirmation requirement → TOO_FEW_CONFIRMATIONS", async () => {
      const v = await verifyPatientHistory(good, provider, { ...opts, confirmations: 10_000 });
      expect(
        v.findings.map((f) => f.code),
        explain(v),
      ).to.include("TOO_FEW_CONFIRMATIONS");
      expect(v.ok).to.equal(false);
    });

    it("names the operator and the policy; a policy without this registry → UNTRUSTED_REGISTRY", async () => {
      const ok = await verifyPatientHistory(good, provider, opts);
      expect(ok.trust).to.deep.include({
        fingerprint: opts.trust.fingerprint,
        operator: opts.trust.logs[0]!.operator,
      });
      const other = policyFor({
        chainId: opts.trust.registries[0]!.chainId,
        contract: "0x000000000000000000000000000000000000dEaD",
        logIds: log.ledger.logId,
      });
      const v = await verifyPatientHistory(good, provider, { ...opts, trust: other });
      expect(v.ok).to.equal(false);
      expect(v.code, explain(v)).to.equal("UNTRUSTED_REGISTRY");
      const noLog = policyFor({
        chainId: opts.trust.registries[0]!.chainId,
        contract: log.contract,
        logIds: `0x${"ab".repeat(32)}`,
      });
      expect((await verifyPatientHistory(good, provider, { ...opts, trust: noLog })).code).to.equal(
        "UNKNOWN_LOG",
      );
    });

    it("malformed input → HISTORY_MALFORMED", async () => {
      for (const bad of [null, 7, { ...good, format: "x" }, { ...good, events: "no" }]) {
        const v = await verifyPatientHistory(bad, provider, opts);
        expect(v.code).to.equal("HISTORY_MALFORMED");
        expect(v.status).to.equal("failed");
      }
    });

    it("an unreachable RPC → error, not failed", async () => {
      const dead = new JsonRpcProvider("http://127.0.0.1:9", undefined, {
        staticNetwork: Network.from(31337),
      });
      try {
        const v = await verifyPatientHistory(good, dead, opts);
        expect(v.status, explain(v)).to.equal("error");
        expect(v.code).to.equal("RPC_ERROR");
      } finally {
        dead.destroy();
      }
    });

    it("the stored index omits an event (forged batch, anchored) → INCOMPLETE_HISTORY", async () => {
      // The operator seals a batch whose index update skips one of MRN-A's events, and anchors
      // it: the header is consistent with its own indexRoot, so only completeness catches it.
      await log.ledger.ingest([patientEvent("MRN-A"), patientEvent("MRN-A")]);
      const skipped = log.ledger.nextSeq - 2;
      await log.sealForged(skipped);
      await log.anchorAll();
      const h = await patientHistory(log.ledger, log.tagOf("MRN-A"), staff);
      expect(h.asOf!.batch.batchNo).to.equal(2);
      expect(h.events.map((e) => e.seq)).to.include(skipped);
      const v = await verifyPatientHistory(h, provider, opts);
      expect(v.status, explain(v)).to.equal("failed");
      expect(v.code).to.equal("INCOMPLETE_HISTORY");
      // The events themselves are genuine and anchored: only completeness fails.
      expect(v.events.every((e) => e.verdict.status === "verified")).to.equal(true);
    });
  });
});

import { expect } from "chai";
import type { Bundle } from "../../../services/core/bundle.ts";
import type { NativeEvent } from "../../../services/core/event.ts";
import { rebuildCommitted, redactableValues } from "../../../services/core/disclosure.ts";
import type { Entry } from "../../../services/core/entry.ts";
import {
  ALLOWED_ROLES,
  AccessPolicy,
  type Operation,
  bundleContent,
  redactEvent,
} from "../../../services/ledger/access.ts";
import type { Principal } from "../../../services/ledger/api-keys.ts";
import type { ProvenanceTrace, TransferSide } from "../../../services/ledger/provenance.ts";
import {
  HOSPITAL_ORG,
  LAB_ORG,
  makeBalpNativeEvent,
  makeNativeEvent,
} from "../../fixtures/events.ts";

const REGISTRY_ORG = "org:registry";
const tag = (n: number) => `0x${n.toString(16).padStart(64, "0")}`;
const writerA: Principal = { id: "key_a", role: "writer", scope: HOSPITAL_ORG };
const writerB: Principal = { id: "key_b", role: "writer", scope: LAB_ORG };
const auditor: Principal = { id: "key_au", role: "auditor", scope: null };
const admin: Principal = { id: "key_ad", role: "admin", scope: null };
const patient1: Principal = { id: "key_p1", role: "patient", scope: tag(1) };

/** seq → (organization, subject) of a tiny log. */
const LOG = new Map<number, { organization: string; subject: string | null }>([
  [0, { organization: HOSPITAL_ORG, subject: tag(1) }],
  [1, { organization: LAB_ORG, subject: tag(2) }],
]);

function policy(patientStaffNames = false): AccessPolicy {
  return new AccessPolicy({
    patientStaffNames,
    nextSeq: () => LOG.size,
    isInScope: (seq, scope) => {
      const e = LOG.get(seq);
      return Promise.resolve(
        e !== undefined &&
          (scope.organization === undefined || scope.organization === e.organization) &&
          (scope.subject === undefined || scope.subject === e.subject),
      );
    },
  });
}

async function refusal(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    return e;
  }
  return expect.fail("expected a refusal");
}

function side(organization: string, seq: number, event: NativeEvent): TransferSide {
  return {
    log: "local",
    logId: tag(99),
    seq,
    organization,
    recorded: event.recorded,
    bundle: { event, entry: { seq } } as unknown as Bundle,
  };
}

describe("ledger/access: the access policy", () => {
  it("each operation's roles; every other role is refused with FORBIDDEN", () => {
    const roles = ["admin", "writer", "auditor", "patient"] as const;
    for (const [op, allowed] of Object.entries(ALLOWED_ROLES) as Array<[Operation, string[]]>) {
      for (const role of roles) {
        const p: Principal = { id: "k", role, scope: role === "writer" ? HOSPITAL_ORG : null };
        if (allowed.includes(role)) expect(() => policy().permit(p, op), op).to.not.throw();
        else expect(() => policy().permit(p, op), `${op} ${role}`).to.throw(/may not use/);
      }
    }
    expect(ALLOWED_ROLES["events:erase"]).to.deep.equal(["admin"]);
    expect(ALLOWED_ROLES["export:read"]).to.deep.equal(["auditor"]);
  });

  it("an event outside the scope is refused exactly like a missing one (404, same message)", async () => {
    const p = policy();
    await p.checkEvent(writerA, 0);
    await p.checkEvent(auditor, 1);
    await p.checkEvent(patient1, 0);
    for (const [who, seq] of [
      [writerA, 1],
      [patient1, 1],
      [writerB, 0],
    ] as const) {
      const out = (await refusal(p.checkEvent(who, seq))) as { code: string; message: string };
      const missing = (await refusal(p.checkEvent(who, 7))) as { code: string; message: string };
      expect(out).to.include({
        code: "NOT_FOUND",
        message: `no event at seq ${seq}`,
        field: "seq",
      });
      expect(missing).to.include({ code: "NOT_FOUND", message: "no event at seq 7" });
    }
    expect(await refusal(p.checkEvent(admin, 0))).to.include({ code: "FORBIDDEN" });
  });

  it("list filters are confined to the scope; naming another scope is 403 naming the field", async () => {
    const p = policy();
    expect(p.listFilter(writerA, { filter: { purpose: "TREAT" } })).to.deep.equal({
      purpose: "TREAT",
      organization: HOSPITAL_ORG,
    });
    expect(p.listFilter(patient1, { filter: { organization: LAB_ORG } })).to.deep.equal({
      organization: LAB_ORG,
      subject: tag(1),
    });
    expect(p.listFilter(auditor, { filter: { subject: tag(2) } })).to.deep.equal({
      subject: tag(2),
    });
    expect(
      await refusal(() =>
        p.listFilter(writerA, { filter: { organization: LAB_ORG }, organizationField: "org" }),
      ),
    ).to.include({ code: "FORBIDDEN", field: "org" });
    expect(
      await refusal(() =>
        p.listFilter(patient1, { filter: { subject: tag(2) }, subjectField: "patient" }),
      ),
    ).to.include({ code: "FORBIDDEN", field: "patient" });
    expect(p.subjectFor(patient1, undefined)).to.equal(tag(1));
    expect(p.subjectFor(auditor, tag(2))).to.equal(tag(2));
    expect(await refusal(() => p.subjectFor(auditor, undefined))).to.include({
      code: "VALIDATION_FAILED",
      field: "subject",
    });
    expect(await refusal(() => p.subjectFor(patient1, tag(2)))).to.include({ code: "FORBIDDEN" });
  });

  it("a writer writes only events naming its own organization (403 naming the field)", async () => {
    const p = policy();
    p.checkWrite(writerA, [{ value: HOSPITAL_ORG, field: "source.organization" }]);
    expect(
      await refusal(() =>
        p.checkWrite(writerA, [
          { value: HOSPITAL_ORG, field: "[0].source.organization" },
          { value: LAB_ORG, field: "[1].source.organization" },
        ]),
      ),
    ).to.include({ code: "FORBIDDEN", field: "[1].source.organization" });
    expect(await refusal(() => p.checkWrite(auditor, []))).to.include({ code: "FORBIDDEN" });
  });

  it("redactEvent: the one patient-facing redaction drops who, userName, altId, network of every agent", () => {
    const e = makeNativeEvent();
    e.agents[2]!.altId = "EMP-38117";
    const hidden = redactEvent(e, "withhold");
    const text = JSON.stringify(hidden);
    for (const s of [
      "Dr. Anna Weber",
      "u-38117",
      "aweber",
      "EMP-38117",
      "10.20.30.41",
      "ehr-frontend-07",
    ])
      expect(text).to.not.include(s);
    expect(
      hidden.agents.map((a) => [a.organization, a.requestor, a.role, a.purposeOfUse]),
    ).to.deep.equal(e.agents.map((a) => [a.organization, a.requestor, a.role, a.purposeOfUse]));
    expect(redactEvent(e, "disclose")).to.equal(e);
    expect(policy(false).staffIdentityFor(patient1)).to.equal("withhold");
    expect(policy(true).staffIdentityFor(patient1)).to.equal("disclose");
    expect(policy(false).staffIdentityFor(auditor)).to.equal("disclose");
    expect(policy(false).staffIdentityFor(writerA)).to.equal("disclose");
  });

  it("bundleContent: entry v2 withholds each staff value as its digest; entry v1 can only withhold the event whole", () => {
    const event = makeNativeEvent();
    const salt = `0x${"ab".repeat(32)}` as const;
    const fieldSalts: Record<string, `0x${string}`> = {};
    for (const { pointer } of redactableValues(event)) fieldSalts[pointer] = `0x${"cd".repeat(16)}`;
    const v2 = { v: 2 } as Entry;
    const v1 = { v: 1 } as Entry;
    const shown = bundleContent(v2, { event, salt, fieldSalts }, "disclose");
    expect(shown.event).to.deep.equal(event);
    expect(Object.keys(shown.disclosures!).sort()).to.deep.equal(Object.keys(fieldSalts).sort());
    const hidden = bundleContent(v2, { event, salt, fieldSalts }, "withhold");
    expect(hidden.disclosures).to.deep.equal({});
    expect(hidden.withheld).to.equal(false);
    const text = JSON.stringify(hidden.event);
    for (const s of ["Dr. Anna Weber", "aweber", "u-38117", "10.20.30.41"])
      expect(text).to.not.include(s);
    const rebuilt = rebuildCommitted(hidden.event!, hidden.disclosures);
    expect(rebuilt.ok && rebuilt.withheld.length).to.equal(Object.keys(fieldSalts).length);
    expect(bundleContent(v1, { event, salt }, "disclose")).to.deep.equal({
      event,
      salt,
      withheld: false,
    });
    expect(bundleContent(v1, { event, salt }, "withhold")).to.deep.equal({
      event: null,
      salt: null,
      withheld: true,
    });
    expect(bundleContent(v2, undefined, "withhold")).to.deep.equal({
      event: null,
      salt: null,
      withheld: false,
    });
  });

  describe("provenance: the other side is shown only when it names the writer's organization", () => {
    const ref = "xfer-1";
    const hash = `0x${"d4".repeat(32)}` as const;
    const exportTo = (recipient: string | undefined) => {
      const e = makeBalpNativeEvent("PrivacyDisclosureSource", {
        overrides: { transfer: { reference: ref, dataHash: hash } },
      });
      if (recipient === undefined) delete e.recipient;
      else e.recipient = { organization: recipient };
      return e;
    };
    const importFrom = (source: string | undefined) => {
      const e = makeBalpNativeEvent("PrivacyDisclosureRecipient", {
        overrides: { transfer: { reference: ref, dataHash: hash } },
      });
      e.agents = e.agents.filter((a) => a.type?.code !== "110153");
      if (source !== undefined)
        e.agents.push({
          who: { value: "Device/sender" },
          type: { system: "http://dicom.nema.org/resources/ontology/DCM", code: "110153" },
          organization: source,
          requestor: false,
        });
      return e;
    };
    const trace = (exp: NativeEvent, imp: NativeEvent): ProvenanceTrace => ({
      dataHash: hash,
      reference: ref,
      hops: [
        {
          reference: ref,
          dataHash: hash,
          from: side(HOSPITAL_ORG, 4, exp),
          to: side(LAB_ORG, 9, imp),
        },
      ],
      custody: [HOSPITAL_ORG, LAB_ORG],
      unmatched: [],
    });

    it("both sides name each other: both writers see the whole hop", () => {
      const t = trace(exportTo(LAB_ORG), importFrom(HOSPITAL_ORG));
      for (const w of [writerA, writerB]) {
        const seen = policy().provenance(w, t, false);
        expect(seen.hops[0]!.from).to.have.property("seq", 4);
        expect(seen.hops[0]!.to).to.have.property("seq", 9);
        expect(seen.custody).to.deep.equal([HOSPITAL_ORG, LAB_ORG]);
      }
    });

    it("an export without (or with another) recipient is withheld from the importer; so is an import that does not name the exporter", () => {
      for (const recipient of [undefined, REGISTRY_ORG]) {
        const t = trace(exportTo(recipient), importFrom(undefined));
        const asB = policy().provenance(writerB, t, false);
        expect(asB.hops[0]!.from).to.deep.equal({ withheld: true });
        expect(asB.hops[0]!.to).to.have.property("seq", 9);
        expect(asB.custody).to.deep.equal([LAB_ORG]);
        expect(JSON.stringify(asB)).to.not.include(HOSPITAL_ORG);
        const asA = policy().provenance(writerA, t, false);
        expect(asA.hops[0]!.to).to.deep.equal({ withheld: true });
        expect(asA.custody).to.deep.equal([HOSPITAL_ORG]);
      }
    });

    it("a writer of neither side sees nothing, not even the data hash it did not ask by", () => {
      const t = trace(exportTo(LAB_ORG), importFrom(HOSPITAL_ORG));
      const other: Principal = { id: "k", role: "writer", scope: REGISTRY_ORG };
      const seen = policy().provenance(other, t, false);
      expect(seen).to.deep.include({ dataHash: null, hops: [], unmatched: [], custody: [] });
      expect(policy().provenance(other, t, true).dataHash).to.equal(hash);
      expect(policy().provenance(auditor, t, false)).to.equal(t);
    });

    it("unmatched transfers: own ones, exports addressed to the writer, imports naming it as source", () => {
      const base = trace(exportTo(LAB_ORG), importFrom(HOSPITAL_ORG));
      const t: ProvenanceTrace = {
        ...base,
        hops: [],
        custody: [],
        unmatched: [
          {
            kind: "export",
            reason: "NOT_IMPORTED",
            reference: ref,
            dataHash: hash,
            recipient: LAB_ORG,
            side: side(HOSPITAL_ORG, 4, exportTo(LAB_ORG)),
          },
          {
            kind: "export",
            reason: "NOT_IMPORTED",
            reference: ref,
            dataHash: hash,
            side: side(HOSPITAL_ORG, 5, exportTo(undefined)),
          },
          {
            kind: "import",
            reason: "DATA_HASH_MISMATCH",
            reference: ref,
            dataHash: hash,
            side: side(REGISTRY_ORG, 6, importFrom(undefined)),
          },
          {
            kind: "import",
            reason: "DATA_HASH_MISMATCH",
            reference: ref,
            dataHash: hash,
            side: side(REGISTRY_ORG, 7, importFrom(HOSPITAL_ORG)),
          },
        ],
      };
      const seqs = (w: Principal) =>
        policy()
          .provenance(w, t, false)
          .unmatched.map((u) => u.side.seq);
      expect(seqs(writerA)).to.deep.equal([4, 5, 7]);
      expect(seqs(writerB)).to.deep.equal([4]);
      expect(seqs({ id: "k", role: "writer", scope: REGISTRY_ORG })).to.deep.equal([6, 7]);
    });
  });
});

/**
 * Every route × every kind of caller, each cell asserted: no key, a malformed key, a revoked
 * key, admin, writer A (the hospital), writer B (the lab), auditor, patient P1, patient P2.
 * A cell checks the status and, where the answer carries data, what the caller must not see:
 * another organization's events, another patient's events, staff identities in patient-facing
 * output, whether a seq exists outside the caller's scope, and the other side of a transfer
 * that does not name the caller's organization (the provenance attack of issue 19).
 */
import { expect } from "chai";
import type { Hex } from "../../../services/core/hex.ts";
import { subjectTagOf } from "../../../services/ledger/reports.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../fixtures/events.ts";
import { provenanceBundleIssues } from "./fhir-provenance-structure.ts";
import { PATIENT_1, PATIENT_2, type TestApi, eventFor, startTestApi } from "./harness.ts";

type Caller =
  | "none"
  | "malformed"
  | "revoked"
  | "admin"
  | "writerA"
  | "writerB"
  | "auditor"
  | "patient1"
  | "patient2";
const CALLERS: Caller[] = [
  "none",
  "malformed",
  "revoked",
  "admin",
  "writerA",
  "writerB",
  "auditor",
  "patient1",
  "patient2",
];

/** Staff identity in the stored events: none of it may reach a patient (PATIENT_VIEW_STAFF_NAMES=false). */
const STAFF = [
  "Dr. Anna Weber",
  "u-38117",
  "aweber",
  "EMP-38117",
  "10.20.30.41",
  "ehr-frontend-07",
];
/** What organization A's export of the attack carries that B must never learn. */
const ALPHA_REF = "XFER-ALPHA-0001";
const ALPHA_HASH: Hex = `0x${"a1".repeat(32)}`;

interface Response {
  status: number;
  body: unknown;
  text: string;
}
type Cell = number | [number, (res: Response, t: Fixture) => void];

interface Row {
  name: string;
  method: string;
  path: (t: Fixture) => string;
  body?: (t: Fixture) => unknown;
  /** Cells for the authenticated callers; none/malformed/revoked are 401 on every route. */
  cells: Record<Exclude<Caller, "none" | "malformed" | "revoked">, Cell>;
}

interface Fixture {
  api: TestApi;
  tag1: Hex;
  tag2: Hex;
  /** Seqs by what they are (see `before`). */
  seq: {
    aP1: number;
    bP2: number;
    aP2: number;
    aNone: number;
    alphaExport: number;
    toErase: number;
  };
  missing: number;
}

const seqsOf = (res: Response): number[] =>
  (res.body as { events: Array<{ seq: number }> }).events.map((e) => e.seq);
const fhirIds = (res: Response): number[] =>
  ((res.body as { entry?: Array<{ resource: { id: string } }> }).entry ?? []).map((e) =>
    Number(e.resource.id),
  );
const noStaff = (res: Response): void => {
  for (const s of STAFF)
    expect(res.text, `staff identity "${s}" in a patient answer`).to.not.include(s);
};
const hasStaff = (res: Response): void => {
  expect(res.text).to.include("Dr. Anna Weber");
};
const notFound = (seq: (t: Fixture) => number): Cell => [
  404,
  (res, t) =>
    expect(res.body).to.deep.equal({
      error: { code: "NOT_FOUND", message: `no event at seq ${seq(t)}`, field: "seq" },
    }),
];
const fhirNotFound = (seq: (t: Fixture) => number): Cell => [
  404,
  (res, t) => {
    const issue = (res.body as { issue: Array<{ code: string; details?: { text?: string } }> })
      .issue[0];
    expect(issue?.code).to.equal("not-found");
    expect(issue?.details?.text).to.equal(`no event at seq ${seq(t)}`);
  },
];

/** Nothing of organization A's export in an answer for writer B. */
function nothingOfAlpha(res: Response, t: Fixture): void {
  expect(res.text).to.not.include(ALPHA_HASH);
  expect(res.text).to.not.include(HOSPITAL_ORG);
  expect(res.text).to.not.include("MRN-0042-7731");
  expect(res.text).to.not.include(PATIENT_1.value);
  expect(res.text).to.not.include("Dr. Anna Weber");
  const body = res.body as { dataHash: unknown; hops: unknown[]; unmatched: unknown[] };
  expect(body.dataHash).to.equal(null);
  expect(body.hops).to.deep.equal([]);
  expect(body.unmatched).to.deep.equal([]);
  void t;
}

const ROWS: Row[] = [
  {
    name: "POST /v1/events (an event of organization A)",
    method: "POST",
    path: () => "/v1/events",
    body: () => eventFor(HOSPITAL_ORG, PATIENT_1),
    cells: {
      admin: 403,
      writerA: 201,
      writerB: 403,
      auditor: 403,
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "GET /v1/events",
    method: "GET",
    path: () => "/v1/events?limit=1000",
    cells: {
      admin: 403,
      writerA: [
        200,
        (res, t) => {
          expect(seqsOf(res)).to.include.members([t.seq.aP1, t.seq.aP2, t.seq.aNone]);
          expect(seqsOf(res)).to.not.include(t.seq.bP2);
        },
      ],
      writerB: [200, (res, t) => expect(seqsOf(res)).to.deep.equal([t.seq.bP2])],
      auditor: [
        200,
        (res, t) => {
          expect(seqsOf(res)).to.include.members([t.seq.aP1, t.seq.bP2, t.seq.aP2, t.seq.aNone]);
          hasStaff(res);
        },
      ],
      patient1: [
        200,
        (res, t) => {
          expect(seqsOf(res)).to.include.members([t.seq.aP1]);
          expect(seqsOf(res)).to.not.include.members([t.seq.bP2, t.seq.aP2, t.seq.aNone]);
          noStaff(res);
        },
      ],
      patient2: [
        200,
        (res, t) => {
          expect(seqsOf(res)).to.deep.equal([t.seq.bP2, t.seq.aP2]);
          noStaff(res);
        },
      ],
    },
  },
  {
    name: "GET /v1/events?organization=<A>",
    method: "GET",
    path: () => `/v1/events?organization=${encodeURIComponent(HOSPITAL_ORG)}`,
    cells: {
      admin: 403,
      writerA: 200,
      writerB: 403,
      auditor: 200,
      patient1: [200, (res, t) => expect(seqsOf(res)).to.not.include(t.seq.aP2)],
      patient2: [200, (res, t) => expect(seqsOf(res)).to.deep.equal([t.seq.aP2])],
    },
  },
  {
    name: "GET /v1/events/:seq (A, P1)",
    method: "GET",
    path: (t) => `/v1/events/${t.seq.aP1}`,
    cells: {
      admin: 403,
      writerA: [200, hasStaff],
      writerB: notFound((t) => t.seq.aP1),
      auditor: [200, hasStaff],
      patient1: [200, noStaff],
      patient2: notFound((t) => t.seq.aP1),
    },
  },
  {
    name: "GET /v1/events/:seq (B, P2)",
    method: "GET",
    path: (t) => `/v1/events/${t.seq.bP2}`,
    cells: {
      admin: 403,
      writerA: notFound((t) => t.seq.bP2),
      writerB: 200,
      auditor: 200,
      patient1: notFound((t) => t.seq.bP2),
      patient2: [200, noStaff],
    },
  },
  {
    name: "GET /v1/events/:seq (missing): the same 404 as out of scope",
    method: "GET",
    path: (t) => `/v1/events/${t.missing}`,
    cells: {
      admin: 403,
      writerA: notFound((t) => t.missing),
      writerB: notFound((t) => t.missing),
      auditor: notFound((t) => t.missing),
      patient1: notFound((t) => t.missing),
      patient2: notFound((t) => t.missing),
    },
  },
  {
    name: "GET /v1/events/:seq/proof (A, P1)",
    method: "GET",
    path: (t) => `/v1/events/${t.seq.aP1}/proof`,
    cells: {
      admin: 403,
      writerA: [200, hasStaff],
      writerB: notFound((t) => t.seq.aP1),
      auditor: [200, hasStaff],
      patient1: [200, noStaff],
      patient2: notFound((t) => t.seq.aP1),
    },
  },
  {
    name: "GET /v1/events/:seq/proof (missing)",
    method: "GET",
    path: (t) => `/v1/events/${t.missing}/proof`,
    cells: {
      admin: 403,
      writerA: notFound((t) => t.missing),
      writerB: notFound((t) => t.missing),
      auditor: notFound((t) => t.missing),
      patient1: notFound((t) => t.missing),
      patient2: notFound((t) => t.missing),
    },
  },
  {
    name: "GET /v1/batches",
    method: "GET",
    path: () => "/v1/batches",
    cells: { admin: 200, writerA: 200, writerB: 200, auditor: 200, patient1: 403, patient2: 403 },
  },
  {
    name: "GET /v1/batches/0",
    method: "GET",
    path: () => "/v1/batches/0",
    cells: { admin: 200, writerA: 200, writerB: 200, auditor: 200, patient1: 403, patient2: 403 },
  },
  {
    name: "GET /v1/patient/history (no subject)",
    method: "GET",
    path: () => "/v1/patient/history",
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: 400,
      patient1: [
        200,
        (res, t) => {
          noStaff(res);
          const h = res.body as { subjectTag: string; events: Array<{ seq: number }> };
          expect(h.subjectTag).to.equal(t.tag1);
        },
      ],
      patient2: [200, noStaff],
    },
  },
  {
    name: "GET /v1/patient/history?subject=<P1>",
    method: "GET",
    path: (t) => `/v1/patient/history?subject=${t.tag1}`,
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: [200, hasStaff],
      patient1: [200, noStaff],
      patient2: 403,
    },
  },
  {
    name: "GET /v1/reports/accesses?subject=<P1>",
    method: "GET",
    path: (t) => `/v1/reports/accesses?subject=${t.tag1}`,
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: [200, hasStaff],
      patient1: [200, noStaff],
      patient2: 403,
    },
  },
  {
    name: "GET /v1/reports/disclosures?subject=<P1>",
    method: "GET",
    path: (t) => `/v1/reports/disclosures?subject=${t.tag1}`,
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: 200,
      patient1: [200, noStaff],
      patient2: 403,
    },
  },
  {
    name: "GET /fhir/AuditEvent",
    method: "GET",
    path: () => "/fhir/AuditEvent?_count=1000",
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: [200, hasStaff],
      patient1: [
        200,
        (res, t) => {
          expect(fhirIds(res)).to.include(t.seq.aP1);
          expect(fhirIds(res)).to.not.include.members([t.seq.bP2, t.seq.aP2, t.seq.aNone]);
          noStaff(res);
        },
      ],
      patient2: [
        200,
        (res, t) => {
          expect(fhirIds(res)).to.deep.equal([t.seq.bP2, t.seq.aP2]);
          noStaff(res);
        },
      ],
    },
  },
  {
    name: "GET /fhir/AuditEvent/:seq (A, P1)",
    method: "GET",
    path: (t) => `/fhir/AuditEvent/${t.seq.aP1}`,
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: [200, hasStaff],
      patient1: [200, noStaff],
      patient2: fhirNotFound((t) => t.seq.aP1),
    },
  },
  {
    name: "GET /fhir/AuditEvent/:seq (missing)",
    method: "GET",
    path: (t) => `/fhir/AuditEvent/${t.missing}`,
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: fhirNotFound((t) => t.missing),
      patient1: fhirNotFound((t) => t.missing),
      patient2: fhirNotFound((t) => t.missing),
    },
  },
  {
    name: "GET /v1/export",
    method: "GET",
    path: () => "/v1/export",
    cells: {
      admin: 403,
      writerA: 403,
      writerB: 403,
      auditor: [200, hasStaff],
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: `GET /v1/provenance?reference=${ALPHA_REF} (A's export, no recipient)`,
    method: "GET",
    path: () => `/v1/provenance?reference=${ALPHA_REF}`,
    cells: {
      admin: 403,
      writerA: [
        200,
        (res) => {
          const body = res.body as { dataHash: string; unmatched: Array<{ reason: string }> };
          expect(body.dataHash).to.equal(ALPHA_HASH);
          expect(body.unmatched.map((u) => u.reason)).to.deep.equal(["NOT_IMPORTED"]);
        },
      ],
      writerB: [200, nothingOfAlpha],
      auditor: [
        200,
        (res) => expect((res.body as { dataHash: string }).dataHash).to.equal(ALPHA_HASH),
      ],
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "POST /v1/audit",
    method: "POST",
    path: () => "/v1/audit",
    cells: { admin: 403, writerA: 403, writerB: 403, auditor: 200, patient1: 403, patient2: 403 },
  },
  {
    name: "POST /v1/verify",
    method: "POST",
    path: () => "/v1/verify",
    body: () => ({ format: "veritrail-proof/1" }),
    cells: { admin: 200, writerA: 200, writerB: 200, auditor: 200, patient1: 200, patient2: 200 },
  },
  {
    name: "GET /v1/status",
    method: "GET",
    path: () => "/v1/status",
    cells: {
      admin: 200,
      writerA: 403,
      writerB: 403,
      auditor: [
        200,
        (res, t) => {
          // Counts of the whole log, no event data (nothing anchored: no chain in this test).
          const status = res.body as { events: { accepted: number; anchored: number } };
          expect(status.events.accepted).to.be.at.least(t.seq.toErase + 1);
          expect(status.events.anchored).to.equal(0);
          for (const secret of [HOSPITAL_ORG, LAB_ORG, PATIENT_1.value, "Dr. Anna Weber"])
            expect(res.text).to.not.include(secret);
        },
      ],
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "POST /v1/keys",
    method: "POST",
    path: () => "/v1/keys",
    body: () => ({ role: "auditor" }),
    cells: { admin: 201, writerA: 403, writerB: 403, auditor: 403, patient1: 403, patient2: 403 },
  },
  {
    name: "GET /v1/keys",
    method: "GET",
    path: () => "/v1/keys",
    cells: { admin: 200, writerA: 403, writerB: 403, auditor: 403, patient1: 403, patient2: 403 },
  },
  {
    name: "DELETE /v1/keys/:id (an unknown id)",
    method: "DELETE",
    path: () => "/v1/keys/key_0000000000000000",
    cells: { admin: 404, writerA: 403, writerB: 403, auditor: 403, patient1: 403, patient2: 403 },
  },
  {
    // Last: it erases one event (admin's cell runs after the others of this row).
    name: "POST /v1/events/:seq/erasure",
    method: "POST",
    path: (t) => `/v1/events/${t.seq.toErase}/erasure`,
    body: () => ({ legalBasis: "GDPR Art. 17(1)(a)", reason: "access matrix" }),
    cells: { admin: 201, writerA: 403, writerB: 403, auditor: 403, patient1: 403, patient2: 403 },
  },
];

describe("access policy: every route × every caller (issue 19)", function () {
  this.timeout(60_000);
  const t = {} as Fixture;

  before(async () => {
    const api = await startTestApi();
    t.api = api;
    const staffAgent = {
      who: {
        system: "https://idp.st-mary.example.org/users",
        value: "u-38117",
        display: "Dr. Anna Weber",
      },
      organization: HOSPITAL_ORG,
      requestor: true,
      userName: "aweber",
      altId: "EMP-38117",
      network: { address: "10.20.30.41", type: "2" as const },
    };
    const receipts = await api.ledger.ingest([
      eventFor(HOSPITAL_ORG, PATIENT_1, { agents: [staffAgent] }),
      eventFor(LAB_ORG, PATIENT_2),
      eventFor(HOSPITAL_ORG, PATIENT_2),
      eventFor(HOSPITAL_ORG, null),
      alphaExport(),
      eventFor(HOSPITAL_ORG, null),
    ]);
    const seqs = receipts.map((r) => r.receipt.seq);
    t.seq = {
      aP1: seqs[0]!,
      bP2: seqs[1]!,
      aP2: seqs[2]!,
      aNone: seqs[3]!,
      alphaExport: seqs[4]!,
      toErase: seqs[5]!,
    };
    await api.ledger.sealPending();
    t.missing = 1_000_000;
    t.tag1 = subjectTagOf(api.ledger, PATIENT_1);
    t.tag2 = subjectTagOf(api.ledger, PATIENT_2);
  });
  after(async () => t.api?.close());

  const keyOf = (caller: Caller): string | undefined => {
    const s = t.api.secrets;
    switch (caller) {
      case "none":
        return undefined;
      case "malformed":
        return "vt_not-a-key";
      case "revoked":
        return s.revoked;
      case "writerA":
        return s.writer;
      case "writerB":
        return s.otherWriter;
      default:
        return s[caller];
    }
  };

  for (const row of ROWS) {
    describe(row.name, () => {
      for (const caller of CALLERS) {
        const cell: Cell =
          caller === "none" || caller === "malformed" || caller === "revoked"
            ? 401
            : row.cells[caller];
        const [status, check] = typeof cell === "number" ? [cell, undefined] : cell;
        it(`${caller} → ${status}`, async () => {
          const key = keyOf(caller);
          const res = await t.api.request(row.method, row.path(t), {
            ...(key !== undefined ? { key } : {}),
            ...(row.body ? { body: row.body(t) } : {}),
          });
          expect(res.status, res.text.slice(0, 500)).to.equal(status);
          if (status === 401) expect(res.headers.get("www-authenticate")).to.match(/^Bearer /);
          if (status === 403) {
            if (row.path(t).startsWith("/fhir/"))
              expect(res.body).to.have.nested.property("issue[0].code", "forbidden");
            else expect(res.body).to.have.nested.property("error.code", "FORBIDDEN");
          }
          check?.(res, t);
        });
      }
    });
  }

  describe("subject tags: no two identifiers share one (JCS([system, value]) in a new log)", () => {
    it("a key for {urn:a, b|PAT} does not list the events of {urn:a|b, PAT}", async () => {
      const { api } = t;
      const a = { system: "urn:a", value: "b|PAT" };
      const b = { system: "urn:a|b", value: "PAT" };
      expect(api.ledger.subjectDerivation).to.equal("jcs");
      expect(api.ledger.meta.subjectDerivation).to.equal("jcs");
      const [ra, rb] = await api.ledger.ingest([eventFor(LAB_ORG, a), eventFor(LAB_ORG, b)]);
      for (const [patient, own, other] of [
        [a, ra!.receipt.seq, rb!.receipt.seq],
        [b, rb!.receipt.seq, ra!.receipt.seq],
      ] as const) {
        const key = (await api.keys.create({ role: "patient", patient })).secret;
        const res = await api.request("GET", "/v1/events", { key });
        expect(seqsOf(res as Response)).to.deep.equal([own]);
        expect((await api.request("GET", `/v1/events/${other}`, { key })).status).to.equal(404);
      }
    });
  });

  describe("the provenance attack: B imports with A's reference and hash", () => {
    it("B still learns nothing of A's export (match status only), A and the auditor see the hop", async () => {
      const { api } = t;
      const imported = await api.request("POST", "/v1/events", {
        key: api.secrets.otherWriter,
        body: makeBalpNativeEvent("PrivacyDisclosureRecipient", {
          overrides: {
            source: { organization: LAB_ORG, observer: "Device/lab-gw" },
            agents: [
              {
                who: { value: "Device/lab-gw" },
                organization: LAB_ORG,
                requestor: true,
              },
            ],
            transfer: { reference: ALPHA_REF, dataHash: ALPHA_HASH },
            patient: { value: "B-LOCAL-1" },
            requestId: "beta-import",
          },
        }),
      });
      expect(imported.status, imported.text).to.equal(201);
      const importSeq = (imported.body as { receipts: Array<{ receipt: { seq: number } }> })
        .receipts[0]!.receipt.seq;

      const asB = await api.request("GET", `/v1/provenance?dataHash=${ALPHA_HASH}`, {
        key: api.secrets.otherWriter,
      });
      expect(asB.status).to.equal(200);
      const trace = asB.body as {
        hops: Array<{ from: Record<string, unknown>; to: { seq: number; organization: string } }>;
        custody: string[];
      };
      expect(trace.hops).to.have.length(1);
      expect(trace.hops[0]!.to.seq).to.equal(importSeq);
      expect(trace.hops[0]!.from).to.deep.equal({ withheld: true });
      expect(trace.custody).to.deep.equal([LAB_ORG]);
      for (const secret of [HOSPITAL_ORG, PATIENT_1.value, "Dr. Anna Weber", "alpha-export"])
        expect(asB.text).to.not.include(secret);
      const fhir = await api.request("GET", `/v1/provenance?dataHash=${ALPHA_HASH}&format=fhir`, {
        key: api.secrets.otherWriter,
      });
      expect(fhir.status).to.equal(200);
      for (const secret of [HOSPITAL_ORG, PATIENT_1.value, "Dr. Anna Weber"])
        expect(fhir.text).to.not.include(secret);
      expect(provenanceBundleIssues(fhir.body)).to.deep.equal([]);

      // A's export named no recipient: A sees its own export matched and B's import withheld
      // (B's import does not name A as its source either).
      const asA = await api.request("GET", `/v1/provenance?dataHash=${ALPHA_HASH}`, {
        key: api.secrets.writer,
      });
      const traceA = asA.body as { hops: Array<{ from: { seq: number }; to: unknown }> };
      expect(traceA.hops[0]!.from.seq).to.equal(t.seq.alphaExport);
      expect(traceA.hops[0]!.to).to.deep.equal({ withheld: true });
      expect(asA.text).to.not.include("B-LOCAL-1");

      const asAuditor = await api.request("GET", `/v1/provenance?dataHash=${ALPHA_HASH}`, {
        key: api.secrets.auditor,
      });
      const full = asAuditor.body as {
        hops: Array<{ from: { seq: number }; to: { seq: number } }>;
      };
      expect(full.hops[0]!.from.seq).to.equal(t.seq.alphaExport);
      expect(full.hops[0]!.to.seq).to.equal(importSeq);
    });
  });
});

/** Organization A's export of the attack: no recipient, about patient P1, by a named clinician. */
function alphaExport() {
  const e = makeBalpNativeEvent("PrivacyDisclosureSource", {
    overrides: {
      source: { organization: HOSPITAL_ORG, observer: "Device/gw-1" },
      transfer: { reference: ALPHA_REF, dataHash: ALPHA_HASH },
      patient: { system: PATIENT_1.system, value: PATIENT_1.value },
      requestId: "alpha-export",
    },
  });
  delete e.recipient;
  // The lab's own agent would name B's organization: an export without a recipient names nobody.
  e.agents = e.agents.filter((a) => a.organization === HOSPITAL_ORG);
  return e;
}

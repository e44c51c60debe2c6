import { expect } from "chai";
import { HOSPITAL_ORG, LAB_ORG } from "../../fixtures/events.ts";
import { PATIENT_1, PATIENT_2, type TestApi, eventFor, startTestApi } from "./harness.ts";

type Role = "admin" | "auditor" | "writer" | "otherWriter" | "patient1" | "patient2";
const ROLES: Role[] = ["admin", "auditor", "writer", "otherWriter", "patient1", "patient2"];

interface RouteCase {
  name: string;
  method: string;
  path: string;
  body?: () => unknown;
  /** Expected status per caller (the key set in the harness). */
  expect: Record<Role, number>;
}

/*
 * Stored events (see `before`):
 *   seq 0: hospital, patient 1     seq 1: lab, patient 2
 *   seq 2: hospital, patient 2     seq 3: hospital, no patient
 * The writer is the hospital's, otherWriter the lab's.
 */
let proofOfSeq0: unknown;

const CASES: RouteCase[] = [
  {
    name: "POST /v1/events (own organization)",
    method: "POST",
    path: "/v1/events",
    body: () => eventFor(HOSPITAL_ORG, PATIENT_1),
    expect: {
      admin: 403,
      auditor: 403,
      writer: 201,
      otherWriter: 403,
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "GET /v1/events",
    method: "GET",
    path: "/v1/events",
    expect: {
      admin: 403,
      auditor: 200,
      writer: 200,
      otherWriter: 200,
      patient1: 200,
      patient2: 200,
    },
  },
  {
    name: "GET /v1/events/0 (hospital, patient 1)",
    method: "GET",
    path: "/v1/events/0",
    expect: {
      admin: 403,
      auditor: 200,
      writer: 200,
      otherWriter: 404,
      patient1: 200,
      patient2: 404,
    },
  },
  {
    name: "GET /v1/events/1 (lab, patient 2)",
    method: "GET",
    path: "/v1/events/1",
    expect: {
      admin: 403,
      auditor: 200,
      writer: 404,
      otherWriter: 200,
      patient1: 404,
      patient2: 200,
    },
  },
  {
    name: "GET /v1/events/3 (hospital, no patient)",
    method: "GET",
    path: "/v1/events/3",
    expect: {
      admin: 403,
      auditor: 200,
      writer: 200,
      otherWriter: 404,
      patient1: 404,
      patient2: 404,
    },
  },
  {
    name: "GET /v1/events/0/proof",
    method: "GET",
    path: "/v1/events/0/proof",
    expect: {
      admin: 403,
      auditor: 200,
      writer: 200,
      otherWriter: 404,
      patient1: 200,
      patient2: 404,
    },
  },
  {
    name: "GET /v1/events/1/proof",
    method: "GET",
    path: "/v1/events/1/proof",
    expect: {
      admin: 403,
      auditor: 200,
      writer: 404,
      otherWriter: 200,
      patient1: 404,
      patient2: 200,
    },
  },
  {
    name: "GET /v1/batches",
    method: "GET",
    path: "/v1/batches",
    expect: {
      admin: 200,
      auditor: 200,
      writer: 200,
      otherWriter: 200,
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "GET /v1/batches/0",
    method: "GET",
    path: "/v1/batches/0",
    expect: {
      admin: 200,
      auditor: 200,
      writer: 200,
      otherWriter: 200,
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "GET /v1/status",
    method: "GET",
    path: "/v1/status",
    expect: {
      admin: 200,
      auditor: 200,
      writer: 403,
      otherWriter: 403,
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "POST /v1/keys",
    method: "POST",
    path: "/v1/keys",
    body: () => ({ role: "auditor" }),
    expect: {
      admin: 201,
      auditor: 403,
      writer: 403,
      otherWriter: 403,
      patient1: 403,
      patient2: 403,
    },
  },
  {
    name: "POST /v1/verify",
    method: "POST",
    path: "/v1/verify",
    body: () => proofOfSeq0,
    expect: {
      admin: 200,
      auditor: 200,
      writer: 200,
      otherWriter: 200,
      patient1: 200,
      patient2: 200,
    },
  },
  {
    name: "GET /v1/keys",
    method: "GET",
    path: "/v1/keys",
    expect: {
      admin: 200,
      auditor: 403,
      writer: 403,
      otherWriter: 403,
      patient1: 403,
      patient2: 403,
    },
  },
];

describe("api app: every route × role", function () {
  let api: TestApi;

  before(async () => {
    api = await startTestApi();
    await api.ledger.ingest([
      eventFor(HOSPITAL_ORG, PATIENT_1),
      eventFor(LAB_ORG, PATIENT_2),
      eventFor(HOSPITAL_ORG, PATIENT_2),
      eventFor(HOSPITAL_ORG, null),
    ]);
    await api.ledger.sealPending();
    proofOfSeq0 = await api.ledger.prove(0);
  });
  after(async () => {
    await api.close();
  });

  for (const c of CASES) {
    for (const role of ROLES) {
      it(`${c.name} as ${role} → ${c.expect[role]}`, async () => {
        const res = await api.request(c.method, c.path, {
          key: api.secrets[role],
          ...(c.body ? { body: c.body() } : {}),
        });
        expect(res.status, res.text).to.equal(c.expect[role]);
        expect(res.headers.get("cache-control")).to.equal("no-store");
        if (res.status === 403) {
          expect(res.body).to.have.nested.property("error.code", "FORBIDDEN");
        }
        if (res.status === 404) {
          expect(res.body).to.have.nested.property("error.code", "NOT_FOUND");
        }
      });
    }
    it(`${c.name} without a key → 401 with WWW-Authenticate`, async () => {
      const res = await api.request(c.method, c.path, c.body ? { body: c.body() } : {});
      expect(res.status).to.equal(401);
      expect(res.headers.get("www-authenticate")).to.match(/^Bearer /);
      expect(res.body).to.deep.equal({
        error: {
          code: "UNAUTHENTICATED",
          message: "an API key is required (Authorization: Bearer <key>)",
        },
      });
    });
    for (const bad of ["vt_" + "A".repeat(43), "not-a-key", "revoked"]) {
      it(`${c.name} with a bad key (${bad === "revoked" ? "revoked" : bad.slice(0, 8)}) → 401`, async () => {
        const key = bad === "revoked" ? api.secrets.revoked : bad;
        const res = await api.request(c.method, c.path, {
          key,
          ...(c.body ? { body: c.body() } : {}),
        });
        expect(res.status).to.equal(401);
        expect(res.headers.get("www-authenticate")).to.match(/^Bearer .*invalid_token/);
        expect(res.body).to.have.nested.property("error.code", "UNAUTHENTICATED");
      });
    }
  }

  describe("DELETE /v1/keys/:id", () => {
    for (const role of ROLES.filter((r) => r !== "admin")) {
      it(`as ${role} → 403 and the key stays live`, async () => {
        const victim = await api.keys.create({ role: "auditor" });
        const res = await api.request("DELETE", `/v1/keys/${victim.key.id}`, {
          key: api.secrets[role],
        });
        expect(res.status).to.equal(403);
        expect(await api.keys.authenticate(victim.secret)).to.not.equal(undefined);
      });
    }
    it("as admin → 200, the key stops working, a second delete is 409, an unknown id 404", async () => {
      const victim = await api.keys.create({ role: "auditor" });
      expect((await api.request("GET", "/v1/batches", { key: victim.secret })).status).to.equal(
        200,
      );
      const res = await api.request("DELETE", `/v1/keys/${victim.key.id}`, {
        key: api.secrets.admin,
      });
      expect(res.status).to.equal(200);
      expect(res.body).to.have.nested.property("key.revokedAt");
      expect((await api.request("GET", "/v1/batches", { key: victim.secret })).status).to.equal(
        401,
      );
      const again = await api.request("DELETE", `/v1/keys/${victim.key.id}`, {
        key: api.secrets.admin,
      });
      expect(again.status).to.equal(409);
      expect(again.body).to.have.nested.property("error.code", "CONFLICT");
      const unknown = await api.request("DELETE", "/v1/keys/key_0000000000000000", {
        key: api.secrets.admin,
      });
      expect(unknown.status).to.equal(404);
    });
    it("the last live admin key → 409 CONFLICT naming id, and it keeps working", async () => {
      const self = (await api.keys.authenticate(api.secrets.admin))!;
      const admins = (await api.keys.list()).filter((k) => k.role === "admin" && !k.revokedAt);
      for (const other of admins.filter((k) => k.id !== self.id))
        expect(
          (await api.request("DELETE", `/v1/keys/${other.id}`, { key: api.secrets.admin })).status,
        ).to.equal(200);
      const res = await api.request("DELETE", `/v1/keys/${self.id}`, { key: api.secrets.admin });
      expect(res.status).to.equal(409);
      expect(res.body).to.deep.include({
        error: {
          code: "CONFLICT",
          message: `API key ${self.id} is the last live admin key; create another admin key before revoking it`,
          field: "id",
        },
      });
      expect((await api.request("GET", "/v1/keys", { key: api.secrets.admin })).status).to.equal(
        200,
      );
    });
    it("a malformed id → 400 naming id", async () => {
      for (const id of ["not-an-id", "key_XYZ", "key_00000000000000001"]) {
        const res = await api.request("DELETE", `/v1/keys/${id}`, { key: api.secrets.admin });
        expect(res.status, id).to.equal(400);
        expect(res.body).to.have.nested.property("error.field", "id");
      }
    });
    it("without a key → 401, with a bad key → 401", async () => {
      const victim = await api.keys.create({ role: "auditor" });
      expect((await api.request("DELETE", `/v1/keys/${victim.key.id}`)).status).to.equal(401);
      expect(
        (await api.request("DELETE", `/v1/keys/${victim.key.id}`, { key: api.secrets.revoked }))
          .status,
      ).to.equal(401);
      expect(await api.keys.authenticate(victim.secret)).to.not.equal(undefined);
    });
  });

  describe("scopes", () => {
    it("a writer cannot write for another organization: 403 naming source.organization, nothing stored", async () => {
      const before = api.ledger.nextSeq;
      const res = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        body: [eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(LAB_ORG, PATIENT_1)],
      });
      expect(res.status).to.equal(403);
      expect(res.body).to.have.nested.property("error.field", "[1].source.organization");
      expect(api.ledger.nextSeq).to.equal(before);
    });

    it("a writer lists only its own organization's events; naming another is 403", async () => {
      const own = await api.request("GET", "/v1/events?limit=1000", {
        key: api.secrets.otherWriter,
      });
      const events = (
        own.body as { events: Array<{ event: { source: { organization: string } } }> }
      ).events;
      expect(events.length).to.be.greaterThan(0);
      expect(events.every((e) => e.event.source.organization === LAB_ORG)).to.equal(true);
      const other = await api.request(
        "GET",
        `/v1/events?organization=${encodeURIComponent(HOSPITAL_ORG)}`,
        {
          key: api.secrets.otherWriter,
        },
      );
      expect(other.status).to.equal(403);
      expect(other.body).to.have.nested.property("error.field", "organization");
    });

    it("two patients never see each other's events, in lists or by seq", async () => {
      const tags = new Map<string, Set<string>>();
      for (const who of ["patient1", "patient2"] as const) {
        const res = await api.request("GET", "/v1/events?limit=1000", { key: api.secrets[who] });
        expect(res.status).to.equal(200);
        const events = (res.body as { events: Array<{ seq: number; entry: { subject: string } }> })
          .events;
        expect(events.length).to.be.greaterThan(0);
        tags.set(who, new Set(events.map((e) => e.entry.subject)));
        for (const e of events) {
          const proof = await api.request("GET", `/v1/events/${e.seq}/proof`, {
            key: api.secrets[who],
          });
          expect(proof.status).to.equal(200);
        }
      }
      const t1 = [...tags.get("patient1")!];
      const t2 = [...tags.get("patient2")!];
      expect(t1).to.have.length(1);
      expect(t2).to.have.length(1);
      expect(t1[0]).to.not.equal(t2[0]);
      // Patient 1's own event is seq 0; patient 2's are 1 and 2: answered as if missing.
      for (const seq of [1, 2]) {
        expect(
          (await api.request("GET", `/v1/events/${seq}`, { key: api.secrets.patient1 })).status,
        ).to.equal(404);
        expect(
          (await api.request("GET", `/v1/events/${seq}/proof`, { key: api.secrets.patient1 }))
            .status,
        ).to.equal(404);
      }
    });

    it("a patient's filter cannot widen the scope (organization filter only narrows)", async () => {
      const res = await api.request(
        "GET",
        `/v1/events?organization=${encodeURIComponent(LAB_ORG)}`,
        { key: api.secrets.patient1 },
      );
      expect(res.status).to.equal(200);
      expect((res.body as { events: unknown[] }).events).to.deep.equal([]);
    });

    it("patients see agents without staff identities (PATIENT_VIEW_STAFF_NAMES=false)", async () => {
      const res = await api.request("GET", "/v1/events/0", { key: api.secrets.patient1 });
      const agents = (res.body as { event: { agents: Array<Record<string, unknown>> } }).event
        .agents;
      for (const a of agents) {
        expect(a).to.not.have.property("who");
        expect(a).to.not.have.property("userName");
        expect(a).to.not.have.property("network");
        expect(a).to.have.property("organization");
      }
      expect(res.text).to.not.include("Dr. Anna Weber");
      const staffView = await api.request("GET", "/v1/events/0", { key: api.secrets.auditor });
      expect(staffView.text).to.include("Dr. Anna Weber");
    });

    it("the writer's receipts flag duplicates (same organization and requestId)", async () => {
      const event = eventFor(HOSPITAL_ORG, PATIENT_1, { requestId: "dup-req-1" });
      const first = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        body: event,
      });
      const second = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        body: event,
      });
      type R = { receipts: Array<{ duplicate: boolean; receipt: { seq: number } }> };
      expect((first.body as R).receipts[0]!.duplicate).to.equal(false);
      expect((second.body as R).receipts[0]!.duplicate).to.equal(true);
      expect((second.body as R).receipts[0]!.receipt.seq).to.equal(
        (first.body as R).receipts[0]!.receipt.seq,
      );
    });
  });
});

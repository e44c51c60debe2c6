import { ingestAtTheirTimes } from "../../../support/log-clock.ts";
import { expect } from "chai";
import fc from "fast-check";
import { toFhirAuditEvent } from "../../../../services/core/fhir-audit-event.ts";
import type { StoredEvent } from "../../../../services/ledger/ledger.ts";
import {
  HOSPITAL_ORG,
  LAB_ORG,
  makeFhirAuditEvent,
  makeNativeEvent,
} from "../../../fixtures/events.ts";
import { PATIENT_1, PATIENT_2, type TestApi, eventFor, startTestApi } from "../harness.ts";

type ErrorBody = { error: { code: string; message: string; field?: string } };
type Receipts = { receipts: Array<{ duplicate: boolean; receipt: { seq: number } }> };
type Page = {
  events: Array<{ seq: number; event: { purposeOfUse: string[] } }>;
  nextCursor: string | null;
};

function errorOf(body: unknown): ErrorBody["error"] {
  expect(body).to.have.property("error");
  return (body as ErrorBody).error;
}

describe("api routes: events", function () {
  let api: TestApi;
  let seq0Before: StoredEvent;
  let nextSeqBefore: number;

  before(async () => {
    api = await startTestApi({ config: { MAX_EVENTS_PER_REQUEST: "50" } });
    await api.ledger.ingest([eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(LAB_ORG, PATIENT_2)]);
  });
  after(async () => {
    await api.close();
  });

  describe("bad input is a 4xx naming the field, and nothing is stored", () => {
    beforeEach(async () => {
      nextSeqBefore = api.ledger.nextSeq;
      seq0Before = await api.ledger.getEvent(0);
    });
    afterEach(async () => {
      expect(api.ledger.nextSeq).to.equal(nextSeqBefore);
      expect(await api.ledger.getEvent(0)).to.deep.equal(seq0Before);
    });

    const post = (raw: string | Buffer, type = "application/json") =>
      api.request("POST", "/v1/events", { key: api.secrets.writer, raw, type });

    it("malformed JSON → 400 MALFORMED_JSON without echoing the body", async () => {
      const res = await post('{"recorded": "2024-05-01T09:30:00.123Z", PAT-SECRET');
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).code).to.equal("MALFORMED_JSON");
      expect(res.text).to.not.include("PAT-SECRET");
    });

    it("a body that is not UTF-8 → 400 MALFORMED_JSON", async () => {
      const res = await post(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).code).to.equal("MALFORMED_JSON");
    });

    it("an empty body → 400 MALFORMED_JSON", async () => {
      const res = await post("");
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).code).to.equal("MALFORMED_JSON");
    });

    for (const type of ["text/plain", "application/xml", "multipart/form-data; boundary=x"]) {
      it(`Content-Type ${type} → 415`, async () => {
        const res = await post(JSON.stringify(eventFor(HOSPITAL_ORG, PATIENT_1)), type);
        expect(res.status).to.equal(415);
        expect(errorOf(res.body).code).to.equal("UNSUPPORTED_MEDIA_TYPE");
      });
    }

    it("no Content-Type → 415", async () => {
      const res = await api.request("POST", "/v1/events", { key: api.secrets.writer });
      expect(res.status).to.equal(415);
    });

    it("a charset other than UTF-8 → 415", async () => {
      const res = await post(
        JSON.stringify(eventFor(HOSPITAL_ORG, PATIENT_1)),
        "application/json; charset=latin1",
      );
      expect(res.status).to.equal(415);
    });

    it("a body over MAX_BODY_BYTES (8 MiB) → 413 PAYLOAD_TOO_LARGE", async () => {
      const big = JSON.stringify({
        ...eventFor(HOSPITAL_ORG, PATIENT_1),
        pad: "x".repeat(8 * 1024 * 1024),
      });
      const res = await post(big);
      expect(res.status).to.equal(413);
      expect(errorOf(res.body).code).to.equal("PAYLOAD_TOO_LARGE");
    });

    it("more than MAX_EVENTS_PER_REQUEST events → 413 TOO_MANY_EVENTS (JSON array and NDJSON)", async () => {
      const events = Array.from({ length: 51 }, () => eventFor(HOSPITAL_ORG, PATIENT_1));
      const res = await post(JSON.stringify(events));
      expect(res.status).to.equal(413);
      expect(errorOf(res.body).code).to.equal("TOO_MANY_EVENTS");
      const nd = await post(
        events.map((e) => JSON.stringify(e)).join("\n"),
        "application/x-ndjson",
      );
      expect(nd.status).to.equal(413);
      expect(errorOf(nd.body).code).to.equal("TOO_MANY_EVENTS");
    });

    it("an empty array → 400 naming $", async () => {
      const res = await post("[]");
      expect(res.status).to.equal(400);
      expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field: "$" });
    });

    for (const scalar of ['"an event"', "42", "null", "true"]) {
      it(`a JSON ${scalar} body → 400 naming $`, async () => {
        const res = await post(scalar);
        expect(res.status).to.equal(400);
        expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field: "$" });
      });
    }

    it("an unknown field → 400 naming it", async () => {
      const res = await post(
        JSON.stringify({ ...eventFor(HOSPITAL_ORG, PATIENT_1), severity: "high" }),
      );
      expect(res.status).to.equal(400);
      expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field: "severity" });
    });

    it("wrong types → 400 naming the nested field", async () => {
      const e = eventFor(HOSPITAL_ORG, PATIENT_1) as unknown as {
        agents: Array<Record<string, unknown>>;
      };
      e.agents[0]!["requestor"] = "yes";
      const res = await post(JSON.stringify(e));
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).field).to.equal("agents[0].requestor");
      const outcome = await post(
        JSON.stringify({ ...eventFor(HOSPITAL_ORG, PATIENT_1), outcome: "0" }),
      );
      expect(errorOf(outcome.body).field).to.equal("outcome");
    });

    it("one bad event in an array → 400 naming [index].field; none of the good ones stored", async () => {
      const events = [
        eventFor(HOSPITAL_ORG, PATIENT_1),
        eventFor(HOSPITAL_ORG, PATIENT_1),
        { ...eventFor(HOSPITAL_ORG, PATIENT_1), action: "X" },
      ];
      const res = await post(JSON.stringify(events));
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).field).to.equal("[2].action");
    });

    it("NDJSON: a bad line → 400; a bad event on line 2 → field [1]", async () => {
      const good = JSON.stringify(eventFor(HOSPITAL_ORG, PATIENT_1));
      const malformed = await post(`${good}\n{nope`, "application/x-ndjson");
      expect(malformed.status).to.equal(400);
      expect(errorOf(malformed.body).code).to.equal("MALFORMED_JSON");
      const bad = JSON.stringify({ ...eventFor(HOSPITAL_ORG, PATIENT_1), recorded: "yesterday" });
      const res = await post(`${good}\n${bad}\n`, "application/x-ndjson");
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).field).to.equal("[1].recorded");
    });

    it("invalid FHIR → 400 naming the FHIR element", async () => {
      const r = makeFhirAuditEvent("Read") as unknown as Record<string, unknown>;
      delete r["agent"];
      const res = await post(JSON.stringify(r), "application/fhir+json");
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).field).to.equal("agent");
      const wrongType = await post(
        JSON.stringify({ ...makeFhirAuditEvent("Read"), resourceType: "Patient" }),
        "application/fhir+json",
      );
      expect(wrongType.status).to.equal(400);
      expect(errorOf(wrongType.body).field).to.equal("resourceType");
      const arr = await post(JSON.stringify([makeFhirAuditEvent("Read")]), "application/fhir+json");
      expect(arr.status).to.equal(400);
      expect(errorOf(arr.body).field).to.equal("resourceType");
    });

    it("a FHIR Bundle with a bad entry or a wrong type → 400 naming entry[i].resource… / type", async () => {
      const bad = makeFhirAuditEvent("Read") as unknown as Record<string, unknown>;
      bad["outcome"] = "3";
      const bundle = {
        resourceType: "Bundle",
        type: "batch",
        entry: [{ resource: makeFhirAuditEvent("Read") }, { resource: bad }],
      };
      const res = await post(JSON.stringify(bundle), "application/fhir+json");
      expect(res.status).to.equal(400);
      expect(errorOf(res.body).field).to.equal("entry[1].resource.outcome");
      const tx = await post(
        JSON.stringify({ ...bundle, type: "transaction" }),
        "application/fhir+json",
      );
      expect(tx.status).to.equal(400);
      expect(errorOf(tx.body).field).to.equal("type");
    });

    it("FHIR naming another organization in source.extension → 403 naming it", async () => {
      const r = makeFhirAuditEvent("Read");
      const res = await api.request("POST", "/v1/events", {
        key: api.secrets.otherWriter,
        raw: JSON.stringify(r),
        type: "application/fhir+json",
      });
      expect(res.status).to.equal(403);
      expect(errorOf(res.body)).to.include({ code: "FORBIDDEN", field: "source.extension" });
    });

    for (const seq of ["-1", "abc", "1e3", "99999999999999999999", "0x1", "01", "1.5", "%20"]) {
      it(`GET /v1/events/${seq} and /proof → 400 naming seq`, async () => {
        for (const path of [`/v1/events/${seq}`, `/v1/events/${seq}/proof`]) {
          const res = await api.request("GET", path, { key: api.secrets.auditor });
          expect(res.status, path).to.equal(400);
          expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field: "seq" });
        }
      });
    }

    it("a seq past the end → 404 naming seq", async () => {
      const res = await api.request("GET", "/v1/events/9007199254740991", {
        key: api.secrets.auditor,
      });
      expect(res.status).to.equal(404);
      expect(errorOf(res.body)).to.include({ code: "NOT_FOUND", field: "seq" });
      const proof = await api.request("GET", "/v1/events/1000/proof", { key: api.secrets.writer });
      expect(proof.status).to.equal(404);
    });

    for (const [query, field] of [
      ["limit=0", "limit"],
      ["limit=abc", "limit"],
      ["limit=1001", "limit"],
      ["from=yesterday", "from"],
      ["to=2024-13-01T00:00:00Z", "to"],
      ["purpose=TREAT&purpose=ETREAT", "purpose"],
      ["purpose=has%20space", "purpose"],
      ["color=red", "color"],
    ] as const) {
      it(`GET /v1/events?${query} → 400 naming ${field}`, async () => {
        const res = await api.request("GET", `/v1/events?${query}`, { key: api.secrets.auditor });
        expect(res.status).to.equal(400);
        expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field });
      });
    }

    for (const cursor of ["garbage", "a.b", "eyJ2IjoxfQ.AAAA", "x".repeat(600)]) {
      it(`GET /v1/events?cursor=${cursor.slice(0, 12)} → 400 BAD_CURSOR or a 400 naming cursor`, async () => {
        const res = await api.request("GET", `/v1/events?cursor=${cursor}`, {
          key: api.secrets.auditor,
        });
        expect(res.status).to.equal(400);
        expect(errorOf(res.body).field).to.equal("cursor");
      });
    }

    for (const [body, field] of [
      [{ role: "root" }, "role"],
      [{ role: "writer" }, "organization"],
      [{ role: "patient", patient: { value: 7 } }, "patient.value"],
      [{ role: "auditor", scope: "all" }, "scope"],
    ] as const) {
      it(`POST /v1/keys ${JSON.stringify(body)} → 400 naming ${field}`, async () => {
        const before = (await api.keys.list()).length;
        const res = await api.request("POST", "/v1/keys", { key: api.secrets.admin, body });
        expect(res.status).to.equal(400);
        expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field });
        expect((await api.keys.list()).length).to.equal(before);
      });
    }

    it("POST /v1/keys malformed → 400, wrong type → 415", async () => {
      const bad = await api.request("POST", "/v1/keys", { key: api.secrets.admin, raw: "{role" });
      expect(bad.status).to.equal(400);
      expect(errorOf(bad.body).code).to.equal("MALFORMED_JSON");
      const type = await api.request("POST", "/v1/keys", {
        key: api.secrets.admin,
        raw: "role=admin",
        type: "application/x-www-form-urlencoded",
      });
      expect(type.status).to.equal(415);
    });

    for (const batchNo of ["-1", "abc", "1e3", "99999999999999999999"]) {
      it(`GET /v1/batches/${batchNo} → 400 naming batchNo`, async () => {
        const res = await api.request("GET", `/v1/batches/${batchNo}`, {
          key: api.secrets.auditor,
        });
        expect(res.status).to.equal(400);
        expect(errorOf(res.body)).to.include({ code: "VALIDATION_FAILED", field: "batchNo" });
      });
    }

    it("property: random query strings and path segments on the read routes never yield a 5xx", async () => {
      const names = fc.constantFrom(
        "organization",
        "from",
        "to",
        "purpose",
        "type",
        "cursor",
        "limit",
        "x",
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(names, fc.string({ maxLength: 40 })), { maxLength: 4 }),
          fc.string({ maxLength: 30 }),
          fc.constantFrom("auditor", "writer", "patient1") as fc.Arbitrary<
            "auditor" | "writer" | "patient1"
          >,
          async (pairs, segment, role) => {
            const query = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
            const seg = encodeURIComponent(segment);
            for (const path of [
              `/v1/events?${query}`,
              `/v1/events/${seg}`,
              `/v1/events/${seg}/proof`,
              `/v1/batches/${seg}`,
            ]) {
              const res = await api.request("GET", path, { key: api.secrets[role] });
              expect(res.status, `${path} → ${res.text}`).to.be.lessThan(500);
              if (res.status >= 400) expect(res.body).to.have.nested.property("error.code");
            }
          },
        ),
        { numRuns: 60 },
      );
    });

    it("property: random JSON bodies to POST /v1/events never yield a 5xx", async () => {
      const valid = makeNativeEvent();
      const mutated = fc
        .tuple(fc.constantFrom(...Object.keys(valid)), fc.jsonValue())
        .map(([k, v]) => ({ ...valid, requestId: undefined, [k]: v }));
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.jsonValue(), mutated, fc.array(mutated, { maxLength: 3 })),
          fc.constantFrom("application/json", "application/x-ndjson", "application/fhir+json"),
          async (body, type) => {
            const raw =
              type === "application/x-ndjson" && Array.isArray(body)
                ? body.map((b) => JSON.stringify(b)).join("\n")
                : (JSON.stringify(body) ?? "");
            const res = await api.request("POST", "/v1/events", {
              key: api.secrets.otherWriter,
              raw,
              type,
            });
            expect(res.status, res.text).to.be.lessThan(500);
            if (res.status >= 400) expect(res.body).to.have.nested.property("error.code");
            // A valid lab event could be generated; anything else must have been refused.
            if (res.status === 201) nextSeqBefore = api.ledger.nextSeq;
          },
        ),
        { numRuns: 150 },
      );
    });
  });

  describe("accepted input", () => {
    it("NDJSON, a JSON array and FHIR (single and Bundle) → 201 with one receipt per event in order", async () => {
      const start = api.ledger.nextSeq;
      const nd = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        raw:
          [eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(HOSPITAL_ORG, PATIENT_2)]
            .map((e) => JSON.stringify(e))
            .join("\n") + "\n",
        type: "application/x-ndjson",
      });
      expect(nd.status).to.equal(201);
      expect((nd.body as Receipts).receipts.map((r) => r.receipt.seq)).to.deep.equal([
        start,
        start + 1,
      ]);
      // The answer's framing: JSON in UTF-8, its exact length, never cached.
      expect(nd.headers.get("content-type")).to.equal("application/json; charset=utf-8");
      expect(nd.headers.get("content-length")).to.equal(String(Buffer.byteLength(nd.text)));
      expect(nd.headers.get("cache-control")).to.equal("no-store");
      expect(nd.headers.get("x-content-type-options")).to.equal("nosniff");
      const arr = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        body: [eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(HOSPITAL_ORG, null)],
      });
      expect((arr.body as Receipts).receipts.map((r) => r.receipt.seq)).to.deep.equal([
        start + 2,
        start + 3,
      ]);
      // Plain BALP without the organization extension: the writer's organization is assigned.
      const plain = makeFhirAuditEvent("Create") as unknown as {
        source: Record<string, unknown>;
        entity: Array<Record<string, unknown>>;
      };
      delete plain.source["extension"];
      const single = await api.request("POST", "/v1/events", {
        key: api.secrets.otherWriter,
        raw: JSON.stringify(plain),
        type: "application/fhir+json; charset=utf-8",
      });
      expect(single.status, single.text).to.equal(201);
      const stored = await api.ledger.getEvent(start + 4);
      expect(stored.event?.source.organization).to.equal(LAB_ORG);
      const bundle = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        raw: JSON.stringify({
          resourceType: "Bundle",
          type: "collection",
          entry: [
            {
              resource: makeFhirAuditEvent("Read", {
                patient: false,
                overrides: { requestId: "bundle-read" },
              }),
            },
            { resource: makeFhirAuditEvent("Query", { overrides: { requestId: "bundle-query" } }) },
          ],
        }),
        type: "application/fhir+json",
      });
      expect(bundle.status, bundle.text).to.equal(201);
      expect((bundle.body as Receipts).receipts).to.have.length(2);
    });

    it("a proof before sealing says status unsealed with no anchor; after sealing, sealed with a batch", async () => {
      const res = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        body: eventFor(HOSPITAL_ORG, PATIENT_1),
      });
      const seq = (res.body as Receipts).receipts[0]!.receipt.seq;
      const before = await api.request("GET", `/v1/events/${seq}/proof`, {
        key: api.secrets.writer,
      });
      expect(before.body).to.include({
        status: "unsealed",
        anchor: null,
        batch: null,
        format: "veritrail-proof/1",
      });
      await api.ledger.sealPending();
      const after = await api.request("GET", `/v1/events/${seq}/proof`, {
        key: api.secrets.patient1,
      });
      expect(after.body).to.include({ status: "sealed", anchor: null });
      expect(after.body).to.have.nested.property("batch.eventsRoot");
      const batches = await api.request("GET", "/v1/batches?limit=1", { key: api.secrets.writer });
      expect(batches.status).to.equal(200);
      expect((batches.body as { batches: unknown[] }).batches).to.have.length(1);
    });
  });

  describe("idempotency: a requestId names one event", () => {
    type Conflict = {
      error: { code: string; message: string; field: string; requestId: string; seq?: number };
    };
    const post = (body: unknown, raw?: string, type?: string) =>
      api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        ...(raw !== undefined ? { raw, type: type ?? "application/json" } : { body }),
      });

    it("a different event under a used requestId → 409 IDEMPOTENCY_CONFLICT naming the requestId and the original seq; nothing stored", async () => {
      const original = eventFor(HOSPITAL_ORG, PATIENT_1, { requestId: "idem-1" });
      const first = await post(original);
      expect(first.status).to.equal(201);
      const seq = (first.body as Receipts).receipts[0]!.receipt.seq;
      const before = api.ledger.nextSeq;
      const other = await post(eventFor(HOSPITAL_ORG, PATIENT_2, { requestId: "idem-1" }));
      expect(other.status, other.text).to.equal(409);
      const error = (other.body as Conflict).error;
      expect(error).to.include({
        code: "IDEMPOTENCY_CONFLICT",
        requestId: "idem-1",
        seq,
        field: "requestId",
      });
      expect(error.message).to.include("idem-1").and.to.include(`seq ${seq}`);
      expect(api.ledger.nextSeq).to.equal(before);
      // The identical event, even re-serialised with another key order, gets the original receipt.
      const reordered = JSON.stringify(Object.fromEntries(Object.entries(original).reverse()));
      const again = await post(undefined, reordered);
      expect(again.status).to.equal(201);
      expect((again.body as Receipts).receipts[0]).to.deep.include({ duplicate: true });
      expect((again.body as Receipts).receipts[0]!.receipt).to.deep.equal(
        (first.body as Receipts).receipts[0]!.receipt,
      );
    });

    it("in a bulk call: the conflicting event's position is the field, and none of the call is stored", async () => {
      await post(eventFor(HOSPITAL_ORG, PATIENT_1, { requestId: "idem-2" }));
      const before = api.ledger.nextSeq;
      const res = await post([
        eventFor(HOSPITAL_ORG, PATIENT_1, { requestId: "idem-2b" }),
        eventFor(HOSPITAL_ORG, PATIENT_2, { requestId: "idem-2" }),
      ]);
      expect(res.status).to.equal(409);
      expect((res.body as Conflict).error).to.include({
        field: "[1].requestId",
        requestId: "idem-2",
      });
      const twice = await post([
        eventFor(HOSPITAL_ORG, PATIENT_1, { requestId: "idem-3" }),
        eventFor(HOSPITAL_ORG, PATIENT_2, { requestId: "idem-3" }),
      ]);
      expect(twice.status).to.equal(409);
      expect((twice.body as Conflict).error).to.include({
        field: "[1].requestId",
        requestId: "idem-3",
      });
      expect((twice.body as Conflict).error).to.not.have.property("seq");
      expect(api.ledger.nextSeq).to.equal(before);
    });

    it("10 concurrent posts of two different events under one requestId: one stored, same event → its receipt, other → 409", async () => {
      const a = eventFor(HOSPITAL_ORG, PATIENT_1, { requestId: "idem-4" });
      const b = eventFor(HOSPITAL_ORG, PATIENT_2, { requestId: "idem-4" });
      const before = api.ledger.nextSeq;
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post(i % 2 ? a : b)));
      expect(api.ledger.nextSeq).to.equal(before + 1);
      const created = answers.filter((r) => r.status === 201);
      const conflicts = answers.filter((r) => r.status === 409);
      expect(created).to.have.length(5);
      expect(conflicts).to.have.length(5);
      for (const c of conflicts) expect((c.body as Conflict).error.seq).to.equal(before);
    });

    it("FHIR: the XrequestId entity is the field named", async () => {
      const fhir = (requestId: string, patient: typeof PATIENT_1) =>
        JSON.stringify(toFhirAuditEvent(eventFor(HOSPITAL_ORG, patient, { requestId })));
      const type = "application/fhir+json";
      const ok = await post(undefined, fhir("idem-5", PATIENT_1), type);
      expect(ok.status, ok.text).to.equal(201);
      const same = await post(undefined, fhir("idem-5", PATIENT_1), type);
      expect((same.body as Receipts).receipts[0]!.duplicate).to.equal(true);
      const res = await post(undefined, fhir("idem-5", PATIENT_2), type);
      expect(res.status, res.text).to.equal(409);
      expect((res.body as Conflict).error).to.include({ field: "entity", requestId: "idem-5" });
    });
  });

  describe("listing with cursors", () => {
    let lister: TestApi;
    before(async () => {
      lister = await startTestApi();
      const events = Array.from({ length: 25 }, (_, i) =>
        eventFor(i % 2 === 0 ? HOSPITAL_ORG : LAB_ORG, i % 3 === 0 ? PATIENT_1 : PATIENT_2, {
          recorded: new Date(Date.UTC(2024, 0, 1 + i)).toISOString(),
          purposeOfUse: i % 5 === 0 ? ["ETREAT"] : ["TREAT"],
        }),
      );
      await ingestAtTheirTimes(lister.ledger, lister.clock, events);
    });
    after(async () => {
      await lister.close();
    });

    async function all(query: string, key: string): Promise<number[]> {
      const seqs: number[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < 50; page++) {
        const q: string = cursor === null ? query : `${query}&cursor=${encodeURIComponent(cursor)}`;
        const res = await lister.request("GET", `/v1/events?${q}`, { key });
        expect(res.status, res.text).to.equal(200);
        const body = res.body as Page;
        expect(body.events.length).to.be.at.most(Number(/limit=(\d+)/.exec(query)?.[1] ?? 100));
        seqs.push(...body.events.map((e) => e.seq));
        cursor = body.nextCursor;
        if (cursor === null) return seqs;
      }
      throw new Error("pagination did not end");
    }

    it("pages through everything exactly once, in seq order", async () => {
      expect(await all("limit=10", lister.secrets.auditor)).to.deep.equal(
        Array.from({ length: 25 }, (_, i) => i),
      );
      expect(await all("limit=25", lister.secrets.auditor)).to.deep.equal(
        Array.from({ length: 25 }, (_, i) => i),
      );
    });

    it("filters by organization, purpose, type and time, also across pages", async () => {
      const range = (pred: (i: number) => boolean) =>
        Array.from({ length: 25 }, (_, i) => i).filter(pred);
      expect(
        await all(`limit=3&organization=${encodeURIComponent(LAB_ORG)}`, lister.secrets.auditor),
      ).to.deep.equal(range((i) => i % 2 === 1));
      expect(await all("limit=2&purpose=ETREAT", lister.secrets.auditor)).to.deep.equal(
        range((i) => i % 5 === 0),
      );
      expect(await all("limit=4&type=read", lister.secrets.auditor)).to.deep.equal(
        range(() => true),
      );
      expect(await all("limit=4&type=110106", lister.secrets.auditor)).to.deep.equal([]);
      expect(
        await all(
          "limit=3&from=2024-01-05T00:00:00Z&to=2024-01-10T00:00:00.000Z",
          lister.secrets.auditor,
        ),
      ).to.deep.equal([4, 5, 6, 7, 8]);
      // The clinician agent carries TREAT on every event: agents' purposes match too.
      expect(await all("limit=2&purpose=TREAT", lister.secrets.writer)).to.deep.equal(
        range((i) => i % 2 === 0),
      );
      expect(await all("limit=3", lister.secrets.patient1)).to.deep.equal(
        range((i) => i % 3 === 0),
      );
    });

    it("property: paging with any filter and page size returns exactly the matching events once", async () => {
      const day = (i: number) => Date.UTC(2024, 0, 1 + i);
      await fc.assert(
        fc.asyncProperty(
          fc.record(
            {
              org: fc.constantFrom(HOSPITAL_ORG, LAB_ORG),
              purpose: fc.constantFrom("ETREAT", "TREAT", "PUBHLTH"),
              type: fc.constantFrom("rest", "read", "110106"),
              from: fc.integer({ min: 0, max: 26 }),
              to: fc.integer({ min: 0, max: 26 }),
            },
            { requiredKeys: [] },
          ),
          fc.integer({ min: 1, max: 7 }),
          async (f, limit) => {
            const params = [`limit=${limit}`];
            if (f.org !== undefined) params.push(`organization=${encodeURIComponent(f.org)}`);
            if (f.purpose !== undefined) params.push(`purpose=${f.purpose}`);
            if (f.type !== undefined) params.push(`type=${f.type}`);
            if (f.from !== undefined) params.push(`from=${new Date(day(f.from)).toISOString()}`);
            if (f.to !== undefined) params.push(`to=${new Date(day(f.to)).toISOString()}`);
            const expected = Array.from({ length: 25 }, (_, i) => i).filter(
              (i) =>
                (f.org === undefined || f.org === (i % 2 === 0 ? HOSPITAL_ORG : LAB_ORG)) &&
                (f.purpose === undefined ||
                  f.purpose === "TREAT" ||
                  (f.purpose === "ETREAT" && i % 5 === 0)) &&
                (f.type === undefined || f.type !== "110106") &&
                (f.from === undefined || day(i) >= day(f.from)) &&
                (f.to === undefined || day(i) < day(f.to)),
            );
            expect(await all(params.join("&"), lister.secrets.auditor)).to.deep.equal(expected);
          },
        ),
        { numRuns: 40 },
      );
    });

    it("a modified cursor or one from another filter → 400 BAD_CURSOR naming cursor", async () => {
      const first = await lister.request("GET", "/v1/events?limit=5", {
        key: lister.secrets.auditor,
      });
      const cursor = (first.body as Page).nextCursor!;
      const [body, tag] = cursor.split(".") as [string, string];
      const payload = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as {
        p: { seq: number };
      };
      payload.p.seq = 20;
      const forged = `${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${tag}`;
      for (const [q, key] of [
        [`limit=5&cursor=${forged}`, lister.secrets.auditor],
        [`limit=5&purpose=TREAT&cursor=${cursor}`, lister.secrets.auditor],
        [`limit=5&cursor=${cursor}`, lister.secrets.writer],
        [`limit=5&cursor=${cursor.slice(0, -2)}`, lister.secrets.auditor],
      ] as const) {
        const res = await lister.request("GET", `/v1/events?${q}`, { key });
        expect(res.status, q).to.equal(400);
        expect(errorOf(res.body)).to.include({ code: "BAD_CURSOR", field: "cursor" });
      }
      const ok = await lister.request("GET", `/v1/events?limit=5&cursor=${cursor}`, {
        key: lister.secrets.auditor,
      });
      expect((ok.body as Page).events.map((e) => e.seq)).to.deep.equal([5, 6, 7, 8, 9]);
    });
  });
});

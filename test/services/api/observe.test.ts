import { expect } from "chai";
import { createHash } from "node:crypto";
import { HOSPITAL_ORG, makeFhirAuditEvent } from "../../fixtures/events.ts";
import { type TestApi, eventFor, startTestApi } from "./harness.ts";

/** A patient identifier that must never reach a log line or a metric. */
const KNOWN = { system: "urn:oid:1.2.3.4.5", value: "MRN-9876-SECRET-5432" };
const FHIR_ID = "fhir-id-7777-secret";

describe("api observability: access logs and metrics carry no identifiers", function () {
  let api: TestApi;
  before(async () => {
    api = await startTestApi();
  });
  after(async () => {
    await api.close();
  });

  it("a patient identifier (and its plain SHA-256) never appears in logs or /metrics", async () => {
    const s = api.secrets;
    const event = eventFor(HOSPITAL_ORG, KNOWN);
    const posted = await api.request("POST", "/v1/events", { key: s.writer, body: event });
    expect(posted.status).to.equal(201);
    const seq = (posted.body as { receipts: Array<{ receipt: { seq: number } }> }).receipts[0]!
      .receipt.seq;
    const fhir = { ...makeFhirAuditEvent("Read"), id: FHIR_ID } as unknown as Record<
      string,
      unknown
    >;
    const fhirPost = await api.request("POST", "/v1/events", {
      key: s.writer,
      raw: JSON.stringify(fhir),
      type: "application/fhir+json",
    });
    expect(fhirPost.status).to.equal(201);
    // A patient key made from the identifier, then used, listed, and misused.
    const created = await api.request("POST", "/v1/keys", {
      key: s.admin,
      body: { role: "patient", patient: KNOWN },
    });
    expect(created.status).to.equal(201);
    const patientKey = (created.body as { secret: string }).secret;
    expect((await api.request("GET", "/v1/events", { key: patientKey })).status).to.equal(200);
    expect((await api.request("GET", `/v1/events/${seq}`, { key: patientKey })).status).to.equal(
      200,
    );
    expect(
      (await api.request("GET", `/v1/events/${seq}/proof`, { key: patientKey })).status,
    ).to.equal(200);
    // Bad input that quotes the identifier, in the body, the path and the query string.
    const bad = await api.request("POST", "/v1/events", {
      key: s.writer,
      raw: JSON.stringify({ ...event, extra: KNOWN.value }),
    });
    expect(bad.status).to.equal(400);
    const malformed = await api.request("POST", "/v1/events", {
      key: s.writer,
      raw: `{"x": "${KNOWN.value}"`,
    });
    expect(malformed.status).to.equal(400);
    expect(
      (await api.request("GET", `/v1/events/${KNOWN.value}`, { key: s.auditor })).status,
    ).to.equal(400);
    expect(
      (await api.request("GET", `/v1/events?type=${KNOWN.value}`, { key: s.auditor })).status,
    ).to.equal(200);
    expect(
      (await api.request("GET", `/v1/events?organization=${KNOWN.value}`, { key: s.writer }))
        .status,
    ).to.equal(403);
    expect((await api.request("GET", `/nowhere/${KNOWN.value}?q=${FHIR_ID}`)).status).to.equal(404);
    expect(
      (
        await api.request("GET", "/v1/events", {
          headers: { authorization: `Bearer ${KNOWN.value}` },
        })
      ).status,
    ).to.equal(401);

    const metrics = (await api.request("GET", "/metrics")).text;
    const logs = api.logs.join("");
    expect(api.logs.length).to.be.greaterThan(10);
    const plainHashes = [
      createHash("sha256").update(KNOWN.value).digest("hex"),
      createHash("sha256").update(`${KNOWN.system}|${KNOWN.value}`).digest("hex"),
    ];
    for (const text of [logs, metrics]) {
      expect(text).to.not.include(KNOWN.value);
      expect(text).to.not.include(FHIR_ID);
      for (const h of plainHashes) expect(text.toLowerCase()).to.not.include(h);
      expect(text).to.not.include(s.writer);
      expect(text).to.not.include(patientKey);
      expect(text).to.not.include("127.0.0.1");
      expect(text).to.not.include("?");
    }
    expect(logs.toLowerCase()).to.not.include("authorization");
  });

  it("logs one line per request with method, route template, status, duration, request id, key id and role", async () => {
    api.logs.length = 0;
    const res = await api.request("GET", "/v1/events/0", {
      key: api.secrets.auditor,
      headers: { "x-request-id": "trace-abc.123" },
    });
    expect(res.headers.get("x-request-id")).to.equal("trace-abc.123");
    expect(api.logs).to.have.length(1);
    const line = JSON.parse(api.logs[0]!) as Record<string, unknown>;
    expect(line).to.include({
      method: "GET",
      route: "/v1/events/:seq",
      status: 200,
      reqId: "trace-abc.123",
      role: "auditor",
    });
    expect(line["keyId"]).to.match(/^key_[0-9a-f]{16}$/);
    expect(line["durationMs"]).to.be.a("number");
    expect(Object.keys(line).sort()).to.deep.equal([
      "durationMs",
      "hostname",
      "keyId",
      "level",
      "method",
      "msg",
      "pid",
      "reqId",
      "role",
      "route",
      "status",
      "time",
    ]);
  });

  it("generates a request id when none (or an unsafe one) is given", async () => {
    const none = await api.request("GET", "/healthz");
    expect(none.headers.get("x-request-id")).to.match(/^[0-9a-f-]{36}$/);
    const unsafe = await api.request("GET", "/healthz", {
      headers: { "x-request-id": `a b {"x":1} ${"y".repeat(100)}` },
    });
    expect(unsafe.headers.get("x-request-id")).to.match(/^[0-9a-f-]{36}$/);
  });

  it("metrics count requests by route template and status, never by URL", async () => {
    await api.request("GET", "/v1/events/0", { key: api.secrets.auditor });
    await api.request("GET", "/v1/events/1", { key: api.secrets.auditor });
    const metrics = (await api.request("GET", "/metrics")).text;
    expect(metrics).to.match(
      /veritrail_http_requests_total\{method="GET",route="\/v1\/events\/:seq",status="200"\} \d+/,
    );
    expect(metrics).to.match(
      /veritrail_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/v1\/events\/:seq"/,
    );
    expect(metrics).to.not.match(/route="\/v1\/events\/\d/);
    expect(metrics).to.match(/route="unmatched",status="404"/);
    expect(metrics).to.match(/veritrail_events_ingested_total [1-9]/);
  });
});

import { expect } from "chai";
import { HOSPITAL_ORG } from "../../fixtures/events.ts";
import { operationOutcomeIssues } from "./fhir-provenance-structure.ts";
import { PATIENT_1, type TestApi, eventFor, startTestApi } from "./harness.ts";

type Outcome = {
  resourceType: string;
  issue: Array<{
    severity: string;
    code: string;
    diagnostics: string;
    expression?: string[];
    details: { coding: Array<{ system: string; code: string }> };
  }>;
};

/** Every /fhir error is a FHIR R4 OperationOutcome with a 4xx; the rest of the API keeps its own. */
describe("api/fhir: errors as OperationOutcome", function () {
  let api: TestApi;
  let seq: number;

  before(async () => {
    api = await startTestApi();
    const [r] = await api.ledger.ingest([eventFor(HOSPITAL_ORG, PATIENT_1)]);
    seq = r!.receipt.seq;
  });
  after(async () => api?.close());

  async function expectOutcome(
    route: string,
    key: string | undefined,
    status: number,
    code: string,
    expression?: string,
  ): Promise<Outcome> {
    const res = await api.request("GET", route, key === undefined ? {} : { key });
    expect(res.status, route).to.equal(status);
    expect(res.headers.get("content-type"), route).to.match(/^application\/fhir\+json/);
    expect(operationOutcomeIssues(res.body), route).to.deep.equal([]);
    const outcome = res.body as Outcome;
    expect(outcome.issue[0]!.code, route).to.equal(code);
    expect(outcome.issue[0]!.severity).to.equal("error");
    if (expression !== undefined) {
      expect(outcome.issue[0]!.expression, route).to.deep.equal([expression]);
      expect(outcome.issue[0]!.diagnostics, route).to.include(expression);
    }
    return outcome;
  }

  it("bad search parameter values → 400 invalid, naming the parameter", async () => {
    const a = api.secrets.auditor;
    await expectOutcome("/fhir/AuditEvent?date=yesterday", a, 400, "invalid", "date");
    await expectOutcome(
      "/fhir/AuditEvent?date=ge2025-01-01&date=le2024-01-01",
      a,
      400,
      "invalid",
      "date",
    );
    await expectOutcome("/fhir/AuditEvent?_count=0", a, 400, "invalid", "_count");
    await expectOutcome("/fhir/AuditEvent?_count=abc", a, 400, "invalid", "_count");
    await expectOutcome("/fhir/AuditEvent?_cursor=abc.def", a, 400, "invalid");
    await expectOutcome("/fhir/AuditEvent?patient=sys%7C", a, 400, "invalid", "patient");
    await expectOutcome("/fhir/AuditEvent/not-a-seq", a, 400, "invalid", "seq");
  });

  it("an unknown search parameter → 400 not-supported naming it; several → one issue each", async () => {
    const one = await expectOutcome(
      "/fhir/AuditEvent?foo=1",
      api.secrets.auditor,
      400,
      "not-supported",
      "foo",
    );
    expect(one.issue[0]!.details.coding[0]).to.deep.include({ code: "VALIDATION_FAILED" });
    const two = await expectOutcome(
      "/fhir/AuditEvent?foo=1&bar=2",
      api.secrets.auditor,
      400,
      "not-supported",
    );
    expect(two.issue.map((i) => i.expression)).to.have.deep.members([["foo"], ["bar"]]);
  });

  it("auth failures: no key / bad key / revoked → 401 login (WWW-Authenticate kept); wrong role → 403 forbidden; another patient's event → 404 like a missing one", async () => {
    for (const key of [undefined, "vt_AAAAAAAAAAAAAAAAAAAA", api.secrets.revoked]) {
      await expectOutcome("/fhir/AuditEvent", key, 401, "login");
      await expectOutcome(`/fhir/AuditEvent/${seq}`, key, 401, "login");
    }
    const res = await api.request("GET", "/fhir/AuditEvent");
    expect(res.headers.get("www-authenticate")).to.match(/^Bearer realm="veritrail"/);
    for (const key of [api.secrets.writer, api.secrets.admin])
      await expectOutcome("/fhir/AuditEvent", key, 403, "forbidden");
    await expectOutcome(`/fhir/AuditEvent/${seq}`, api.secrets.patient2, 404, "not-found", "seq");
  });

  it("unknown resources, unknown ids and other methods → 404 not-found", async () => {
    await expectOutcome("/fhir/AuditEvent/999999", api.secrets.auditor, 404, "not-found");
    await expectOutcome("/fhir/Patient", api.secrets.auditor, 404, "not-found");
    await expectOutcome("/fhir", undefined, 404, "not-found");
    const post = await api.request("POST", "/fhir/AuditEvent", {
      key: api.secrets.auditor,
      body: {},
    });
    expect(post.status).to.equal(404);
    expect(post.body).to.have.property("resourceType", "OperationOutcome");
  });

  it("routes outside /fhir keep the native error format", async () => {
    const res = await api.request("GET", "/v1/events?foo=1", { key: api.secrets.auditor });
    expect(res.status).to.equal(400);
    expect(res.headers.get("content-type")).to.match(/^application\/json/);
    expect(res.body).to.deep.include({
      error: {
        code: "VALIDATION_FAILED",
        message: "foo: unknown field",
        field: "foo",
        issues: [{ field: "foo", code: "unknown_field", message: "foo: unknown field" }],
      },
    });
    const none = await api.request("GET", "/v1/events");
    expect(none.body).to.have.nested.property("error.code", "UNAUTHENTICATED");
  });

  it("the rate limit under /fhir → 429 throttled", async () => {
    const limited = await startTestApi({ config: { RATE_LIMIT_PER_MINUTE: "2" } });
    try {
      for (let i = 0; i < 2; i++)
        expect(
          (await limited.request("GET", "/fhir/AuditEvent", { key: limited.secrets.auditor }))
            .status,
        ).to.equal(200);
      const res = await limited.request("GET", "/fhir/AuditEvent", {
        key: limited.secrets.auditor,
      });
      expect(res.status).to.equal(429);
      expect(res.headers.get("content-type")).to.match(/^application\/fhir\+json/);
      expect(operationOutcomeIssues(res.body)).to.deep.equal([]);
      expect((res.body as Outcome).issue[0]!.code).to.equal("throttled");
    } finally {
      await limited.close();
    }
  });
});

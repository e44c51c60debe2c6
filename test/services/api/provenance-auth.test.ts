import { expect } from "chai";
import type { Hex } from "../../../services/core/hex.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../fixtures/events.ts";
import { operationOutcomeIssues } from "./fhir-provenance-structure.ts";
import { type TestApi, startTestApi } from "./harness.ts";

const ITEM: Hex = `0x${"d4".repeat(32)}`;
const OTHER_ITEM: Hex = `0x${"e5".repeat(32)}`;

type Outcome = {
  resourceType: string;
  issue: Array<{ severity: string; code: string; diagnostics: string; expression?: string[] }>;
};

describe("api/provenance: GET /v1/provenance — roles, scopes and validation (one log, no chain)", function () {
  let api: TestApi;
  const route = `/v1/provenance?dataHash=${ITEM}`;

  before(async () => {
    api = await startTestApi();
    // Both institutions log into this one log: the hop matches within it (no peers needed).
    await api.ledger.ingest([
      makeBalpNativeEvent("PrivacyDisclosureSource", {
        overrides: {
          source: { organization: HOSPITAL_ORG, observer: "Device/gw-1" },
          recipient: { organization: LAB_ORG },
          transfer: { reference: "auth-xfer-1", dataHash: ITEM },
          requestId: "auth-export-1",
          recorded: "2024-06-01T09:00:00.000Z",
        },
      }),
      makeBalpNativeEvent("PrivacyDisclosureRecipient", {
        overrides: {
          source: { organization: LAB_ORG, observer: "Device/gw-2" },
          transfer: { reference: "auth-xfer-1", dataHash: ITEM },
          requestId: "auth-import-1",
          recorded: "2024-06-01T10:00:00.000Z",
        },
      }),
      makeBalpNativeEvent("PrivacyDisclosureSource", {
        overrides: {
          source: { organization: LAB_ORG, observer: "Device/gw-2" },
          recipient: { organization: "org:registry" },
          transfer: { reference: "auth-xfer-2", dataHash: OTHER_ITEM },
          requestId: "auth-export-2",
          recorded: "2024-06-02T09:00:00.000Z",
        },
      }),
    ]);
  });
  after(async () => api?.close());

  it("no key → 401 with WWW-Authenticate; a bad or revoked key → 401 (native error format)", async () => {
    const none = await api.request("GET", route);
    expect(none.status).to.equal(401);
    expect(none.headers.get("www-authenticate")).to.match(/^Bearer/);
    expect(none.body).to.have.nested.property("error.code", "UNAUTHENTICATED");
    for (const key of ["vt_AAAAAAAAAAAAAAAAAAAA", "not a key", api.secrets.revoked]) {
      const res = await api.request("GET", route, { key });
      expect(res.status, key).to.equal(401);
      expect(res.body).to.have.nested.property("error.code", "UNAUTHENTICATED");
    }
  });

  it("admin and patient keys → 403", async () => {
    for (const key of [api.secrets.admin, api.secrets.patient1, api.secrets.patient2]) {
      const res = await api.request("GET", route, { key });
      expect(res.status).to.equal(403);
      expect(res.body).to.have.nested.property("error.code", "FORBIDDEN");
    }
  });

  it("auditor → 200: the hop with both (unanchored) proof bundles; this log only, complete", async () => {
    const res = await api.request("GET", route, { key: api.secrets.auditor });
    expect(res.status).to.equal(200);
    expect(res.headers.get("cache-control")).to.equal("no-store");
    const body = res.body as {
      hops: Array<{ reference: string; from: { bundle: { status: string } } }>;
      custody: string[];
      logs: unknown[];
      complete: boolean;
    };
    expect(body.hops.map((h) => h.reference)).to.deep.equal(["auth-xfer-1"]);
    expect(body.hops[0]!.from.bundle.status).to.equal("unsealed");
    expect(body.custody).to.deep.equal([HOSPITAL_ORG, LAB_ORG]);
    expect(body.logs).to.deep.equal([{ name: "local", peer: false, readable: true }]);
    expect(body.complete).to.equal(true);
  });

  it("writers: both parties of a transfer see it; a writer of neither sees nothing", async () => {
    for (const key of [api.secrets.writer, api.secrets.otherWriter]) {
      const res = await api.request("GET", route, { key });
      expect(res.status).to.equal(200);
      expect((res.body as { hops: unknown[] }).hops).to.have.length(1);
    }
    // The lab's export to org:registry is the lab's, not the hospital's.
    const other = `/v1/provenance?dataHash=${OTHER_ITEM}`;
    const lab = await api.request("GET", other, { key: api.secrets.otherWriter });
    expect((lab.body as { unmatched: unknown[] }).unmatched).to.have.length(1);
    const hospital = await api.request("GET", other, { key: api.secrets.writer });
    expect(hospital.status).to.equal(200);
    expect(hospital.body).to.deep.include({ hops: [], unmatched: [], custody: [] });
  });

  it("bad parameters → 400 naming the parameter", async () => {
    const cases: Array<[string, string]> = [
      ["/v1/provenance", "dataHash"],
      ["/v1/provenance?dataHash=0x1234", "dataHash"],
      [`/v1/provenance?dataHash=${ITEM.toUpperCase().replace("0X", "0x")}`, "dataHash"],
      ["/v1/provenance?reference=", "reference"],
      [`${route}&format=xml`, "format"],
      [`${route}&foo=1`, "foo"],
      [`${route}&dataHash=${ITEM}`, "dataHash"],
    ];
    for (const [url, field] of cases) {
      const res = await api.request("GET", url, { key: api.secrets.auditor });
      expect(res.status, url).to.equal(400);
      expect(res.body, url).to.have.nested.property("error.field", field);
    }
  });

  it("format=fhir: errors are OperationOutcome resources (401 login, 403 forbidden, 400 invalid / not-supported)", async () => {
    const fhir = `${route}&format=fhir`;
    const cases: Array<[string, string | undefined, number, string, string | undefined]> = [
      [fhir, undefined, 401, "login", undefined],
      [fhir, "vt_bad", 401, "login", undefined],
      [fhir, api.secrets.admin, 403, "forbidden", undefined],
      [fhir, api.secrets.patient1, 403, "forbidden", undefined],
      ["/v1/provenance?format=fhir", api.secrets.auditor, 400, "invalid", "dataHash"],
      [`${fhir}&bogus=1`, api.secrets.auditor, 400, "not-supported", "bogus"],
    ];
    for (const [url, key, status, code, expression] of cases) {
      const res = await api.request("GET", url, key === undefined ? {} : { key });
      expect(res.status, url).to.equal(status);
      expect(res.headers.get("content-type"), url).to.match(/^application\/fhir\+json/);
      expect(operationOutcomeIssues(res.body), url).to.deep.equal([]);
      const issue = (res.body as Outcome).issue[0]!;
      expect(issue.code, url).to.equal(code);
      expect(issue.severity).to.equal("error");
      if (expression !== undefined) {
        expect(issue.expression).to.deep.equal([expression]);
        expect(issue.diagnostics).to.include(expression);
      }
    }
    const ok = await api.request("GET", fhir, { key: api.secrets.auditor });
    expect(ok.status).to.equal(200);
    expect(ok.headers.get("content-type")).to.match(/^application\/fhir\+json/);
    expect(ok.body).to.include({ resourceType: "Bundle", type: "collection" });
  });

  it("is documented in /openapi.json with its parameters and error answers", async () => {
    const res = await api.request("GET", "/openapi.json");
    const op = (
      res.body as {
        paths: Record<
          string,
          { get?: { parameters: Array<{ name: string }>; responses: Record<string, unknown> } }
        >;
      }
    ).paths["/v1/provenance"]?.get;
    expect(op).to.not.equal(undefined);
    expect(op!.parameters.map((p) => p.name)).to.have.members(["dataHash", "reference", "format"]);
    expect(Object.keys(op!.responses)).to.include.members(["200", "400", "401", "403", "429"]);
  });
});

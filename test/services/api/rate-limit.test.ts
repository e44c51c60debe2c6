import { expect } from "chai";
import { loadConfig } from "../../../services/config.ts";
import { type TestApi, startTestApi } from "./harness.ts";

describe("api rate limits: per key, and per address without a live key", function () {
  let api: TestApi;
  beforeEach(async () => {
    api = await startTestApi({
      config: { RATE_LIMIT_PER_MINUTE: "4", RATE_LIMIT_PER_IP_PER_MINUTE: "5" },
    });
  });
  afterEach(async () => {
    await api.close();
  });

  it("requests without a key are limited per address: 429 RATE_LIMITED with Retry-After", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await api.request("GET", i % 2 ? "/healthz" : "/v1/events")).status);
    }
    expect(statuses).to.deep.equal([401, 200, 401, 200, 401]);
    for (const route of ["/v1/events", "/healthz", "/openapi.json", "/verify"]) {
      const limited = await api.request("GET", route);
      expect(limited.status, route).to.equal(429);
      expect(limited.body).to.have.nested.property("error.code", "RATE_LIMITED");
      const retryAfter = Number(limited.headers.get("retry-after"));
      expect(retryAfter).to.be.within(1, 60);
    }
    // A live key has its own budget, whatever address it comes from.
    expect((await api.request("GET", "/v1/batches", { key: api.secrets.auditor })).status).to.equal(
      200,
    );
  });

  it("unknown, revoked and malformed keys count against the address, not a key", async () => {
    const bad = [
      "vt_" + "A".repeat(43),
      api.secrets.revoked,
      "not-a-key",
      "vt_" + "B".repeat(43),
      api.secrets.revoked,
    ];
    for (const key of bad)
      expect((await api.request("GET", "/v1/keys", { key })).status).to.equal(401);
    const limited = await api.request("GET", "/v1/keys", { key: "vt_" + "C".repeat(43) });
    expect(limited.status).to.equal(429);
    expect((await api.request("GET", "/v1/keys", { key: api.secrets.admin })).status).to.equal(200);
  });

  it("a live key is limited on its own: 429 with Retry-After for that key only", async () => {
    for (let i = 0; i < 4; i++)
      expect(
        (await api.request("GET", "/v1/batches", { key: api.secrets.writer })).status,
      ).to.equal(200);
    const limited = await api.request("GET", "/v1/batches", { key: api.secrets.writer });
    expect(limited.status).to.equal(429);
    expect(Number(limited.headers.get("retry-after"))).to.be.within(1, 60);
    expect((await api.request("GET", "/v1/batches", { key: api.secrets.auditor })).status).to.equal(
      200,
    );
  });

  it("under /fhir the 429 is an OperationOutcome (throttled)", async () => {
    for (let i = 0; i < 5; i++) await api.request("GET", "/fhir/AuditEvent");
    const limited = await api.request("GET", "/fhir/AuditEvent");
    expect(limited.status).to.equal(429);
    expect(limited.headers.get("content-type")).to.match(/^application\/fhir\+json/);
    expect(limited.body).to.have.nested.property("issue[0].code", "throttled");
  });

  it("X-Forwarded-For is ignored unless TRUST_PROXY says a proxy sets it", async () => {
    const spoof = (i: number) => ({ headers: { "x-forwarded-for": `203.0.113.${i}` } });
    for (let i = 0; i < 5; i++) await api.request("GET", "/healthz", spoof(i));
    expect((await api.request("GET", "/healthz", spoof(99))).status).to.equal(429);

    const proxied = await startTestApi({
      config: { RATE_LIMIT_PER_IP_PER_MINUTE: "2", TRUST_PROXY: "1" },
    });
    try {
      for (let i = 0; i < 2; i++)
        expect((await proxied.request("GET", "/healthz", spoof(1))).status).to.equal(200);
      expect((await proxied.request("GET", "/healthz", spoof(1))).status).to.equal(429);
      expect((await proxied.request("GET", "/healthz", spoof(2))).status).to.equal(200);
    } finally {
      await proxied.close();
    }
  });

  it("defaults: 60,000 requests a minute per key, 600 per address without a key", () => {
    const c = loadConfig({});
    expect(c.RATE_LIMIT_PER_MINUTE).to.equal(60_000);
    expect(c.RATE_LIMIT_PER_IP_PER_MINUTE).to.equal(600);
    expect(c.TRUST_PROXY).to.equal(0);
  });
});

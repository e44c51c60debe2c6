import { expect } from "chai";
import { HOSPITAL_ORG } from "../../fixtures/events.ts";
import { type TestApi, eventFor, startTestApi } from "./harness.ts";

describe("api auth: per-key rate limit", function () {
  let api: TestApi;
  before(async () => {
    api = await startTestApi({ config: { RATE_LIMIT_PER_MINUTE: "3" } });
  });
  after(async () => {
    await api.close();
  });

  it("answers 429 RATE_LIMITED past the limit for that key only", async () => {
    for (let i = 0; i < 3; i++) {
      expect(
        (await api.request("GET", "/v1/batches", { key: api.secrets.auditor })).status,
      ).to.equal(200);
    }
    const limited = await api.request("GET", "/v1/batches", { key: api.secrets.auditor });
    expect(limited.status).to.equal(429);
    expect(limited.body).to.have.nested.property("error.code", "RATE_LIMITED");
    expect((await api.request("GET", "/v1/batches", { key: api.secrets.admin })).status).to.equal(
      200,
    );
    // Unauthenticated requests are refused before they count against anyone.
    expect((await api.request("GET", "/v1/batches")).status).to.equal(401);
  });

  it("a malformed Authorization header is a 401, not a 5xx", async () => {
    for (const header of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  two  spaces", "bearer vt_x"]) {
      const res = await api.request("GET", "/v1/keys", { headers: { authorization: header } });
      expect(res.status, header).to.equal(401);
      expect(res.headers.get("www-authenticate")).to.match(/^Bearer /);
    }
  });
});

describe("api auth: one key lookup per request", function () {
  let api: TestApi;
  before(async () => {
    api = await startTestApi();
  });
  after(async () => {
    await api.close();
  });

  it("the rate limiter and authenticate share one lookup of the caller's key", async () => {
    const lookups: string[] = [];
    const authenticate = api.keys.authenticate.bind(api.keys);
    api.keys.authenticate = (secret: string) => {
      lookups.push(secret);
      return authenticate(secret);
    };
    try {
      const res = await api.request("POST", "/v1/events", {
        key: api.secrets.writer,
        body: eventFor(HOSPITAL_ORG, null),
      });
      expect(res.status).to.equal(201);
      expect(lookups).to.deep.equal([api.secrets.writer]);
      // A revoked key: still one lookup, and still a 401.
      lookups.length = 0;
      expect(
        (await api.request("GET", "/v1/batches", { key: api.secrets.revoked })).status,
      ).to.equal(401);
      expect(lookups).to.deep.equal([api.secrets.revoked]);
    } finally {
      api.keys.authenticate = authenticate;
    }
  });
});

import { expect } from "chai";
import { ConfigError, loadConfig } from "../../../services/config.ts";
import { type TestApi, startTestApi } from "./harness.ts";

const CONSOLE = "http://console.example.org:8080";

describe("api: CORS_ORIGINS (the regulator console reading several logs' APIs)", function () {
  this.timeout(30_000);
  let open: TestApi;
  let closed: TestApi;

  before(async () => {
    open = await startTestApi({
      config: { CORS_ORIGINS: `${CONSOLE}, https://regulator.example` },
    });
    closed = await startTestApi();
  });
  after(async () => {
    await open?.close();
    await closed?.close();
  });

  it("answers a configured origin's preflight for a GET with the Authorization header", async () => {
    const res = await open.request("OPTIONS", "/v1/export", {
      headers: {
        origin: CONSOLE,
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
      },
    });
    expect(res.status).to.equal(204);
    expect(res.headers.get("access-control-allow-origin")).to.equal(CONSOLE);
    expect(res.headers.get("access-control-allow-headers")).to.equal("authorization");
    expect(res.headers.get("access-control-allow-methods")).to.equal("GET,HEAD");
    expect(res.headers.get("access-control-allow-credentials")).to.equal(null);
    const get = await open.request("GET", "/v1/status", {
      key: open.secrets.auditor,
      headers: { origin: "https://regulator.example" },
    });
    expect(get.status).to.equal(200);
    expect(get.headers.get("access-control-allow-origin")).to.equal("https://regulator.example");
  });

  it("gives nothing to other origins, and nothing at all when none is configured", async () => {
    const other = await open.request("GET", "/v1/status", {
      key: open.secrets.auditor,
      headers: { origin: "https://evil.example" },
    });
    expect(other.headers.get("access-control-allow-origin")).to.equal(null);
    const none = await closed.request("OPTIONS", "/v1/export", {
      headers: { origin: CONSOLE, "access-control-request-method": "GET" },
    });
    expect(none.headers.get("access-control-allow-origin")).to.equal(null);
    // A write from another origin is never allowed, configured or not.
    const post = await open.request("OPTIONS", "/v1/events", {
      headers: { origin: CONSOLE, "access-control-request-method": "POST" },
    });
    expect(post.headers.get("access-control-allow-methods")).to.not.include("POST");
  });

  it("refuses a value that is not a list of origins, naming it", () => {
    expect(loadConfig({}).CORS_ORIGINS).to.deep.equal([]);
    expect(
      loadConfig({ CORS_ORIGINS: "https://a.example/, http://b:81" }).CORS_ORIGINS,
    ).to.deep.equal(["https://a.example", "http://b:81"]);
    for (const bad of [
      "*",
      "a.example",
      "https://a.example/path",
      "ftp://a.example",
      "https://u:p@a.example",
    ]) {
      let error: unknown;
      try {
        loadConfig({ CORS_ORIGINS: bad });
      } catch (e) {
        error = e;
      }
      expect(error, bad).to.be.instanceOf(ConfigError);
      expect((error as ConfigError).issues[0]!.variable, bad).to.equal("CORS_ORIGINS");
    }
  });
});

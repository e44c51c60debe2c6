import { expect } from "chai";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { type AnchorStatus, createApp } from "../../../../services/api/app.ts";
import { loadConfig } from "../../../../services/config.ts";
import type { AnchorLoopStatus } from "../../../../services/anchoring/anchor-loop.ts";
import { HOSPITAL_ORG } from "../../../fixtures/events.ts";
import { PATIENT_1, type TestApi, eventFor, startTestApi } from "../harness.ts";

// Compile-time check: AnchorLoop.status() can be passed as the statusProvider unchanged.
export const anchorLoopStatusFits: AnchorLoopStatus extends AnchorStatus ? true : never = true;

describe("api routes: health, readiness, metrics, docs, static pages", function () {
  let api: TestApi;
  let webDir: string;
  let status: AnchorStatus;

  before(async () => {
    webDir = await mkdtemp(path.join(tmpdir(), "veritrail-web-"));
    await writeFile(path.join(webDir, "verify.html"), "<!doctype html><title>verify</title>");
    await writeFile(path.join(webDir, "regulator.html"), "<!doctype html><title>regulator</title>");
    await mkdir(path.join(webDir, "dist"));
    await writeFile(path.join(webDir, "dist", "verify.js"), "console.log('verify');");
    status = { state: "running", lagBatches: 0, lagMs: 0, anchoredThrough: 0 };
    api = await startTestApi({ webDir, statusProvider: () => status, batchMaxEvents: 2 });
  });
  after(async () => {
    await api.close();
    await rm(webDir, { recursive: true, force: true });
  });

  it("/healthz → 200 ok without a key", async () => {
    const res = await api.request("GET", "/healthz");
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ status: "ok" });
  });

  it("/readyz reports the ledger and anchoring lag; 503 UNAVAILABLE while the anchor loop is alarmed", async () => {
    status = { state: "backoff", lagBatches: 3, lagMs: 12_000, anchoredThrough: 1 };
    const lagging = await api.request("GET", "/readyz");
    expect(lagging.status).to.equal(200);
    expect(lagging.body).to.deep.equal({
      status: "ready",
      checks: {
        ledger: "open",
        storage: { state: "ok", failures: 0 },
        ingest: {
          unsealedEvents: 0,
          oldestUnsealedMs: 0,
          unanchoredBatches: 0,
          waiting: 0,
          saturated: false,
          maxUnsealedEvents: 50_000,
          // The harness waits 3,600,000 ms per batch: the age bound is two waits.
          maxUnsealedAgeMs: 7_200_000,
          maxUnanchoredBatches: 256,
        },
        anchoring: { state: "backoff", lagBatches: 3, lagMs: 12_000 },
        restore: null,
        lost: { events: 0, batches: 0, ranges: [] },
      },
    });
    status = {
      state: "alarm",
      lagBatches: 3,
      lagMs: 15_000,
      alarm: { code: "FORK_DETECTED", message: "anchored header differs" },
    };
    const alarmed = await api.request("GET", "/readyz");
    expect(alarmed.status).to.equal(503);
    expect(alarmed.body).to.have.nested.property("error.code", "UNAVAILABLE");
    expect(alarmed.body).to.have.nested.property("checks.anchoring.alarm.code", "FORK_DETECTED");
    status = { state: "running", lagBatches: 0, lagMs: 0, anchoredThrough: 2 };
    expect((await api.request("GET", "/readyz")).status).to.equal(200);
  });

  it("/readyz without a status provider → ready with anchoring null", async () => {
    const plain = await startTestApi();
    try {
      const res = await plain.request("GET", "/readyz");
      expect(res.status).to.equal(200);
      expect(res.body).to.have.nested.property("checks.anchoring", null);
      await plain.ledger.close();
      const closed = await plain.request("GET", "/readyz");
      expect(closed.status).to.equal(503);
      expect(closed.body).to.have.nested.property("checks.ledger", "closed");
      // Requests that need the database answer 503, not 500, while it is closed.
      const read = await plain.request("GET", "/v1/events/0", { key: plain.secrets.auditor });
      expect(read.status).to.equal(503);
      expect(read.body).to.have.nested.property("error.code", "UNAVAILABLE");
    } finally {
      await plain.close();
    }
  });

  it("/metrics exposes events ingested, batches sealed and anchoring gauges", async () => {
    status = { state: "running", lagBatches: 4, lagMs: 2_500, anchoredThrough: 7 };
    const posted = await api.request("POST", "/v1/events", {
      key: api.secrets.writer,
      body: [eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(HOSPITAL_ORG, PATIENT_1)],
    });
    expect(posted.status).to.equal(201);
    await api.ledger.sealPending();
    const res = await api.request("GET", "/metrics");
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.match(/^text\/plain/);
    expect(res.text).to.match(/^veritrail_events_ingested_total 2$/m);
    expect(res.text).to.match(/^veritrail_batches_sealed_total [1-9]/m);
    expect(res.text).to.match(/^veritrail_batches_anchored 7$/m);
    expect(res.text).to.match(/^veritrail_anchor_lag_batches 4$/m);
    expect(res.text).to.match(/^veritrail_anchor_lag_seconds 2.5$/m);
    expect(res.text).to.match(/^veritrail_anchor_alarm 0$/m);
    // The request thread's CPU time (this test's ledger seals on it: no worker line).
    const cpu = /^veritrail_thread_cpu_seconds\{thread="main"\} (\S+)$/m.exec(res.text);
    expect(Number(cpu?.[1])).to.be.above(0);
    expect(res.text).to.not.match(/thread="seal-worker"/);
  });

  it("/openapi.json is generated from the request schemas", async () => {
    const res = await api.request("GET", "/openapi.json");
    expect(res.status).to.equal(200);
    const doc = res.body as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { parameters?: Array<{ name: string; in: string; schema: { pattern?: string } }> }
        >
      >;
      components: { schemas: Record<string, unknown> };
    };
    expect(doc.openapi).to.equal("3.1.0");
    expect(Object.keys(doc.paths)).to.include.members([
      "/v1/events",
      "/v1/events/{seq}",
      "/v1/events/{seq}/proof",
      "/v1/batches",
      "/v1/batches/{batchNo}",
      "/v1/keys",
      "/v1/keys/{id}",
      "/v1/verify",
      "/healthz",
      "/readyz",
      "/metrics",
    ]);
    const seq = doc.paths["/v1/events/{seq}"]!["get"]!.parameters!.find((p) => p.name === "seq")!;
    expect(seq.in).to.equal("path");
    expect(seq.schema.pattern).to.equal("^(0|[1-9][0-9]{0,15})$");
    const listParams = doc.paths["/v1/events"]!["get"]!.parameters!.map((p) => p.name);
    expect(listParams).to.have.members([
      "organization",
      "from",
      "to",
      "purpose",
      "type",
      "cursor",
      "limit",
    ]);
    expect(doc.components.schemas).to.include.keys(
      "NativeEvent",
      "FhirAuditEvent",
      "ProofBundle",
      "Error",
      "NewApiKey",
    );
  });

  it("/openapi.json describes every /v1 and operations route the app serves, and no other", async () => {
    const doc = (await api.request("GET", "/openapi.json")).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const app = createApp({
      ledger: api.ledger,
      apiKeys: api.keys,
      logger: pino({ level: "silent" }),
      config: loadConfig({}),
    });
    const router = (
      app as unknown as {
        router: { stack: Array<{ route?: { path: string; methods: Record<string, boolean> } }> };
      }
    ).router;
    const served = router.stack
      .flatMap((layer) =>
        layer.route
          ? Object.keys(layer.route.methods).map(
              (m) => `${m.toUpperCase()} ${layer.route!.path.replace(/:(\w+)/g, "{$1}")}`,
            )
          : [],
      )
      .filter((r) => !/ \/(openapi\.json|docs|verify|patient|regulator)$/.test(r));
    expect(served.sort()).to.deep.equal(documented.sort());
  });

  it("/docs is an HTML page listing every path, without scripts", async () => {
    const res = await api.request("GET", "/docs");
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.match(/^text\/html/);
    expect(res.text).to.include("GET /v1/events/{seq}/proof");
    expect(res.text).to.include("DELETE /v1/keys/{id}");
    expect(res.text).to.not.include("<script");
  });

  it("serves web/verify.html at /verify and web/dist at /assets; absent pages are 404 in the error format", async () => {
    const verify = await api.request("GET", "/verify");
    expect(verify.status).to.equal(200);
    expect(verify.text).to.include("<title>verify</title>");
    const regulator = await api.request("GET", "/regulator");
    expect(regulator.status).to.equal(200);
    expect(regulator.text).to.include("<title>regulator</title>");
    const asset = await api.request("GET", "/assets/verify.js");
    expect(asset.status).to.equal(200);
    expect(asset.text).to.include("console.log");
    const patient = await api.request("GET", "/patient");
    expect(patient.status).to.equal(404);
    expect(patient.body).to.have.nested.property("error.code", "NOT_FOUND");
    const missing = await api.request("GET", "/assets/missing.js");
    expect(missing.status).to.equal(404);
    expect(missing.body).to.have.nested.property("error.code", "NOT_FOUND");
    const traversal = await api.request("GET", "/assets/%2e%2e/verify.html");
    expect(traversal.status).to.be.oneOf([403, 404]);
    expect(traversal.text).to.not.include("<title>verify</title>");
    expect(traversal.body).to.have.nested.property("error.code");
  });

  it("unknown routes and methods → 404 in the error format; helmet headers are set", async () => {
    const res = await api.request("GET", "/v2/events");
    expect(res.status).to.equal(404);
    expect(res.body).to.deep.equal({ error: { code: "NOT_FOUND", message: "no such route" } });
    const put = await api.request("PUT", "/v1/events/0", { key: api.secrets.auditor, body: {} });
    expect(put.status).to.equal(404);
    expect(res.headers.get("x-content-type-options")).to.equal("nosniff");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).to.include("default-src 'self'");
    expect(csp).to.include("script-src 'self'");
    // The verify page fetches a user-chosen RPC endpoint, http or https, as typed.
    expect(csp).to.include("connect-src 'self' http: https:");
    expect(csp).to.not.include("upgrade-insecure-requests");
    expect(res.headers.get("x-powered-by")).to.equal(null);
  });
});

/**
 * Backpressure end to end: the API over a real LevelDB, anchored by the real anchor loop on a
 * Hardhat node. Ingest is driven past each bound (acknowledged-but-unsealed events, then
 * sealed-but-unanchored batches); the API must answer 503 OVERLOADED with Retry-After, store
 * nothing it refused, degrade /readyz and count the refusals, and once sealing and anchoring
 * catch up, every acknowledged event must be sealed and anchored.
 */
import { expect } from "chai";
import { pino } from "pino";
import { createApp } from "../../../services/api/app.ts";
import { type RunningServer, startServer } from "../../../services/api/server.ts";
import { loadConfig } from "../../../services/config.ts";
import type { AnchorLoop } from "../../../services/anchoring/anchor-loop.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import { HOSPITAL_ORG } from "../../fixtures/events.ts";
import { AnchoredLog } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";
import { PATIENT_1, eventFor } from "./harness.ts";

const MAX_UNSEALED = 300;
const MAX_UNANCHORED = 3;
const PER_REQUEST = 100;

interface Answer {
  status: number;
  body: { receipts?: Array<{ receipt: { seq: number; leafHash: string } }> } & {
    error?: { code: string; message: string };
    checks?: { ingest?: { saturated: boolean; unsealedEvents: number; unanchoredBatches: number } };
  };
  retryAfter: string | null;
  text: string;
}

describe("api: backpressure at the backlog bounds (real LevelDB, anchor loop, Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let log: AnchoredLog;
  let loop: AnchorLoop;
  let server: RunningServer;
  let writer: string;

  before(async () => {
    node = await HardhatNode.start();
    log = await AnchoredLog.create(node, {
      // A batch waits for 1,000 events or 1.5 s while the bound is 300 events: sealing lags
      // ingest, so the bound is reached deterministically.
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 1_500,
      ingestLimits: {
        maxUnsealedEvents: MAX_UNSEALED,
        maxUnsealedAgeMs: 60_000,
        maxUnanchoredBatches: MAX_UNANCHORED,
        waitMs: 150,
      },
    });
    log.ledger.expectAnchoring();
    loop = log.loop();
    const keys = ApiKeys.forLedger(log.ledger);
    writer = (await keys.create({ role: "writer", organization: HOSPITAL_ORG })).secret;
    server = await startServer(
      createApp({
        ledger: log.ledger,
        apiKeys: keys,
        logger: pino({ level: "silent" }),
        config: loadConfig({}),
        statusProvider: () => loop.status(),
      }),
      { host: "127.0.0.1", port: 0 },
    );
  });
  after(async () => {
    await server?.close(1_000);
    await loop?.stop();
    await log?.close();
    await node?.stop();
  });

  async function request(method: string, route: string, body?: unknown): Promise<Answer> {
    const res = await fetch(server.url + route, {
      method,
      headers: {
        authorization: `Bearer ${writer}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: Answer["body"] = {};
    try {
      parsed = JSON.parse(text) as Answer["body"];
    } catch {
      // metrics are text
    }
    return { status: res.status, body: parsed, retryAfter: res.headers.get("retry-after"), text };
  }

  const post = () =>
    request(
      "POST",
      "/v1/events",
      Array.from({ length: PER_REQUEST }, () => eventFor(HOSPITAL_ORG, PATIENT_1)),
    );

  const acked: Array<{ seq: number; leafHash: string }> = [];
  const keep = (a: Answer) => {
    expect(a.status, a.text).to.equal(201);
    for (const r of a.body.receipts!) acked.push(r.receipt);
  };

  function expectOverloaded(a: Answer): number {
    expect(a.status, a.text).to.equal(503);
    expect(a.body.error?.code).to.equal("OVERLOADED");
    expect(a.retryAfter, "Retry-After header").to.match(/^[1-9][0-9]*$/);
    return Number(a.retryAfter);
  }

  /** Posts until one is acknowledged (a client honouring 503s), counting the refusals. */
  async function postUntilAccepted(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let refused = 0;
    for (;;) {
      const a = await post();
      if (a.status === 201) {
        keep(a);
        return refused;
      }
      expectOverloaded(a);
      refused++;
      expect(Date.now(), "ingest resumes once the backlog drains").to.be.below(deadline);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it("refuses past the unsealed-events bound with 503 + Retry-After, stores nothing, degrades /readyz", async () => {
    for (let i = 0; i < MAX_UNSEALED / PER_REQUEST; i++) keep(await post());
    expect((await request("GET", "/readyz")).body.checks?.ingest?.saturated).to.equal(true);

    const refused = await post();
    expectOverloaded(refused);
    expect(refused.body.error?.message).to.match(/waiting to be sealed/);
    expect(log.ledger.nextSeq, "a refused request stores nothing").to.equal(MAX_UNSEALED);

    const ready = await request("GET", "/readyz");
    expect(ready.status).to.equal(503);
    expect(ready.body.checks?.ingest).to.include({ saturated: true, unsealedEvents: MAX_UNSEALED });
    const metrics = (await request("GET", "/metrics")).text;
    expect(metrics).to.match(/^veritrail_ingest_refused_total\{bound="unsealed-events"\} 1$/m);
    expect(metrics).to.match(new RegExp(`^veritrail_unsealed_events ${MAX_UNSEALED}$`, "m"));
    expect(metrics).to.match(/^veritrail_ingest_saturated 1$/m);
    expect(metrics).to.match(/^veritrail_unsealed_age_seconds (0\.\d+|1(\.\d+)?)$/m);

    // The batch timer seals the backlog; writes are then accepted again.
    await postUntilAccepted(15_000);
    expect(log.ledger.sealedThrough).to.be.at.least(MAX_UNSEALED);
    expect((await request("GET", "/readyz")).status).to.equal(200);
  });

  it("refuses past the unanchored-batches bound while nothing anchors, resumes when anchoring does", async () => {
    // Batch 0 is sealed; seal two more while the anchor loop is not running (chain out of reach).
    await log.ledger.sealPending();
    keep(await post());
    await log.ledger.sealPending();
    expect(log.ledger.backlog().unanchoredBatches).to.equal(MAX_UNANCHORED);

    const refused = await post();
    expectOverloaded(refused);
    expect(refused.body.error?.message).to.match(/waiting to be anchored/);
    const ready = await request("GET", "/readyz");
    expect(ready.status).to.equal(503);
    expect(ready.body.checks?.ingest).to.include({ unanchoredBatches: MAX_UNANCHORED });
    expect((await request("GET", "/metrics")).text).to.match(
      /^veritrail_ingest_refused_total\{bound="unanchored-batches"\} 1$/m,
    );

    loop.start();
    await postUntilAccepted(60_000);
  });

  it("every acknowledged event is sealed and anchored, with the receipt it was given", async () => {
    expect(log.ledger.nextSeq, "only acknowledged events were stored").to.equal(acked.length);
    await log.ledger.sealPending();
    await loop.waitForAnchored(await log.ledger.lastBatchNo(), 60_000);
    for (const r of acked) {
      const bundle = await log.ledger.prove(r.seq);
      expect(bundle.status, `seq ${r.seq}`).to.equal("anchored");
      expect(bundle.anchor, `seq ${r.seq}`).to.not.equal(null);
      expect(bundle.receipt.leafHash).to.equal(r.leafHash);
    }
    expect(log.ledger.backlog()).to.include({
      unsealedEvents: 0,
      unanchoredBatches: 0,
      saturated: false,
    });
    expect((await request("GET", "/readyz")).status).to.equal(200);
  });
});

import { expect } from "chai";
import { pino } from "pino";
import { createApp } from "../../../../services/api/app.ts";
import { startServer } from "../../../../services/api/server.ts";
import { loadConfig } from "../../../../services/config.ts";
import { type Entry, entryLeafHash } from "../../../../services/core/entry.ts";
import { type Hex, fromHex } from "../../../../services/core/hex.ts";
import { verifyCompleteness } from "../../../../services/core/subject-index-proof.ts";
import type { AuditReport } from "../../../../services/ledger/audit.ts";
import type { PatientHistory } from "../../../../services/ledger/patient-history.ts";
import { K } from "../../../../services/store/keys.ts";
import { HOSPITAL_ORG } from "../../../fixtures/events.ts";
import { PATIENT_1, PATIENT_2, type TestApi, eventFor, startTestApi } from "../harness.ts";

/** Marks every sealed batch anchored (the route only reads the record; the chain is not asked). */
async function markAnchored(api: TestApi): Promise<void> {
  const batches = await api.ledger.listBatches({ limit: 1_000 });
  for (const record of batches) {
    if (record.state === "anchored") continue;
    await api.ledger.saveBatchState({
      ...record,
      state: "anchored",
      anchor: {
        chainId: 31337,
        contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        txHash: `0x${"ab".repeat(32)}`,
        blockNumber: 7 + record.header.batchNo,
        blockHash: `0x${"cd".repeat(32)}`,
        gasUsed: 60_000,
        anchoredAt: new Date().toISOString(),
      },
    });
  }
}

describe("api routes: GET /v1/patient/history, POST /v1/audit", function () {
  this.timeout(30_000);
  let api: TestApi;
  let tag1: Hex;
  let tag2: Hex;

  before(async () => {
    api = await startTestApi();
    tag1 = api.ledger.subjectTagOf(PATIENT_1);
    tag2 = api.ledger.subjectTagOf(PATIENT_2);
    await api.ledger.ingest([
      eventFor(HOSPITAL_ORG, PATIENT_1),
      eventFor(HOSPITAL_ORG, PATIENT_2),
      eventFor(HOSPITAL_ORG, PATIENT_1, { purposeOfUse: ["PATRQT"] }),
      eventFor(HOSPITAL_ORG, null),
    ]);
    await api.ledger.sealPending();
    await markAnchored(api);
    await api.ledger.ingest([eventFor(HOSPITAL_ORG, PATIENT_1)]);
  });

  after(async () => {
    await api?.close();
  });

  const history = (key: string, query = "") =>
    api.request("GET", `/v1/patient/history${query}`, { key });

  it("a patient gets their own history: covered events, later ones apart, a proof that verifies", async () => {
    const res = await history(api.secrets.patient1);
    expect(res.status, res.text).to.equal(200);
    expect(res.headers.get("cache-control")).to.equal("no-store");
    const h = res.body as PatientHistory;
    expect(h.subjectTag).to.equal(tag1);
    expect(h.asOf?.batch.batchNo).to.equal(0);
    expect(h.asOf?.anchor.blockNumber).to.equal(7);
    expect(h.events.map((e) => e.seq)).to.deep.equal([0, 2]);
    expect(h.notYetCovered.map((e) => [e.seq, e.bundle.status])).to.deep.equal([[4, "unsealed"]]);
    expect(h.events[1]!.event?.purposeOfUse).to.deep.equal(["PATRQT"]);
    const result = verifyCompleteness({
      indexRoot: fromHex(h.asOf!.batch.indexRoot),
      subjectTag: fromHex(tag1),
      events: h.events.map((e) => ({
        seq: e.seq,
        leafHash: entryLeafHash(e.bundle.entry as Entry),
      })),
      proof: h.proof!,
    });
    expect(result).to.deep.equal({ ok: true, count: 2 });
  });

  it("hides staff names from the patient by default; the auditor sees them", async () => {
    const patient = (await history(api.secrets.patient1)).body as PatientHistory;
    const agents = patient.events[0]!.event!.agents;
    expect(agents.length).to.be.greaterThan(0);
    expect(agents.every((a) => a.who === undefined && a.userName === undefined)).to.equal(true);
    expect(agents.every((a) => typeof a.organization === "string")).to.equal(true);
    const auditor = (await history(api.secrets.auditor, `?subject=${tag1}`)).body as PatientHistory;
    expect(auditor.events[0]!.event!.agents.every((a) => a.who !== undefined)).to.equal(true);
  });

  it("a patient may name their own subject, never another's (403)", async () => {
    expect((await history(api.secrets.patient1, `?subject=${tag1}`)).status).to.equal(200);
    const res = await history(api.secrets.patient1, `?subject=${tag2}`);
    expect(res.status).to.equal(403);
    expect(res.body).to.deep.equal({
      error: {
        code: "FORBIDDEN",
        message: "a patient key reads only its own history",
        field: "subject",
      },
    });
  });

  it("an auditor must name a well-formed subject (400 naming the field)", async () => {
    const none = await history(api.secrets.auditor);
    expect(none.status).to.equal(400);
    expect(none.body).to.have.nested.property("error.field", "subject");
    const bad = await history(api.secrets.auditor, "?subject=0xABC");
    expect(bad.status).to.equal(400);
    expect(bad.body).to.have.nested.property("error.code", "VALIDATION_FAILED");
    const extra = await history(api.secrets.auditor, `?subject=${tag2}&x=1`);
    expect(extra.status).to.equal(400);
    const other = (await history(api.secrets.auditor, `?subject=${tag2}`)).body as PatientHistory;
    expect(other.events.map((e) => e.seq)).to.deep.equal([1]);
  });

  it("denies writers and admins (403) and callers without a key (401)", async () => {
    for (const key of [api.secrets.writer, api.secrets.admin]) {
      const res = await history(key, `?subject=${tag1}`);
      expect(res.status).to.equal(403);
      expect(res.body).to.have.nested.property("error.code", "FORBIDDEN");
    }
    expect((await api.request("GET", "/v1/patient/history")).status).to.equal(401);
    expect((await history(api.secrets.revoked, `?subject=${tag1}`)).status).to.equal(401);
  });

  it("a patient with no events gets an empty, provable history", async () => {
    const secret = (await api.keys.create({ role: "patient", patient: { value: "NOBODY-1" } }))
      .secret;
    const h = (await history(secret)).body as PatientHistory;
    expect(h.events).to.deep.equal([]);
    const result = verifyCompleteness({
      indexRoot: fromHex(h.asOf!.batch.indexRoot),
      subjectTag: fromHex(h.subjectTag),
      events: [],
      proof: h.proof!,
    });
    expect(result).to.deep.equal({ ok: true, count: 0 });
  });

  it("POST /v1/audit: the auditor gets a clean report of this log", async () => {
    const res = await api.request("POST", "/v1/audit", { key: api.secrets.auditor });
    expect(res.status, res.text).to.equal(200);
    const report = res.body as AuditReport;
    expect(report.ok).to.equal(true);
    expect(report).to.include({ events: 5, batches: 1, findingCount: 0, logId: api.ledger.logId });
    expect(report.chain).to.equal(null);
  });

  it("POST /v1/audit reports tampering", async () => {
    const key = K.body(2);
    const original = (await api.ledger.store.getRaw(key))!;
    const plain = (await api.ledger.store.getBodiesJson([2]))[0]!;
    const body = JSON.parse(plain.toString("utf8")) as { event: { purposeOfUse: string[] } };
    body.event.purposeOfUse = ["TREAT"];
    await api.ledger.store.write([{ type: "put", key, value: Buffer.from(JSON.stringify(body)) }]);
    try {
      const report = (await api.request("POST", "/v1/audit", { key: api.secrets.auditor }))
        .body as AuditReport;
      expect(report.ok).to.equal(false);
      expect(report.findings).to.deep.equal([
        {
          seq: 2,
          kind: "COMMITMENT_MISMATCH",
          message: "body 2 does not match the entry's commitment",
        },
      ]);
    } finally {
      await api.ledger.store.write([{ type: "put", key, value: original }]);
    }
  });

  it("POST /v1/audit is for auditors only (403 for every other role, 401 without a key)", async () => {
    for (const key of [api.secrets.admin, api.secrets.writer, api.secrets.patient1]) {
      const res = await api.request("POST", "/v1/audit", { key });
      expect(res.status).to.equal(403);
    }
    expect((await api.request("POST", "/v1/audit")).status).to.equal(401);
  });

  it("POST /v1/audit refuses a log above its size limit (413 TOO_MANY_EVENTS)", async () => {
    const app = createApp({
      ledger: api.ledger,
      apiKeys: api.keys,
      logger: pino({ level: "silent" }),
      config: loadConfig({}),
      audit: { maxEvents: 3 },
    });
    const server = await startServer(app, { host: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`${server.url}/v1/audit`, {
        method: "POST",
        headers: { authorization: `Bearer ${api.secrets.auditor}` },
      });
      expect(res.status).to.equal(413);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).to.equal("TOO_MANY_EVENTS");
      expect(body.error.message).to.include("veritrail audit");
    } finally {
      await server.close(1_000);
    }
  });
});

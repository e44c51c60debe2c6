import { ingestAtTheirTimes } from "../../../support/log-clock.ts";
import { expect } from "chai";
import { K } from "../../../../services/store/keys.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../../fixtures/events.ts";
import { parseCsv } from "../../ledger/rfc4180.ts";
import { PATIENT_1, PATIENT_2, type TestApi, eventFor, startTestApi } from "../harness.ts";

type ErrorBody = { error: { code: string; message: string; field?: string } };

function errorOf(body: unknown): ErrorBody["error"] {
  expect(body).to.have.property("error");
  return (body as ErrorBody).error;
}

describe("api routes: erasure, reports, export", function () {
  let api: TestApi;
  let tag1: string;
  let tag2: string;
  const seqs: Record<string, number> = {};

  before(async () => {
    api = await startTestApi();
    tag1 = api.ledger.subjectTagOf(PATIENT_1);
    tag2 = api.ledger.subjectTagOf(PATIENT_2);
    const exportPub = {
      ...makeBalpNativeEvent("PrivacyDisclosureSource"),
      patient: PATIENT_1,
      purposeOfUse: ["PUBHLTH"],
      requestId: "compliance-export-1",
    };
    const exportTreat = { ...exportPub, purposeOfUse: ["TREAT"], requestId: "compliance-export-2" };
    const named: Array<[string, ReturnType<typeof eventFor>]> = [
      ["read1", eventFor(HOSPITAL_ORG, PATIENT_1)],
      ["lab2", eventFor(LAB_ORG, PATIENT_2)],
      ["exportPub", exportPub],
      ["exportTreat", exportTreat],
      ["toErase", eventFor(HOSPITAL_ORG, PATIENT_1, { recorded: "2024-05-02T00:00:00.000Z" })],
      ["late", eventFor(LAB_ORG, PATIENT_1, { recorded: "2025-01-01T00:00:00.000Z" })],
    ];
    const results = await ingestAtTheirTimes(
      api.ledger,
      api.clock,
      named.map(([, e]) => e),
    );
    named.forEach(([k], i) => (seqs[k] = results[i]!.receipt.seq));
  });
  after(async () => {
    await api.close();
  });

  describe("POST /v1/events/:seq/erasure", () => {
    const body = { legalBasis: "GDPR Art. 17(1)(a)", reason: "patient request 2024-117" };

    it("only an admin may erase: auditor, writers, patients → 403; no key → 401; revoked → 401", async () => {
      const route = `/v1/events/${seqs["toErase"]}/erasure`;
      for (const key of [
        api.secrets.auditor,
        api.secrets.writer,
        api.secrets.otherWriter,
        api.secrets.patient1,
      ]) {
        const res = await api.request("POST", route, { key, body });
        expect(res.status).to.equal(403);
        expect(errorOf(res.body).code).to.equal("FORBIDDEN");
      }
      expect((await api.request("POST", route, { body })).status).to.equal(401);
      expect(
        (await api.request("POST", route, { key: api.secrets.revoked, body })).status,
      ).to.equal(401);
      expect((await api.ledger.getEvent(seqs["toErase"]!)).event).to.not.equal(null);
    });

    it("bad input → 400 naming the field, 415 for another media type, 404 for an unknown seq", async () => {
      const route = `/v1/events/${seqs["toErase"]}/erasure`;
      const key = api.secrets.admin;
      const missing = await api.request("POST", route, { key, body: { reason: "x" } });
      expect(missing.status).to.equal(400);
      expect(errorOf(missing.body).field).to.equal("legalBasis");
      const long = await api.request("POST", route, {
        key,
        body: { legalBasis: "x".repeat(257), reason: "y" },
      });
      expect(errorOf(long.body).field).to.equal("legalBasis");
      const extra = await api.request("POST", route, { key, body: { ...body, seq: 1 } });
      expect(extra.status).to.equal(400);
      expect(errorOf(extra.body).code).to.equal("VALIDATION_FAILED");
      const malformed = await api.request("POST", route, { key, raw: "{nope" });
      expect(errorOf(malformed.body).code).to.equal("MALFORMED_JSON");
      const text = await api.request("POST", route, { key, raw: "x", type: "text/plain" });
      expect(text.status).to.equal(415);
      const unknown = await api.request("POST", "/v1/events/999999/erasure", { key, body });
      expect(unknown.status).to.equal(404);
      const badSeq = await api.request("POST", "/v1/events/-1/erasure", { key, body });
      expect(badSeq.status).to.equal(400);
      expect((await api.ledger.getEvent(seqs["toErase"]!)).event).to.not.equal(null);
    });

    it("admin → 201 with the tombstone; the event reads as erased; a second call → 409", async () => {
      const seq = seqs["toErase"]!;
      const res = await api.request("POST", `/v1/events/${seq}/erasure`, {
        key: api.secrets.admin,
        body,
      });
      expect(res.status).to.equal(201);
      const out = res.body as {
        tombstone: { seq: number; legalBasis: string; keyId: string; erasedAt: string };
        receipt: { seq: number };
      };
      expect(out.tombstone).to.include({ seq, legalBasis: body.legalBasis });
      expect(out.tombstone.keyId).to.match(/^key_[0-9a-f]{16}$/);
      expect(out.receipt.seq).to.equal(api.ledger.nextSeq - 1);
      expect(await api.ledger.store.getRaw(K.body(seq))).to.equal(undefined);

      const view = await api.request("GET", `/v1/events/${seq}`, { key: api.secrets.auditor });
      expect(view.body).to.deep.include({ seq, event: null, erased: true });
      const proof = await api.request("GET", `/v1/events/${seq}/proof`, {
        key: api.secrets.patient1,
      });
      expect(proof.body).to.deep.include({ event: null, salt: null });

      const again = await api.request("POST", `/v1/events/${seq}/erasure`, {
        key: api.secrets.admin,
        body,
      });
      expect(again.status).to.equal(409);
      expect(errorOf(again.body).code).to.equal("CONFLICT");
    });
  });

  describe("GET /v1/reports/disclosures and /v1/reports/accesses", () => {
    it("a patient gets their own accounting: PUBHLTH export listed, TREAT export and reads left out", async () => {
      const res = await api.request("GET", "/v1/reports/disclosures", {
        key: api.secrets.patient1,
      });
      expect(res.status).to.equal(200);
      const report = res.body as { subject: string; disclosures: Array<{ seq: number }> };
      expect(report.subject).to.equal(tag1);
      expect(report.disclosures.map((d) => d.seq)).to.deep.equal([seqs["exportPub"]]);
    });

    it("a patient may not name another subject; writers and admins may not ask", async () => {
      const other = await api.request("GET", `/v1/reports/disclosures?subject=${tag2}`, {
        key: api.secrets.patient1,
      });
      expect(other.status).to.equal(403);
      const own = await api.request("GET", `/v1/reports/accesses?subject=${tag1}`, {
        key: api.secrets.patient1,
      });
      expect(own.status).to.equal(200);
      for (const key of [api.secrets.writer, api.secrets.admin]) {
        for (const route of ["/v1/reports/disclosures", "/v1/reports/accesses"]) {
          const res = await api.request("GET", `${route}?subject=${tag1}`, { key });
          expect(res.status).to.equal(403);
        }
      }
      expect((await api.request("GET", "/v1/reports/accesses")).status).to.equal(401);
    });

    it("an auditor names the subject (required, a subjectTag); bad parameters → 400", async () => {
      const none = await api.request("GET", "/v1/reports/accesses", { key: api.secrets.auditor });
      expect(none.status).to.equal(400);
      expect(errorOf(none.body).field).to.equal("subject");
      const bad = await api.request("GET", "/v1/reports/accesses?subject=PAT-111-2222", {
        key: api.secrets.auditor,
      });
      expect(bad.status).to.equal(400);
      expect(bad.text).to.not.include("PAT-111-2222");
      const fmt = await api.request("GET", `/v1/reports/accesses?subject=${tag1}&format=xml`, {
        key: api.secrets.auditor,
      });
      expect(errorOf(fmt.body).field).to.equal("format");
      const empty = await api.request(
        "GET",
        `/v1/reports/accesses?subject=${tag1}&from=2025-01-01T00:00:00Z&to=2024-01-01T00:00:00Z`,
        { key: api.secrets.auditor },
      );
      expect(empty.status).to.equal(400);
      const res = await api.request("GET", `/v1/reports/accesses?subject=${tag2}`, {
        key: api.secrets.auditor,
      });
      const report = res.body as { accesses: Array<{ seq: number; organization: string }> };
      expect(report.accesses.map((a) => a.seq)).to.deep.equal([seqs["lab2"]]);
    });

    it("access report: every access of the patient with proof URLs; from/to narrow it; staff hidden from patients", async () => {
      const res = await api.request("GET", "/v1/reports/accesses", { key: api.secrets.patient1 });
      const report = res.body as {
        accesses: Array<{ seq: number; proof: string; agents: Array<{ who?: string }> }>;
      };
      expect(report.accesses.map((a) => a.seq)).to.deep.equal(
        ["read1", "exportPub", "exportTreat", "toErase", "late"].map((k) => seqs[k]),
      );
      for (const a of report.accesses) {
        expect(a.proof).to.equal(`/v1/events/${a.seq}/proof`);
        expect(a.agents.every((g) => g.who === undefined)).to.equal(true);
      }
      expect(res.text).to.not.include("Dr. Anna Weber");
      const narrow = await api.request(
        "GET",
        "/v1/reports/accesses?from=2024-12-01T00:00:00Z&to=2025-02-01T00:00:00Z",
        { key: api.secrets.patient1 },
      );
      expect((narrow.body as typeof report).accesses.map((a) => a.seq)).to.deep.equal([
        seqs["late"],
      ]);
      const audited = await api.request("GET", `/v1/reports/accesses?subject=${tag1}`, {
        key: api.secrets.auditor,
      });
      expect(audited.text).to.include("Dr. Anna Weber");
    });

    it("?format=csv is text/csv that parses back as a table with one row per line of the JSON", async () => {
      for (const route of ["/v1/reports/disclosures", "/v1/reports/accesses"]) {
        const json = await api.request("GET", route, { key: api.secrets.patient1 });
        const csv = await api.request("GET", `${route}?format=csv`, { key: api.secrets.patient1 });
        expect(csv.status).to.equal(200);
        expect(csv.headers.get("content-type")).to.match(/^text\/csv/);
        expect(csv.headers.get("content-disposition")).to.match(/^attachment; filename=".+\.csv"$/);
        const table = parseCsv(csv.text);
        const rows = (json.body as { disclosures?: unknown[]; accesses?: unknown[] })[
          route.endsWith("disclosures") ? "disclosures" : "accesses"
        ]!;
        expect(table).to.have.length(rows.length + 1);
        const proofCol = table[0]!.indexOf("proof");
        for (const r of table.slice(1)) expect(r[proofCol]).to.equal(`/v1/events/${r[0]}/proof`);
      }
    });
  });

  describe("GET /v1/export", () => {
    const lines = (text: string) =>
      text
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { format: string; entry: { seq: number }; event: unknown });

    it("auditor: NDJSON of every bundle, in log order, erased ones with event null", async () => {
      const res = await api.request("GET", "/v1/export", { key: api.secrets.auditor });
      expect(res.status).to.equal(200);
      expect(res.headers.get("content-type")).to.match(/^application\/x-ndjson/);
      expect(res.text.endsWith("\n")).to.equal(true);
      const bundles = lines(res.text);
      expect(bundles.map((b) => b.entry.seq)).to.deep.equal(
        Array.from({ length: api.ledger.nextSeq }, (_, i) => i),
      );
      expect(bundles.every((b) => b.format === "veritrail-proof/1")).to.equal(true);
      const erasedSeq = seqs["toErase"]!;
      expect(bundles[erasedSeq]!.event).to.equal(null);
      expect(bundles[erasedSeq]).to.deep.equal(
        JSON.parse(JSON.stringify(await api.ledger.prove(erasedSeq))),
      );
    });

    it("organization, from and to narrow the export", async () => {
      const lab = await api.request("GET", `/v1/export?organization=${LAB_ORG}`, {
        key: api.secrets.auditor,
      });
      expect(lines(lab.text).map((b) => b.entry.seq)).to.deep.equal([seqs["lab2"], seqs["late"]]);
      const late = await api.request("GET", "/v1/export?from=2024-12-01T00:00:00Z", {
        key: api.secrets.auditor,
      });
      const lateSeqs = lines(late.text).map((b) => b.entry.seq);
      expect(lateSeqs).to.include(seqs["late"]);
      expect(lateSeqs).to.not.include(seqs["read1"]);
      const early = await api.request(
        "GET",
        "/v1/export?from=2024-01-01T00:00:00Z&to=2024-05-02T00:00:00Z",
        { key: api.secrets.auditor },
      );
      expect(lines(early.text).map((b) => b.entry.seq)).to.not.include(seqs["late"]);
    });

    it("a client that goes away mid-stream does not hurt the server; the next export is whole", async () => {
      await api.ledger.ingest(Array.from({ length: 600 }, () => eventFor(HOSPITAL_ORG, PATIENT_2)));
      const abort = new AbortController();
      const res = await fetch(`${api.url}/v1/export`, {
        headers: { authorization: `Bearer ${api.secrets.auditor}` },
        signal: abort.signal,
      });
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(first.done).to.equal(false);
      abort.abort();
      await reader.closed.catch(() => undefined);
      const health = await api.request("GET", "/healthz");
      expect(health.status).to.equal(200);
      const whole = await api.request("GET", "/v1/export", { key: api.secrets.auditor });
      expect(lines(whole.text)).to.have.length(api.ledger.nextSeq);
    });

    it("only auditors export; bad parameters → 400", async () => {
      for (const key of [api.secrets.admin, api.secrets.writer, api.secrets.patient1]) {
        expect((await api.request("GET", "/v1/export", { key })).status).to.equal(403);
      }
      expect((await api.request("GET", "/v1/export")).status).to.equal(401);
      const bad = await api.request("GET", "/v1/export?from=yesterday", {
        key: api.secrets.auditor,
      });
      expect(bad.status).to.equal(400);
      expect(errorOf(bad.body).field).to.equal("from");
      const unknown = await api.request("GET", "/v1/export?subject=x", {
        key: api.secrets.auditor,
      });
      expect(unknown.status).to.equal(400);
    });
  });
});

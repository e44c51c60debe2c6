import { expect } from "chai";
import { HOSPITAL_ORG } from "../../../fixtures/events.ts";
import { PATIENT_1, type TestApi, eventFor, startTestApi } from "../harness.ts";

type Verdict = {
  ok: boolean;
  status: string;
  code?: string;
  checks: Array<{ step: string; ok: unknown }>;
};

describe("api routes: verify", function () {
  let api: TestApi;
  before(async () => {
    api = await startTestApi();
    await api.ledger.ingest([eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(HOSPITAL_ORG, PATIENT_1)]);
  });
  after(async () => {
    await api.close();
  });

  it("an unanchored bundle: the chain is asked whatever its status says (unreachable here: error); a tampered one fails", async () => {
    const proof = await api.request("GET", "/v1/events/0/proof", { key: api.secrets.patient1 });
    const pending = await api.request("POST", "/v1/verify", {
      key: api.secrets.patient1,
      body: proof.body,
    });
    expect(pending.status).to.equal(200);
    expect(pending.body).to.include({ ok: false, status: "error", code: "RPC_ERROR" });
    const tampered = structuredClone(proof.body) as { event: { action: string } };
    tampered.event.action = "D";
    const failed = await api.request("POST", "/v1/verify", {
      key: api.secrets.patient1,
      body: tampered,
    });
    expect(failed.status).to.equal(200);
    expect(failed.body).to.include({ ok: false, status: "failed" });
    const commitment = (failed.body as Verdict).checks.find((c) => c.step === "commitment");
    expect(commitment?.ok).to.equal(false);
  });

  it("not a bundle → 200 failed verdict; malformed JSON → 400; wrong type → 415; too big → 413", async () => {
    const notBundle = await api.request("POST", "/v1/verify", {
      key: api.secrets.auditor,
      body: { hello: 1 },
    });
    expect(notBundle.status).to.equal(200);
    expect(notBundle.body).to.include({ ok: false, status: "failed" });
    const malformed = await api.request("POST", "/v1/verify", {
      key: api.secrets.auditor,
      raw: "{",
    });
    expect(malformed.status).to.equal(400);
    expect(malformed.body).to.have.nested.property("error.code", "MALFORMED_JSON");
    const type = await api.request("POST", "/v1/verify", {
      key: api.secrets.auditor,
      raw: "{}",
      type: "text/plain",
    });
    expect(type.status).to.equal(415);
    const big = await api.request("POST", "/v1/verify", {
      key: api.secrets.auditor,
      raw: JSON.stringify({ pad: "x".repeat(300 * 1024) }),
    });
    expect(big.status).to.equal(413);
  });

  it("{ bundle, trust }: the caller's policy applies (UNKNOWN_LOG here); a bad policy → 400 naming the field", async () => {
    const proof = await api.request("GET", "/v1/events/0/proof", { key: api.secrets.auditor });
    const trust = {
      format: "veritrail-trust/1",
      issuer: "Another regulator",
      registries: [
        { chainId: 31337, address: "0x5fbdb2315678afecb367f032d93f642f64180aa3", confirmations: 1 },
      ],
      logs: [
        {
          chainId: 31337,
          registry: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
          logId: `0x${"ab".repeat(32)}`,
          operator: "Someone else",
        },
      ],
    };
    const other = await api.request("POST", "/v1/verify", {
      key: api.secrets.auditor,
      body: { bundle: proof.body, trust },
    });
    expect(other.status).to.equal(200);
    expect(other.body).to.include({ ok: false, status: "failed", code: "UNKNOWN_LOG" });
    const bad = await api.request("POST", "/v1/verify", {
      key: api.secrets.auditor,
      body: { bundle: proof.body, trust: { ...trust, format: "veritrail-trust/2" } },
    });
    expect(bad.status).to.equal(400);
    expect(bad.body).to.have.nested.property("error.field", "trust.format");
  });

  it("GET /.well-known/veritrail-trust.json without a registered log → 503, never a made-up policy", async () => {
    const res = await api.request("GET", "/.well-known/veritrail-trust.json", {});
    expect(res.status).to.equal(503);
    expect(res.body).to.have.nested.property("error.code", "UNAVAILABLE");
  });

  it("without a configured verifier → 503 UNAVAILABLE", async () => {
    const bare = await startTestApi({ verifier: false });
    try {
      const res = await bare.request("POST", "/v1/verify", { key: bare.secrets.auditor, body: {} });
      expect(res.status).to.equal(503);
      expect(res.body).to.have.nested.property("error.code", "UNAVAILABLE");
    } finally {
      await bare.close();
    }
  });
});

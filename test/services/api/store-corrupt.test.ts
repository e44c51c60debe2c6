import { expect } from "chai";
import { K } from "../../../services/store/keys.ts";
import { HOSPITAL_ORG } from "../../fixtures/events.ts";
import { PATIENT_1, type TestApi, eventFor, startTestApi } from "./harness.ts";

/**
 * Damaged storage is a typed error: a stored value that does not decode is answered 500
 * STORE_CORRUPT naming the record's key (never a raw SyntaxError or TypeError, never INTERNAL),
 * and counted in veritrail_store_corrupt_total by record kind.
 */
describe("api: a damaged stored record is 500 STORE_CORRUPT, named and counted", function () {
  this.timeout(60_000);
  let api: TestApi;

  before(async () => {
    api = await startTestApi({ batchMaxEvents: 4 });
    await api.ledger.ingest([
      eventFor(HOSPITAL_ORG, PATIENT_1),
      eventFor(HOSPITAL_ORG, PATIENT_1),
      eventFor(HOSPITAL_ORG, PATIENT_1),
      eventFor(HOSPITAL_ORG, PATIENT_1),
    ]);
    await api.ledger.sealPending();
  });
  after(async () => {
    await api?.close();
  });

  /** Writes `value` under `key`, runs `check`, puts the original back. */
  async function withValue(key: string, value: Buffer, check: () => Promise<void>) {
    const store = api.ledger.store;
    const original = (await store.getRaw(key))!;
    await store.write([{ type: "put", key, value }]);
    try {
      await check();
    } finally {
      await store.write([{ type: "put", key, value: original }]);
    }
  }

  const cases: Array<{
    what: string;
    key: string;
    damage: (raw: Buffer) => Buffer;
    message: RegExp;
  }> = [
    {
      what: "an entry that is not JSON",
      key: K.entry(1),
      damage: (raw) =>
        Buffer.concat([raw.subarray(0, 10), Buffer.from("\u0000"), raw.subarray(11)]),
      message: /^stored record e:0+1 is corrupt: not JSON/,
    },
    {
      what: "an entry of the wrong shape (JSON, a field renamed)",
      key: K.entry(1),
      damage: (raw) => Buffer.from(raw.toString("utf8").replace('"seq"', '"saq"')),
      message: /^stored record e:0+1 is corrupt: /,
    },
    {
      what: "a batch record with a flipped digit (its digest no longer matches)",
      key: K.batch(0),
      damage: (raw) => {
        const text = raw.toString("utf8");
        const at = text.indexOf('"sealedAt":"') + '"sealedAt":"'.length + 3;
        return Buffer.from(text.slice(0, at) + (text[at] === "6" ? "7" : "6") + text.slice(at + 1));
      },
      message:
        /^stored record k:0+ is corrupt: its digest 0x[0-9a-f]{64} does not match its content/,
    },
    {
      what: "a batch record cut short",
      key: K.batch(0),
      damage: (raw) => raw.subarray(0, raw.length - 5),
      message: /^stored record k:0+ is corrupt: not JSON/,
    },
    {
      what: "a sealed body altered on disk",
      key: K.body(1),
      damage: (raw) => {
        const out = Buffer.from(raw);
        out[out.length - 3] = out[out.length - 3]! ^ 0x40;
        return out;
      },
      message:
        /^stored record b:0+1 is corrupt: it cannot be opened: it does not open under its key/,
    },
  ];

  for (const c of cases)
    it(`${c.what}: GET /v1/events/1/proof answers 500 STORE_CORRUPT naming ${c.key}`, async () => {
      const raw = (await api.ledger.store.getRaw(c.key))!;
      await withValue(c.key, c.damage(raw), async () => {
        const res = await api.request("GET", "/v1/events/1/proof", { key: api.secrets.auditor });
        expect(res.status, res.text).to.equal(500);
        const body = res.body as { error: { code: string; message: string } };
        expect(body.error.code).to.equal("STORE_CORRUPT");
        expect(body.error.message).to.match(c.message);
        expect(res.text).to.not.match(/SyntaxError|TypeError|at .*\.ts:/);
      });
      // Restored: answered again.
      const again = await api.request("GET", "/v1/events/1/proof", { key: api.secrets.auditor });
      expect(again.status).to.equal(200);
    });

  it("counts them by record kind in /metrics and logs the key, not the value", async () => {
    const metrics = (await api.request("GET", "/metrics")).text;
    expect(metrics).to.match(/^veritrail_store_corrupt_total\{record="entry"\} 2$/m);
    expect(metrics).to.match(/^veritrail_store_corrupt_total\{record="batch"\} 2$/m);
    expect(metrics).to.match(/^veritrail_store_corrupt_total\{record="body"\} 1$/m);
    const logged = api.logs.filter((l) => l.includes("stored record is corrupt"));
    expect(logged).to.have.length(5);
    expect(logged[0]).to.include('"record":"entry"');
    expect(logged.join("\n")).to.not.include(PATIENT_1.value);
  });
});

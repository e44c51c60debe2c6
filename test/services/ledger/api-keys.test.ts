import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { subjectTag } from "../../../services/core/entry.ts";
import { fromHex } from "../../../services/core/hex.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import type { LedgerError } from "../../../services/ledger/errors.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";

async function assertRejects(p: Promise<unknown>, message: RegExp): Promise<void> {
  const outcome = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(String(outcome)).to.match(message);
}

describe("ledger api keys (real LevelDB)", () => {
  let dir: string;
  let ledger: Ledger;
  let keys: ApiKeys;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-keys-"));
    ledger = await Ledger.open({
      location: path.join(dir, "db"),
      receiptSigner: new Wallet("0x" + "33".repeat(32)),
      batchMaxEvents: 100,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 100,
    });
    keys = ApiKeys.forLedger(ledger);
  });
  afterEach(async () => {
    if (ledger.store.isOpen) await ledger.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function rawDatabase(): Promise<string> {
    const parts: string[] = [];
    for await (const [k, v] of ledger.store.scan({})) parts.push(k, v.toString("utf8"));
    return parts.join("\n");
  }

  it("secrets are 32 random bytes shown once; only their hash is stored", async () => {
    const a = await keys.create({ role: "auditor" });
    const b = await keys.create({ role: "auditor" });
    expect(a.secret).to.match(/^vt_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.secret.slice(3), "base64url")).to.have.length(32);
    expect(a.secret).to.not.equal(b.secret);
    const db = await rawDatabase();
    expect(db).to.not.include(a.secret);
    expect(db).to.not.include(a.secret.slice(3));
    expect(await keys.authenticate(a.secret)).to.deep.equal({
      id: a.key.id,
      role: "auditor",
      scope: null,
    });
    expect(await keys.list()).to.have.length(2);
    for (const k of await keys.list()) expect(k).to.not.have.property("keyHash");
  });

  it("a patient key stores the subjectTag, never the patient identifier", async () => {
    const patient = { system: "urn:oid:1.2.3", value: "MRN-KEYS-0001" };
    const created = await keys.create({ role: "patient", patient });
    expect(created.key.scope).to.equal(subjectTag(fromHex(ledger.meta.logSecret), patient, "jcs"));
    const db = await rawDatabase();
    expect(db).to.not.include("MRN-KEYS-0001");
  });

  it("writer keys are scoped to their organization; keys survive a restart; revoked keys stop working", async () => {
    const w = await keys.create({ role: "writer", organization: "org:a" });
    expect(w.key.scope).to.equal("org:a");
    await ledger.close();
    ledger = await Ledger.open({
      location: path.join(dir, "db"),
      receiptSigner: new Wallet("0x" + "33".repeat(32)),
      batchMaxEvents: 100,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 100,
    });
    keys = ApiKeys.forLedger(ledger);
    expect(await keys.authenticate(w.secret)).to.deep.equal({
      id: w.key.id,
      role: "writer",
      scope: "org:a",
    });
    const revoked = await keys.revoke(w.key.id);
    expect(revoked.revokedAt).to.be.a("string");
    expect(await keys.authenticate(w.secret)).to.equal(undefined);
    try {
      await keys.revoke(w.key.id);
      expect.fail("second revoke must fail");
    } catch (error) {
      expect(error).to.have.property("code", "CONFLICT");
    }
  });

  it("unknown, malformed and near-miss secrets do not authenticate", async () => {
    const a = await keys.create({ role: "admin" });
    const flipped = a.secret.slice(0, -1) + (a.secret.endsWith("A") ? "B" : "A");
    for (const s of [flipped, "", "vt_", a.secret + "x", a.secret.slice(3), " " + a.secret]) {
      expect(await keys.authenticate(s)).to.equal(undefined);
    }
  });
  it("a revoked key stops working at once, through every ApiKeys of the log, even mid-lookup", async () => {
    const w = await keys.create({ role: "writer", organization: "org:a" });
    const other = ApiKeys.forLedger(ledger);
    // Warm both (authenticated principals are cached in memory).
    expect(await keys.authenticate(w.secret)).to.have.property("id", w.key.id);
    expect(await other.authenticate(w.secret)).to.have.property("id", w.key.id);
    // Lookups racing with the revocation may see either answer, but none may be cached live.
    let done = false;
    const revoking = keys.revoke(w.key.id).finally(() => (done = true));
    const racing: Array<Promise<unknown>> = [];
    while (!done) {
      racing.push(other.authenticate(w.secret), keys.authenticate(w.secret));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await revoking;
    await Promise.all(racing);
    expect(await keys.authenticate(w.secret)).to.equal(undefined);
    expect(await other.authenticate(w.secret)).to.equal(undefined);
  });

  it("a principal handed out is the caller's own copy", async () => {
    const a = await keys.create({ role: "auditor" });
    const first = await keys.authenticate(a.secret);
    if (first) first.role = "admin";
    expect(await keys.authenticate(a.secret)).to.have.property("role", "auditor");
  });

  it("the last live admin key cannot be revoked (409), not even by two revocations at once", async () => {
    const a = await keys.create({ role: "admin" });
    const b = await keys.create({ role: "admin" });
    await keys.create({ role: "auditor" });
    const outcomes = await Promise.allSettled([keys.revoke(a.key.id), keys.revoke(b.key.id)]);
    expect(outcomes.map((o) => o.status).sort()).to.deep.equal(["fulfilled", "rejected"]);
    const refused = outcomes.find((o) => o.status === "rejected")!;
    expect((refused.reason as LedgerError).code).to.equal("CONFLICT");
    expect((refused.reason as LedgerError).message).to.match(/last live admin key/);
    const live = (await keys.list()).filter((k) => k.role === "admin" && !k.revokedAt);
    expect(live).to.have.length(1);
    // With another admin created, the former last one can go.
    const c = await keys.create({ role: "admin" });
    await keys.revoke(live[0]!.id);
    await assertRejects(keys.revoke(c.key.id), /last live admin key/);
  });
});

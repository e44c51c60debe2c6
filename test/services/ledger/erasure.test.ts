import { expect } from "chai";
import { policyFor } from "../../support/trust.ts";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { BALP_PROFILES, balpProfileOf } from "../../../services/core/fhir-audit-event.ts";
import { jcs } from "../../../services/core/jcs.ts";
import { fromHex } from "../../../services/core/hex.ts";
import { auditLog } from "../../../services/ledger/audit.ts";
import { ChainReads } from "../../../services/verifier/chain-reads.ts";
import { LedgerError } from "../../../services/ledger/errors.ts";
import {
  type Tombstone,
  erasedEntityReference,
  eraseEvent,
  getTombstone,
} from "../../../services/ledger/erasure.ts";
import { K } from "../../../services/store/keys.ts";
import { connectRpc } from "../../../services/verifier/rpc.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";

const MARKER = "ERASE-ME-oncology-second-opinion-7731";

describe("ledger/erasure (Hardhat)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let log: AnchoredLog;

  before(async () => {
    node = await HardhatNode.start();
    log = await AnchoredLog.create(node);
  });

  after(async () => {
    await log?.close();
    await node?.stop();
  });

  it("shreds the body and salt, keeps the entry, logs the erasure, and every bundle still verifies", async () => {
    const base = patientEvent("MRN-ERASE-OTHER");
    const erased = patientEvent("MRN-ERASE-7731", {
      entities: [{ ...base.entities[0]!, description: MARKER }],
    });
    const receipts = await log.ledger.ingest([
      patientEvent("MRN-ERASE-OTHER"),
      patientEvent("MRN-ERASE-OTHER"),
      erased,
      patientEvent("MRN-ERASE-OTHER"),
    ]);
    const seq = receipts[2]!.receipt.seq;
    await log.sealAndAnchor();
    const before = await log.ledger.getEvent(seq);
    const salt = before.salt!;
    expect(before.event).to.not.equal(null);
    const entryBefore = await log.ledger.store.getEntryJcs(seq);

    const result = await eraseEvent(log.ledger, {
      seq,
      legalBasis: "GDPR Art. 17(1)(a)",
      reason: "request ticket 42",
      keyId: "key_00000000000000aa",
    });
    expect(result.tombstone).to.include({
      seq,
      legalBasis: "GDPR Art. 17(1)(a)",
      keyId: "key_00000000000000aa",
      erasureSeq: result.receipt.seq,
    });
    expect(Date.parse(result.tombstone.erasedAt)).to.be.closeTo(Date.now(), 60_000);
    expect(await getTombstone(log.ledger, seq)).to.deep.equal(result.tombstone);

    // Storage level: no body key, and neither the content nor the salt in any key or value.
    const saltBytes = Buffer.from(fromHex(salt));
    let bodyKeys = 0;
    for await (const [key, value] of log.ledger.store.scan({})) {
      if (key === K.body(seq)) bodyKeys++;
      expect(value.includes(MARKER), `value of ${key}`).to.equal(false);
      expect(value.includes(salt.slice(2)), `value of ${key}`).to.equal(false);
      expect(value.includes(saltBytes), `value of ${key}`).to.equal(false);
      expect(value.includes("MRN-ERASE-7731"), `value of ${key}`).to.equal(false);
    }
    expect(bodyKeys).to.equal(0);
    expect(await log.ledger.store.getEntryJcs(seq)).to.equal(entryBefore);
    // And on disk: the deletion was compacted, so no table or log file still holds the bytes.
    const files = await readdir(log.dir);
    for (const file of files) {
      const bytes = await readFile(path.join(log.dir, file));
      expect(bytes.includes(MARKER), file).to.equal(false);
      expect(bytes.includes(saltBytes), file).to.equal(false);
    }

    // The erasure event names the seq only.
    const logged = await log.ledger.getEvent(result.receipt.seq);
    expect(logged.event).to.not.equal(null);
    expect(logged.event!.patient).to.equal(undefined);
    expect(logged.event!.action).to.equal("D");
    expect(balpProfileOf(logged.event!)).to.equal(BALP_PROFILES.Delete);
    expect(logged.event!.entities.map((e) => e.what)).to.deep.equal([
      erasedEntityReference(log.ledger.logId, seq),
    ]);
    const loggedText = jcs(logged.event);
    expect(loggedText).to.not.include(MARKER);
    expect(loggedText).to.not.include("request ticket 42");
    expect(loggedText).to.not.include("MRN-ERASE-7731");
    expect(logged.entry.subject).to.equal(null);

    await log.sealAndAnchor();
    const provider = await connectRpc(node.url);
    try {
      const bundle = await log.ledger.prove(seq);
      expect(bundle.event).to.equal(null);
      expect(bundle.salt).to.equal(null);
      // The subject tag of the erased entry stays: it is keyed (documented in compliance.md).
      expect(bundle.entry.subject).to.equal(log.tagOf("MRN-ERASE-7731"));
      const trust = policyFor({
        chainId: Number((await provider.getNetwork()).chainId),
        contract: log.contract,
        logIds: log.ledger.logId,
      });
      // The bundle carries the erasure event's bundle: the verifier checks it and says "erased".
      expect(bundle.erasure?.entry.seq).to.equal(logged.entry.seq);
      const verdict = await verifyBundle(bundle, provider, { trust, confirmations: 1 });
      expect(verdict.status, JSON.stringify(verdict)).to.equal("erased");
      expect(verdict.erasedBy).to.equal(logged.entry.seq);
      const withheld = await verifyBundle({ ...bundle, erasure: undefined }, provider, { trust });
      expect(withheld.status).to.equal("withheld");
      const commitment = verdict.checks.find((c) => c.step === "commitment")!;
      expect(commitment.ok).to.equal("skipped");
      expect(commitment.reason).to.match(/erased/);
      for (let s = 0; s < log.ledger.nextSeq; s++) {
        if (s === seq) continue;
        const v = await verifyBundle(await log.ledger.prove(s), provider, {
          trust,
          confirmations: 1,
        });
        expect(v.status, `seq ${s}: ${JSON.stringify(v)}`).to.equal("verified");
        expect(v.checks.find((c) => c.step === "commitment")!.ok).to.equal(true);
      }
      // The regulator's full audit of the log still passes, counting the erased event.
      const audit = await auditLog(log.ledger.store, {
        chain: { reads: new ChainReads(provider) },
      });
      expect(audit.findings, JSON.stringify(audit.findings)).to.deep.equal([]);
      expect(audit.ok).to.equal(true);
      expect(audit.erased).to.equal(1);
    } finally {
      provider.destroy();
    }
  });

  it("is idempotent: a second erasure is a CONFLICT and logs nothing", async () => {
    const [r] = await log.ledger.ingest([patientEvent("MRN-ERASE-TWICE")]);
    const seq = r!.receipt.seq;
    const req = { seq, legalBasis: "GDPR Art. 17", reason: "r", keyId: "key_00000000000000bb" };
    const first = await eraseEvent(log.ledger, req);
    const next = log.ledger.nextSeq;
    const again = await eraseEvent(log.ledger, req).catch((e: unknown) => e);
    expect(again).to.be.instanceOf(LedgerError);
    expect((again as LedgerError).code).to.equal("CONFLICT");
    expect(log.ledger.nextSeq).to.equal(next);
    expect(await getTombstone(log.ledger, seq)).to.deep.equal(first.tombstone);
  });

  it("concurrent erasures of one event: one succeeds, the other is a CONFLICT", async () => {
    const [r] = await log.ledger.ingest([patientEvent("MRN-ERASE-RACE")]);
    const req = {
      seq: r!.receipt.seq,
      legalBasis: "GDPR Art. 17",
      reason: "r",
      keyId: "key_00000000000000cc",
    };
    const outcomes = await Promise.allSettled([
      eraseEvent(log.ledger, req),
      eraseEvent(log.ledger, req),
    ]);
    expect(outcomes.filter((o) => o.status === "fulfilled")).to.have.length(1);
    const rejected = outcomes.find((o) => o.status === "rejected")!;
    expect((rejected.reason as LedgerError).code).to.equal("CONFLICT");
  });

  it("a retry after a crash between logging and shredding re-uses the logged erasure event", async () => {
    const [r] = await log.ledger.ingest([patientEvent("MRN-ERASE-RETRY")]);
    const seq = r!.receipt.seq;
    // Simulate the crash: the first attempt logged its event, then the process died before
    // the shredding write. Log it by hand the same way, then run the erasure.
    const { erasureEvent } = await import("../../../services/ledger/erasure.ts");
    const stored = await log.ledger.getEvent(seq);
    const [logged] = await log.ledger.ingest([
      erasureEvent(log.ledger, {
        seq,
        legalBasis: "GDPR Art. 17",
        keyId: "key_00000000000000dd",
        organization: stored.event!.source.organization,
        recorded: new Date().toISOString(),
      }),
    ]);
    const result = await eraseEvent(log.ledger, {
      seq,
      legalBasis: "GDPR Art. 17",
      reason: "retry",
      keyId: "key_00000000000000dd",
    });
    expect(result.tombstone.erasureSeq).to.equal(logged!.receipt.seq);
    expect((await log.ledger.getEvent(seq)).event).to.equal(null);
  });

  it("refuses bad input: unknown seq, empty or oversized legal basis, control characters", async () => {
    const cases: Array<[Parameters<typeof eraseEvent>[1], string, string]> = [
      [{ seq: 10_000_000, legalBasis: "x", reason: "y", keyId: "k" }, "NOT_FOUND", "seq"],
      [{ seq: 0, legalBasis: "", reason: "y", keyId: "k" }, "VALIDATION_FAILED", "legalBasis"],
      [
        { seq: 0, legalBasis: "x".repeat(257), reason: "y", keyId: "k" },
        "VALIDATION_FAILED",
        "legalBasis",
      ],
      [{ seq: 0, legalBasis: "x", reason: "a\u0007b", keyId: "k" }, "VALIDATION_FAILED", "reason"],
      [{ seq: -1, legalBasis: "x", reason: "y", keyId: "k" }, "VALIDATION_FAILED", "seq"],
    ];
    for (const [req, code, field] of cases) {
      const err = await eraseEvent(log.ledger, req).catch((e: unknown) => e);
      expect(err, JSON.stringify(req)).to.be.instanceOf(LedgerError);
      expect((err as LedgerError).code).to.equal(code);
      expect((err as LedgerError).field).to.equal(field);
    }
    const tomb: Tombstone | undefined = await getTombstone(log.ledger, 0);
    expect(tomb).to.equal(undefined);
  });
});

import { expect } from "chai";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { createApp } from "../../../services/api/app.ts";
import { startServer } from "../../../services/api/server.ts";
import { loadConfig } from "../../../services/config.ts";
import type { Receipt } from "../../../services/core/receipt.ts";
import { withoutContent } from "../../../services/core/receipt-evidence.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import type { Ledger } from "../../../services/ledger/ledger.ts";
import { K } from "../../../services/store/keys.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";
import { policyDocument } from "../../support/trust.ts";
import { veritrailInProcess } from "../../support/running-service.ts";

/** The log's API in this process, serving `ledger`, with an auditor key for the proof route. */
async function serve(
  ledger: Ledger,
): Promise<{ url: string; key: string; close(): Promise<void> }> {
  const apiKeys = ApiKeys.forLedger(ledger);
  const app = createApp({
    ledger,
    apiKeys,
    logger: pino({ level: "silent" }),
    config: loadConfig({}),
  });
  const server = await startServer(app, { host: "127.0.0.1", port: 0 });
  const { secret } = await apiKeys.create({ role: "auditor" });
  return { url: server.url, key: secret, close: () => server.close(1_000) };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("veritrail receipt check (CLI, real Hardhat node)", function () {
  this.timeout(180_000);
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-receipt-"));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, content: unknown): Promise<string> {
    const p = path.join(dir, name);
    await writeFile(p, JSON.stringify(content, null, 2));
    return p;
  }

  describe("a log that keeps its promises, and one that rewrote its store", () => {
    let node: HardhatNode;
    let log: AnchoredLog;
    let trustFile: string;
    const check = (args: string[]): Promise<Run> =>
      veritrailInProcess(["receipt", "check", ...args, "--rpc", node.url, "--trust", trustFile]);

    before(async () => {
      node = await HardhatNode.start();
      log = await AnchoredLog.create(node);
      trustFile = await log.writeTrustFile();
    });
    after(async () => {
      await log?.close();
      await node?.stop();
    });

    it("honored: anchored by the deadline with the receipt's leaf; the bundle from the API or from a file", async () => {
      const [accepted] = await log.ledger.ingest([patientEvent("MRN-HONORED")]);
      const receipt = await file("honored-receipt.json", accepted!.receipt);
      const pending = await check([receipt]);
      expect(pending.code, pending.stderr).to.equal(1);
      expect(pending.stdout).to.match(/^PENDING: seq 0 of log 0x[0-9a-f]{64} \(operator: /m);
      expect(pending.stdout).to.match(/not anchored yet, and the deadline has not passed/);

      await log.sealAndAnchor();
      const noBundle = await check([receipt]);
      expect(noBundle.code, noBundle.stdout).to.equal(2);
      expect(noBundle.stdout).to.match(/UNDECIDED \(BUNDLE_NEEDED\)/);
      expect(noBundle.stdout).to.match(/give the bundle of this seq with --bundle/);

      const api = await serve(log.ledger);
      try {
        const run = await check([receipt, "--url", api.url, "--key", api.key]);
        expect(run.code, run.stdout + run.stderr).to.equal(0);
        expect(run.stdout).to.match(/✓ deadline +seq 0 anchored before the deadline/);
        expect(run.stdout).to.match(/✓ leaf +the bundle of seq 0 verifies \(verified\)/);
        expect(run.stdout).to.match(/^HONORED: seq 0 of log /m);
        const bundle = await file("honored-bundle.json", await log.ledger.prove(0));
        const offline = await check([receipt, "--bundle", bundle, "--json"]);
        expect(offline.code).to.equal(0);
        const report = JSON.parse(offline.stdout) as {
          ok: boolean;
          verdicts: Array<{ status: string }>;
        };
        expect(report.ok).to.equal(true);
        expect(report.verdicts.map((v) => v.status)).to.deep.equal(["honored"]);
        // A saved POST /v1/events answer works as well.
        const answer = await file("answer.json", { receipts: [accepted] });
        expect((await check([answer, "--bundle", bundle])).code).to.equal(0);
      } finally {
        await api.close();
      }
    });

    it("not a trusted log's promise: a forged signature, a log the policy does not list", async () => {
      const [accepted] = await log.ledger.ingest([patientEvent("MRN-FORGED")]);
      const r = accepted!.receipt;
      const flipped =
        r.signature.slice(0, 10) + (r.signature[10] === "a" ? "b" : "a") + r.signature.slice(11);
      const forged = await check([await file("forged.json", { ...r, signature: flipped })]);
      expect(forged.code).to.equal(1);
      expect(forged.stdout).to.match(/^NOT A VALID RECEIPT \(RECEIPT_INVALID\)/m);
      // A valid receipt of a log the policy does not list is no promise the policy counts.
      const otherPolicy = await file(
        "other-policy.json",
        policyDocument({
          chainId: 31337,
          contract: log.contract,
          logIds: [`0x${"ab".repeat(32)}`],
        }),
      );
      const unknown = await veritrailInProcess([
        "receipt",
        "check",
        await file("valid.json", r),
        "--rpc",
        node.url,
        "--trust",
        otherPolicy,
      ]);
      expect(unknown.code).to.equal(1);
      expect(unknown.stdout).to.match(/^NOT A VALID RECEIPT \(UNKNOWN_LOG\)/m);
      const malformed = await check([
        await file("malformed.json", { format: "veritrail-receipt/1" }),
      ]);
      expect(malformed.code).to.equal(1);
      expect(malformed.stdout).to.match(/RECEIPT_MALFORMED/);
    });

    it("LEAF_MISMATCH: the store was rewritten before sealing; the evidence is re-checked without the API", async () => {
      const [accepted] = await log.ledger.ingest([patientEvent("MRN-REWRITTEN")]);
      const receipt: Receipt = accepted!.receipt;
      const seq = receipt.seq;
      // The operator rewrites the acknowledged entry (another commitment) while the service is
      // down, then seals and anchors what the store now says.
      await log.reopen(async (ledgerDir) => {
        const store = await LedgerStore.open(ledgerDir);
        try {
          const entry = JSON.parse((await store.getEntryJcs(seq))!) as { commitment: string };
          const rewritten = (await store.getEntryJcs(seq))!.replace(
            entry.commitment,
            `0x${"5e".repeat(32)}`,
          );
          await store.write([{ type: "put", key: K.entry(seq), value: Buffer.from(rewritten) }]);
        } finally {
          await store.close();
        }
      });
      await log.sealAndAnchor();
      const receiptFile = await file("rewritten-receipt.json", receipt);
      const evidenceFile = path.join(dir, "leaf-evidence.json");
      const api = await serve(log.ledger);
      let run: Run;
      try {
        run = await check([
          receiptFile,
          "--url",
          api.url,
          "--key",
          api.key,
          "--evidence",
          evidenceFile,
        ]);
      } finally {
        await api.close();
      }
      expect(run.code, run.stdout + run.stderr).to.equal(1);
      expect(run.stdout).to.match(
        new RegExp(
          `✗ leaf +LEAF_MISMATCH: seq ${seq} is anchored in batch \\d+ with leaf 0x[0-9a-f]{64}; the receipt promised ${receipt.leafHash}`,
        ),
      );
      expect(run.stdout).to.match(new RegExp(`^LEAF_MISMATCH: seq ${seq} of log `, "m"));
      expect(run.stdout).to.include(`evidence written to ${evidenceFile}`);

      const evidence = JSON.parse(await readFile(evidenceFile, "utf8")) as Record<
        string,
        unknown
      > & {
        bundle: Record<string, unknown>;
      };
      expect(evidence).to.include({
        format: "veritrail-receipt-evidence/1",
        verdict: "LEAF_MISMATCH",
      });
      expect(evidence.receipt).to.deep.equal(receipt);
      // No patient data travels with the evidence: the bundle's content is gone.
      expect(evidence.bundle.event).to.equal(null);
      expect(evidence.bundle.salt).to.equal(null);
      expect(JSON.stringify(evidence)).to.not.include("MRN-REWRITTEN");

      // Re-checked by a third party: the chain and the policy, no API.
      const again = await check([evidenceFile]);
      expect(again.code, again.stdout).to.equal(1);
      expect(again.stdout).to.match(/^LEAF_MISMATCH: /m);
      expect(again.stdout).to.include(
        "the evidence holds: re-checked against the chain, without the log's API",
      );

      // Evidence of an honored receipt (its bundle carries the receipt's own leaf) does not hold.
      const honest = {
        ...evidence,
        receipt: await log.ledger.receipt(0),
        bundle: withoutContent((await log.ledger.prove(0)) as unknown as Record<string, unknown>),
      };
      const refuted = await check([await file("refuted.json", honest)]);
      expect(refuted.stdout).to.match(
        /EVIDENCE_INVALID: its bundle carries the receipt's own leaf/,
      );
      expect(refuted.code).to.equal(2);
    });
  });

  describe("a log that stopped anchoring (time advanced past the deadline)", () => {
    let node: HardhatNode;
    let log: AnchoredLog;
    let trustFile: string;
    const check = (args: string[]): Promise<Run> =>
      veritrailInProcess(["receipt", "check", ...args, "--rpc", node.url, "--trust", trustFile]);

    before(async () => {
      node = await HardhatNode.start();
      log = await AnchoredLog.create(node, { anchorDeadlineMs: 60_000 });
      trustFile = await log.writeTrustFile();
    });
    after(async () => {
      await log?.close();
      await node?.stop();
    });

    it("DEADLINE_MISSED with evidence a third party re-checks without the API, before and after a late anchor", async () => {
      // One batch anchored, so the registry has a head for the log.
      await log.ledger.ingest([patientEvent("MRN-ON-TIME")]);
      await log.sealAndAnchor();
      const [accepted] = await log.ledger.ingest([patientEvent("MRN-LATE")]);
      const receipt = accepted!.receipt;
      const receiptFile = await file("late-receipt.json", receipt);
      expect((await check([receiptFile])).stdout).to.match(/^PENDING: /m);

      // Anchoring has stopped; the chain's clock moves past the deadline.
      await node.rpc("evm_increaseTime", [120]);
      await node.mine(1);
      const evidenceFile = path.join(dir, "deadline-evidence.json");
      const missed = await check([receiptFile, "--evidence", evidenceFile]);
      expect(missed.code, missed.stdout + missed.stderr).to.equal(1);
      expect(missed.stdout).to.match(
        new RegExp(
          `✗ deadline +DEADLINE_MISSED: seq ${receipt.seq} was not anchored by ${receipt.anchorDeadline}: the registry state at the end of block \\d+`,
        ),
      );
      expect(missed.stdout).to.match(
        new RegExp(`^DEADLINE_MISSED: seq ${receipt.seq} of log `, "m"),
      );
      const evidence = JSON.parse(await readFile(evidenceFile, "utf8")) as {
        verdict: string;
        lastBlockByDeadline: { number: number; timestamp: number };
        firstBlockAfterDeadline: { number: number; timestamp: number };
        logHead: { nextSeq: number; block: number };
      };
      expect(evidence.verdict).to.equal("DEADLINE_MISSED");
      const deadline = Date.parse(receipt.anchorDeadline);
      expect(evidence.lastBlockByDeadline.timestamp * 1000).to.be.at.most(deadline);
      expect(evidence.firstBlockAfterDeadline.timestamp * 1000).to.be.greaterThan(deadline);
      expect(evidence.firstBlockAfterDeadline.number).to.equal(
        evidence.lastBlockByDeadline.number + 1,
      );
      expect(evidence.logHead.nextSeq).to.equal(receipt.seq);

      const offline = await check([evidenceFile]);
      expect(offline.code, offline.stdout).to.equal(1);
      expect(offline.stdout).to.match(/^DEADLINE_MISSED: /m);
      expect(offline.stdout).to.include("the evidence holds");

      // The log anchors late: the verdict stays, and so does the evidence.
      await log.sealAndAnchor();
      const api = await serve(log.ledger);
      try {
        const late = await check([
          receiptFile,
          "--url",
          api.url,
          "--key",
          api.key,
          "--evidence",
          path.join(dir, "late-again.json"),
        ]);
        expect(late.code).to.equal(1);
        expect(late.stdout).to.match(/^DEADLINE_MISSED: /m);
      } finally {
        await api.close();
      }
      const still = await check([evidenceFile, "--json"]);
      expect(still.code).to.equal(1);
      expect(
        (JSON.parse(still.stdout) as { verdicts: Array<{ status: string }> }).verdicts[0]!.status,
      ).to.equal("DEADLINE_MISSED");

      // Evidence edited to name another block does not hold.
      const forged = JSON.parse(await readFile(evidenceFile, "utf8")) as {
        firstBlockAfterDeadline: { hash: string };
      };
      forged.firstBlockAfterDeadline.hash = `0x${"00".repeat(31)}01`;
      const refuted = await check([await file("forged-evidence.json", forged)]);
      expect(refuted.code).to.equal(2);
      expect(refuted.stdout).to.match(/EVIDENCE_INVALID: block \d+ on this chain is 0x/);
    });
  });
});

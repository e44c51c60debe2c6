/**
 * The attack of issue "Trust roots", end to end on the dev chain of a running service: an attacker
 * deploys a second VeritrailRegistry, registers the real log's logId in it (claiming the real
 * operator's name) with their own anchorer and receipt signer, anchors a fabricated event about a
 * real patient, a fabricated transfer and a whole fabricated patient history there, and hands
 * out those proofs. Every check of those proofs passes against the attacker's registry; only the
 * trust policy tells them apart. Each verifier entry point must reject them with
 * UNTRUSTED_REGISTRY: the library, `veritrail verify`, `veritrail provenance`, history
 * verification (library and CLI), the real service's POST /v1/verify, and both pages in
 * Chromium. The same checks on the real log's proofs verify and name its operator.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { pino } from "pino";
import { buildWeb } from "../../scripts/build-web.ts";
import { type RunningService, runService } from "../../services/cli/serve.ts";
import { readTrustPolicyFile } from "../../services/cli/trust-policy-file.ts";
import { DevDeployment } from "../../services/chain/dev-deployment.ts";
import { RegistryClient } from "../../services/chain/registry-client.ts";
import { policyFromRegistry } from "../../services/chain/trust-init.ts";
import type { Bundle } from "../../services/core/bundle.ts";
import type { Hex } from "../../services/core/hex.ts";
import { ApiKeys } from "../../services/ledger/api-keys.ts";
import { type TrustPolicy, parseTrustPolicy } from "../../services/core/trust-policy.ts";
import { loadConfig } from "../../services/config.ts";
import { AnchorLoop } from "../../services/anchoring/anchor-loop.ts";
import { ChainSession } from "../../services/anchoring/chain-session.ts";
import { Ledger } from "../../services/ledger/ledger.ts";
import { type PatientHistory, patientHistory } from "../../services/ledger/patient-history.ts";
import { connectRpc } from "../../services/verifier/rpc.ts";
import { verifyPatientHistory } from "../../services/verifier/completeness.ts";
import { verifyBundle } from "../../services/verifier/verify-bundle.ts";
import {
  HOSPITAL_ORG,
  LAB_ORG,
  PATIENT_MRN_SYSTEM,
  makeBalpNativeEvent,
} from "../fixtures/events.ts";
import { patientEvent } from "../support/anchored-log.ts";
import { openObservedPage } from "../support/browser.ts";
import { HARDHAT_ACCOUNTS, freePort } from "../support/hardhat-node.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "bin/veritrail.js");
const ATTACKER_ADMIN = new Wallet(HARDHAT_ACCOUNTS[3].privateKey);
const ATTACKER_ANCHORER = new Wallet(HARDHAT_ACCOUNTS[4].privateKey);
const ATTACKER_SIGNER = new Wallet(HARDHAT_ACCOUNTS[5].privateKey);
const MRN = "MRN-0042-7731";
const DATA_HASH = `0x${"d4".repeat(32)}` as Hex;

function veritrail(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end();
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a second registry with the real logId (the forged-registry attack, end to end)", function () {
  this.timeout(300_000);
  let dir: string;
  let service: RunningService;
  let attacker: { ledger: Ledger; loop: AnchorLoop } | undefined;
  let realPolicy: TrustPolicy;
  let realPolicyFile: string;
  /** What a verifier without a policy would have believed: the attacker's own registry. */
  let attackerPolicy: TrustPolicy;
  let real: Bundle;
  let forged: Bundle;
  let forgedHistory: PatientHistory;
  let realHistory: PatientHistory;
  let forgedTrace: unknown;
  let browser: Browser | undefined;
  let page: Page;
  const file = async (name: string, value: unknown) => {
    const p = path.join(dir, name);
    await writeFile(p, JSON.stringify(value, null, 2));
    return p;
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-forged-"));
    // The real service as `npm start` runs it: embedded dev chain, registry, log, trust.json.
    service = await runService(
      loadConfig({
        DATA_DIR: path.join(dir, "data"),
        PORT: String(await freePort()),
        EMBEDDED_CHAIN_PORT: String(await freePort()),
        BATCH_MAX_WAIT_MS: "100",
        LOG_OPERATOR: "St Mary General Hospital",
      }),
      pino({ level: "silent" }),
    );
    realPolicyFile = service.trust.file;
    realPolicy = await readTrustPolicyFile(realPolicyFile);
    const rpcUrl = service.system.rpcUrl;
    const ledger = service.system.ledger;
    const realLogId = ledger.logId;
    await ledger.ingest([patientEvent(MRN), patientEvent(MRN, { action: "U" })]);
    await waitFor("the real batch anchored", async () => (await ledger.prove(1)).anchor !== null);
    real = await ledger.prove(0);
    realHistory = await patientHistory(
      ledger,
      ledger.subjectTagOf({ system: PATIENT_MRN_SYSTEM, value: MRN }),
      { staffIdentity: "withhold" },
    );

    // The attacker: the real logId in a registry of their own, their own keys, the real
    // operator's name, and a fabricated history at seq 0 onwards.
    const attackerLedger = await Ledger.open({
      location: path.join(dir, "attacker"),
      receiptSigner: ATTACKER_SIGNER,
      newLogId: realLogId,
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 3_600_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
    });
    const loop = new AnchorLoop({
      ledger: attackerLedger,
      session: new ChainSession({
        rpcUrl,
        chainMode: "development",
        anchorer: ATTACKER_ANCHORER,
        admin: ATTACKER_ADMIN,
        deployment: new DevDeployment(ATTACKER_ADMIN),
        operator: "St Mary General Hospital",
      }),
      confirmations: 1,
      retryMinMs: 50,
      retryMaxMs: 500,
      pollMs: 50,
    });
    attacker = { ledger: attackerLedger, loop };
    loop.start();
    await waitFor(
      "the attacker's registration",
      async () => loop.status().receiptSignerRegistered === true,
    );
    await new Promise((r) => setTimeout(r, 1_100)); // receipts after the registration's second
    const exported = makeBalpNativeEvent("PrivacyDisclosureSource", {
      overrides: {
        source: { organization: HOSPITAL_ORG, observer: "Device/audit-gateway-1" },
        recipient: { organization: LAB_ORG },
        transfer: { reference: "xfer-forged", dataHash: DATA_HASH },
        requestId: "forged-export",
      },
    });
    const imported = makeBalpNativeEvent("PrivacyDisclosureRecipient", {
      overrides: {
        source: { organization: LAB_ORG, observer: "Device/lab-gateway-2" },
        transfer: { reference: "xfer-forged", dataHash: DATA_HASH },
        requestId: "forged-import",
      },
    });
    await attackerLedger.ingest([
      patientEvent(MRN, { purposeOfUse: ["HRESCH"] }),
      exported,
      imported,
      patientEvent(MRN, { purposeOfUse: ["PUBHLTH"] }),
    ]);
    await attackerLedger.sealPending();
    await loop.waitForAnchored(0, 60_000);
    forged = await attackerLedger.prove(0);
    expect(forged.entry.seq).to.equal(0);
    expect(forged.batch!.logId).to.equal(realLogId);
    expect(forged.anchor!.contract).to.not.equal(real.anchor!.contract);
    forgedHistory = await patientHistory(
      attackerLedger,
      attackerLedger.subjectTagOf({ system: PATIENT_MRN_SYSTEM, value: MRN }),
      { staffIdentity: "withhold" },
    );
    const side = async (seq: number, organization: string) => {
      const b = await attackerLedger.prove(seq);
      return {
        log: "local",
        logId: realLogId,
        seq,
        organization,
        recorded: b.entry.recorded,
        bundle: b,
      };
    };
    forgedTrace = {
      dataHash: DATA_HASH,
      reference: null,
      hops: [
        {
          reference: "xfer-forged",
          dataHash: DATA_HASH,
          from: await side(1, HOSPITAL_ORG),
          to: await side(2, LAB_ORG),
        },
      ],
      unmatched: [],
      logs: [{ name: "local", readable: true }],
      complete: true,
    };
    // The attacker's registry, read the way `veritrail trust init` reads one.
    const client = await RegistryClient.connect({ rpcUrl, address: forged.anchor!.contract });
    try {
      attackerPolicy = parseTrustPolicy(
        await policyFromRegistry(client, { issuer: "whoever the bundle names", confirmations: 1 }),
      );
    } finally {
      client.destroy();
    }
  });

  after(async () => {
    await browser?.close();
    await attacker?.loop.stop();
    if (attacker?.ledger.store.isOpen) await attacker.ledger.close();
    await service?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the library: the forged bundle passes every check but trust → UNTRUSTED_REGISTRY; the real one names its operator", async () => {
    const provider = await connectRpc(service.system.rpcUrl);
    try {
      // Without the policy's say (the bundle's own registry trusted), the forgery would pass.
      const naive = await verifyBundle(forged, provider, { trust: attackerPolicy });
      expect(naive.status, JSON.stringify(naive.checks)).to.equal("verified");
      expect(naive.trust?.operator).to.equal("St Mary General Hospital");

      const rejected = await verifyBundle(forged, provider, { trust: realPolicy });
      expect(rejected).to.include({ ok: false, status: "failed", code: "UNTRUSTED_REGISTRY" });
      expect(rejected.checks.filter((c) => c.ok === false).map((c) => c.step)).to.deep.equal([
        "trust",
      ]);
      const genuine = await verifyBundle(real, provider, { trust: realPolicy });
      expect(genuine.status, JSON.stringify(genuine.checks)).to.equal("verified");
      expect(genuine.trust).to.deep.include({
        operator: "St Mary General Hospital",
        fingerprint: realPolicy.fingerprint,
      });
    } finally {
      provider.destroy();
    }
  });

  it("veritrail verify: FAILED UNTRUSTED_REGISTRY, exit 1; the real bundle VERIFIED with its operator, exit 0", async () => {
    const rpc = service.system.rpcUrl;
    const bad = await veritrail([
      "verify",
      await file("forged.json", forged),
      "--rpc",
      rpc,
      "--trust",
      realPolicyFile,
    ]);
    expect(bad.code, bad.stdout + bad.stderr).to.equal(1);
    expect(bad.stdout).to.match(
      /^FAILED: seq 0 of log 0x[0-9a-f]{64}: UNTRUSTED_REGISTRY at step trust$/m,
    );
    const good = await veritrail([
      "verify",
      await file("real.json", real),
      "--rpc",
      rpc,
      "--trust",
      realPolicyFile,
    ]);
    expect(good.code, good.stdout + good.stderr).to.equal(0);
    expect(good.stdout).to.match(
      /^VERIFIED: seq 0 of log .* \(operator: St Mary General Hospital, registry /m,
    );
    expect(good.stdout).to.include(`trust policy ${realPolicy.fingerprint}`);
  });

  it("veritrail provenance: the forged transfer's hop fails with UNTRUSTED_REGISTRY, exit 1", async () => {
    const rpc = service.system.rpcUrl;
    const trace = await file("forged-trace.json", forgedTrace);
    const run = await veritrail([
      "provenance",
      "--file",
      trace,
      "--rpc",
      rpc,
      "--trust",
      realPolicyFile,
      "--json",
    ]);
    expect(run.code, run.stderr).to.equal(1);
    const report = JSON.parse(run.stdout) as {
      ok: boolean;
      hops: Array<{ ok: boolean; from: { code?: string }; to: { code?: string } }>;
    };
    expect(report.ok).to.equal(false);
    expect(report.hops[0]).to.deep.include({ ok: false });
    expect([report.hops[0]!.from.code, report.hops[0]!.to.code]).to.deep.equal([
      "UNTRUSTED_REGISTRY",
      "UNTRUSTED_REGISTRY",
    ]);
    // Against the attacker's own registry the same trace would have passed.
    const naiveFile = await file("attacker-trust.json", attackerPolicy);
    const naive = await veritrail([
      "provenance",
      "--file",
      trace,
      "--rpc",
      rpc,
      "--trust",
      naiveFile,
    ]);
    expect(naive.code, naive.stdout).to.equal(0);
  });

  it("history verification: a whole forged history is UNTRUSTED_REGISTRY (library and CLI); the real one is complete", async () => {
    const provider = await connectRpc(service.system.rpcUrl);
    try {
      const v = await verifyPatientHistory(forgedHistory, provider, { trust: realPolicy });
      expect(v.ok).to.equal(false);
      expect(v.code).to.equal("UNTRUSTED_REGISTRY");
      const naive = await verifyPatientHistory(forgedHistory, provider, { trust: attackerPolicy });
      expect(naive.status, JSON.stringify(naive.findings)).to.equal("verified");
      const genuine = await verifyPatientHistory(realHistory, provider, { trust: realPolicy });
      expect(genuine.status, JSON.stringify(genuine.findings)).to.equal("verified");
      expect(genuine.trust.operator).to.equal("St Mary General Hospital");
    } finally {
      provider.destroy();
    }
    const run = await veritrail([
      "verify",
      await file("forged-history.json", forgedHistory),
      "--rpc",
      service.system.rpcUrl,
      "--trust",
      realPolicyFile,
    ]);
    expect(run.code).to.equal(1);
    expect(run.stdout).to.match(/^FAILED: UNTRUSTED_REGISTRY: /m);
  });

  it("the real service's POST /v1/verify: UNTRUSTED_REGISTRY for the forgery, verified for its own seq 0", async () => {
    const base = service.server.url;
    const post = async (body: unknown) => {
      const res = await fetch(`${base}/v1/verify`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${service.firstAdminKey}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      return {
        status: res.status,
        body: (await res.json()) as { ok: boolean; status: string; code?: string },
      };
    };
    const forgedAnswer = await post(forged);
    expect(forgedAnswer.status).to.equal(200);
    expect(forgedAnswer.body).to.include({
      ok: false,
      status: "failed",
      code: "UNTRUSTED_REGISTRY",
    });
    const realAnswer = await post(real);
    expect(realAnswer.body).to.include({ ok: true, status: "verified" });
  });

  describe("the pages in Chromium, with the regulator's policy loaded", () => {
    before(async () => {
      await buildWeb();
      ({ browser, page } = await openObservedPage());
    });

    async function loadPolicy(): Promise<void> {
      await page.setInputFiles("#trust-file", realPolicyFile);
      await page.waitForSelector("body[data-trust=loaded]");
    }

    async function verdictAfter(
      selectorStatus: string,
      action: () => Promise<unknown>,
    ): Promise<string> {
      await page.evaluate(() => delete document.body.dataset["verdict"]);
      await action();
      await page.waitForSelector("body[data-verdict]", { timeout: 60_000 });
      return (await page.getAttribute("body", "data-verdict")) ?? selectorStatus;
    }

    it("/verify: the forged bundle is a red UNTRUSTED_REGISTRY verdict; the real one names its operator", async () => {
      await page.goto(`${service.server.url}/verify`);
      await loadPolicy();
      await page.fill("#rpc", service.system.rpcUrl);
      await page.fill("#bundle", JSON.stringify(forged));
      expect(await verdictAfter("", () => page.click("#verify"))).to.equal("failed");
      expect(await page.innerText("#verdict-title")).to.equal("✗ Not from a log you trust");
      expect(await page.locator('#checks tr[data-step="trust"] td.code').innerText()).to.equal(
        "UNTRUSTED_REGISTRY",
      );
      await page.fill("#bundle", JSON.stringify(real));
      expect(await verdictAfter("", () => page.click("#verify"))).to.equal("verified");
      expect(await page.innerText("#verdict-trust")).to.include(
        `Log operated by St Mary General Hospital, per trust policy ${realPolicy.fingerprint}`,
      );
    });

    it("/patient: a forged history served in place of the real one is a red UNTRUSTED_REGISTRY verdict", async () => {
      const patientKey = (
        await ApiKeys.forLedger(service.system.ledger).create({
          role: "patient",
          patient: { system: PATIENT_MRN_SYSTEM, value: MRN },
        })
      ).secret;
      await page.goto(
        `${service.server.url}/patient#rpc=${encodeURIComponent(service.system.rpcUrl)}`,
      );
      await loadPolicy();
      await page.fill("#key", patientKey);
      expect(await verdictAfter("", () => page.click("#show"))).to.equal("verified");
      await page.route("**/v1/patient/history", async (route) => {
        const response = await route.fetch();
        await route.fulfill({ response, json: forgedHistory });
      });
      try {
        expect(await verdictAfter("", () => page.click("#show"))).to.equal("failed");
        expect(await page.innerText("#summary-title")).to.equal(
          "✗ Not from a log you trust (UNTRUSTED_REGISTRY)",
        );
      } finally {
        await page.unroute("**/v1/patient/history");
      }
    });
  });
});

import { expect } from "chai";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { pino } from "pino";
import { createApp } from "../../services/api/app.ts";
import { startServer } from "../../services/api/server.ts";
import { loadConfig } from "../../services/config.ts";
import { ApiKeys } from "../../services/ledger/api-keys.ts";
import type { PatientHistory } from "../../services/ledger/patient-history.ts";
import { buildWeb } from "../../scripts/build-web.ts";
import { LAB_ORG, PATIENT_MRN_SYSTEM } from "../fixtures/events.ts";
import { AnchoredLog, patientEvent } from "../support/anchored-log.ts";
import { ingestAtTheirTimes } from "../support/log-clock.ts";
import { openObservedPage } from "../support/browser.ts";
import { HardhatNode } from "../support/hardhat-node.ts";
import { policyDocument } from "../support/trust.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ARTIFACTS = path.join(ROOT, "test-artifacts");

describe("patient page in headless Chromium (real Hardhat node, running API)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let log: AnchoredLog;
  let server: { url: string; close(graceMs: number): Promise<void> };
  let browser: Browser;
  let page: Page;
  let patientKey: string;
  let requests: string[] = [];
  let consoleErrors: string[] = [];
  let trustDocument: Record<string, unknown>;

  before(async () => {
    await buildWeb();
    await mkdir(ARTIFACTS, { recursive: true });
    node = await HardhatNode.start();
    log = await AnchoredLog.create(node);
    const mrn = "MRN-PAGE-0042";
    const at = (day: number, hour: number) =>
      `2025-03-${String(day).padStart(2, "0")}T${String(hour).padStart(2, "0")}:15:00.000Z`;
    // Each logged at its own time (entry v2 takes recorded from the log clock).
    await ingestAtTheirTimes(log.ledger, log.clock, [
      patientEvent(mrn, { recorded: at(3, 9) }),
      patientEvent("MRN-SOMEONE-ELSE", { recorded: at(3, 10) }),
      patientEvent(mrn, { recorded: at(4, 14), action: "U", purposeOfUse: ["TREAT"] }),
    ]);
    await log.sealAndAnchor();
    const lab = patientEvent(mrn, { recorded: at(9, 8), purposeOfUse: ["PATRQT"] });
    lab.source = { ...lab.source, organization: LAB_ORG };
    lab.agents = lab.agents.map((a) => ({ ...a, organization: LAB_ORG }));
    await ingestAtTheirTimes(log.ledger, log.clock, [
      lab,
      patientEvent(mrn, { recorded: at(12, 16), purposeOfUse: ["HPAYMT"] }),
    ]);
    await log.sealAndAnchor();
    await ingestAtTheirTimes(log.ledger, log.clock, [patientEvent(mrn, { recorded: at(20, 11) })]);

    const keys = ApiKeys.forLedger(log.ledger);
    patientKey = (
      await keys.create({ role: "patient", patient: { system: PATIENT_MRN_SYSTEM, value: mrn } })
    ).secret;
    const app = createApp({
      ledger: log.ledger,
      apiKeys: keys,
      logger: pino({ level: "silent" }),
      config: loadConfig({}),
    });
    server = await startServer(app, { host: "127.0.0.1", port: 0 });
    ({ browser, page, requests, consoleErrors } = await openObservedPage());
    trustDocument = policyDocument({
      chainId: Number(BigInt(await node.rpc<string>("eth_chainId", []))),
      contract: log.contract,
      logIds: [log.ledger.logId],
    });
  });

  async function loadPolicy(document: unknown): Promise<void> {
    await page.setInputFiles("#trust-file", {
      name: "trust.json",
      mimeType: "application/json",
      buffer: Buffer.from(JSON.stringify(document)),
    });
    await page.waitForSelector("body[data-trust=loaded]");
  }

  after(async () => {
    await browser?.close();
    await server?.close(1_000);
    await log?.close();
    await node?.stop();
  });

  async function verdictAfter(key: string): Promise<string> {
    await page.goto(`${server.url}/patient#rpc=${encodeURIComponent(node.url)}`);
    await page.fill("#key", key);
    await page.evaluate(() => delete document.body.dataset["verdict"]);
    await page.click("#show");
    await page.waitForSelector("body[data-verdict]", { timeout: 60_000 });
    return (await page.getAttribute("body", "data-verdict")) ?? "";
  }

  it("without a trust policy nothing is proven: the page asks for one", async () => {
    const status = await verdictAfter(patientKey);
    expect(status).to.equal("no-policy");
    expect(await page.innerText("#summary-title")).to.equal("! No trust policy");
  });

  it("shows the timeline with ✓ per access and 'complete as of batch N, anchored in block B'", async () => {
    await loadPolicy(trustDocument);
    const status = await verdictAfter(patientKey);
    expect(status, await page.innerText("#result")).to.equal("verified");
    const title = await page.innerText("#summary-title");
    expect(title).to.match(/^✓ Complete as of batch 1, anchored in block \d+$/);
    const rows = await page.$$eval("#timeline tbody tr", (trs) =>
      trs.map((tr) => [
        tr.getAttribute("data-ok"),
        ...Array.from((tr as HTMLTableRowElement).cells, (c) => c.textContent),
      ]),
    );
    expect(rows.map((r) => r[0])).to.deep.equal(["true", "true", "true", "true"]);
    expect(rows.map((r) => r[1])).to.deep.equal(["✓", "✓", "✓", "✓"]);
    expect(rows.map((r) => r[2])).to.deep.equal([
      "2025-03-03 09:15",
      "2025-03-04 14:15",
      "2025-03-09 08:15",
      "2025-03-12 16:15",
    ]);
    expect(rows[2]![3]).to.equal(LAB_ORG);
    expect(rows[2]![5]).to.match(/patient requested/i);
    expect(rows[1]![6]).to.equal("Updated · read");
    expect(rows[0]![6]).to.equal("Read");
    // Staff names are hidden by default (PATIENT_VIEW_STAFF_NAMES=false): the role stays, and
    // the history the page verified carries no staff identity at all, not even in its proof
    // bundles (entry v2: withheld values as their digests), yet it verified as complete.
    const text = await page.innerText("#timeline");
    expect(text).to.not.match(/Weber/);
    expect(await page.innerText("#summary-trust")).to.match(
      /^Log operated by St Mary General Hospital \(test\), per trust policy 0x[0-9a-f]{64} \(issued by Test regulator\)\.$/,
    );
    const served = await fetch(`${server.url}/v1/patient/history`, {
      headers: { authorization: `Bearer ${patientKey}` },
    });
    const raw = await served.text();
    for (const staff of ["Dr. Anna Weber", "aweber", "u-38117", "ehr-frontend-07", "10.20.30.41"])
      expect(raw).to.not.include(staff);
    expect(raw).to.include('"_sd":"0x');
    const later = await page.$$eval("#later tbody tr", (trs) =>
      trs.map((tr) => tr.getAttribute("data-ok")),
    );
    expect(later).to.deep.equal(["pending"]);
    await page.screenshot({ path: path.join(ARTIFACTS, "patient-page.png"), fullPage: true });
  });

  it("an empty history: 'No access to your data has been logged up to batch N'", async () => {
    const keys = ApiKeys.forLedger(log.ledger);
    const nobody = await keys.create({
      role: "patient",
      patient: { system: PATIENT_MRN_SYSTEM, value: "MRN-NEVER-SEEN" },
    });
    const status = await verdictAfter(nobody.secret);
    expect(status, await page.innerText("#result")).to.equal("verified");
    expect(await page.innerText("#summary-title")).to.equal(
      "✓ No access to your data has been logged up to batch 1",
    );
    expect(await page.innerText("#summary-detail")).to.match(
      /^Batch 1 is anchored in block \d+, and the blockchain confirms that the log holds no access to your data up to it\.$/,
    );
    expect(await page.isVisible("#timeline")).to.equal(false);
  });

  it("talks only to the service and the RPC; no console errors", () => {
    const origins = new Set(requests.map((u) => new URL(u).origin));
    expect([...origins].sort()).to.deep.equal([new URL(node.url).origin, server.url].sort());
    expect(consoleErrors).to.deep.equal([]);
  });

  it("a history with an access left out fails clearly (INCOMPLETE_HISTORY)", async () => {
    await page.route("**/v1/patient/history", async (route) => {
      const response = await route.fetch();
      const history = (await response.json()) as PatientHistory;
      history.events.splice(1, 1);
      await route.fulfill({ response, json: history });
    });
    try {
      const status = await verdictAfter(patientKey);
      expect(status).to.equal("failed");
      expect(await page.innerText("#summary-title")).to.include("INCOMPLETE_HISTORY");
      expect(await page.innerText("#findings")).to.include("INCOMPLETE_HISTORY");
      await page.screenshot({
        path: path.join(ARTIFACTS, "patient-page-incomplete.png"),
        fullPage: true,
      });
    } finally {
      await page.unroute("**/v1/patient/history");
    }
  });

  it("a policy that does not list this log's registry: a red UNTRUSTED_REGISTRY verdict", async () => {
    const other = structuredClone(trustDocument) as {
      registries: Array<{ address: string }>;
      logs: Array<{ registry: string }>;
    };
    other.registries[0]!.address = "0x000000000000000000000000000000000000dEaD";
    other.logs[0]!.registry = "0x000000000000000000000000000000000000dEaD";
    try {
      await loadPolicy(other);
      const status = await verdictAfter(patientKey);
      expect(status).to.equal("failed");
      expect(await page.innerText("#summary-title")).to.equal(
        "✗ Not from a log you trust (UNTRUSTED_REGISTRY)",
      );
    } finally {
      await loadPolicy(trustDocument);
    }
  });

  it("a key that is not valid is refused with a clear message", async () => {
    const status = await verdictAfter("vt_not_a_real_key");
    expect(status).to.equal("unauthorized");
    expect(await page.innerText("#summary-title")).to.equal("✗ Key not accepted");
    expect(await page.isHidden("#timeline")).to.equal(true);
  });
});

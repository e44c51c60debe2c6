import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Download, Page } from "playwright-core";
import { pino } from "pino";
import { buildWeb } from "../../scripts/build-web.ts";
import { DevDeployment } from "../../services/chain/dev-deployment.ts";
import type { NativeEvent } from "../../services/core/event.ts";
import { TRUST_POLICY_FORMAT, trustPolicyFingerprint } from "../../services/core/trust-policy.ts";
import { createApp } from "../../services/api/app.ts";
import { startServer } from "../../services/api/server.ts";
import { loadConfig } from "../../services/config.ts";
import { ApiKeys } from "../../services/ledger/api-keys.ts";
import { HOSPITAL_ORG, LAB_ORG, PATIENT_MRN_SYSTEM } from "../fixtures/events.ts";
import { ADMIN, AnchoredLog } from "../support/anchored-log.ts";
import {
  type InterceptingProxy,
  openObservedPage,
  startInterceptingProxy,
} from "../support/browser.ts";
import {
  mainThreadReport,
  openConsole,
  verifyInConsole,
  watchMainThread,
} from "../support/console-page.ts";
import {
  CATEGORY,
  type StaffAccount,
  accountOf,
  fillBulk,
  staffAccess,
  writeExport,
} from "../support/console-logs.ts";
import { HARDHAT_ACCOUNTS, HardhatNode, freePort } from "../support/hardhat-node.ts";
import { ingestAtTheirTimes } from "../support/log-clock.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ARTIFACTS = path.join(ROOT, "test-artifacts");
const EXAMPLES = path.join(ROOT, "examples/transfer");

/**
 * A page served by the interception itself whose script, worker and nested worker each POST to
 * `forbidden`: the control that shows the interception sees what workers send.
 */
const CONTROL = "http://interception-control.test";
function controlFiles(forbidden: string): Record<string, [string, string]> {
  const post = (from: string) =>
    `fetch(${JSON.stringify(`${forbidden}/from-${from}`)}, { method: "POST", body: "${from}-body" }).catch(() => undefined)`;
  // Each context says it is done once its request is answered and its child's is: then
  // nothing is in flight when the page sets data-done.
  return {
    "/": [
      "text/html",
      `<!doctype html><title>control</title><body><script>
        const child = new Promise((r) => (new Worker("/worker.js").onmessage = r));
        Promise.all([${post("page")}, child]).then(() => (document.body.dataset.done = "yes"));
      </script></body>`,
    ],
    "/worker.js": [
      "text/javascript",
      `const child = new Promise((r) => (new Worker("/nested.js").onmessage = r));
       Promise.all([${post("worker")}, child]).then(() => postMessage("done"));`,
    ],
    "/nested.js": ["text/javascript", `${post("nested")}.then(() => postMessage("done"));`],
  };
}

const HOSPITAL = "St Mary General Hospital";
const LAB = "Northside Clinical Laboratory";

const weber: StaffAccount = {
  id: "u-38117",
  name: "Dr. Anna Weber",
  userName: "aweber",
  organization: HOSPITAL_ORG,
};
const bauer: StaffAccount = {
  id: "u-2002",
  name: "Nurse Lena Bauer",
  userName: "lbauer",
  organization: HOSPITAL_ORG,
};
const klein: StaffAccount = {
  id: "u-4004",
  name: "Dr. Tom Klein",
  userName: "tklein",
  organization: HOSPITAL_ORG,
};
const clerk: StaffAccount = {
  id: "u-3003",
  name: "Mia Clerk",
  userName: "mclerk",
  organization: HOSPITAL_ORG,
};
const tech: StaffAccount = {
  id: "u-7007",
  name: "Sam Tech",
  userName: "stech",
  organization: LAB_ORG,
};

const at = (day: number, hh: number, mm = 0) =>
  `2025-03-${String(day).padStart(2, "0")}T${String(hh).padStart(2, "0")}:${String(mm).padStart(2, "0")}:00.000Z`;
const patient = (n: number) => `MRN-CONSOLE-${String(n).padStart(2, "0")}`;

async function transferSide(
  file: "export.json" | "import.json",
  recorded: string,
  mrn: string,
): Promise<NativeEvent> {
  const event = JSON.parse(await readFile(path.join(EXAMPLES, file), "utf8")) as NativeEvent;
  return {
    ...event,
    recorded,
    patient: { system: PATIENT_MRN_SYSTEM, value: mrn },
    requestId: `console-${file}-${process.pid}`,
    transfer: { reference: "xfer-2025-03-07-0001", dataHash: `0x${"5a".repeat(32)}` },
  };
}

/**
 * The hospital's log, seqs in time order (UTC; working hours 07:00–19:00 Mon–Fri):
 *  0–11 Mon 3 Mar 09:00–09:55  Weber reads patients 1–12 (12 distinct: over a threshold of 10)
 * 12–14 Tue 4 Mar 10:00, 11:00, 21:30  Bauer reads patients 1–3 (21:30 after hours)
 *    15 Wed 5 Mar 02:10  Klein, break-glass (ETREAT, BTG), after hours
 *    —— batch 0 sealed and anchored
 *    16 Thu 6 Mar 11:00  Klein, break-glass, in hours
 * 17–18 Thu 6 Mar 14:00, 14:30  Clerk updates patients 1–2 (HPAYMT)
 *    19 Fri 7 Mar 12:00  Export of patient 5 to the lab (transfer), by Weber
 *    20 Sat 8 Mar 10:00  Weber reads patient 1 (weekend: after hours)
 *    —— batch 1 sealed and anchored
 *    21 Sun 9 Mar 08:00  Bauer reads patient 4 (weekend) —— batch 2 sealed, not anchored
 */
async function seedHospital(log: AnchoredLog): Promise<void> {
  const first: NativeEvent[] = [
    ...Array.from({ length: 12 }, (_, i) =>
      staffAccess({ staff: weber, mrn: patient(i + 1), at: at(3, 9, i * 5) }),
    ),
    ...[10, 11].map((h, i) =>
      staffAccess({
        staff: bauer,
        mrn: patient(i + 1),
        at: at(4, h),
        category: CATEGORY.discharge,
      }),
    ),
    staffAccess({ staff: bauer, mrn: patient(3), at: at(4, 21, 30), category: CATEGORY.discharge }),
    staffAccess({
      staff: klein,
      mrn: patient(13),
      at: at(5, 2, 10),
      purposes: ["ETREAT", "BTG"],
      breakGlass: true,
      category: CATEGORY.imaging,
    }),
  ];
  await ingestAtTheirTimes(log.ledger, log.clock, first);
  await log.sealAndAnchor();
  const second: NativeEvent[] = [
    staffAccess({
      staff: klein,
      mrn: patient(14),
      at: at(6, 11),
      purposes: ["ETREAT", "BTG"],
      breakGlass: true,
      category: CATEGORY.imaging,
    }),
    ...[0, 30].map((mm, i) =>
      staffAccess({
        staff: clerk,
        mrn: patient(i + 1),
        at: at(6, 14, mm),
        action: "U",
        purposes: ["HPAYMT"],
        category: CATEGORY.discharge,
      }),
    ),
    await transferSide("export.json", at(7, 12), patient(5)),
    staffAccess({ staff: weber, mrn: patient(1), at: at(8, 10) }),
  ];
  await ingestAtTheirTimes(log.ledger, log.clock, second);
  await log.sealAndAnchor();
  await ingestAtTheirTimes(log.ledger, log.clock, [
    staffAccess({ staff: bauer, mrn: patient(4), at: at(9, 8), category: CATEGORY.discharge }),
  ]);
  await log.ledger.sealPending();
}

/** The lab's log: 0 the import of the hospital's transfer (Fri 12:05), 1–2 Tech reads. */
async function seedLab(log: AnchoredLog): Promise<void> {
  await ingestAtTheirTimes(log.ledger, log.clock, [
    await transferSide("import.json", at(7, 12, 5), "LAB-0005"),
    staffAccess({ staff: tech, mrn: "LAB-0001", at: at(7, 13) }),
    staffAccess({ staff: tech, mrn: "LAB-0002", at: at(7, 13, 30) }),
  ]);
  await log.sealAndAnchor();
}

interface Api {
  url: string;
  auditor: string;
  writer: string;
  close(): Promise<void>;
}

async function serve(log: AnchoredLog, env: Record<string, string> = {}): Promise<Api> {
  const keys = ApiKeys.forLedger(log.ledger);
  const auditor = (await keys.create({ role: "auditor" })).secret;
  const writer = (await keys.create({ role: "writer", organization: HOSPITAL_ORG })).secret;
  const app = createApp({
    ledger: log.ledger,
    apiKeys: keys,
    logger: pino({ level: "silent" }),
    config: loadConfig(env),
  });
  const server = await startServer(app, { host: "127.0.0.1", port: 0 });
  return { url: server.url, auditor, writer, close: () => server.close(1_000) };
}

/** Cells of a figure's table, header first. */
async function table(page: Page, name: string): Promise<string[][]> {
  return page.$$eval(`table[data-table="${name}"] tr`, (trs) =>
    trs.map((tr) =>
      Array.from((tr as HTMLTableRowElement).cells, (c) => (c.textContent ?? "").trim()),
    ),
  );
}

/** "label → count" of a counts table (purpose, action, category). */
async function counts(page: Page, name: string): Promise<Record<string, number>> {
  const rows = await table(page, name);
  return Object.fromEntries(rows.slice(1).map((r) => [r[1]!, Number(r[2])]));
}

describe("regulator console in headless Chromium (real Hardhat node, two logs, two APIs)", function () {
  this.timeout(300_000);
  let node: HardhatNode;
  let hospital: AnchoredLog;
  let lab: AnchoredLog;
  let elsewhere: AnchoredLog;
  let apiA: Api;
  let apiB: Api;
  let browser: Browser;
  let page: Page;
  let requests: string[] = [];
  let consoleErrors: string[] = [];
  let traffic: InterceptingProxy;
  /** An origin nobody gave the page, with a server that records anything reaching it. */
  let forbidden: string;
  let leakServer: http.Server;
  /** The regulator's site, publishing a policy that lists only the hospital's log. */
  let regulatorSite: http.Server;
  let regulatorUrl: string;
  const leaked: string[] = [];
  let policy: Record<string, unknown>;
  let chainId: number;
  let workDir: string;
  let deadUrl: string;

  before(async () => {
    await buildWeb();
    await mkdir(ARTIFACTS, { recursive: true });
    workDir = await mkdtemp(path.join(tmpdir(), "veritrail-console-"));
    node = await HardhatNode.start();
    chainId = Number(BigInt(await node.rpc<string>("eth_chainId", [])));
    hospital = await AnchoredLog.create(node, { operator: HOSPITAL });
    lab = await AnchoredLog.create(node, {
      deployment: hospital.deployment,
      anchorer: new Wallet(HARDHAT_ACCOUNTS[3].privateKey),
      receiptSigner: new Wallet(HARDHAT_ACCOUNTS[4].privateKey),
      operator: LAB,
    });
    await seedHospital(hospital);
    await seedLab(lab);
    apiA = await serve(hospital);
    // The console is served by the hospital's API; the lab's lets that origin read it.
    apiB = await serve(lab, { CORS_ORIGINS: apiA.url });
    deadUrl = `http://127.0.0.1:${await freePort()}`;
    policy = {
      format: TRUST_POLICY_FORMAT,
      issuer: "National health data regulator (test)",
      registries: [{ chainId, address: hospital.contract, confirmations: 1, name: "Consortium" }],
      logs: [
        {
          chainId,
          registry: hospital.contract,
          logId: hospital.ledger.logId,
          operator: HOSPITAL,
          api: apiA.url,
        },
        {
          chainId,
          registry: hospital.contract,
          logId: lab.ledger.logId,
          operator: LAB,
          api: apiB.url,
        },
      ],
    };
    const hospitalOnly = {
      ...policy,
      issuer: "Regional regulator (hospital only)",
      logs: (policy["logs"] as unknown[]).slice(0, 1),
    };
    regulatorSite = http.createServer((req, res) => {
      if (req.url !== "/veritrail-trust.json") return void res.writeHead(404).end();
      res
        .writeHead(200, {
          "content-type": "application/json",
          "access-control-allow-origin": "*",
        })
        .end(JSON.stringify(hospitalOnly));
    });
    await new Promise<void>((resolve) => regulatorSite.listen(0, "127.0.0.1", resolve));
    regulatorUrl = `http://127.0.0.1:${(regulatorSite.address() as AddressInfo).port}`;
    leakServer = http.createServer((req, res) => {
      leaked.push(`${req.method} ${req.url}`);
      res.end();
    });
    await new Promise<void>((resolve) => leakServer.listen(0, "127.0.0.1", resolve));
    forbidden = `http://127.0.0.1:${(leakServer.address() as AddressInfo).port}`;
    // Every request the page or any of its workers makes goes through this proxy: only the
    // APIs and the RPC it was given are passed on (the unreachable one too: the user typed
    // it), anything else is cut and recorded.
    traffic = await startInterceptingProxy(
      (origin) => [apiA.url, apiB.url, node.url, deadUrl, regulatorUrl].includes(origin),
      { origin: CONTROL, files: controlFiles(forbidden) },
    );
    ({ browser, page, requests, consoleErrors } = await openObservedPage({ proxy: traffic.url }));
  });

  after(async () => {
    await browser?.close();
    await traffic?.close();
    leakServer?.close();
    regulatorSite?.close();
    await apiA?.close();
    await apiB?.close();
    await hospital?.close();
    await lab?.close();
    await elsewhere?.close();
    await node?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const open = () => openConsole(page, apiA.url, policy, { [chainId]: node.url });
  const verify = () => verifyInConsole(page);

  /** Sets the working hours to 07:00–19:00 Mon–Fri UTC and waits for the figures. */
  async function utcHours(): Promise<void> {
    const before = await page.getAttribute("body", "data-figures");
    await page.fill("#zone", "UTC");
    await page.fill("#hours-start", "07:00");
    await page.fill("#hours-end", "19:00");
    await page.fill("#threshold", "10");
    await page.dispatchEvent("#threshold", "change");
    await drawnAfter(before);
  }

  /** Waits until the figures were drawn again since `before` and no other refresh is due. */
  async function drawnAfter(before: string | null): Promise<void> {
    await page.waitForFunction(
      (b) =>
        document.body.dataset["figures"] !== b &&
        document.getElementById("results")!.getAttribute("aria-busy") !== "true",
      before,
    );
  }

  async function refigured(action: () => Promise<unknown>): Promise<void> {
    const before = await page.getAttribute("body", "data-figures");
    await action();
    await drawnAfter(before);
  }

  it("intercepts what a page, its workers and their workers send (the check the last test relies on)", async () => {
    await page.goto(`${CONTROL}/`);
    await page.waitForSelector("body[data-done=yes]", { state: "attached" });
    expect(
      traffic.refused.map((r) => [new URL(r.url).pathname, r.method, r.body]),
    ).to.have.deep.members([
      ["/from-page", "POST", "page-body"],
      ["/from-worker", "POST", "worker-body"],
      ["/from-nested", "POST", "nested-body"],
    ]);
    expect(traffic.refused.every((r) => r.url.startsWith(forbidden))).to.equal(true);
    expect(leaked).to.deep.equal([]);
    traffic.refused.length = 0;
    await page.goto("about:blank");
  });

  it("verifies both logs through their APIs with auditor keys and shows exactly the seeded figures", async () => {
    await open();
    await page.fill("#key-0", apiA.auditor);
    await page.fill("#key-1", apiB.auditor);
    expect(await verify()).to.equal("done");
    const runs = await page.$$eval(".run", (els) =>
      els.map((e) => [(e as HTMLElement).dataset["state"], (e as HTMLElement).dataset["bundles"]]),
    );
    expect(runs).to.deep.equal([
      ["done", "22"],
      ["done", "3"],
    ]);
    await utcHours();

    // Together: 25 events, 24 verified, the unanchored one pending; nothing failed.
    expect(await table(page, "verdicts")).to.deep.equal([
      ["verdict", "code", "bundles"],
      ["verified", "", "24"],
      ["erased", "", "0"],
      ["withheld", "", "0"],
      ["pending", "", "1"],
      ["total", "", "25"],
    ]);
    expect(await page.textContent('[data-count="failures"]')).to.equal(
      "No bundle failed verification.",
    );
    expect(await page.isHidden("#view-failures")).to.equal(true);
    // Side by side: one column per log, and both together.
    const compare = await table(page, "compare");
    expect(compare[0]).to.deep.equal(["", HOSPITAL, LAB, "all logs"]);
    const metric = (name: string) => compare.find((r) => r[0] === name)?.slice(1);
    expect(metric("events")).to.deep.equal(["22", "3", "25"]);
    expect(metric("break-glass")).to.deep.equal(["2", "0", "2"]);
    expect(metric("after hours")).to.deep.equal(["4", "0", "4"]);
    expect(metric("staff over threshold")).to.deep.equal(["1", "0", "1"]);
    expect(metric("batches")).to.deep.equal(["3", "1", "4"]);
    expect(metric("batches pending")).to.deep.equal(["1", "0", "1"]);
    expect(metric("batch discrepancies")).to.deep.equal(["0", "0", "0"]);

    expect(await counts(page, "purposes")).to.deep.equal({
      TREAT: 21,
      ETREAT: 2,
      BTG: 2,
      HPAYMT: 2,
    });
    expect(await counts(page, "actions")).to.deep.equal({ R: 22, U: 2, C: 1 });
    expect(await counts(page, "categories")).to.deep.equal({
      "11502-2": 16,
      "18842-5": 6,
      "18748-4": 2,
      "(none)": 1,
    });
    expect((await table(page, "categories")).map((r) => r[0])).to.deep.equal([
      "data category",
      "Laboratory report",
      "Discharge summary",
      "Diagnostic imaging study",
      "(none)",
    ]);
    const perDay = await table(page, "perday");
    expect(perDay[0]).to.deep.equal(["day", LAB_ORG, HOSPITAL_ORG, "total"]);
    expect(perDay.slice(1)).to.deep.equal([
      ["2025-03-03", "0", "12", "12"],
      ["2025-03-04", "0", "3", "3"],
      ["2025-03-05", "0", "1", "1"],
      ["2025-03-06", "0", "3", "3"],
      ["2025-03-07", "3", "1", "4"],
      ["2025-03-08", "0", "1", "1"],
      ["2025-03-09", "0", "1", "1"],
    ]);
    // The stacked chart draws the same numbers.
    const drawn = await page.evaluate(() => {
      const canvas = document.getElementById("chart-perday") as HTMLCanvasElement;
      return canvas.width > 0 && canvas.height > 0;
    });
    expect(drawn).to.equal(true);

    const breakGlass = await table(page, "breakglass");
    expect(breakGlass.slice(1).map((r) => [r[0], r[1], r[3], r[5]])).to.deep.equal([
      [HOSPITAL, "15", "2025-03-05 02:10", "Dr. Tom Klein"],
      [HOSPITAL, "16", "2025-03-06 11:00", "Dr. Tom Klein"],
    ]);
    const afterHours = await table(page, "afterhours");
    expect(afterHours.slice(1).map((r) => [r[1], r[3]])).to.deep.equal([
      ["14", "2025-03-04 21:30"],
      ["15", "2025-03-05 02:10"],
      ["20", "2025-03-08 10:00"],
      ["21", "2025-03-09 08:00"],
    ]);
    const staff = await table(page, "staff");
    expect(staff.slice(1).map((r) => [r[3], r[5], r[6], r[7]])).to.deep.equal([
      ["Dr. Anna Weber", "12", "14", "yes"],
      ["Nurse Lena Bauer", "4", "4", "no"],
      ["Dr. Tom Klein", "2", "2", "no"],
      ["Mia Clerk", "2", "2", "no"],
      ["Sam Tech", "2", "2", "no"],
    ]);
    expect(await page.$$eval('#view-staff tr[data-flag="over"]', (r) => r.length)).to.equal(1);
    const transfers = await table(page, "transfers");
    expect(transfers.slice(1).map((r) => [r[0], r[2], r[3], r[5], r[8], r[10]])).to.deep.equal([
      ["xfer-2025-03-07-0001", "matched", HOSPITAL, "19", LAB, "0"],
    ]);
    const anchoring = await table(page, "anchoring");
    expect(anchoring.slice(1).map((r) => [r[0], r[1], r[2], r[3], r[4], r[10]])).to.deep.equal([
      [HOSPITAL, "0", "0", "16", "16", "anchored"],
      [HOSPITAL, "1", "16", "5", "5", "anchored"],
      [HOSPITAL, "2", "21", "1", "1", "pending"],
      [LAB, "0", "0", "3", "3", "anchored"],
    ]);
    for (const row of anchoring.slice(1).filter((r) => r[10] === "anchored")) {
      expect(Number(row[7]), "block").to.be.greaterThan(0);
      expect(Number(row[8]), "confirmations").to.be.greaterThanOrEqual(1);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, "regulator-console.png"), fullPage: true });
    // The README's picture: the runs, both logs side by side, the verdict and the first charts.
    const top = await page.evaluate(
      () => document.getElementById("runs")!.getBoundingClientRect().top + window.scrollY,
    );
    await page.screenshot({
      path: path.join(ARTIFACTS, "regulator-console-overview.png"),
      fullPage: true,
      clip: { x: 0, y: top - 8, width: 1100, height: 2350 },
    });

    // Raising the threshold above 12 flags nobody.
    await refigured(() =>
      page.fill("#threshold", "13").then(() => page.dispatchEvent("#threshold", "change")),
    );
    expect(await page.$$eval('#view-staff tr[data-flag="over"]', (r) => r.length)).to.equal(0);
    await refigured(() =>
      page.fill("#threshold", "10").then(() => page.dispatchEvent("#threshold", "change")),
    );
  });

  it("filters every figure by organization, period and log", async () => {
    await refigured(() => page.uncheck(`#organizations input[value="${HOSPITAL_ORG}"]`));
    expect(await counts(page, "actions")).to.deep.equal({ R: 2, C: 1 });
    expect((await table(page, "breakglass")).length).to.equal(1);
    await refigured(() => page.check(`#organizations input[value="${HOSPITAL_ORG}"]`));

    await refigured(async () => {
      await page.fill("#from-day", "2025-03-04");
      await page.fill("#to-day", "2025-03-05");
      await page.dispatchEvent("#to-day", "change");
    });
    expect(await counts(page, "actions")).to.deep.equal({ R: 4 });
    expect((await table(page, "afterhours")).slice(1).map((r) => r[1])).to.deep.equal(["14", "15"]);
    await refigured(async () => {
      await page.fill("#from-day", "");
      await page.fill("#to-day", "");
      await page.dispatchEvent("#to-day", "change");
    });

    await refigured(() => page.selectOption("#scope", "1"));
    expect(await counts(page, "actions")).to.deep.equal({ R: 2, C: 1 });
    await refigured(() => page.selectOption("#scope", "all"));
    expect(await counts(page, "actions")).to.deep.equal({ R: 22, U: 2, C: 1 });
  });

  it("exports each figure as the CSV of its table and the verification result as JSON", async () => {
    const saved = async (click: () => Promise<unknown>): Promise<string> => {
      const [download] = (await Promise.all([page.waitForEvent("download"), click()])) as [
        Download,
        unknown,
      ];
      return readFile((await download.path())!, "utf8");
    };
    const purposes = await saved(() => page.click('button.csv[data-table="purposes"]'));
    expect(purposes.split("\r\n")).to.deep.equal([
      "purpose of use,code,events",
      "treatment (TREAT),TREAT,21",
      "break the glass (BTG),BTG,2",
      "Emergency Treatment (ETREAT),ETREAT,2",
      "healthcare payment (HPAYMT),HPAYMT,2",
      "",
    ]);
    const staff = await saved(() => page.click('button.csv[data-table="staff"]'));
    expect(staff).to.include(
      `${HOSPITAL},u-38117,${accountOf(weber).split("|")[0]},Dr. Anna Weber,${HOSPITAL_ORG},12,14,true`,
    );
    const result = JSON.parse(await saved(() => page.click("#result-json"))) as {
      format: string;
      trustPolicy: { fingerprint: string };
      logs: Array<{
        logId: string;
        bundles: number;
        counts: Record<string, number>;
        verdicts: unknown[];
      }>;
    };
    expect(result.format).to.equal("veritrail-console-result/1");
    // The verdicts are relative to the policy loaded: its fingerprint as core computes it.
    expect(result.trustPolicy.fingerprint).to.equal(trustPolicyFingerprint(policy));
    expect(
      result.logs.map((l) => [l.logId, l.bundles, l.counts["verified"], l.counts["pending"]]),
    ).to.deep.equal([
      [hospital.ledger.logId, 22, 21, 1],
      [lab.ledger.logId, 3, 3, 0],
    ]);
    expect(result.logs[0]!.verdicts).to.have.length(22);
  });

  it("opens an event's proof from a list, checked again against the chain", async () => {
    await page.click('table[data-table="breakglass"] a[data-seq="15"]');
    await page.waitForSelector("#proof-verdict[data-status]");
    expect(await page.getAttribute("#proof-verdict", "data-status")).to.equal("verified");
    const steps = await page.$$eval("#proof-checks tbody tr", (trs) =>
      trs.map((tr) => [tr.getAttribute("data-step"), tr.getAttribute("data-ok")]),
    );
    expect(steps.filter(([, ok]) => ok === "false")).to.deep.equal([]);
    expect(steps.map(([s]) => s)).to.include.members([
      "commitment",
      "inclusion",
      "anchor",
      "trust",
    ]);
    expect(await page.textContent("#proof-json")).to.include('"breakGlass": true');
    await page.screenshot({ path: path.join(ARTIFACTS, "regulator-proof.png") });
    await page.click('#proof-dialog button[value="close"]');
  });

  it("flags the one tampered bundle of a dropped export with its code", async () => {
    const res = await fetch(`${apiA.url}/v1/export`, {
      headers: { authorization: `Bearer ${apiA.auditor}` },
    });
    const lines = (await res.text()).trimEnd().split("\n");
    expect(lines).to.have.length(22);
    const tampered = JSON.parse(lines[3]!) as { event: { action: string } };
    tampered.event.action = "D";
    lines[3] = JSON.stringify(tampered);
    const file = path.join(workDir, "st-mary-export.ndjson");
    await writeFile(file, `${lines.join("\n")}\n`);

    await open();
    await page.setInputFiles("#export-files", file);
    expect(await verify()).to.equal("done");
    await utcHours();
    expect(await table(page, "verdicts")).to.deep.equal([
      ["verdict", "code", "bundles"],
      ["verified", "", "20"],
      ["erased", "", "0"],
      ["withheld", "", "0"],
      ["pending", "", "1"],
      ["failed", "COMMITMENT_MISMATCH", "1"],
      ["total", "", "22"],
    ]);
    expect(await page.textContent("#verdict-line")).to.equal(
      "✗ 1 of 22 bundles did not verify: COMMITMENT_MISMATCH × 1.",
    );
    // The tampered bundle itself, named with its step and a link to its proof.
    expect(await page.textContent('[data-count="failures"]')).to.equal(
      "1 bundle did not verify, each with the step that failed and why.",
    );
    const failures = await table(page, "failures");
    expect(failures.slice(1).map((r) => [r[1], r[2], r[3]])).to.deep.equal([
      ["3", "COMMITMENT_MISMATCH", "commitment"],
    ]);
    await page.click('table[data-table="failures"] a[data-seq="3"]');
    await page.waitForSelector("#proof-verdict[data-status]");
    expect(await page.textContent("#proof-verdict")).to.equal("✗ Not valid (COMMITMENT_MISMATCH).");
    expect(await page.getAttribute('#proof-checks tr[data-step="commitment"]', "data-ok")).to.equal(
      "false",
    );
    await page.click('#proof-dialog button[value="close"]');
    // (Clicking the link scrolled its list sideways: back to the start for the picture.)
    await page.$eval(
      'table[data-table="failures"]',
      (t) => (t.closest(".table-wrap")!.scrollLeft = 0),
    );
    await page.screenshot({
      path: path.join(ARTIFACTS, "regulator-tampered-verification.png"),
      fullPage: true,
      clip: await page.evaluate(() => {
        const top = document.getElementById("view-verdicts")!.getBoundingClientRect();
        const end = document.getElementById("view-failures")!.getBoundingClientRect();
        return {
          x: 0,
          y: top.top + window.scrollY - 8,
          width: 1100,
          height: end.bottom - top.top + 16,
        };
      }),
    });
    // The tampered bundle's claim (a delete) is shown, flagged; "only verified" drops it.
    expect(await counts(page, "actions")).to.deep.equal({ R: 19, U: 2, D: 1 });
    await refigured(() => page.check("#verified-only"));
    expect(await counts(page, "actions")).to.deep.equal({ R: 18, U: 2 });
    await refigured(() => page.uncheck("#verified-only"));
    await page.screenshot({ path: path.join(ARTIFACTS, "regulator-tampered.png"), fullPage: true });
  });

  it("says which: a wrong key, a key that is not an auditor's, an unreachable API or RPC", async () => {
    const runError = async (): Promise<Array<[string, string]>> =>
      page.$$eval(".run", (els) =>
        els.map(
          (e) =>
            [(e as HTMLElement).dataset["error"] ?? "", e.textContent ?? ""] as [string, string],
        ),
      );
    await open();
    await page.fill("#key-0", "vt_this_is_not_a_key");
    await page.fill("#key-1", apiB.writer);
    expect(await verify()).to.equal("error");
    const [wrong, writer] = await runError();
    expect(wrong![0]).to.equal("key-rejected");
    expect(wrong![1]).to.include("Key not accepted");
    expect(writer![0]).to.equal("not-auditor");
    expect(writer![1]).to.include("Not an auditor key");

    await open();
    await page.fill(`#rpc-${chainId}`, deadUrl);
    await page.fill("#key-0", apiA.auditor);
    expect(await verify()).to.equal("error");
    const [rpc] = await runError();
    expect(rpc![0]).to.equal("rpc-unreachable");
    expect(rpc![1]).to.match(/RPC unreachable: cannot reach the RPC at http:\/\/127\.0\.0\.1:\d+/);

    await open();
    await page.fill("#log-sources tbody tr:first-child input.api", deadUrl);
    await page.fill("#key-0", apiA.auditor);
    expect(await verify()).to.equal("error");
    const [api] = await runError();
    expect(api![0]).to.equal("api-unreachable");
    expect(api![1]).to.include(`API unreachable: cannot reach the API at ${deadUrl}`);
  });

  it("says which bundles come from a registry the policy does not trust (UNTRUSTED_REGISTRY)", async () => {
    elsewhere = await AnchoredLog.create(node, { deployment: new DevDeployment(ADMIN) });
    await ingestAtTheirTimes(elsewhere.ledger, elsewhere.clock, [
      staffAccess({ staff: weber, mrn: patient(1), at: at(10, 9) }),
      staffAccess({ staff: weber, mrn: patient(2), at: at(10, 10) }),
    ]);
    await elsewhere.sealAndAnchor();
    const file = path.join(workDir, "elsewhere.ndjson");
    await writeExport(elsewhere.ledger, file);
    await open();
    await page.setInputFiles("#export-files", file);
    expect(await verify()).to.equal("done");
    const note = await page.textContent('[data-note="untrusted-registry"]');
    expect(note).to.match(
      /^2 bundle\(s\) are anchored in a registry your trust policy does not list \(UNTRUSTED_REGISTRY\): registry 0x[0-9a-fA-F]{40} on chain \d+ is not a registry the trust policy lists/,
    );
    expect(
      (await table(page, "verdicts")).find((r) => r[1] === "UNTRUSTED_REGISTRY"),
    ).to.deep.equal(["failed", "UNTRUSTED_REGISTRY", "2"]);
    await page.screenshot({
      path: path.join(ARTIFACTS, "regulator-untrusted.png"),
      fullPage: true,
    });
  });

  it("takes its trust policy from the regulator's URL; a log that policy does not list is UNKNOWN_LOG", async () => {
    const file = path.join(workDir, "lab.ndjson");
    await writeExport(lab.ledger, file);
    await page.goto(`${apiA.url}/regulator`);
    // The policy of the tests before is kept in this browser until forgotten; without one
    // nothing is verified.
    if ((await page.getAttribute("body", "data-trust")) === "loaded")
      await page.click("#trust-forget");
    expect(await page.getAttribute("body", "data-trust")).to.equal("none");
    await page.setInputFiles("#export-files", file);
    await page.click("#verify");
    expect(await page.textContent("#form-message")).to.equal(
      "Load a trust policy first: every verdict is relative to the registries and logs it lists.",
    );
    await page.fill("#trust-url", `${regulatorUrl}/veritrail-trust.json`);
    await page.click("#trust-load");
    await page.waitForSelector("body[data-trust=loaded]");
    expect(await page.textContent("#trust")).to.include("Regional regulator (hospital only)");
    await page.fill(`#rpc-${chainId}`, node.url);
    // The same file chosen again is listed (and verified) once.
    await page.setInputFiles("#export-files", file);
    expect(await page.$$eval("#file-list li", (li) => li.length)).to.equal(1);
    expect(await verify()).to.equal("done");
    expect(await page.textContent('[data-note="unknown-log"]')).to.equal(
      "3 bundle(s) are of a log your trust policy does not list (UNKNOWN_LOG). They are not counted as verified.",
    );
    expect((await table(page, "verdicts")).find((r) => r[1] === "UNKNOWN_LOG")).to.deep.equal([
      "failed",
      "UNKNOWN_LOG",
      "3",
    ]);
    expect((await table(page, "failures")).slice(1).map((r) => [r[1], r[2], r[3]])).to.deep.equal([
      ["0", "UNKNOWN_LOG", "trust"],
      ["1", "UNKNOWN_LOG", "trust"],
      ["2", "UNKNOWN_LOG", "trust"],
    ]);
  });

  it("verifies a 5,000-bundle export in the page, the page staying responsive (time printed)", async () => {
    const big = await AnchoredLog.create(node, {
      deployment: hospital.deployment,
      anchorer: new Wallet(HARDHAT_ACCOUNTS[5].privateKey),
      receiptSigner: new Wallet(`0x${"66".repeat(32)}`),
      operator: "Bulk",
    });
    try {
      await fillBulk(big, { events: 5_000, batchSize: 1_000 });
      const file = path.join(workDir, "bulk.ndjson");
      await writeExport(big.ledger, file);
      const bulkPolicy = structuredClone(policy) as { logs: Array<Record<string, unknown>> };
      bulkPolicy.logs.push({
        chainId,
        registry: hospital.contract,
        logId: big.ledger.logId,
        operator: "Bulk",
      });
      await openConsole(page, apiA.url, bulkPolicy, { [chainId]: node.url });
      // Stop ends a run part-way: its workers are gone, nothing is drawn.
      await page.setInputFiles("#export-files", file);
      await page.click("#verify");
      await page.waitForSelector(".run[data-verified]");
      await page.click("#stop");
      expect(await page.getAttribute("body", "data-console")).to.equal("stopped");
      expect(await page.textContent(".run")).to.match(/Stopped after \d+ bundles\./);
      expect(await page.isHidden("#results")).to.equal(true);

      await page.setInputFiles("#export-files", file);
      const rpcBefore = traffic.sent.filter((r) => r.url.startsWith(node.url)).length;
      await watchMainThread(page);
      expect(await verify()).to.equal("done");
      const ms = Number(await page.getAttribute(".run", "data-duration-ms"));
      const { maxGapMs: maxGap, drawMs } = await mainThreadReport(page);
      const rpcCalls = traffic.sent.filter((r) => r.url.startsWith(node.url)).length - rpcBefore;
      console.log(
        `      5,000 bundles verified in the page in ${(ms / 1000).toFixed(1)} s (${Math.round(5000 / (ms / 1000))} bundles/s); longest main-thread stall while verifying ${maxGap.toFixed(0)} ms, figures drawn in ${drawMs} ms; ${rpcCalls} RPC requests for 5 batches`,
      );
      expect(await page.getAttribute(".run", "data-bundles")).to.equal("5000");
      expect((await table(page, "verdicts"))[1]).to.deep.equal(["verified", "", "5000"]);
      expect(maxGap).to.be.lessThan(500);
      // One state read per batch, not per bundle.
      expect(rpcCalls).to.be.lessThan(60);
    } finally {
      await big.close();
    }
  });

  it("talked only to the two APIs and the RPC; no patient identifier or key left the page or was stored", async () => {
    // Nothing was stopped: the page and its workers asked for nothing but what they were given.
    expect(traffic.refused.map((r) => r.url)).to.deep.equal([]);
    // Chromium's own requests are told apart by host; the page's scripts name none of those.
    for (const script of ["regulator", "regulator-worker", "regulator-verifier"]) {
      const code = await readFile(path.join(ROOT, "web/dist", `${script}.js`), "utf8");
      expect(code, script).to.not.match(/(google|googleapis|gstatic)\.com|gvt1\.com/);
    }
    expect(leaked).to.deep.equal([]);
    // Every request Chromium reported went through the interception (none bypassed it).
    const intercepted = new Set(traffic.sent.map((r) => r.url));
    const reported = requests.filter(
      (u) =>
        !u.startsWith("blob:") &&
        !u.startsWith("data:") &&
        !u.startsWith(CONTROL) &&
        !u.startsWith(forbidden),
    );
    expect(reported.filter((u) => !intercepted.has(u))).to.deep.equal([]);
    // The workers' traffic is in it: the export streamed by a log's worker, the chain reads, and
    // the verifier workers that worker started.
    const paths = traffic.sent.map((r) => `${new URL(r.url).origin} ${new URL(r.url).pathname}`);
    expect(paths).to.include.members([
      `${apiA.url} /v1/export`,
      `${apiB.url} /v1/export`,
      `${apiA.url} /assets/regulator-worker.js`,
      `${apiA.url} /assets/regulator-verifier.js`,
      `${node.url} /`,
    ]);
    expect(traffic.sent.length).to.be.greaterThan(50);

    // Each key went only to the API of the row it was typed into, and only in the header.
    const keysFor: Record<string, string[]> = {
      [apiA.url]: [apiA.auditor, "vt_this_is_not_a_key"],
      [apiB.url]: [apiB.auditor, apiB.writer],
      [deadUrl]: [apiA.auditor],
      [node.url]: [],
    };
    const keys = [apiA.auditor, apiB.auditor, apiB.writer, "vt_this_is_not_a_key"];
    for (const r of traffic.sent) {
      const { authorization, ...rest } = r.headers;
      if (authorization !== undefined)
        expect(
          keysFor[new URL(r.url).origin]!.map((k) => `Bearer ${k}`),
          r.url,
        ).to.include(authorization);
      const visible = `${r.url}\n${JSON.stringify(rest)}\n${r.body}`;
      for (const key of keys) expect(visible.includes(key), `${key} in ${r.url}`).to.equal(false);
    }
    expect(
      traffic.sent.filter((r) => r.url.startsWith(node.url) && "authorization" in r.headers),
    ).to.deep.equal([]);

    // Patient identifiers and their subject tags (pseudonyms): in no URL, header or body.
    const secrets = [
      "MRN-CONSOLE-",
      "LAB-000",
      "MRN-BULK-",
      hospital.tagOf(patient(1)).slice(2),
      hospital.tagOf(patient(13)).slice(2),
      lab.tagOf("LAB-0005").slice(2),
    ];
    const everything = traffic.sent
      .map((r) => `${r.url}\n${JSON.stringify(r.headers)}\n${r.body}`)
      .join("\n");
    for (const secret of secrets) expect(everything.includes(secret), secret).to.equal(false);
    for (const secret of keys) secrets.push(secret);
    const stored = await page.evaluate(
      () => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
    );
    for (const secret of secrets) expect(stored.includes(secret), secret).to.equal(false);
    expect(page.url()).to.not.include("vt_");
    expect(
      consoleErrors.filter(
        (e) =>
          !e.includes(deadUrl) &&
          !e.includes("401") &&
          !e.includes("403") &&
          !e.includes(CONTROL) &&
          !e.includes(forbidden),
      ),
    ).to.deep.equal([]);
  });
});

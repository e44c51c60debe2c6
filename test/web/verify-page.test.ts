import { expect } from "chai";
import { createReadStream } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { WEB_DIST, buildWeb } from "../../scripts/build-web.ts";
import { openObservedPage } from "../support/browser.ts";
import { HardhatNode } from "../support/hardhat-node.ts";
import { readFile } from "node:fs/promises";
import {
  type GeneratedBundles,
  RECEIPT_SIGNER,
  buildCase,
  generateBundles,
  loadCases,
  resignReceipt,
} from "../vectors/bundles/generate.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const WEB = path.join(ROOT, "web");
const ARTIFACTS = path.join(ROOT, "test-artifacts");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * The routes the API will serve: the page at /verify, the bundle at /assets/. Nothing else, so
 * a page that fetched anything more (a font, a CDN, the API) would show up as a 404.
 */
async function startStaticServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    let file: string | undefined;
    if (url.pathname === "/verify") file = path.join(WEB, "verify.html");
    else if (url.pathname.startsWith("/assets/")) {
      const name = path.basename(url.pathname);
      if (/^[\w.-]+$/.test(name)) file = path.join(WEB_DIST, name);
    }
    const send = async () => {
      if (!file || !(await stat(file).catch(() => undefined))?.isFile()) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, {
        "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
      });
      createReadStream(file).pipe(res);
    };
    void send();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("verify page in headless Chromium (real Hardhat node)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let g: GeneratedBundles;
  let site: { url: string; close(): Promise<void> };
  let browser: Browser;
  let page: Page;
  let requests: string[] = [];
  let consoleErrors: string[] = [];

  before(async () => {
    await buildWeb();
    await mkdir(ARTIFACTS, { recursive: true });
    node = await HardhatNode.start();
    g = await generateBundles(node);
    site = await startStaticServer();
    ({ browser, page, requests, consoleErrors } = await openObservedPage());
  });

  /** Loads the regulator's policy for the generated log through the page's file input. */
  async function loadPolicy(document: unknown = g.trustDocument): Promise<void> {
    await page.setInputFiles("#trust-file", {
      name: "trust.json",
      mimeType: "application/json",
      buffer: Buffer.from(JSON.stringify(document)),
    });
  }
  after(async () => {
    await browser?.close();
    await site?.close();
    await g?.close();
    await node?.stop();
  });

  async function verdictAfter(action: () => Promise<unknown>): Promise<string> {
    await page.evaluate(() => delete document.body.dataset.verdict);
    await action();
    await page.waitForSelector("body[data-verdict]", { timeout: 60_000 });
    return (await page.getAttribute("body", "data-verdict")) ?? "";
  }

  it("without a trust policy nothing is verified: the page asks for one", async () => {
    const encoded = Buffer.from(JSON.stringify(g.bases.fresh)).toString("base64url");
    const target = `${site.url}/verify#bundle=${encoded}&rpc=${encodeURIComponent(node.url)}`;
    const status = await verdictAfter(() => page.goto(target));
    expect(status).to.equal("no-policy");
    expect(await page.innerText("#verdict-title")).to.equal("! No trust policy");
    expect(await page.getAttribute("body", "data-trust")).to.equal("none");
  });

  it("loads a policy file, shows its issuer and fingerprint, keeps it across reloads", async () => {
    await page.setInputFiles("#trust-file", {
      name: "regulator-trust.json",
      mimeType: "application/json",
      buffer: Buffer.from(JSON.stringify(g.trustDocument)),
    });
    await page.waitForSelector("body[data-trust=loaded]");
    expect(await page.innerText("#trust-fingerprint")).to.equal(g.trust.fingerprint);
    expect(await page.innerText("#trust-issuer")).to.equal("Test regulator");
    expect(await page.innerText("#trust-logs")).to.include("St Mary General Hospital (test)");
    await page.goto(`${site.url}/verify`);
    await page.waitForSelector("body[data-trust=loaded]");
    expect(await page.innerText("#trust-fingerprint")).to.equal(g.trust.fingerprint);
  });

  it("accepts a fresh bundle given as #bundle=<base64url>: every check ✓, operator and fingerprint shown", async () => {
    const encoded = Buffer.from(JSON.stringify(g.bases.fresh)).toString("base64url");
    const target = `${site.url}/verify#bundle=${encoded}&rpc=${encodeURIComponent(node.url)}`;
    const status = await verdictAfter(() => page.goto(target));
    expect(status, await page.innerText("#result")).to.equal("verified");
    expect(await page.innerText("#verdict-title")).to.equal("✓ Verified");
    expect(await page.innerText("#verdict-trust")).to.equal(
      `Log operated by St Mary General Hospital (test), per trust policy ${g.trust.fingerprint} (issued by Test regulator).`,
    );
    const marks = await page.$$eval("#checks tbody tr", (rows) =>
      rows.map((r) => [r.getAttribute("data-step"), r.getAttribute("data-ok")]),
    );
    expect(marks).to.have.length(10);
    expect(marks.filter(([, ok]) => ok !== "true")).to.deep.equal([["erasure", "skipped"]]);
    expect(await page.inputValue("#rpc")).to.equal(node.url);
    await page.screenshot({ path: path.join(ARTIFACTS, "verify-ok.png"), fullPage: true });
  });

  it("verifies a patient-facing bundle (entry v2, staff identity withheld) and an entry v1 bundle; names DISCLOSURE_MISSING", async () => {
    for (const base of ["withheld", "v1"] as const) {
      const encoded = Buffer.from(JSON.stringify(g.bases[base])).toString("base64url");
      const target = `${site.url}/verify#bundle=${encoded}&rpc=${encodeURIComponent(node.url)}`;
      const status = await verdictAfter(() => page.goto(target));
      expect(status, `${base}: ${await page.innerText("#result")}`).to.equal("verified");
    }
    expect(JSON.stringify(g.bases.withheld)).to.not.include("Dr. Anna Weber");
    expect(await page.innerText("#result")).to.not.include("Dr. Anna Weber");
    const missing = structuredClone(g.bases.fresh) as unknown as {
      disclosures: Record<string, string>;
    };
    delete missing.disclosures["/agents/2/who"];
    const encoded = Buffer.from(JSON.stringify(missing)).toString("base64url");
    const target = `${site.url}/verify#bundle=${encoded}&rpc=${encodeURIComponent(node.url)}`;
    expect(await verdictAfter(() => page.goto(target))).to.equal("failed");
    expect(await page.innerText("#result")).to.include("DISCLOSURE_MISSING");
  });

  it("rejects a tampered bundle pasted into the form, naming the failed step", async () => {
    const c = (await loadCases()).find((x) => x.desc === "altered event field (requestId)")!;
    const tampered = await buildCase(c, g);
    await page.fill("#bundle", JSON.stringify(tampered, null, 2));
    const status = await verdictAfter(() => page.click("#verify"));
    expect(status).to.equal("failed");
    expect(await page.innerText("#verdict-title")).to.equal("✗ Not valid");
    const row = page.locator('#checks tr[data-step="commitment"]');
    expect(await row.getAttribute("data-ok")).to.equal("false");
    expect(await row.locator("td.code").innerText()).to.equal("COMMITMENT_MISMATCH");
    expect(await row.locator("td.mark").getAttribute("aria-label")).to.equal("failed");
    await page.screenshot({ path: path.join(ARTIFACTS, "verify-tampered.png"), fullPage: true });
  });

  it("erased vs withheld: a real erasure is shown as erased, nulled content as withheld", async () => {
    await page.fill("#bundle", JSON.stringify(g.bases.erased));
    expect(await verdictAfter(() => page.click("#verify"))).to.equal("erased");
    expect(await page.innerText("#verdict-title")).to.equal("✓ Genuine entry, content erased");
    const nulled = { ...g.bases.fresh, event: null, salt: null };
    await page.fill("#bundle", JSON.stringify(nulled));
    expect(await verdictAfter(() => page.click("#verify"))).to.equal("withheld");
    expect(await page.innerText("#verdict-title")).to.equal("! Content withheld");
  });

  it("a policy that does not list this registry: a red verdict, UNTRUSTED_REGISTRY", async () => {
    const other = structuredClone(g.trustDocument) as {
      registries: Array<{ address: string }>;
      logs: Array<{ registry: string }>;
    };
    other.registries[0]!.address = "0x000000000000000000000000000000000000dEaD";
    other.logs[0]!.registry = "0x000000000000000000000000000000000000dEaD";
    await loadPolicy(other);
    await page.waitForSelector("body[data-trust=loaded]");
    await page.fill("#bundle", JSON.stringify(g.bases.fresh));
    expect(await verdictAfter(() => page.click("#verify"))).to.equal("failed");
    expect(await page.innerText("#verdict-title")).to.equal("✗ Not from a log you trust");
    expect(await page.locator('#checks tr[data-step="trust"] td.code').innerText()).to.equal(
      "UNTRUSTED_REGISTRY",
    );
    const color = await page.$eval("#verdict", (el) => getComputedStyle(el).color);
    expect(color).to.equal("rgb(164, 14, 38)");
    await loadPolicy();
    await page.waitForFunction(
      (fp) => document.getElementById("trust-fingerprint")?.textContent === fp,
      g.trust.fingerprint,
    );
  });

  it("says 'receipt verified, not yet anchored' for a pending bundle", async () => {
    await page.fill("#bundle", JSON.stringify(g.bases.pending));
    const status = await verdictAfter(() => page.click("#verify"));
    expect(status).to.equal("pending");
    expect(await page.innerText("#verdict-title")).to.match(/Receipt verified, not yet anchored/);
  });

  it("reports text that is not JSON without calling the chain", async () => {
    await page.fill("#bundle", "{ not json");
    const status = await verdictAfter(() => page.click("#verify"));
    expect(status).to.equal("failed");
    expect(await page.innerText("#verdict-title")).to.equal("✗ Not a bundle");
  });

  it("says it could not check when the RPC is unreachable", async () => {
    await page.fill("#bundle", JSON.stringify(g.bases.fresh));
    await page.fill("#rpc", g.deadRpcUrl);
    const status = await verdictAfter(() => page.click("#verify"));
    expect(status).to.equal("error");
    expect(await page.innerText("#verdict-detail")).to.match(/cannot reach the RPC/);
    await page.fill("#rpc", node.url);
  });

  it("a receipt: its bundle is asked for once anchored; with it, the promise is kept", async () => {
    await page.fill("#bundle", JSON.stringify(g.bases.fresh.receipt));
    expect(await page.isVisible("#receipt-bundle")).to.equal(true);
    await page.fill("#receipt-bundle", "");
    expect(await verdictAfter(() => page.click("#verify"))).to.equal("undecided");
    expect(await page.innerText("#verdict-title")).to.equal("! The receipt's bundle is needed");
    await page.fill("#receipt-bundle", JSON.stringify(g.bases.fresh));
    const status = await verdictAfter(() => page.click("#verify"));
    expect(status, await page.innerText("#result")).to.equal("honored");
    expect(await page.innerText("#verdict-title")).to.equal("✓ Promise kept");
    const steps = await page.$$eval("#checks tbody tr", (rows) =>
      rows.map((r) => [r.getAttribute("data-step"), r.getAttribute("data-ok")]),
    );
    expect(steps).to.deep.equal([
      ["receipt", "true"],
      ["trust", "true"],
      ["signer", "true"],
      ["deadline", "true"],
      ["leaf", "true"],
    ]);
    expect(await page.isVisible("#evidence-download")).to.equal(false);
    await page.fill("#receipt-bundle", "");
  });

  it("a receipt for another entry at an anchored seq: LEAF_MISMATCH, evidence to save, which the page re-checks", async () => {
    const fresh = g.bases.fresh;
    const promised = {
      ...fresh,
      receipt: { ...fresh.receipt, leafHash: `0x${"7a".repeat(32)}` },
    };
    const receipt = await resignReceipt(
      promised,
      RECEIPT_SIGNER,
      Date.parse(fresh.receipt.issuedAt),
    );
    await page.fill("#bundle", JSON.stringify(receipt));
    await page.fill("#receipt-bundle", JSON.stringify(fresh));
    expect(await verdictAfter(() => page.click("#verify"))).to.equal("LEAF_MISMATCH");
    expect(await page.innerText("#verdict-title")).to.equal("✗ Another entry was anchored");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#evidence-download"),
    ]);
    expect(download.suggestedFilename()).to.equal(`veritrail-evidence-seq${fresh.entry.seq}.json`);
    const evidence = await readFile((await download.path())!, "utf8");
    const parsed = JSON.parse(evidence) as { verdict: string; bundle: { event: unknown } };
    expect(parsed.verdict).to.equal("LEAF_MISMATCH");
    expect(parsed.bundle.event).to.equal(null);
    await page.fill("#receipt-bundle", "");
    await page.fill("#bundle", evidence);
    expect(await page.isVisible("#receipt-bundle")).to.equal(false);
    expect(await verdictAfter(() => page.click("#verify"))).to.equal("LEAF_MISMATCH");
    expect(await page.innerText("#verdict-detail")).to.match(/^The evidence holds: /);
    expect(await page.isVisible("#evidence-download")).to.equal(false);
  });

  it("a receipt whose deadline passed on-chain without an anchor: DEADLINE_MISSED", async () => {
    const pending = g.bases.pending;
    const issued = Date.parse(pending.receipt.issuedAt);
    const soon = {
      ...pending,
      receipt: { ...pending.receipt, anchorDeadline: new Date(issued + 1_000).toISOString() },
    };
    const receipt = await resignReceipt(soon, RECEIPT_SIGNER, issued);
    await node.rpc("evm_increaseTime", [5]);
    await node.mine(1);
    await page.fill("#bundle", JSON.stringify(receipt));
    const status = await verdictAfter(() => page.click("#verify"));
    expect(status, await page.innerText("#result")).to.equal("DEADLINE_MISSED");
    expect(await page.innerText("#verdict-title")).to.equal("✗ Deadline missed");
    expect(await page.locator('#checks tr[data-step="deadline"] td.code').innerText()).to.equal(
      "DEADLINE_MISSED",
    );
    expect(await page.isVisible("#evidence-download")).to.equal(true);
    await page.screenshot({
      path: path.join(ARTIFACTS, "verify-deadline-missed.png"),
      fullPage: true,
    });
  });

  it("styles the page with the shared stylesheet", async () => {
    const applied = await page.evaluate(() =>
      Array.from(document.styleSheets).some(
        (sheet) => sheet.href?.endsWith("/assets/pages.css") === true && sheet.cssRules.length > 0,
      ),
    );
    expect(applied).to.equal(true);
  });

  it("talked only to the page's own origin and the RPC, with no console errors", () => {
    const origins = new Set(requests.map((u) => new URL(u).origin));
    expect([...origins].sort()).to.deep.equal([site.url, node.url, g.deadRpcUrl].sort());
    expect(
      requests.filter((u) => u.startsWith(site.url)).map((u) => new URL(u).pathname),
    ).to.include.members(["/verify", "/assets/verify.js", "/assets/pages.css"]);
    // The unreachable-RPC case logs its refused connection; nothing else may.
    expect(consoleErrors.filter((e) => !e.startsWith(g.deadRpcUrl))).to.deep.equal([]);
  });
});

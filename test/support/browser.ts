/**
 * Headless Chromium (Debian's package, installed by scripts/ensure-chromium.sh) for the page
 * tests, with the flags this closed network needs, and a page that records every request URL
 * and every console or page error so a test can assert on them.
 */
import { stat } from "node:fs/promises";
import { type Browser, type Page, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export interface ObservedPage {
  browser: Browser;
  page: Page;
  requests: string[];
  consoleErrors: string[];
}

export async function openObservedPage(): Promise<ObservedPage> {
  if (!(await stat(CHROMIUM).catch(() => undefined)))
    throw new Error(`no ${CHROMIUM}: run scripts/ensure-chromium.sh first`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(`${m.location().url}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(e.message));
  return { browser, page, requests, consoleErrors };
}

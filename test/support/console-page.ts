/**
 * Driving the regulator console (web/regulator.html) in Chromium, for its test and its
 * benchmark: load a trust policy, set the RPC, verify, and watch the page's main thread.
 */
import type { Page } from "playwright-core";

/** Opens the console at `url`, loads `policy` as a file and sets each chain's RPC URL. */
export async function openConsole(
  page: Page,
  url: string,
  policy: unknown,
  rpcByChain: Record<number, string>,
  opts: { verifiers?: number } = {},
): Promise<void> {
  await page.goto(
    `${url}/regulator${opts.verifiers !== undefined ? `?verifiers=${opts.verifiers}` : ""}`,
  );
  await page.setInputFiles("#trust-file", {
    name: "trust.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(policy)),
  });
  await page.waitForSelector("body[data-trust=loaded]");
  for (const [chainId, rpc] of Object.entries(rpcByChain)) await page.fill(`#rpc-${chainId}`, rpc);
}

/** Clicks Verify and waits until every run is done (or failed) and the figures are drawn. */
export async function verifyInConsole(page: Page, timeoutMs = 240_000): Promise<string> {
  await page.evaluate(() => (document.body.dataset["console"] = "idle"));
  await page.click("#verify");
  await page.waitForSelector("body[data-console=done], body[data-console=error]", {
    timeout: timeoutMs,
  });
  return (await page.getAttribute("body", "data-console")) ?? "";
}

/**
 * Records the longest gap between two animation frames until the console starts drawing its
 * figures: how long the page could not react while the workers verify. A plain script (tsx
 * would wrap a named arrow function in a helper the page does not have).
 */
export async function watchMainThread(page: Page): Promise<void> {
  await page.evaluate(`{
    window.maxGap = 0;
    let last = performance.now();
    const tick = () => {
      const now = performance.now();
      window.maxGap = Math.max(window.maxGap, now - last);
      last = now;
      const state = document.body.dataset.console;
      if (state !== "drawing" && state !== "done" && state !== "error") requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }`);
}

/** The longest main-thread stall watchMainThread saw, and how long drawing the figures took. */
export async function mainThreadReport(page: Page): Promise<{ maxGapMs: number; drawMs: number }> {
  const maxGapMs = await page.evaluate(() => (window as unknown as { maxGap: number }).maxGap);
  const drawMs = Number(await page.getAttribute("body", "data-draw-ms"));
  return { maxGapMs, drawMs };
}

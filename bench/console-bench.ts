/**
 * The regulator console on a large log, in headless Chromium against a real Hardhat node:
 *   npm run bench:console [-- --events 100000 --batch 10000 --source file|api --verifiers 1,2]
 *
 * Builds a log of `events` accesses (sealed in batches of `batch`, anchored), serves the
 * console from the log's API, loads a trust policy listing the log, and verifies the whole
 * log in the page: from its NDJSON export dropped as a file (default), or streamed from the API
 * with an auditor key. Prints the time the page took, the rate, the longest main-thread stall
 * while the worker verified, how long the figures took to draw, and how many RPC requests the
 * page made (one state read per batch, not per bundle). Nothing is kept.
 */
import { Command } from "commander";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { buildWeb } from "../scripts/build-web.ts";
import { createApp } from "../services/api/app.ts";
import { startServer } from "../services/api/server.ts";
import { loadConfig } from "../services/config.ts";
import { TRUST_POLICY_FORMAT } from "../services/core/trust-policy.ts";
import { ApiKeys } from "../services/ledger/api-keys.ts";
import { AnchoredLog } from "../test/support/anchored-log.ts";
import { openObservedPage } from "../test/support/browser.ts";
import { fillBulk, writeExport } from "../test/support/console-logs.ts";
import {
  mainThreadReport,
  openConsole,
  verifyInConsole,
  watchMainThread,
} from "../test/support/console-page.ts";
import { HardhatNode } from "../test/support/hardhat-node.ts";

const program = new Command()
  .option("--events <n>", "events in the log", (v) => Number.parseInt(v, 10), 100_000)
  .option("--batch <n>", "events per batch", (v) => Number.parseInt(v, 10), 10_000)
  .option(
    "--source <kind>",
    "file (a dropped export) or api (streamed with an auditor key)",
    "file",
  )
  .option(
    "--verifiers <list>",
    "verifier workers to compare, e.g. 1,2 (default: as many as the browser's cores)",
    (v) => v.split(",").map((x) => Number.parseInt(x, 10)),
  )
  .parse();
const opts = program.opts<{
  events: number;
  batch: number;
  source: "file" | "api";
  verifiers?: number[];
}>();
if (
  !(opts.events > 0 && opts.batch > 0) ||
  !["file", "api"].includes(opts.source) ||
  (opts.verifiers ?? []).some((v) => !(v >= 1 && v <= 64))
)
  program.error("--events and --batch must be positive, --source file or api, --verifiers 1…64");

const n = (x: number) => x.toLocaleString("en-US");
const work = await mkdtemp(path.join(tmpdir(), "veritrail-console-bench-"));
const node = await HardhatNode.start();
let log: AnchoredLog | undefined;
let server: Awaited<ReturnType<typeof startServer>> | undefined;
let browser: Awaited<ReturnType<typeof openObservedPage>>["browser"] | undefined;
try {
  await buildWeb();
  log = await AnchoredLog.create(node, { operator: "Bench General Hospital" });
  let t = performance.now();
  await fillBulk(log, { events: opts.events, batchSize: opts.batch });
  console.log(
    `log: ${n(opts.events)} events in batches of ${n(opts.batch)}, built and anchored in ${((performance.now() - t) / 1000).toFixed(0)} s`,
  );
  const keys = ApiKeys.forLedger(log.ledger);
  const auditor = (await keys.create({ role: "auditor" })).secret;
  server = await startServer(
    createApp({
      ledger: log.ledger,
      apiKeys: keys,
      logger: pino({ level: "silent" }),
      config: loadConfig({}),
    }),
    { host: "127.0.0.1", port: 0 },
  );
  const chainId = Number(BigInt(await node.rpc<string>("eth_chainId", [])));
  const policy = {
    format: TRUST_POLICY_FORMAT,
    issuer: "Benchmark regulator",
    registries: [{ chainId, address: log.contract, confirmations: 1 }],
    logs: [
      {
        chainId,
        registry: log.contract,
        logId: log.ledger.logId,
        operator: "Bench General Hospital",
        api: server.url,
      },
    ],
  };
  const file = path.join(work, "export.ndjson");
  if (opts.source === "file") {
    t = performance.now();
    await writeExport(log.ledger, file);
    const bytes = (await stat(file)).size;
    console.log(
      `export: ${(bytes / 1024 / 1024).toFixed(0)} MB written in ${((performance.now() - t) / 1000).toFixed(0)} s`,
    );
  }

  const observed = await openObservedPage();
  browser = observed.browser;
  const { page } = observed;
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const batches = Math.ceil(opts.events / opts.batch);
  for (const verifiers of opts.verifiers ?? [undefined]) {
    const rpcRequests = () => observed.requests.filter((u) => u.startsWith(node.url)).length;
    await openConsole(
      page,
      server.url,
      policy,
      { [chainId]: node.url },
      verifiers === undefined ? {} : { verifiers },
    );
    if (opts.source === "file") await page.setInputFiles("#export-files", file);
    else await page.fill("#key-0", auditor);
    const rpcBefore = rpcRequests();
    await watchMainThread(page);
    t = performance.now();
    const state = await verifyInConsole(page, 3_600_000);
    const wallMs = performance.now() - t;
    if (state !== "done")
      throw new Error(`the console ended in state ${state}: ${await page.innerText("#runs")}`);
    const ms = Number(await page.getAttribute(".run", "data-duration-ms"));
    const bundles = Number(await page.getAttribute(".run", "data-bundles"));
    const verdict = await page.innerText("#verdict-line");
    const { maxGapMs, drawMs } = await mainThreadReport(page);
    // A figure only counts if every bundle of the log was read and verified.
    if (bundles !== opts.events || !verdict.startsWith(`✓ All ${n(opts.events)} bundles verified`))
      throw new Error(`not every bundle verified: ${n(bundles)} read; ${verdict}`);
    console.log(
      [
        `console (${opts.source}, ${verifiers ?? `${cores} (the browser's cores)`} verifier worker(s)): ${n(bundles)} bundles verified in the page in ${(ms / 1000).toFixed(1)} s`,
        `  ${n(Math.round(bundles / (ms / 1000)))} bundles/s; click to figures drawn ${(wallMs / 1000).toFixed(1)} s`,
        `  longest main-thread stall while verifying: ${maxGapMs.toFixed(0)} ms; figures drawn in ${drawMs} ms`,
        `  RPC requests: ${rpcRequests() - rpcBefore} for ${n(batches)} batches`,
        `  ${verdict}`,
      ].join("\n"),
    );
  }
} finally {
  await browser?.close();
  await server?.close(1_000);
  await log?.close();
  await node.stop();
  await rm(work, { recursive: true, force: true });
}

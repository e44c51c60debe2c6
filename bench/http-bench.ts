import autocannon from "autocannon";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { createApp } from "../services/api/app.ts";
import { startServer } from "../services/api/server.ts";
import { loadConfig } from "../services/config.ts";
import { ApiKeys } from "../services/ledger/api-keys.ts";
import { createLogger } from "../services/logger.ts";
import { benchEvent, openBenchLedger } from "./ledger-bench.ts";
import { openLoopPost } from "./open-loop.ts";
import { type BenchRow, percentile } from "./table.ts";

/**
 * HTTP ingest over loopback with autocannon: the real app (auth, validation, durable group
 * commit, receipts), against a real LevelDB in a temp directory. No chain: anchoring does not
 * sit on the ingest path.
 */
async function withApi<T>(fn: (url: string, writerKey: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), "veritrail-bench-http-"));
  const ledger = await openBenchLedger(dir);
  const keys = ApiKeys.forLedger(ledger);
  const writer = await keys.create({ role: "writer", organization: "Organization/hospital-a" });
  const config = loadConfig({ RATE_LIMIT_PER_MINUTE: "10000000" });
  const app = createApp({ ledger, apiKeys: keys, logger: createLogger("silent"), config });
  const server = await startServer(app, { host: "127.0.0.1", port: 0 });
  try {
    return await fn(server.url, writer.secret);
  } finally {
    await server.close();
    await ledger.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * autocannon in its own worker thread: the load generator must not share the server's event
 * loop (in the same thread its own request building and parsing are billed to the server).
 */
function run(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({ ...opts, workers: 1 }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/**
 * CPU time of this thread, µs. The server's event loop runs here and the load generators in
 * worker threads of their own, so this is the request thread's work alone (HTTP, validation,
 * hashing, receipts, LevelDB calls), without LevelDB's and V8's helper threads.
 */
function requestThreadMicros(): number {
  const { user, system } = process.threadCpuUsage();
  return user + system;
}

/** The machine's 1-minute load average now: these rows move with what else runs. */
function loadNow(): string {
  return loadavg()[0]!.toFixed(1);
}

/**
 * Seconds of the open loop's stream sent before its measured window (at the same rate, without
 * a gap): the load generator's first requests wait on its own cold code, and the server's
 * ledger and sealing worker are fresh. Their p99 is reported in the row's note.
 */
const OPEN_LOOP_WARMUP_SECONDS = 2;

/**
 * Single-event POSTs offered at a fixed rate (open loop, latency from each request's scheduled
 * time): the latency a writer sees at a given load, not at saturation. `saturation` is the
 * rate the same run measured with 64 connections: an offered rate near or above it measures
 * a queue growing for the whole run, not the service's latency.
 */
export async function benchHttpOffered(opts: {
  seconds: number;
  rate: number;
  saturation?: number;
  /** How the rate was chosen, when it was derived from the saturation rate. */
  rateNote?: string;
  /** Whether the p99 row carries the ≤ 25 ms target (the issue's offered rate). */
  target?: boolean;
}): Promise<BenchRow[]> {
  return withApi(async (url, key) => {
    const load0 = loadNow();
    const cpu0 = requestThreadMicros();
    const result = await openLoopPost({
      url: `${url}/v1/events`,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(benchEvent(1, 1000)),
      rate: opts.rate,
      seconds: opts.seconds,
      warmupSeconds: OPEN_LOOP_WARMUP_SECONDS,
      connections: 256,
    });
    const cpu = requestThreadMicros() - cpu0;
    const warmup = result.warmupLatencies.map((l) => (Number.isFinite(l) ? l : Infinity));
    const load = `load average ${load0} → ${loadNow()}; the ${OPEN_LOOP_WARMUP_SECONDS} s before, same rate, not counted: p99 ${percentile(warmup, 99).toFixed(1)} ms`;
    const sent = result.latencies.length;
    const ok = result.statuses["201"] ?? 0;
    // A request that failed or was not acknowledged never got its answer: it counts as slower
    // than every acknowledged one (so a run with more than 1 % of them cannot meet the p99).
    const latencies = result.latencies.map((l) => (Number.isFinite(l) ? l : Infinity));
    const rate = `${opts.rate.toLocaleString("en")} events/s offered (open loop${opts.rateNote ? `, ${opts.rateNote}` : ""})`;
    const notAcknowledged = sent - ok;
    return [
      {
        name: `HTTP single-event POST at ${rate}, latency p50`,
        value: percentile(latencies, 50),
        unit: "ms",
      },
      {
        name: `HTTP single-event POST at ${rate}, latency p99`,
        value: percentile(latencies, 99),
        unit: "ms",
        ...(opts.target === false ? {} : { target: { op: "<=" as const, value: 25 } }),
        note:
          notAcknowledged > 0
            ? `${load}; ${notAcknowledged} of ${sent} not acknowledged: ${JSON.stringify(result.statuses)}, ${result.errors} connection errors`
            : load,
      },
      {
        name: `HTTP single-event POST at ${rate}, acknowledged rate`,
        value: ok / result.seconds,
        unit: "events/s",
        ...(opts.saturation !== undefined
          ? { baselineName: "saturation, 64 connections (same run)", baseline: opts.saturation }
          : { baselineName: "offered", baseline: opts.rate }),
      },
      {
        name: `HTTP single-event POST at ${rate}: request-thread CPU per acknowledged event`,
        value: ok > 0 ? cpu / ok : NaN,
        unit: "µs",
      },
    ];
  });
}

export async function benchHttpSingle(opts: {
  seconds: number;
  connections: number;
}): Promise<BenchRow[]> {
  return withApi(async (url, key) => {
    const body = JSON.stringify(benchEvent(1, 1000));
    const load0 = loadNow();
    const cpu0 = requestThreadMicros();
    const result = await run({
      url: `${url}/v1/events`,
      method: "POST",
      connections: opts.connections,
      duration: opts.seconds,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body,
    });
    const cpu = requestThreadMicros() - cpu0;
    const ok = result["2xx"];
    if (result.non2xx > 0 || result.errors > 0)
      throw new Error(
        `HTTP bench saw ${result.non2xx} non-2xx answers and ${result.errors} errors`,
      );
    return [
      {
        name: `HTTP single-event POST, ${opts.connections} connections, durable`,
        value: ok / opts.seconds,
        unit: "events/s",
        target: { op: ">=", value: 5_000 },
        note: `load average ${load0} → ${loadNow()}`,
      },
      {
        name: `HTTP single-event POST, ${opts.connections} connections: request-thread CPU per event`,
        value: ok > 0 ? cpu / ok : NaN,
        unit: "µs",
      },
      { name: "HTTP single-event POST latency p50", value: result.latency.p50, unit: "ms" },
      {
        // A queue of `connections` requests always in flight at saturation: the latency target
        // (≤ 25 ms) belongs to the open-loop run at a fixed offered rate, not to this one.
        name: "HTTP single-event POST latency p99",
        value: result.latency.p99,
        unit: "ms",
        note: `closed loop, ${opts.connections} requests always in flight`,
      },
    ];
  });
}

export async function benchHttpBulk(opts: {
  seconds: number;
  connections: number;
  perCall: number;
}): Promise<BenchRow[]> {
  return withApi(async (url, key) => {
    const body = JSON.stringify(
      Array.from({ length: opts.perCall }, (_, i) => benchEvent(i, 100_000)),
    );
    const result = await run({
      url: `${url}/v1/events`,
      method: "POST",
      connections: opts.connections,
      duration: opts.seconds,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body,
    });
    // 503 OVERLOADED is the backlog bound at work (the run outpaces sealing): counted, not an
    // error; anything else non-2xx is.
    const overloaded = result.statusCodeStats?.["503"]?.count ?? 0;
    if (result.non2xx > overloaded || result.errors > 0)
      throw new Error(
        `HTTP bulk bench saw ${result.non2xx} non-2xx answers and ${result.errors} errors`,
      );
    return [
      {
        name: `HTTP bulk POST, ${opts.perCall} events/call, ${opts.connections} connections, durable`,
        value: (result["2xx"] * opts.perCall) / opts.seconds,
        unit: "events/s",
        // Its target, a ratio to the same run's floor (another section), is set by run.ts.
        ...(overloaded > 0 ? { note: `${overloaded} calls answered 503 OVERLOADED` } : {}),
      },
    ];
  });
}

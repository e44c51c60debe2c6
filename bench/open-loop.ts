import { Worker } from "node:worker_threads";

/**
 * An open-loop load generator: request i is sent at t0 + i / rate whatever happened to the
 * earlier ones, and its latency is counted from that scheduled time (as wrk2 does), so a stall
 * of the server shows in every request it delayed, not only in the few that were in flight
 * (no coordinated omission). It runs in a worker thread of its own: its timers and response
 * parsing must not share the server's event loop.
 *
 * The first `warmupSeconds` of the stream are sent at the same rate but reported apart: the
 * generator's own code is cold then (its first requests wait on its JIT, not on the server),
 * and so are the server's fresh ledger and sealing worker. The measured window follows without
 * a gap, so whatever the warm-up left queued is paid inside it.
 */
export interface OpenLoopResult {
  /**
   * Per request of the measured window, ms from its scheduled send time to the end of its
   * answer (NaN: failed).
   */
  latencies: number[];
  /** The same for the warm-up's requests (not in `statuses`, `errors` or `seconds`). */
  warmupLatencies: number[];
  /** Answers of the measured window, by status code. */
  statuses: Record<string, number>;
  /** Requests of the measured window that failed without an answer. */
  errors: number;
  /** Seconds from the measured window's first scheduled send to its last answer. */
  seconds: number;
}

const GENERATOR = `
const http = require("node:http");
const { parentPort, workerData } = require("node:worker_threads");
const { url, headers, body, rate, seconds, warmupSeconds, connections } = workerData;
const target = new URL(url);
// Keep-alive connections, at most \${connections}: past that, requests wait for one here, and
// that wait counts (latency runs from the scheduled send time).
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const payload = Buffer.from(body);
const warmup = Math.round(rate * warmupSeconds);
const total = warmup + Math.max(1, Math.round(rate * seconds));
const latencies = new Array(total).fill(NaN);
const statuses = {};
let errors = 0;
let done = 0;
let sent = 0;
const t0 = performance.now() + 100;
const finish = () => {
  if (++done === total) {
    agent.destroy();
    const measuredFrom = t0 + (warmup * 1000) / rate;
    parentPort.postMessage({
      latencies: latencies.slice(warmup),
      warmupLatencies: latencies.slice(0, warmup),
      statuses,
      errors,
      seconds: (performance.now() - measuredFrom) / 1000,
    });
  }
};
const fire = (i, scheduled) => {
  const req = http.request(
    {
      agent,
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: "POST",
      headers: { ...headers, "content-length": payload.length },
    },
    (res) => {
      res.resume();
      res.on("end", () => {
        if (i >= warmup) statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        latencies[i] = performance.now() - scheduled;
        finish();
      });
    },
  );
  req.on("error", () => {
    if (i >= warmup) errors++;
    finish();
  });
  req.end(payload);
};
const tick = () => {
  const now = performance.now();
  while (sent < total && t0 + (sent * 1000) / rate <= now) {
    fire(sent, t0 + (sent * 1000) / rate);
    sent++;
  }
  if (sent < total) setTimeout(tick, 1);
};
setTimeout(tick, 100);
`;

export function openLoopPost(opts: {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Requests per second offered. */
  rate: number;
  /** The measured window. */
  seconds: number;
  /** Sent before the measured window at the same rate, reported apart. */
  warmupSeconds: number;
  /** Keep-alive connections at most (requests beyond wait in the generator, and that counts). */
  connections: number;
}): Promise<OpenLoopResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(GENERATOR, { eval: true, workerData: opts });
    worker.once("message", (result: OpenLoopResult) => {
      void worker.terminate();
      resolve(result);
    });
    worker.once("error", reject);
  });
}

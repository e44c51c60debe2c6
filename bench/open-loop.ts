import { Worker } from "node:worker_threads";

/**
 * An open-loop load generator: request i is sent at t0 + i / rate whatever happened to the
 * earlier ones, and its latency is counted from that scheduled time (as wrk2 does), so a stall
 * of the server shows in every request it delayed, not only in the few that were in flight
 * (no coordinated omission). It runs in a worker thread of its own: its timers and response
 * parsing must not share the server's event loop.
 */
export interface OpenLoopResult {
  /** Per request, ms from its scheduled send time to the end of its answer (NaN: failed). */
  latencies: number[];
  statuses: Record<string, number>;
  errors: number;
  /** Seconds from the first scheduled send to the last answer. */
  seconds: number;
}

const GENERATOR = `
const http = require("node:http");
const { parentPort, workerData } = require("node:worker_threads");
const { url, headers, body, rate, seconds, connections } = workerData;
const target = new URL(url);
// Keep-alive connections, at most \${connections}: past that, requests wait for one here, and
// that wait counts (latency runs from the scheduled send time).
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const payload = Buffer.from(body);
const total = Math.max(1, Math.round(rate * seconds));
const latencies = new Array(total).fill(NaN);
const statuses = {};
let errors = 0;
let done = 0;
let sent = 0;
const t0 = performance.now() + 100;
const finish = () => {
  if (++done === total) {
    agent.destroy();
    parentPort.postMessage({ latencies, statuses, errors, seconds: (performance.now() - t0) / 1000 });
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
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        latencies[i] = performance.now() - scheduled;
        finish();
      });
    },
  );
  req.on("error", () => {
    errors++;
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
  seconds: number;
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

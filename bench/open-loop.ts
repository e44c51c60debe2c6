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
const { parentPort, workerData } = require("node:worker_threads");
const { url, headers, body, rate, seconds } = workerData;
const total = Math.max(1, Math.round(rate * seconds));
const latencies = new Array(total).fill(NaN);
const statuses = {};
let errors = 0;
let done = 0;
let sent = 0;
const t0 = performance.now() + 100;
const finish = () => {
  if (++done === total)
    parentPort.postMessage({ latencies, statuses, errors, seconds: (performance.now() - t0) / 1000 });
};
const fire = (i, scheduled) =>
  fetch(url, { method: "POST", headers, body })
    .then(async (res) => {
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      latencies[i] = performance.now() - scheduled;
    }, () => { errors++; })
    .finally(finish);
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

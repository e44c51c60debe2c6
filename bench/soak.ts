/**
 * `npm run bench:soak`: the real service (`scripts/start.ts`, what `npm start` runs) on a fresh
 * DATA_DIR, anchoring into a Hardhat node of its own, under saturating HTTP bulk load for N
 * minutes. It reports the acknowledged, sealed and anchored rates, the unsealed backlog (peak
 * and final), acknowledgement → confirmed anchor (p50/p99/max over every acknowledged call),
 * 503 OVERLOADED answers, and the service process's RSS over time, with a chart; then it stops
 * the service, runs `veritrail audit` over the data directory against the chain, and checks
 * that every acknowledged receipt is in an anchored batch whose root it helps produce.
 *
 * The floor (the per-event work DESIGN.md fixes, one thread) is measured in the same run, so
 * the sustained rate is reported as a ratio to it.
 */
import { Command } from "commander";
import * as echarts from "echarts";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { toHex } from "../services/core/hex.ts";
import { buildTree } from "../services/core/merkle.ts";
import type { BatchRecord } from "../services/store/batch-record.ts";
import { LedgerStore } from "../services/store/ledger-store.ts";
import { freePort } from "../test/support/hardhat-node.ts";
import { benchEvent, ingestFloor } from "./ledger-bench.ts";
import { startExternalChain } from "./reliability/external-chain.ts";
import { ServiceProcess, sleep } from "./reliability/service-process.ts";
import { type BenchRow, FLOOR_RATIO_GOAL, percentile, renderTable } from "./table.ts";

const REPO = path.resolve(import.meta.dirname, "..");
const ORG = "Organization/hospital-a";

const program = new Command()
  .name("bench:soak")
  .description("the real service under saturating HTTP bulk load, then an audit of the log")
  .option("--minutes <n>", "duration of the load", "5")
  .option("--clients <n>", "concurrent HTTP clients", "4")
  .option("--events-per-call <n>", "events per POST /v1/events", "1000")
  .option("--patients <n>", "distinct patients the events are about", "1000000")
  .option("--floor-events <n>", "events for the floor measured in the same run", "50000")
  .option("--out <dir>", "where soak.json and soak.svg are written", "bench")
  .parse();
const o = program.opts<Record<string, string>>();
const minutes = Number(o.minutes);
const clients = Number(o.clients);
const perCall = Number(o.eventsPerCall);
const patients = Number(o.patients);
const floorEvents = Number(o.floorEvents);
for (const [flag, v] of Object.entries({ minutes, clients, perCall, patients, floorEvents }))
  if (!(v > 0) || !Number.isFinite(v)) program.error(`${flag}: not a positive number`);

const log = (msg: string) => process.stderr.write(`[soak ${new Date().toISOString()}] ${msg}\n`);

/** Every acknowledged receipt's leaf hash by seq, and when its call was acknowledged. */
class Acknowledged {
  private leaves = Buffer.alloc(32 * 1_000_000);
  private acked = new Uint8Array(1_000_000);
  count = 0;
  maxSeq = -1;
  /** One entry per acknowledged call: its first seq and the client's clock at the answer. */
  readonly calls: Array<{ seq: number; at: number }> = [];

  add(seq: number, leafHash: string): void {
    while (seq >= this.acked.length) {
      const leaves = Buffer.alloc(this.leaves.length * 2);
      this.leaves.copy(leaves);
      const acked = new Uint8Array(this.acked.length * 2);
      acked.set(this.acked);
      this.leaves = leaves;
      this.acked = acked;
    }
    if (this.acked[seq] === 0) this.count++;
    this.acked[seq] = 1;
    this.leaves.write(leafHash.slice(2), 32 * seq, "hex");
    this.maxSeq = Math.max(this.maxSeq, seq);
  }

  has(seq: number): boolean {
    return this.acked[seq] === 1;
  }

  leaf(seq: number): Buffer {
    return this.leaves.subarray(32 * seq, 32 * (seq + 1));
  }
}

interface Sample {
  t: number;
  rssMb: number;
  /** RSS split: anonymous memory (heaps, malloc) and mapped files (the binary, LevelDB tables). */
  rssAnonMb: number;
  rssFileMb: number;
  acknowledged: number;
  sealed: number;
  anchored: number;
  unsealed: number;
  refused: number;
  /** The service's V8 heap (request thread) and external memory, from its /metrics. */
  heapMb: number;
  externalMb: number;
  workerHeapMb: number;
  /** Sealing workers started because one was lost (out of heap, crashed). */
  workerRestarts: number;
}

/** The process's resident memory (MB) from /proc: now, split, and its peak since start. */
async function memory(
  pid: number,
): Promise<{ rss: number; anon: number; file: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const mb = (field: string) => {
    const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
    return kb === undefined ? NaN : Number(kb) / 1024;
  };
  return { rss: mb("VmRSS"), anon: mb("RssAnon"), file: mb("RssFile"), peak: mb("VmHWM") };
}

/** Linux reports thread CPU times in clock ticks of 1/100 s (USER_HZ on every architecture Node runs on). */
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds used so far by each group of the service's threads, from /proc. Threads a process
 * creates inherit its name: LevelDB's compaction thread is started from a libuv thread and is
 * named like them; V8's platform threads (garbage collection, compilation) and the sealing
 * worker are named like the main thread, so the worker's and the main thread's own times come
 * from the service's metrics and the rest of those threads are V8's.
 */
async function threadCpu(pid: number, metricsText: string): Promise<Record<string, number>> {
  const out = { main: 0, sealWorker: 0, v8Platform: 0, levelDbAndLibuv: 0, total: 0 };
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => "");
    const close = stat.lastIndexOf(")");
    if (close < 0) continue;
    const name = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
    const seconds = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
    out.total += seconds;
    if (name === "libuv-worker") out.levelDbAndLibuv += seconds;
    else out.v8Platform += seconds;
  }
  for (const line of metricsText.split("\n")) {
    const m = /^veritrail_thread_cpu_seconds\{thread="([a-z-]+)"\} (\S+)/.exec(line);
    if (m?.[1] === "main") out.main = Number(m[2]);
    if (m?.[1] === "seal-worker") out.sealWorker = Number(m[2]);
  }
  out.v8Platform -= out.main + out.sealWorker;
  return out;
}

function metric(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      found = true;
    }
  }
  return found ? sum : NaN;
}

async function json<T>(base: string, key: string, route: string): Promise<T> {
  const res = await fetch(base + route, { headers: { authorization: `Bearer ${key}` } });
  if (!res.ok) throw new Error(`${route}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function createKey(base: string, admin: string, body: object): Promise<string> {
  const res = await fetch(`${base}/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`key: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { secret: string }).secret;
}

/** Events through the end of batch n-1 (batches [0, n) anchored, or sealed). */
async function eventsThrough(base: string, auditor: string, batches: number): Promise<number> {
  if (!(batches > 0)) return 0;
  const b = await json<{ header: { firstSeq: number; count: number } }>(
    base,
    auditor,
    `/v1/batches/${batches - 1}`,
  );
  return b.header.firstSeq + b.header.count;
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO, "bin/veritrail.js"), ...args], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

function chart(samples: Sample[], title: string): string {
  const chartInstance = echarts.init(null, null, {
    renderer: "svg",
    ssr: true,
    width: 960,
    height: 540,
  });
  const t = samples.map((s) => Math.round(s.t));
  const series = (name: string, values: number[], yAxisIndex = 0) => ({
    name,
    type: "line" as const,
    showSymbol: false,
    yAxisIndex,
    data: values.map((v, i) => [t[i], v]),
  });
  chartInstance.setOption({
    animation: false,
    backgroundColor: "#ffffff",
    title: { text: title, left: "center", textStyle: { fontSize: 14 } },
    legend: { top: 28 },
    grid: { top: 70, left: 80, right: 80, bottom: 50 },
    xAxis: { type: "value", name: "s", nameLocation: "middle", nameGap: 28 },
    yAxis: [
      { type: "value", name: "events", position: "left" },
      { type: "value", name: "RSS (MB)", position: "right", splitLine: { show: false } },
    ],
    series: [
      series(
        "acknowledged",
        samples.map((s) => s.acknowledged),
      ),
      series(
        "sealed",
        samples.map((s) => s.sealed),
      ),
      series(
        "anchored",
        samples.map((s) => s.anchored),
      ),
      series(
        "unsealed backlog",
        samples.map((s) => s.unsealed),
      ),
      series(
        "service RSS (MB)",
        samples.map((s) => Math.round(s.rssMb)),
        1,
      ),
      series(
        "of which anonymous (MB)",
        samples.map((s) => Math.round(s.rssAnonMb)),
        1,
      ),
    ],
  });
  const svg = chartInstance.renderToSVGString();
  chartInstance.dispose();
  return svg;
}

// ---- the run ----------------------------------------------------------------------------------

log(`floor: ${floorEvents} events, the per-event work DESIGN.md fixes, one thread`);
const floor = await ingestFloor(floorEvents, perCall);
log(`floor: ${Math.round(floor)} events/s`);

const work = await mkdtemp(path.join(os.tmpdir(), "veritrail-soak-"));
const dataDir = path.join(work, "data");
const chain = await startExternalChain(dataDir);
const port = await freePort();
let service: ServiceProcess | undefined;
const outcome: { rows: BenchRow[]; failures: string[] } = { rows: [], failures: [] };
try {
  service = await ServiceProcess.start({ ...chain.env, PORT: String(port), LOG_LEVEL: "warn" });
  const base = service.baseUrl;
  const admin = service.adminKey;
  if (!admin) throw new Error(`no admin key in the banner:\n${service.output}`);
  const writer = await createKey(base, admin, { role: "writer", organization: ORG });
  const auditor = await createKey(base, admin, { role: "auditor" });
  const pid = service.pid!;

  const acked = new Acknowledged();
  const statuses = new Map<number, number>();
  let transportErrors = 0;
  let next = 0;
  const started = Date.now();
  const loadEnds = started + minutes * 60_000;
  let loading = true;

  const client = async () => {
    while (Date.now() < loadEnds) {
      const first = next;
      next += perCall;
      const body = JSON.stringify(
        Array.from({ length: perCall }, (_, j) => benchEvent(first + j, patients)),
      );
      try {
        const res = await fetch(`${base}/v1/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${writer}`, "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(60_000),
        });
        const text = await res.text();
        const at = Date.now();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201) {
          const answer = JSON.parse(text) as {
            receipts: Array<{ receipt: { seq: number; leafHash: string } }>;
          };
          for (const r of answer.receipts) acked.add(r.receipt.seq, r.receipt.leafHash);
          acked.calls.push({ seq: answer.receipts[0]!.receipt.seq, at });
        } else if (res.status === 503) {
          // A client honouring backpressure: wait as told, then try again.
          const after = Number(res.headers.get("retry-after") ?? "1");
          await sleep(Math.min(30, Math.max(1, after)) * 1000);
        } else {
          throw new Error(`POST /v1/events: ${res.status} ${text.slice(0, 300)}`);
        }
      } catch (error) {
        if (error instanceof Error && error.message.startsWith("POST")) throw error;
        transportErrors++;
        await sleep(500);
      }
    }
  };

  const samples: Sample[] = [];
  /** The kernel's high-water mark of the service's RSS (VmHWM): catches peaks between samples. */
  let peakRss = 0;
  const sample = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const anchoredBatches = metric(text, "veritrail_batches_anchored");
    const unsealed = metric(text, "veritrail_unsealed_events");
    const acknowledged = metric(text, "veritrail_events_ingested_total");
    const mem = await memory(pid);
    peakRss = Math.max(peakRss, mem.peak);
    samples.push({
      t: (Date.now() - started) / 1000,
      rssMb: mem.rss,
      rssAnonMb: mem.anon,
      rssFileMb: mem.file,
      acknowledged,
      sealed: acknowledged - unsealed,
      anchored: await eventsThrough(base, auditor, anchoredBatches),
      unsealed,
      refused: metric(text, "veritrail_ingest_refused_total") || 0,
      heapMb: metric(text, "nodejs_heap_size_total_bytes") / 2 ** 20,
      externalMb: metric(text, "nodejs_external_memory_bytes") / 2 ** 20,
      workerHeapMb: metric(text, "veritrail_seal_worker_heap_bytes") / 2 ** 20,
      workerRestarts: metric(text, "veritrail_seal_worker_restarts") || 0,
    });
  };
  const sampler = (async () => {
    while (loading) {
      await sample().catch((e: unknown) => log(`sample failed: ${String(e)}`));
      await sleep(2_000);
    }
  })();

  const metricsText = async () => (await fetch(`${base}/metrics`)).text();
  const cpuAtStart = await threadCpu(pid, await metricsText());
  const clientCpuAtStart = process.cpuUsage();
  log(`load: ${clients} clients × ${perCall}-event calls for ${minutes} min`);
  const progress = setInterval(() => {
    const s = samples.at(-1);
    if (s)
      log(
        `t=${s.t.toFixed(0)}s acknowledged ${s.acknowledged} sealed ${s.sealed} anchored ${s.anchored} backlog ${s.unsealed} RSS ${s.rssMb.toFixed(0)} MB (anon ${s.rssAnonMb.toFixed(0)}, file ${s.rssFileMb.toFixed(0)}, peak ${peakRss.toFixed(0)}; heap ${s.heapMb.toFixed(0)}, worker heap ${s.workerHeapMb.toFixed(0)}, external ${s.externalMb.toFixed(0)}) 503s ${s.refused}`,
      );
  }, 30_000);
  await Promise.all(Array.from({ length: clients }, client));
  const loadSeconds = (Date.now() - started) / 1000;
  const cpuAtEnd = await threadCpu(pid, await metricsText());
  const clientCpu = process.cpuUsage(clientCpuAtStart);
  await sample();
  const atLoadEnd = samples.at(-1)!;
  log(`load over after ${loadSeconds.toFixed(0)} s; waiting for the backlog to be anchored`);
  const drainDeadline = Date.now() + 10 * 60_000;
  while (samples.at(-1)!.anchored < acked.maxSeq + 1) {
    if (Date.now() > drainDeadline) throw new Error("the backlog was not anchored in 10 minutes");
    await sleep(1_000);
    await sample();
  }
  loading = false;
  clearInterval(progress);
  await sampler;
  const drainSeconds = samples.at(-1)!.t - loadSeconds;

  // Rates over the load window, from the service's own counters.
  const first = samples[0]!;
  const window = atLoadEnd.t - first.t;
  const ackRate = (atLoadEnd.acknowledged - first.acknowledged) / window;
  const sealRate = (atLoadEnd.sealed - first.sealed) / window;
  const anchorRate = (atLoadEnd.anchored - first.anchored) / window;
  const peakBacklog = Math.max(...samples.map((s) => s.unsealed));
  const largest = samples.reduce((a, b) => (b.rssMb > a.rssMb ? b : a));
  const peakAnon = Math.max(...samples.map((s) => s.rssAnonMb));
  const peakFile = Math.max(...samples.map((s) => s.rssFileMb));
  const refused = statuses.get(503) ?? 0;

  log("stopping the service (SIGTERM)");
  const exit = await service.kill("SIGTERM");
  service = undefined;

  // Every acknowledged event is in an anchored batch at its seq, and the batch roots the chain
  // holds are the roots of the leaves the receipts named (recomputed here from the receipts).
  const store = await LedgerStore.open(path.join(dataDir, "ledger"));
  const ackToAnchor: number[] = [];
  let lost = 0;
  let rootMismatches = 0;
  try {
    const anchoredAt = new Map<number, number>();
    let batches: BatchRecord[] = [];
    let from = 0;
    do {
      batches = await store.listBatches({ fromBatchNo: from, limit: 1_000 });
      for (const b of batches) {
        const { firstSeq, count, eventsRoot } = b.header;
        from = b.header.batchNo + 1;
        const leaves: Uint8Array[] = [];
        for (let s = firstSeq; s < firstSeq + count; s++) {
          if (!acked.has(s)) continue;
          leaves.push(acked.leaf(s));
        }
        if (b.state !== "anchored" || !b.anchor) lost += leaves.length;
        else anchoredAt.set(b.header.batchNo, Date.parse(b.anchor.anchoredAt));
        if (leaves.length === count && toHex(buildTree(leaves).root) !== eventsRoot)
          rootMismatches++;
      }
    } while (batches.length === 1_000);
    const nextSeq = await store.nextSeq();
    for (let s = 0; s <= acked.maxSeq; s++) if (acked.has(s) && s >= nextSeq) lost++;
    for (const call of acked.calls) {
      const batchNo = await store.batchNoForSeq(call.seq);
      const at = batchNo === undefined ? undefined : anchoredAt.get(batchNo);
      if (at === undefined) continue;
      ackToAnchor.push((at - call.at) / 1000);
    }
  } finally {
    await store.close();
  }

  log("veritrail audit --data … --rpc …");
  const auditStarted = Date.now();
  // Relative to the trust policy the service wrote for its log (DATA_DIR/trust.json).
  const audit = await runCli([
    "audit",
    "--data",
    dataDir,
    "--rpc",
    chain.node.url,
    "--trust",
    path.join(dataDir, "trust.json"),
    "--json",
  ]);
  const auditSeconds = (Date.now() - auditStarted) / 1000;
  let auditOk = false;
  try {
    auditOk = audit.code === 0 && (JSON.parse(audit.stdout) as { ok: boolean }).ok === true;
  } catch {
    auditOk = false;
  }
  if (!auditOk) outcome.failures.push(`veritrail audit: exit ${audit.code}\n${audit.stderr}`);

  // Where the CPU went, per acknowledged event over the load window.
  const acknowledgedInWindow = atLoadEnd.acknowledged - first.acknowledged;
  const perEvent = (seconds: number) => (seconds * 1e6) / acknowledgedInWindow;
  const cpu = (group: string) => perEvent(cpuAtEnd[group]! - cpuAtStart[group]!);
  const cpuRows: BenchRow[] = [
    ["the whole service process", "total"],
    ["request thread (HTTP, validation, hashing, receipts, LevelDB calls)", "main"],
    ["sealing worker (completeness-index update)", "sealWorker"],
    ["V8 platform threads (garbage collection, compilation)", "v8Platform"],
    ["LevelDB compaction and libuv threads (writes, fsync, reads)", "levelDbAndLibuv"],
  ].map(([what, group]) => ({
    name: `CPU per acknowledged event: ${what}`,
    value: cpu(group!),
    unit: "µs",
  }));
  cpuRows.push({
    name: "CPU per acknowledged event: the load generator (this process: JSON bodies, receipts)",
    value: perEvent((clientCpu.user + clientCpu.system) / 1e6),
    unit: "µs",
  });

  const rows: BenchRow[] = [
    {
      name: `acknowledged rate, ${clients} clients × ${perCall}-event HTTP calls, ${minutes} min`,
      value: ackRate,
      unit: "events/s",
      baselineName: "floor (same run, one thread)",
      baseline: floor,
    },
    {
      name: "sealed rate over the load window",
      value: sealRate,
      unit: "events/s",
      baselineName: "acknowledged rate",
      baseline: ackRate,
      target: { op: ">=", value: 0.9 * ackRate },
    },
    {
      name: "sustained (sealed) rate against the floor",
      value: sealRate,
      unit: "events/s",
      baselineName: "floor (same run, one thread)",
      baseline: floor,
      target: { op: ">=", value: FLOOR_RATIO_GOAL * floor },
    },
    {
      name: "anchored rate over the load window",
      value: anchorRate,
      unit: "events/s",
      baselineName: "acknowledged rate",
      baseline: ackRate,
    },
    ...cpuRows,
    { name: "unsealed backlog, peak", value: peakBacklog, unit: "events" },
    { name: "unsealed backlog at the end of the load", value: atLoadEnd.unsealed, unit: "events" },
    {
      name: "drain after the load (last acknowledged event anchored)",
      value: drainSeconds,
      unit: "s",
    },
    {
      name: "acknowledgement → confirmed anchor, p50 (every acknowledged call)",
      value: percentile(ackToAnchor, 50),
      unit: "s",
    },
    {
      name: "acknowledgement → confirmed anchor, p99",
      value: percentile(ackToAnchor, 99),
      unit: "s",
    },
    {
      name: "acknowledgement → confirmed anchor, max",
      value: Math.max(...ackToAnchor),
      unit: "s",
      target: { op: "<=", value: 30 },
    },
    { name: "503 OVERLOADED answers (backpressure)", value: refused, unit: "answers" },
    {
      name: "service RSS, peak (whole soak, the kernel's high-water mark VmHWM)",
      value: peakRss,
      unit: "MB",
      target: { op: "<=", value: 512 },
    },
    {
      name: "service RSS, largest of the samples every 2 s",
      value: largest.rssMb,
      unit: "MB",
      note: `anonymous ${largest.rssAnonMb.toFixed(0)} MB + mapped files ${largest.rssFileMb.toFixed(0)} MB, at ${largest.t.toFixed(0)} s`,
    },
    {
      name: "V8 heap, peak of samples: request thread / sealing worker",
      value: Math.max(...samples.map((s) => s.heapMb)),
      unit: "MB",
      note: `sealing worker ${Math.max(...samples.map((s) => s.workerHeapMb || 0)).toFixed(0)} MB`,
    },
    {
      name: "sealing workers replaced (lost: out of heap or crashed)",
      value: samples.at(-1)!.workerRestarts,
      unit: "workers",
    },
    {
      name: "service RSS, peak of samples every 2 s: anonymous (heaps, malloc)",
      value: peakAnon,
      unit: "MB",
    },
    {
      name: "service RSS, peak of samples every 2 s: mapped files (binary, LevelDB tables)",
      value: peakFile,
      unit: "MB",
    },
    {
      name: "acknowledged events lost (receipts checked against anchored batches)",
      value: lost + rootMismatches,
      unit: "events",
      target: { op: "<=", value: 0 },
    },
    {
      name: `veritrail audit of the ${acked.count.toLocaleString("en")}-event log (${auditOk ? "no findings" : "FINDINGS"})`,
      value: auditSeconds,
      unit: "s",
    },
  ];
  outcome.rows = rows;
  if (ackToAnchor.length < acked.calls.length)
    outcome.failures.push(
      `${acked.calls.length - ackToAnchor.length} acknowledged calls have no anchored batch`,
    );
  if (transportErrors > 0) log(`${transportErrors} calls failed in transport (not acknowledged)`);
  log(`service exit code after SIGTERM: ${exit}`);

  const out = path.resolve(REPO, o.out!);
  await mkdir(out, { recursive: true });
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  await writeFile(
    path.join(out, "soak.json"),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        argv: process.argv.slice(2),
        statuses: Object.fromEntries(statuses),
        transportErrors,
        rows,
        samples,
      },
      null,
      2,
    ) + "\n",
  );
  await writeFile(
    path.join(out, "soak.svg"),
    chart(
      samples,
      `Soak: ${clients} clients × ${perCall}-event calls, ${minutes} min (${machine.split(",")[0]})`,
    ),
  );
  process.stdout.write(`\nMachine: ${machine}\n\n${renderTable(rows)}\n`);
  log(`wrote ${path.join(o.out!, "soak.json")} and ${path.join(o.out!, "soak.svg")}`);
} finally {
  await service?.kill("SIGKILL");
  await chain.close();
  await rm(work, { recursive: true, force: true });
}
const missed = outcome.rows.filter(
  (r) =>
    r.target && !(r.target.op === ">=" ? r.value >= r.target.value : r.value <= r.target.value),
);
if (missed.length > 0 || outcome.failures.length > 0) {
  for (const f of outcome.failures) process.stderr.write(`\n${f}\n`);
  if (missed.length > 0)
    process.stderr.write(`\ntarget(s) missed: ${missed.map((r) => r.name).join("; ")}\n`);
  process.exitCode = 1;
}

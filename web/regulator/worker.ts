/**
 * The console's worker for one log: reads the log's NDJSON export as it arrives — from the API
 * with the auditor key, or from a dropped file — and hands chunks of lines to its verifier
 * workers (web/regulator/verifier.ts, one per spare core), which check every bundle with the
 * standalone verifier against the RPC and the trust policy. It keeps each bundle's facts
 * (web/regulator/facts.ts) and answers the page's questions (figures, one proof, the
 * verification result). Off the page's thread, so the page stays responsive on 100,000
 * bundles. Bundled by scripts/build-web.ts to web/dist/regulator-worker.js.
 *
 * It talks to the log's API (the export, one proof on request) and the RPC, nothing else. Its
 * verifiers' chain calls come here and are asked once each (web/regulator/chain-proxy.ts): one
 * state read per batch for the whole log, whatever the number of its bundles or verifiers.
 */
import { type TrustPolicy, parseTrustPolicy } from "../../services/core/trust-policy.ts";
import { connectRpc, redactRpcUrl } from "../../services/verifier/rpc.ts";
import {
  type VerifySession,
  type VerifyOptions,
  newSession,
  verifyInSession,
} from "../../services/verifier/verify-bundle.ts";
import { SharedChain } from "./chain-proxy.ts";
import { type BatchFacts, type EventFacts, Strings, addToBatch } from "./facts.ts";
import { logFigures } from "./figures.ts";
import { LineTooLongError, type NdjsonLine, ndjsonLines } from "./ndjson.ts";
import type {
  FromWorker,
  LogResult,
  Progress,
  RunErrorKind,
  RunSummary,
  Source,
  StartMessage,
  ToWorker,
} from "./protocol.ts";
import type { FromVerifier, LineResult, LineVerdict, ToVerifier } from "./verifier.ts";

interface WorkerScope {
  postMessage(message: FromWorker): void;
  addEventListener(type: "message", listener: (e: MessageEvent<ToWorker>) => void): void;
}
const scope = self as unknown as WorkerScope;

/** Lines handed to a verifier at once: big enough to be cheap to pass, small enough to report progress. */
const CHUNK = 500;
/** Chunks a verifier may hold: it never waits for the reader, and the reader never runs far ahead. */
const CHUNKS_IN_FLIGHT = 2;
const PROGRESS_EVERY_MS = 100;

class RunError extends Error {
  constructor(
    readonly kind: RunErrorKind,
    message: string,
  ) {
    super(message);
  }
}

interface Run {
  index: number;
  source: Source;
  policy: TrustPolicy;
  /** The policy document as loaded: what the verifiers parse (the fingerprint is over it). */
  trustDocument: unknown;
  options: VerifyOptions;
  /** The log's chain, shared by the verifiers (chain-proxy.ts), and a session on it for proofs. */
  chain?: SharedChain;
  session?: VerifySession;
  verifiers: VerifierPool | undefined;
  facts: EventFacts[];
  batches: Map<number, BatchFacts>;
  strings: Strings;
  /** Where each seq's bundle is in a dropped file (start, end), for its proof. */
  offsets: Map<number, [number, number]>;
  verdicts: LineVerdict[];
  malformed: Array<{ line: number; reason: string }>;
  logId: string | null;
  operator: string | null;
  head: number | null;
  logEvents: number | null;
  startedAt: number;
  finishedAt: number | null;
  progress: Progress;
  untrusted: RunSummary["untrusted"];
  rpcErrors: number;
}

let run: Run | undefined;

scope.addEventListener("message", (e) => {
  const msg = e.data;
  switch (msg.type) {
    case "start":
      void start(msg).catch((err: unknown) => {
        const kind = err instanceof RunError ? err.kind : "worker";
        scope.postMessage({ type: "error", kind, message: messageOf(err) });
      });
      return;
    case "figures":
      if (!run) return;
      scope.postMessage({
        type: "figures",
        id: msg.id,
        figures: logFigures(
          {
            log: run.index,
            facts: run.facts,
            batches: run.batches,
            head: run.head,
            malformed: run.malformed,
            categoryLabels: run.strings.categoryLabels,
          },
          msg.query,
        ),
      });
      return;
    case "proof":
      void proof(msg.id, msg.seq);
      return;
    case "result":
      if (run) scope.postMessage({ type: "result", id: msg.id, result: resultOf(run) });
      return;
  }
});

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function start(msg: StartMessage): Promise<void> {
  let policy: TrustPolicy;
  try {
    policy = parseTrustPolicy(msg.trust);
  } catch (e) {
    throw new RunError("policy", messageOf(e));
  }
  const r: Run = {
    index: msg.index,
    source: msg.source,
    policy,
    trustDocument: msg.trust,
    options: { trust: policy, confirmations: msg.confirmations },
    facts: [],
    batches: new Map(),
    strings: new Strings(),
    offsets: new Map(),
    verdicts: [],
    verifiers: undefined,
    malformed: [],
    logId: null,
    operator: null,
    head: null,
    logEvents: null,
    startedAt: performance.now(),
    finishedAt: null,
    progress: {
      verified: 0,
      total: null,
      bytesRead: 0,
      bytesTotal: msg.source.kind === "file" ? msg.source.file.size : null,
      failed: 0,
      elapsedMs: 0,
    },
    untrusted: { registry: 0, unknownLog: 0, example: null },
    rpcErrors: 0,
  };
  run = r;
  const lines =
    msg.source.kind === "api" ? await apiLines(r, msg.source) : fileLines(r, msg.source.file);
  let lastReport = 0;
  const report = (force = false): void => {
    const now = performance.now();
    if (!force && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    r.progress.elapsedMs = Math.round(now - r.startedAt);
    scope.postMessage({ type: "progress", progress: { ...r.progress } });
  };
  let chunk: NdjsonLine[] = [];
  let first = true;
  try {
    for await (const line of lines) {
      if (first) {
        first = false;
        await connect(r, line, msg.rpcByChain, msg.verifiers);
      }
      chunk.push(line);
      if (chunk.length >= CHUNK) {
        // Waits while every verifier holds its chunks: reading keeps pace with verifying.
        await r.verifiers!.submit(chunk);
        chunk = [];
        report();
      }
    }
  } catch (e) {
    if (e instanceof RunError) throw e;
    const source = msg.source;
    if (e instanceof LineTooLongError)
      throw new RunError(
        "not-ndjson",
        `${source.kind === "file" ? source.file.name : "the export"} is not an NDJSON export of proof bundles: ${e.message}`,
      );
    // The stream broke off: the API went away, or the file could not be read any more.
    throw new RunError(
      source.kind === "api" ? "api-unreachable" : "not-ndjson",
      source.kind === "api"
        ? `the API at ${new URL(source.api).origin} stopped sending the export after ${r.progress.verified + chunk.length} bundles: ${messageOf(e)}`
        : `${source.file.name} could not be read after ${r.progress.verified + chunk.length} bundles: ${messageOf(e)}`,
    );
  }
  if (first && msg.source.kind === "file")
    throw new RunError("not-ndjson", `${msg.source.file.name} holds no bundles (it is empty)`);
  if (chunk.length > 0) await r.verifiers!.submit(chunk);
  await r.verifiers?.drain();
  // Chunks come back from the verifiers in any order; lists read the facts in log order.
  r.facts.sort((a, b) => a.seq - b.seq);
  r.finishedAt = performance.now();
  report(true);
  const summary: RunSummary = {
    logId: r.logId,
    operator: r.operator,
    bundles: r.progress.verified,
    durationMs: Math.round(r.finishedAt - r.startedAt),
    head: r.head,
    untrusted: r.untrusted,
    chainCalls: r.chain?.requests ?? 0,
    rpcErrors: r.rpcErrors,
    logEvents: r.logEvents,
  };
  scope.postMessage({ type: "done", summary, progress: { ...r.progress } });
}

/**
 * Connects to the RPC of the log's chain, as the policy lists it: the API's log (checked with
 * /v1/status), else the log the first bundle names. A log the policy does not list still gets
 * verified (every bundle then fails UNKNOWN_LOG or UNTRUSTED_REGISTRY, each with its reason).
 */
async function connect(
  r: Run,
  first: NdjsonLine,
  rpcByChain: Record<string, string>,
  verifiers: number,
): Promise<void> {
  let named: { logId?: string; chainId?: number } = {};
  try {
    const b = JSON.parse(first.text) as {
      entry?: { log?: unknown };
      anchor?: { chainId?: unknown } | null;
    };
    named = {
      ...(typeof b.entry?.log === "string" ? { logId: b.entry.log } : {}),
      ...(typeof b.anchor?.chainId === "number" ? { chainId: b.anchor.chainId } : {}),
    };
  } catch {
    if (r.source.kind === "file")
      throw new RunError(
        "not-ndjson",
        `${r.source.file.name} is not an NDJSON export of proof bundles: line ${first.line} is not JSON`,
      );
  }
  const logId = r.logId ?? named.logId ?? null;
  const listed = logId ? r.policy.logs.find((l) => l.logId === logId) : undefined;
  r.logId = logId;
  r.operator = listed?.operator ?? null;
  const chainId = listed?.chainId ?? named.chainId ?? r.policy.registries[0]!.chainId;
  const url = rpcByChain[String(chainId)] ?? Object.values(rpcByChain)[0];
  if (!url) throw new RunError("rpc-unreachable", `no RPC URL is set for chain ${chainId}`);
  let provider;
  try {
    provider = await connectRpc(url, { timeoutMs: 15_000 });
  } catch (e) {
    throw new RunError(
      "rpc-unreachable",
      `${messageOf(e)}. Nothing was verified: check the RPC URL of chain ${chainId}.`,
    );
  }
  r.chain = new SharedChain(provider);
  r.session = newSession(r.chain.asRpc());
  try {
    r.head = await r.session.reads.latest();
  } catch (e) {
    throw new RunError(
      "rpc-unreachable",
      `the RPC at ${redactRpcUrl(url)} does not answer: ${messageOf(e)}`,
    );
  }
  r.verifiers = new VerifierPool(r, Math.max(1, verifiers));
}

/**
 * The verifier workers of one log. Chunks go to the verifier holding the fewest; each answer's
 * facts, batch sightings and verdicts are added to the run as it comes (order does not matter:
 * the figures are counts, and the verdict list is sorted by line when the result is asked for).
 */
class VerifierPool {
  private readonly workers: Array<{ worker: Worker; held: number }> = [];
  private nextId = 1;
  private readonly inFlight = new Map<number, { worker: number; lines: number }>();
  private waiters: Array<() => void> = [];

  constructor(
    private readonly r: Run,
    size: number,
  ) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("./regulator-verifier.js", import.meta.url), {
        type: "module",
      });
      worker.addEventListener("message", (e: MessageEvent<FromVerifier>) =>
        this.onMessage(i, e.data),
      );
      worker.addEventListener("error", (e) => {
        scope.postMessage({
          type: "error",
          kind: "worker",
          message: `a verifier stopped: ${e.message}`,
        });
      });
      const init: ToVerifier = {
        type: "init",
        trust: r.trustDocument,
        confirmations: r.options.confirmations ?? 0,
      };
      worker.postMessage(init);
      this.workers.push({ worker, held: 0 });
    }
  }

  async submit(lines: NdjsonLine[]): Promise<void> {
    for (;;) {
      let best = 0;
      for (let i = 1; i < this.workers.length; i++)
        if (this.workers[i]!.held < this.workers[best]!.held) best = i;
      const w = this.workers[best]!;
      if (w.held < CHUNKS_IN_FLIGHT) {
        const id = this.nextId++;
        w.held++;
        this.inFlight.set(id, { worker: best, lines: lines.length });
        const message: ToVerifier = {
          type: "lines",
          id,
          lines: lines.map((l) => ({ line: l.line, text: l.text })),
        };
        w.worker.postMessage(message);
        if (this.r.source.kind === "file")
          for (const l of lines) this.pendingOffsets.set(l.line, [l.start, l.end]);
        return;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Where each line of a dropped file is, until its verdict names its seq. */
  private readonly pendingOffsets = new Map<number, [number, number]>();

  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private onMessage(index: number, msg: FromVerifier): void {
    if (msg.type === "chain") {
      void this.r
        .chain!.answer(msg)
        .then((answer) => this.workers[index]!.worker.postMessage(answer));
      return;
    }
    const job = this.inFlight.get(msg.id);
    if (!job) return;
    this.inFlight.delete(msg.id);
    this.workers[job.worker]!.held--;
    for (const [code, label] of msg.categoryLabels)
      if (!this.r.strings.categoryLabels.has(code)) this.r.strings.categoryLabels.set(code, label);
    for (const result of msg.results) this.add(result);
    this.r.progress.verified += job.lines;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private add(result: LineResult): void {
    const r = this.r;
    const v = result.verdict;
    const at = this.pendingOffsets.get(v.line);
    this.pendingOffsets.delete(v.line);
    if (result.facts) {
      r.facts.push(intern(result.facts, r.strings));
      if (at) r.offsets.set(result.facts.seq, at);
    } else r.malformed.push({ line: v.line, reason: v.reason ?? "not a bundle" });
    if (result.sighting) addToBatch(r.batches, result.sighting);
    r.verdicts.push(v);
    if (v.status === "failed" || v.status === "error") r.progress.failed++;
    if (v.code === "RPC_ERROR") r.rpcErrors++;
    if (v.code === "UNTRUSTED_REGISTRY") r.untrusted.registry++;
    if (v.code === "UNKNOWN_LOG") r.untrusted.unknownLog++;
    if (v.code === "UNTRUSTED_REGISTRY" || v.code === "UNKNOWN_LOG")
      r.untrusted.example ??= v.reason ?? null;
  }
}

/** One copy of each string across the facts of every verifier (they cross as copies). */
function intern(f: EventFacts, s: Strings): EventFacts {
  f.organization = s.of(f.organization);
  f.action = s.of(f.action);
  f.purposes = f.purposes.map((p) => s.of(p));
  f.categories = f.categories.map((c) => s.of(c));
  if (f.code !== undefined) f.code = s.of(f.code);
  for (const staff of f.staff) {
    staff.key = s.of(staff.key);
    staff.id = s.of(staff.id);
    staff.system = s.of(staff.system);
    staff.label = s.of(staff.label);
    staff.organization = s.of(staff.organization);
  }
  return f;
}

/** GET with the auditor key; each way it can go wrong is its own error. */
async function apiGet(api: string, path: string, key: string): Promise<Response> {
  const url = new URL(path, api);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${key}` },
      cache: "no-store",
      redirect: "error",
    });
  } catch (e) {
    throw new RunError(
      "api-unreachable",
      `cannot reach the API at ${url.origin}: ${messageOf(e)} (is it running, and does it allow this page's origin?)`,
    );
  }
  if (res.status === 401)
    throw new RunError(
      "key-rejected",
      `the API at ${url.origin} did not accept the key: it is wrong, revoked or for another log`,
    );
  if (res.status === 403)
    throw new RunError(
      "not-auditor",
      `the key is valid at ${url.origin} but is not an auditor key: only an auditor key may read the whole log`,
    );
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new RunError(
      "api-error",
      `GET ${url.pathname} at ${url.origin} answered ${res.status}${body?.error?.message ? `: ${body.error.message}` : ""}`,
    );
  }
  return res;
}

async function apiLines(r: Run, source: Extract<Source, { kind: "api" }>) {
  const status = (await (await apiGet(source.api, "/v1/status", source.key)).json()) as {
    log?: { id?: string };
    events?: { accepted?: number };
  };
  const served = status.log?.id;
  if (served !== source.logId)
    throw new RunError(
      "wrong-log",
      `the API at ${new URL(source.api).origin} serves log ${served ?? "(none)"}, not ${source.logId} as the trust policy says`,
    );
  r.logId = source.logId;
  r.logEvents = status.events?.accepted ?? null;
  r.progress.total = r.logEvents;
  const res = await apiGet(source.api, "/v1/export", source.key);
  if (!res.body) throw new RunError("api-error", "the export answer has no body");
  return ndjsonLines(res.body, { onBytes: (n) => (r.progress.bytesRead = n) });
}

function fileLines(r: Run, file: File) {
  return ndjsonLines(file.stream(), { onBytes: (n) => (r.progress.bytesRead = n) });
}

async function proof(id: number, seq: number): Promise<void> {
  const r = run;
  try {
    if (!r?.session) throw new Error("nothing verified yet");
    let bundle: unknown;
    if (r.source.kind === "file") {
      const at = r.offsets.get(seq);
      if (!at) throw new Error(`seq ${seq} is not in ${r.source.file.name}`);
      bundle = JSON.parse(await r.source.file.slice(at[0], at[1]).text());
    } else {
      const res = await apiGet(r.source.api, `/v1/events/${seq}/proof`, r.source.key);
      bundle = await res.json();
    }
    const v = await verifyInSession(bundle, r.session, r.options);
    scope.postMessage({
      type: "proof",
      id,
      seq,
      bundle,
      status: v.status,
      ...(v.code !== undefined ? { code: v.code } : {}),
      checks: v.checks,
    });
  } catch (e) {
    scope.postMessage({ type: "proof-error", id, seq, message: messageOf(e) });
  }
}

function resultOf(r: Run): LogResult {
  const counts: LogResult["counts"] = {
    verified: 0,
    erased: 0,
    withheld: 0,
    pending: 0,
    failed: 0,
    error: 0,
    byCode: {},
  };
  const verdicts = [...r.verdicts].sort((a, b) => a.line - b.line);
  for (const v of verdicts) {
    counts[v.status]++;
    if (v.code !== undefined && (v.status === "failed" || v.status === "error"))
      counts.byCode[v.code] = (counts.byCode[v.code] ?? 0) + 1;
  }
  return {
    source:
      r.source.kind === "api"
        ? `${new URL(r.source.api).origin} (auditor key)`
        : r.source.file.name,
    logId: r.logId,
    operator: r.operator,
    bundles: verdicts.length,
    durationMs: Math.round((r.finishedAt ?? performance.now()) - r.startedAt),
    chainHead: r.head,
    counts,
    failures: verdicts
      .filter((v) => v.status !== "verified" && v.status !== "erased")
      .map((v) => ({
        seq: v.seq,
        line: v.line,
        status: v.status,
        ...(v.code !== undefined ? { code: v.code } : {}),
        ...(v.step !== undefined ? { step: v.step, reason: v.reason ?? "" } : {}),
      })),
    verdicts: verdicts.map((v) =>
      v.code !== undefined ? [v.seq, v.status, v.code] : [v.seq, v.status],
    ),
  };
}

/**
 * The console's verification worker (one per log): reads the log's NDJSON export as it arrives
 * — from the API with the auditor key, or from a dropped file — verifies every bundle with the
 * standalone verifier against the RPC and the trust policy (services/verifier), keeps each
 * bundle's facts (web/regulator/facts.ts) and answers the page's questions (figures, one proof,
 * the verification result). Off the page's thread, so the page stays responsive on 100,000
 * bundles. Bundled by scripts/build-web.ts to web/dist/regulator-worker.js.
 *
 * It talks to the log's API (the export, one proof on request) and the RPC, nothing else. The
 * chain reads are cached per run (services/verifier/chain-reads.ts): one state read per batch,
 * whatever the number of its bundles.
 */
import { type TrustPolicy, parseTrustPolicy } from "../../services/core/trust-policy.ts";
import { connectRpc, redact } from "../../services/verifier/rpc.ts";
import { type Verdict, malformedVerdict } from "../../services/verifier/verdict.ts";
import {
  type VerifySession,
  type VerifyOptions,
  newSession,
  verifyInSession,
} from "../../services/verifier/verify-bundle.ts";
import { verifyBundles } from "../../services/verifier/verify-bundles.ts";
import { type BatchFacts, type EventFacts, Strings, addToBatch, factsOf } from "./facts.ts";
import { logFigures } from "./figures.ts";
import { type NdjsonLine, ndjsonLines } from "./ndjson.ts";
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

interface WorkerScope {
  postMessage(message: FromWorker): void;
  addEventListener(type: "message", listener: (e: MessageEvent<ToWorker>) => void): void;
}
const scope = self as unknown as WorkerScope;

/** Bundles handed to verifyBundles at once: big enough to share chain reads, small enough to report progress. */
const CHUNK = 1_000;
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
  options: VerifyOptions;
  session?: VerifySession;
  facts: EventFacts[];
  batches: Map<number, BatchFacts>;
  strings: Strings;
  /** Where each seq's bundle is in a dropped file (start, end), for its proof. */
  offsets: Map<number, [number, number]>;
  verdicts: Array<[number | null, Verdict["status"], string?]>;
  failures: LogResult["failures"];
  malformed: number;
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
        const kind = err instanceof RunError ? err.kind : "api-error";
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
    options: { trust: policy, confirmations: msg.confirmations },
    facts: [],
    batches: new Map(),
    strings: new Strings(),
    offsets: new Map(),
    verdicts: [],
    failures: [],
    malformed: 0,
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
  const report = (force = false) => {
    const now = performance.now();
    if (!force && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    r.progress.elapsedMs = Math.round(now - r.startedAt);
    scope.postMessage({ type: "progress", progress: { ...r.progress } });
  };
  let chunk: NdjsonLine[] = [];
  let first = true;
  for await (const line of lines) {
    if (first) {
      first = false;
      await connect(r, line, msg.rpcByChain);
    }
    chunk.push(line);
    if (chunk.length >= CHUNK) {
      await verifyChunk(r, chunk);
      chunk = [];
      report();
    } else if (chunk.length % 100 === 0) report();
  }
  if (first && msg.source.kind === "file")
    throw new RunError("not-ndjson", `${msg.source.file.name} holds no bundles (it is empty)`);
  if (chunk.length > 0) await verifyChunk(r, chunk);
  r.finishedAt = performance.now();
  report(true);
  const summary: RunSummary = {
    logId: r.logId,
    operator: r.operator,
    bundles: r.progress.verified,
    durationMs: Math.round(r.finishedAt - r.startedAt),
    head: r.head,
    untrusted: r.untrusted,
    chainCalls: r.session?.reads.calls ?? 0,
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
  r.session = newSession(provider);
  try {
    r.head = await r.session.reads.latest();
  } catch (e) {
    throw new RunError(
      "rpc-unreachable",
      `the RPC at ${redact(url)} does not answer: ${messageOf(e)}`,
    );
  }
}

async function verifyChunk(r: Run, lines: NdjsonLine[]): Promise<void> {
  const values: unknown[] = [];
  const parsed: boolean[] = [];
  for (const l of lines) {
    try {
      values.push(JSON.parse(l.text));
      parsed.push(true);
    } catch {
      values.push(undefined);
      parsed.push(false);
    }
  }
  const verdicts = await verifyBundles(values, r.session!.reads.rpc, {
    ...r.options,
    session: r.session!,
    concurrency: 32,
  });
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const verdict = parsed[i] ? verdicts[i]! : malformedVerdict(`line ${line.line} is not JSON`);
    const facts = parsed[i] ? factsOf(values[i], verdict, r.strings) : undefined;
    if (facts) {
      r.facts.push(facts);
      if (r.source.kind === "file") r.offsets.set(facts.seq, [line.start, line.end]);
      addToBatch(r.batches, values[i], verdict);
    } else r.malformed++;
    record(r, verdict, facts?.seq ?? null, line.line);
  }
  r.progress.verified += lines.length;
}

function record(r: Run, v: Verdict, seq: number | null, line: number): void {
  r.verdicts.push(v.code !== undefined ? [seq, v.status, v.code] : [seq, v.status]);
  if (v.status === "failed" || v.status === "error") r.progress.failed++;
  if (v.code === "RPC_ERROR") r.rpcErrors++;
  if (v.code === "UNTRUSTED_REGISTRY" || v.code === "UNKNOWN_LOG") {
    if (v.code === "UNTRUSTED_REGISTRY") r.untrusted.registry++;
    else r.untrusted.unknownLog++;
    r.untrusted.example ??= v.checks.find((c) => c.code === v.code)?.reason ?? null;
  }
  if (v.status === "verified" || v.status === "erased") return;
  const failed = v.checks.find((c) => c.ok === false && c.code === v.code);
  r.failures.push({
    seq,
    line,
    status: v.status,
    ...(v.code !== undefined ? { code: v.code } : {}),
    ...(failed ? { step: failed.step, reason: failed.reason } : {}),
  });
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
  for (const [, status, code] of r.verdicts) {
    counts[status]++;
    if (code !== undefined && (status === "failed" || status === "error"))
      counts.byCode[code] = (counts.byCode[code] ?? 0) + 1;
  }
  return {
    source:
      r.source.kind === "api"
        ? `${new URL(r.source.api).origin} (auditor key)`
        : r.source.file.name,
    logId: r.logId,
    operator: r.operator,
    bundles: r.verdicts.length,
    durationMs: Math.round((r.finishedAt ?? performance.now()) - r.startedAt),
    chainHead: r.head,
    counts,
    failures: r.failures,
    verdicts: r.verdicts,
  };
}

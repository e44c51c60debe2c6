/**
 * `veritrail provenance`: the chain of custody of one data item, checked hop by hop against the
 * chain. The trace comes from one or more Veritrail APIs (`--url`/`--key`, GET /v1/provenance)
 * or from saved answers of that route (`--file`); nothing in it is trusted. For every hop the
 * export's and the import's proof bundles are verified with the standalone verifier, the match
 * is re-derived from the verified events themselves (Export 110106 and Import 110107 with the
 * same transfer reference and data hash, the importer being the export's recipient), every
 * bundle must be of a log the trust policy (--trust) lists, in a registry it lists, and every
 * anchored bundle must name the same registry (the one given with --registry, if any). Each side
 * is reported with its log's operator as the policy names it.
 *
 * Exit code: 0 when every hop verified and nothing is unmatched; 1 when a hop failed (bundle,
 * match or registry), is pending (unless --allow-pending) or could not be checked, a transfer is
 * unmatched, a peer log could not be read (the trace is incomplete), or no transfer of the item
 * was found; 2 for a usage error, no or a bad trust policy, an unreadable file, an unreachable API
 * or RPC, or an error answer of the API.
 */
import { type Command, InvalidArgumentError } from "commander";
import { readFile } from "node:fs/promises";
import { type Trace, isWithheld, mergeTraces, parseTrace } from "../core/provenance-trace.ts";
import { type SideReport, sideAcceptable, verifyTrace } from "../verifier/provenance.ts";
import { redactRpcUrl } from "../verifier/rpc.ts";
import {
  confirmationsGiven,
  confirmationsOption,
  connectChain,
  rpcOption,
  timeoutOption,
  trustOption,
} from "./chain-options.ts";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE } from "./context.ts";
import { TrustPolicyFileError, requireTrustPolicy } from "./trust-policy-file.ts";

export interface ProvenanceCommandOptions {
  url: string[];
  key: string[];
  file: string[];
  dataHash?: string;
  reference?: string;
  rpc: string;
  trust?: string;
  registry?: string;
  confirmations?: number;
  allowPending: boolean;
  json: boolean;
  timeout: number;
}

/** A trace and where it came from (an API's origin or a file name). */
interface SourcedTrace {
  source: string;
  trace: Trace;
}

class UsageError extends Error {}

function hex32(value: string): string {
  if (!/^0x[0-9a-f]{64}$/.test(value))
    throw new InvalidArgumentError("must be 0x and 64 lowercase hex digits");
  return value;
}

function address(value: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value))
    throw new InvalidArgumentError("must be a 0x-prefixed 20-byte address");
  return value;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerProvenanceCommand(program: Command, ctx: CliContext): void {
  program
    .command("provenance")
    .description(
      "verify a data item's chain of custody hop by hop: fetch the trace from Veritrail APIs (GET /v1/provenance) or read saved traces, and check every hop's proof bundles against the chain",
    )
    .option("--url <api>", "a Veritrail API to ask (repeatable)", collect, [])
    .option(
      "--key <key>",
      "auditor (or writer) key for --url; once for all APIs, or once per --url in order",
      collect,
      [],
    )
    .option("--file <trace.json>", "a saved GET /v1/provenance answer (repeatable)", collect, [])
    .option("--data-hash <0x…>", "the data item (transfer.dataHash) to trace with --url", hex32)
    .option("--reference <ref>", "or a transfer reference of the item, with --url")
    .addOption(rpcOption("JSON-RPC URL of a node of the chain the registry is on"))
    .addOption(trustOption())
    .option(
      "--registry <address>",
      "require every anchored bundle to name this registry contract",
      address,
    )
    .addOption(confirmationsOption())
    .option("--allow-pending", "accept hops whose bundles are not anchored yet", false)
    .option("--json", "print the verdicts as JSON on stdout", false)
    .addOption(timeoutOption("timeout of each API and RPC request"))
    .addHelpText(
      "after",
      "\nExit codes: 0 every hop verified and nothing unmatched; 1 a hop failed, is pending or could not be checked, a transfer is unmatched, a peer log was unreadable, or nothing was found; 2 usage error, no or a bad trust policy, unreadable file, unreachable API or RPC, or an error answer.",
    )
    .action(async (opts: ProvenanceCommandOptions) => {
      ctx.exitCode = await runProvenance(opts, ctx);
    });
}

// ---- Reading the traces --------------------------------------------------------------------

function traceFrom(value: unknown, source: string): Trace {
  const parsed = parseTrace(value);
  if (!parsed.ok) throw new UsageError(`${source} is not a provenance trace (${parsed.message})`);
  return parsed.trace;
}

/** The error an API answered with: native `{ error }` or a FHIR OperationOutcome. */
function errorMessageOf(text: string): string {
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string };
      issue?: Array<{ diagnostics?: string }>;
    };
    if (body.error) return `${body.error.code}: ${body.error.message}`;
    if (body.issue?.[0]?.diagnostics) return body.issue[0].diagnostics;
  } catch {
    // not JSON: show the text
  }
  return text.slice(0, 500);
}

async function fetchTrace(
  url: string,
  key: string,
  opts: ProvenanceCommandOptions,
): Promise<SourcedTrace> {
  let route: URL;
  try {
    route = new URL("/v1/provenance", url);
  } catch {
    throw new UsageError(`--url ${url} is not a URL`);
  }
  if (opts.dataHash !== undefined) route.searchParams.set("dataHash", opts.dataHash);
  if (opts.reference !== undefined) route.searchParams.set("reference", opts.reference);
  let res: Response;
  try {
    res = await fetch(route, {
      headers: { authorization: `Bearer ${key}` },
      signal: AbortSignal.timeout(opts.timeout),
    });
  } catch (e) {
    throw new UsageError(`cannot reach ${route.origin}: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (res.status !== 200)
    throw new UsageError(`${route.origin} answered ${res.status}: ${errorMessageOf(text)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new UsageError(`${route.origin} did not answer JSON`);
  }
  return { source: route.origin, trace: traceFrom(body, route.origin) };
}

async function readTrace(file: string): Promise<SourcedTrace> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not JSON`);
  }
  return { source: file, trace: traceFrom(body, file) };
}

const MARK = { ok: "✓", bad: "✗", pending: "…" };

export async function runProvenance(
  opts: ProvenanceCommandOptions,
  ctx: CliContext,
): Promise<number> {
  const fail = (message: string) => {
    if (opts.json)
      ctx.stdout.write(`${JSON.stringify({ ok: false, error: { code: "USAGE", message } })}\n`);
    ctx.stderr.write(`veritrail provenance: ${message}\n`);
    return EXIT_USAGE;
  };
  if (opts.url.length === 0 && opts.file.length === 0)
    return fail("give --url (with --key) or --file");
  let trust;
  try {
    trust = await requireTrustPolicy(opts.trust);
  } catch (e) {
    if (e instanceof TrustPolicyFileError) return fail(e.message);
    throw e;
  }
  if (opts.url.length > 0) {
    if (opts.dataHash === undefined && opts.reference === undefined)
      return fail("--url needs --data-hash or --reference (the data item to trace)");
    if (opts.key.length !== 1 && opts.key.length !== opts.url.length)
      return fail("give one --key for all --url, or one --key per --url");
  }

  let sources: SourcedTrace[];
  try {
    sources = await Promise.all([
      ...opts.url.map((url, i) => fetchTrace(url, opts.key[i] ?? opts.key[0]!, opts)),
      ...opts.file.map((file) => readTrace(file)),
    ]);
  } catch (e) {
    if (e instanceof UsageError) return fail(e.message);
    throw e;
  }
  // Answers about different data items cannot be merged into one chain of custody.
  const items = new Set(sources.map((s) => s.trace.dataHash).filter((h) => typeof h === "string"));
  if (items.size > 1)
    return fail(`the traces are of different data items (${[...items].join(", ")})`);
  const trace = mergeTraces(sources.map((s) => s.trace));

  const chain = await connectChain(opts);
  if ("error" in chain) return fail(chain.error);
  const { provider } = chain;
  let verdict;
  try {
    verdict = await verifyTrace(trace, provider, {
      trust,
      allowPending: opts.allowPending,
      ...confirmationsGiven(opts),
      ...(opts.registry !== undefined ? { registry: opts.registry } : {}),
      ...(opts.dataHash !== undefined ? { dataHash: opts.dataHash } : {}),
    });
  } finally {
    provider.destroy();
  }
  const { ok, registry, unreadable, custody, hops, unmatched, failedHops, empty } = verdict;

  if (opts.json) {
    const out = {
      ok,
      rpc: redactRpcUrl(opts.rpc),
      dataHash: trace.dataHash ?? null,
      reference: trace.reference ?? null,
      sources: sources.map((s) => s.source),
      registry,
      trust: { fingerprint: trust.fingerprint, issuer: trust.issuer },
      complete: verdict.complete,
      unreadable,
      custody,
      hops,
      unmatched,
    };
    ctx.stdout.write(`${JSON.stringify(out)}\n`);
    return ok ? EXIT_OK : EXIT_NEGATIVE;
  }

  const w = (line: string) => ctx.stdout.write(`${line}\n`);
  const item = trace.dataHash ? `data item ${trace.dataHash}` : `transfer ${trace.reference}`;
  w(`provenance of ${item} (from ${sources.map((s) => s.source).join(", ")})`);
  if (registry !== null) w(`registry ${registry.contract} on chain ${registry.chainId}`);
  const sideLine = (label: string, s: SideReport | { withheld: true }) => {
    if (isWithheld(s)) return `  ${MARK.bad} ${label.padEnd(7)}withheld from this key`;
    const good = sideAcceptable(s, opts.allowPending);
    const mark = good ? (s.status === "pending" ? MARK.pending : MARK.ok) : MARK.bad;
    const what = `${s.status.toUpperCase()}${s.code ? ` ${s.code}` : ""}`;
    const operator = s.operator ? `, operator ${s.operator}` : "";
    const where = `${s.organization}, seq ${s.seq} of log ${s.logId} (${s.log}${operator})`;
    return `  ${mark} ${label.padEnd(7)}${where}: ${what}${s.registry ? `; ${s.registry}` : ""}`;
  };
  for (const h of hops) {
    const org = (s: SideReport | { withheld: true }) =>
      isWithheld(s) ? "(withheld)" : s.organization;
    w(`hop ${h.hop}: ${h.reference}  ${org(h.from)} → ${org(h.to)}`);
    w(sideLine("export", h.from));
    w(sideLine("import", h.to));
    w(`  ${h.match.ok ? MARK.ok : MARK.bad} match  ${h.match.reason}`);
    w(`HOP ${h.hop} ${h.ok ? "VERIFIED" : "FAILED"}`);
  }
  for (const u of unmatched) {
    w(
      `${MARK.bad} UNMATCHED ${u.kind} (${u.reason}): reference ${u.reference}, data hash ${u.dataHash}`,
    );
    // Its own bundle is still checked: a verified one proves the event really is in that log.
    w(sideLine("proof", u));
  }
  for (const l of unreadable)
    w(`INCOMPLETE: the log ${l.name} could not be read${l.error ? `: ${l.error}` : ""}`);
  if (empty) w("no transfer of this data item was found");
  if (custody.length > 0) w(`custody: ${custody.join(" → ")}`);
  w(
    `${ok ? "OK" : "NOT OK"}: ${hops.length} hops, ${hops.length - failedHops} verified, ` +
      `${failedHops} failed; ${unmatched.length} unmatched transfers` +
      `${unreadable.length > 0 ? `; ${unreadable.length} logs unreadable` : ""}`,
  );
  w(`trust policy ${trust.fingerprint} (issuer: ${trust.issuer})`);
  return ok ? EXIT_OK : EXIT_NEGATIVE;
}

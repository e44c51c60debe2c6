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
import { z } from "zod";
import { SYSTEM } from "../core/codes.ts";
import { type NativeEvent, parseNativeEvent } from "../core/event.ts";
import { EXPORT_TYPE_CODE, IMPORT_TYPE_CODE } from "../core/transfer.ts";
import type { Verdict, VerdictStatus } from "../verifier/verdict.ts";
import { RpcUnavailableError, connectRpc, redactRpcUrl } from "../verifier/rpc.ts";
import { newSession, verifyInSession } from "../verifier/verify-bundle.ts";
import { confirmationsOption, rpcOption, timeoutOption, trustOption } from "./chain-options.ts";
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

// ---- The trace as the API answers it (untrusted input) ---------------------------------------

const SideSchema = z.object({
  log: z.string(),
  logId: z.string(),
  seq: z.number().int().nonnegative(),
  organization: z.string(),
  recorded: z.string(),
  bundle: z.unknown(),
});
type Side = z.infer<typeof SideSchema>;

/** A side the API's access policy withheld from the key that asked (a writer's trace). */
const WithheldSchema = z.object({ withheld: z.literal(true) });
type Withheld = z.infer<typeof WithheldSchema>;
const HopSideSchema = z.union([SideSchema, WithheldSchema]);

const isWithheld = <T extends object>(s: T | Withheld): s is Withheld => "withheld" in s;

const TraceSchema = z.object({
  dataHash: z.string().nullable().optional(),
  reference: z.string().nullable().optional(),
  hops: z.array(
    z.object({
      reference: z.string(),
      dataHash: z.string(),
      from: HopSideSchema,
      to: HopSideSchema,
    }),
  ),
  unmatched: z.array(
    z.object({
      kind: z.enum(["export", "import"]),
      reason: z.string(),
      reference: z.string(),
      dataHash: z.string(),
      side: SideSchema,
    }),
  ),
  logs: z
    .array(z.object({ name: z.string(), readable: z.boolean(), error: z.string().optional() }))
    .optional(),
  complete: z.boolean().optional(),
});
type Trace = z.infer<typeof TraceSchema>;
type Hop = Trace["hops"][number];
type Unmatched = Trace["unmatched"][number];

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

function parseTrace(value: unknown, source: string): Trace {
  const parsed = TraceSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue ? issue.path.join(".") || "$" : "$";
    throw new UsageError(`${source} is not a provenance trace (${at}: ${issue?.message})`);
  }
  return parsed.data;
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
  return { source: route.origin, trace: parseTrace(body, route.origin) };
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
  return { source: file, trace: parseTrace(body, file) };
}

const sideKey = (s: Side | Withheld) => (isWithheld(s) ? "withheld" : `${s.logId}:${s.seq}`);

/**
 * Several answers (each API traces from its own log and its peers) as one trace: hops are
 * deduplicated by their two sides, a hop with a side withheld from one key gives way to the same
 * hop seen whole by another, and a transfer one source lists as unmatched but another matched
 * (it could not see the counterparty's log) counts as matched.
 */
export function mergeTraces(traces: Trace[]): Trace {
  const hops = new Map<string, Hop>();
  for (const t of traces)
    for (const hop of t.hops) hops.set(`${sideKey(hop.from)}>${sideKey(hop.to)}`, hop);
  const whole = [...hops.values()].filter((h) => !isWithheld(h.from) && !isWithheld(h.to));
  const wholeFrom = new Set(whole.map((h) => sideKey(h.from)));
  const wholeTo = new Set(whole.map((h) => sideKey(h.to)));
  for (const [key, hop] of hops) {
    const seenWhole =
      (isWithheld(hop.from) && wholeTo.has(sideKey(hop.to))) ||
      (isWithheld(hop.to) && wholeFrom.has(sideKey(hop.from)));
    if (seenWhole) hops.delete(key);
  }
  const exported = new Set([...hops.values()].map((h) => sideKey(h.from)));
  const imported = new Set([...hops.values()].map((h) => sideKey(h.to)));
  const unmatched = new Map<string, Unmatched>();
  for (const t of traces)
    for (const u of t.unmatched) {
      const key = sideKey(u.side);
      if ((u.kind === "export" ? exported : imported).has(key)) continue;
      unmatched.set(`${u.kind}:${key}`, u);
    }
  const timeOf = (h: Hop) => [h.from, h.to].find((s): s is Side => !isWithheld(s));
  const sorted = [...hops.values()].sort((a, b) => {
    const [x, y] = [timeOf(a), timeOf(b)];
    return (x?.recorded ?? "").localeCompare(y?.recorded ?? "") || (x?.seq ?? 0) - (y?.seq ?? 0);
  });
  const first = traces[0];
  return {
    dataHash: traces.find((t) => typeof t.dataHash === "string")?.dataHash ?? null,
    reference: first?.reference ?? null,
    hops: sorted,
    unmatched: [...unmatched.values()],
    logs: traces.flatMap((t) => t.logs ?? []),
    complete: traces.every((t) => t.complete !== false),
  };
}

// ---- Checking -----------------------------------------------------------------------------

interface Registry {
  chainId: number;
  contract: string;
}

/** Anchors named by bundles: chainId and contract, when the bundle has an anchor. */
function anchorOf(bundle: unknown): Registry | null {
  if (typeof bundle !== "object" || bundle === null) return null;
  const anchor = (bundle as { anchor?: unknown }).anchor;
  if (typeof anchor !== "object" || anchor === null) return null;
  const { chainId, contract } = anchor as { chainId?: unknown; contract?: unknown };
  if (typeof chainId !== "number" || typeof contract !== "string") return null;
  return { chainId, contract: contract.toLowerCase() };
}

function registryProblem(bundle: unknown, registry: Registry | null): string | null {
  const anchor = anchorOf(bundle);
  if (anchor === null || registry === null) return null;
  if (anchor.chainId !== registry.chainId || anchor.contract !== registry.contract)
    return `anchored in ${anchor.contract} on chain ${anchor.chainId}, not in the registry ${registry.contract} on chain ${registry.chainId}`;
  return null;
}

type TransferEvent = NativeEvent & { transfer: NonNullable<NativeEvent["transfer"]> };

/** The event a side's bundle carries, if it is a transfer event of the expected type. */
function transferEventOf(side: Side, code: string): TransferEvent | string {
  const bundle = side.bundle as { event?: unknown; entry?: { log?: unknown; seq?: unknown } };
  if (bundle.entry?.log !== side.logId || bundle.entry.seq !== side.seq)
    return `the bundle is of ${String(bundle.entry?.log)}:${String(bundle.entry?.seq)}, not ${sideKey(side)}`;
  if (bundle.event === null || bundle.event === undefined)
    return `seq ${side.seq} was erased: its transfer cannot be checked`;
  const parsed = parseNativeEvent(bundle.event);
  if (!parsed.ok) return `seq ${side.seq} does not carry a valid event`;
  const e = parsed.value;
  if (e.type.system !== SYSTEM.dcm || e.type.code !== code || e.transfer === undefined)
    return `seq ${side.seq} is not ${code === EXPORT_TYPE_CODE ? `an Export (${EXPORT_TYPE_CODE})` : `an Import (${IMPORT_TYPE_CODE})`} with a transfer`;
  if (e.source.organization !== side.organization)
    return `seq ${side.seq} was logged by ${e.source.organization}, not ${side.organization}`;
  return e as TransferEvent;
}

/**
 * The hop re-derived from what the verified bundles say, not from the API's labels: an Export
 * and an Import with the hop's reference and data hash, the importer being the export's
 * recipient (an export without a recipient matches any importer, as in the ledger's matching).
 */
export function checkHopMatch(hop: Hop, dataHash: string | null): string | null {
  if (isWithheld(hop.from) || isWithheld(hop.to))
    return `the ${isWithheld(hop.from) ? "export" : "import"} side was withheld from the key that asked (it names another organization): the hop cannot be checked`;
  const exp = transferEventOf(hop.from, EXPORT_TYPE_CODE);
  if (typeof exp === "string") return `export: ${exp}`;
  const imp = transferEventOf(hop.to, IMPORT_TYPE_CODE);
  if (typeof imp === "string") return `import: ${imp}`;
  if (exp.transfer.reference !== hop.reference || imp.transfer.reference !== hop.reference)
    return `the transfer references differ (export ${exp.transfer.reference}, import ${imp.transfer.reference})`;
  if (exp.transfer.dataHash !== hop.dataHash || imp.transfer.dataHash !== hop.dataHash)
    return `the data hashes differ (export ${exp.transfer.dataHash}, import ${imp.transfer.dataHash})`;
  if (dataHash !== null && hop.dataHash !== dataHash)
    return `the hop moves data ${hop.dataHash}, not the item traced (${dataHash})`;
  if (exp.recipient !== undefined && exp.recipient.organization !== imp.source.organization)
    return `the export went to ${exp.recipient.organization}, the import was logged by ${imp.source.organization}`;
  return null;
}

interface SideReport {
  organization: string;
  log: string;
  logId: string;
  seq: number;
  status: VerdictStatus;
  code?: string;
  /** The log's operator, as the trust policy names it. */
  operator?: string;
  registry?: string;
}

interface HopReport {
  hop: number;
  reference: string;
  dataHash: string;
  from: SideReport | Withheld;
  to: SideReport | Withheld;
  match: { ok: boolean; reason: string };
  ok: boolean;
}

interface UnmatchedReport extends SideReport {
  kind: "export" | "import";
  reason: string;
  reference: string;
  dataHash: string;
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

  let provider;
  try {
    provider = await connectRpc(opts.rpc, { timeoutMs: opts.timeout });
  } catch (e) {
    return fail(e instanceof RpcUnavailableError ? e.message : String(e));
  }
  const session = newSession(provider);
  const verdicts = new Map<string, Promise<Verdict>>();
  const verify = (side: Side) => {
    const key = sideKey(side);
    let v = verdicts.get(key);
    if (v === undefined) {
      v = verifyInSession(side.bundle, session, {
        trust,
        ...(opts.confirmations !== undefined ? { confirmations: opts.confirmations } : {}),
      });
      verdicts.set(key, v);
    }
    return v;
  };

  // The registry every anchored bundle must name: --registry (on the chain of the first anchored
  // bundle, which the verifier checks against the RPC's chain id), else the first one's. A
  // bundle anchored in a registry of the server's choosing would otherwise verify on its own.
  const allSides = [
    ...trace.hops.flatMap((h) => [h.from, h.to]).filter((s): s is Side => !isWithheld(s)),
    ...trace.unmatched.map((u) => u.side),
  ];
  const firstAnchor = allSides.map((s) => anchorOf(s.bundle)).find((a) => a !== null) ?? null;
  const registry: Registry | null =
    firstAnchor === null
      ? null
      : {
          chainId: firstAnchor.chainId,
          contract: opts.registry?.toLowerCase() ?? firstAnchor.contract,
        };

  const acceptable = (s: VerdictStatus) =>
    s === "verified" || (opts.allowPending && s === "pending");
  const reportSide = async (side: Side | Withheld): Promise<SideReport | Withheld> =>
    isWithheld(side) ? side : report(side);
  const report = async (side: Side): Promise<SideReport> => {
    const v = await verify(side);
    const problem = registryProblem(side.bundle, registry);
    return {
      organization: side.organization,
      log: side.log,
      logId: side.logId,
      seq: side.seq,
      status: v.status,
      ...(v.code !== undefined ? { code: v.code } : {}),
      ...(v.trust?.operator !== undefined ? { operator: v.trust.operator } : {}),
      ...(problem !== null ? { registry: problem } : {}),
    };
  };

  let hops: HopReport[];
  let unmatched: UnmatchedReport[];
  try {
    hops = await Promise.all(
      trace.hops.map(async (hop, i) => {
        const [from, to] = await Promise.all([reportSide(hop.from), reportSide(hop.to)]);
        const mismatch = checkHopMatch(hop, opts.dataHash ?? null);
        const good = (s: SideReport | Withheld) =>
          !isWithheld(s) && acceptable(s.status) && s.registry === undefined;
        const ok = good(from) && good(to) && mismatch === null;
        return {
          hop: i + 1,
          reference: hop.reference,
          dataHash: hop.dataHash,
          from,
          to,
          match: {
            ok: mismatch === null,
            reason:
              mismatch ??
              "an Export and an Import with the same reference and data hash; the importer is the export's recipient",
          },
          ok,
        };
      }),
    );
    unmatched = await Promise.all(
      trace.unmatched.map(async (u) => ({
        kind: u.kind,
        reason: u.reason,
        reference: u.reference,
        dataHash: u.dataHash,
        ...(await report(u.side)),
      })),
    );
  } finally {
    provider.destroy();
  }

  const unreadable = (trace.logs ?? []).filter((l) => !l.readable);
  const custody: string[] = [];
  for (const h of hops) {
    if (!isWithheld(h.from) && custody[custody.length - 1] !== h.from.organization)
      custody.push(h.from.organization);
    if (!isWithheld(h.to)) custody.push(h.to.organization);
  }
  const failedHops = hops.filter((h) => !h.ok).length;
  const empty = hops.length === 0 && unmatched.length === 0;
  const ok = failedHops === 0 && unmatched.length === 0 && trace.complete !== false && !empty;

  if (opts.json) {
    const out = {
      ok,
      rpc: redactRpcUrl(opts.rpc),
      dataHash: trace.dataHash ?? null,
      reference: trace.reference ?? null,
      sources: sources.map((s) => s.source),
      registry,
      trust: { fingerprint: trust.fingerprint, issuer: trust.issuer },
      complete: trace.complete !== false,
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
  const sideLine = (label: string, s: SideReport | Withheld) => {
    if (isWithheld(s)) return `  ${MARK.bad} ${label.padEnd(7)}withheld from this key`;
    const good = acceptable(s.status) && s.registry === undefined;
    const mark = good ? (s.status === "pending" ? MARK.pending : MARK.ok) : MARK.bad;
    const what = `${s.status.toUpperCase()}${s.code ? ` ${s.code}` : ""}`;
    const operator = s.operator ? `, operator ${s.operator}` : "";
    const where = `${s.organization}, seq ${s.seq} of log ${s.logId} (${s.log}${operator})`;
    return `  ${mark} ${label.padEnd(7)}${where}: ${what}${s.registry ? `; ${s.registry}` : ""}`;
  };
  for (const h of hops) {
    const org = (s: SideReport | Withheld) => (isWithheld(s) ? "(withheld)" : s.organization);
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

/**
 * `veritrail verify <input> --rpc <url> --trust <policy.json>`: checks proof bundles against the
 * chain the user names, with the standalone verifier (no Veritrail API involved), relative to a
 * trust policy (DESIGN.md "Trust policy"). The input is one bundle, a JSON array of bundles,
 * NDJSON (an export), or a saved `GET /v1/patient/history` answer (recognised by its format),
 * whose completeness is checked too.
 *
 * Without a trust policy the command refuses (exit 2) and says how to get one: a bundle only
 * shows that some registry holds it, and anyone can deploy a registry.
 *
 * Exit code: 0 when every bundle is verified or proven erased (pending ones too with
 * --allow-pending), or the history is proven complete; 1 when anything failed, is pending or
 * could not be checked; 3 when nothing failed but some bundle's content is withheld (no event
 * and no erasure record); 2 for a usage error, no or a bad trust policy, an unreadable input or
 * an unreachable RPC.
 */
import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { readFile } from "node:fs/promises";
import type { TrustPolicy } from "../core/trust-policy.ts";
import {
  type HistoryVerdict,
  PATIENT_HISTORY_FORMAT,
  verifyPatientHistory,
} from "../verifier/completeness.ts";
import type { Check, Verdict, VerdictStatus, VerdictTrust } from "../verifier/verdict.ts";
import { redactRpcUrl } from "../verifier/rpc.ts";
import {
  type BundleLine,
  parseBundleLines,
  verifyBundleLines,
} from "../verifier/verify-bundles.ts";
import {
  confirmationsGiven,
  confirmationsOption,
  connectChain,
  positiveInt,
  rpcOption,
  timeoutOption,
  trustOption,
} from "./chain-options.ts";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, EXIT_WITHHELD } from "./context.ts";
import { TrustPolicyFileError, requireTrustPolicy } from "./trust-policy-file.ts";

export interface VerifyCommandOptions {
  rpc: string;
  trust?: string;
  confirmations?: number;
  json: boolean;
  allowPending: boolean;
  concurrency: number;
  timeout: number;
}

export function registerVerifyCommand(program: Command, ctx: CliContext): void {
  program
    .command("verify")
    .description(
      "verify proof bundles (veritrail-proof/1) or a patient's history against the chain, relative to a trust policy: one JSON bundle or history, NDJSON, or - for stdin",
    )
    .argument("<input>", "bundle.json, bundles.ndjson, history.json, or - to read standard input")
    .addOption(rpcOption("JSON-RPC URL of a node of the chain the bundles name"))
    .addOption(trustOption())
    .addOption(confirmationsOption())
    .option("--json", "print the verdicts as JSON on stdout", false)
    .option("--allow-pending", "exit 0 also for bundles not anchored yet", false)
    .addOption(
      new Option("--concurrency <n>", "bundles verified at once")
        .argParser(positiveInt)
        .default(16),
    )
    .addOption(timeoutOption("timeout of each RPC request"))
    .addHelpText(
      "after",
      "\nTrust policy: from your regulator or consortium (compare the fingerprint printed with theirs), or `veritrail trust init`.\nExit codes: 0 all verified (or proven erased); 1 failed, pending or not checked; 2 usage, policy, input or RPC error; 3 content withheld without an erasure record.",
    )
    .action(async (input: string, opts: VerifyCommandOptions) => {
      ctx.exitCode = await runVerify(input, opts, ctx);
    });
}

/** A file's text, or standard input's for `-`. */
export async function readInput(input: string, ctx: CliContext): Promise<string> {
  if (input !== "-") return readFile(input, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * One JSON document (a bundle, or an array of bundles) or NDJSON. A pretty-printed single
 * bundle spans many lines, so the whole text is tried as JSON first.
 */
export function splitInput(text: string): BundleLine[] {
  try {
    const whole = JSON.parse(text) as unknown;
    if (Array.isArray(whole)) return whole.map((value, i) => ({ line: i + 1, value }));
    return [{ line: 1, value: whole }];
  } catch {
    return parseBundleLines(text);
  }
}

/** A saved patient-history answer, recognised by its shape. */
function isHistory(lines: BundleLine[]): boolean {
  const only = lines.length === 1 ? lines[0] : undefined;
  return (
    only !== undefined &&
    "value" in only &&
    typeof only.value === "object" &&
    only.value !== null &&
    (only.value as { format?: unknown }).format === PATIENT_HISTORY_FORMAT
  );
}

export const MARK: Record<string, string> = { true: "✓", false: "✗", skipped: "–" };

function checkLine(c: Check): string {
  const code = c.code ? ` ${c.code}:` : "";
  return `  ${MARK[String(c.ok)]} ${c.step.padEnd(13)}${code} ${c.reason}`;
}

/** "of St Mary General Hospital (registry … on chain N)" when the policy names the log. */
export function whose(t: VerdictTrust | undefined): string {
  if (!t?.operator) return "";
  const r = t.registry;
  const where = r
    ? `, registry ${r.name ? `${r.name} ` : ""}${r.address} on chain ${r.chainId}`
    : "";
  return ` (operator: ${t.operator}${where})`;
}

function headline(v: Verdict): string {
  const who = v.seq !== undefined ? `seq ${v.seq}${v.log ? ` of log ${v.log}` : ""}` : "bundle";
  switch (v.status) {
    case "verified":
      return `VERIFIED: ${who}${whose(v.trust)} is in an anchored batch, checked against the chain`;
    case "erased":
      return `ERASED: ${who}${whose(v.trust)} is in an anchored batch; its content was erased, as seq ${v.erasedBy} of the log records`;
    case "withheld":
      return `WITHHELD: ${who}${whose(v.trust)} is in an anchored batch, but the bundle carries no content and no erasure record: nothing shows that it was erased`;
    case "pending":
      return `PENDING: ${who}${whose(v.trust)}: receipt verified, not yet anchored in the trusted registry`;
    case "failed": {
      const step = v.checks.find((c) => c.ok === false && c.code === v.code)?.step;
      return `FAILED: ${who}: ${v.code} at step ${step}`;
    }
    case "error":
      return `NOT CHECKED: ${who}: the chain could not be read (${v.code})`;
  }
}

function policyLine(policy: TrustPolicy): string {
  return `trust policy ${policy.fingerprint} (issuer: ${policy.issuer})`;
}

export async function runVerify(
  input: string,
  opts: VerifyCommandOptions,
  ctx: CliContext,
): Promise<number> {
  const usage = (message: string, code = "USAGE"): number => {
    if (opts.json) ctx.stdout.write(`${JSON.stringify({ ok: false, error: { code, message } })}\n`);
    ctx.stderr.write(`veritrail verify: ${message}\n`);
    return EXIT_USAGE;
  };
  let trust: TrustPolicy;
  try {
    trust = await requireTrustPolicy(opts.trust);
  } catch (e) {
    if (e instanceof TrustPolicyFileError) return usage(e.message, "TRUST_POLICY");
    throw e;
  }
  let text: string;
  try {
    text = await readInput(input, ctx);
  } catch (e) {
    return usage(`cannot read ${input}: ${(e as Error).message}`);
  }
  const lines = splitInput(text);
  if (lines.length === 0) return usage(`${input} holds no bundle`);
  const chain = await connectChain(opts);
  if ("error" in chain) return usage(chain.error, "RPC_ERROR");
  const { provider } = chain;
  const options = { trust, ...confirmationsGiven(opts) };
  if (isHistory(lines)) {
    try {
      const verdict = await verifyPatientHistory((lines[0] as { value: unknown }).value, provider, {
        ...options,
      });
      return reportHistory(verdict, trust, opts, ctx);
    } finally {
      provider.destroy();
    }
  }
  const showBar = lines.length > 1 && ctx.stderr.isTTY === true;
  const bar = showBar
    ? new SingleBar({
        stream: ctx.stderr,
        format: "verifying {bar} {value}/{total} bundles | {eta_formatted} left",
        hideCursor: true,
      })
    : undefined;
  bar?.start(lines.length, 0);
  let verdicts: Array<Verdict & { line: number }>;
  try {
    verdicts = await verifyBundleLines(lines, provider, {
      ...options,
      concurrency: opts.concurrency,
      onProgress: (done) => bar?.update(done),
    });
  } finally {
    bar?.stop();
    provider.destroy();
  }
  const summary: Record<VerdictStatus, number> = {
    verified: 0,
    erased: 0,
    withheld: 0,
    pending: 0,
    failed: 0,
    error: 0,
  };
  for (const v of verdicts) summary[v.status]++;
  const negative =
    summary.failed > 0 || summary.error > 0 || (!opts.allowPending && summary.pending > 0);
  const exit = negative ? EXIT_NEGATIVE : summary.withheld > 0 ? EXIT_WITHHELD : EXIT_OK;
  if (opts.json) {
    const out = {
      ok: exit === EXIT_OK,
      rpc: redactRpcUrl(opts.rpc),
      trust: { fingerprint: trust.fingerprint, issuer: trust.issuer },
      ...confirmationsGiven(opts),
      summary,
      verdicts,
    };
    ctx.stdout.write(`${JSON.stringify(out)}\n`);
  } else if (verdicts.length === 1) {
    const v = verdicts[0]!;
    ctx.stdout.write(
      `${v.checks.map(checkLine).join("\n")}\n${headline(v)}\n${policyLine(trust)}\n`,
    );
  } else {
    for (const v of verdicts)
      if (v.status !== "verified" && v.status !== "erased")
        ctx.stdout.write(`line ${v.line}: ${headline(v)}\n`);
    const operators = [
      ...new Set(verdicts.flatMap((v) => (v.trust?.operator ? [v.trust.operator] : []))),
    ];
    ctx.stdout.write(
      `${verdicts.length} bundles: ${summary.verified} verified, ${summary.erased} erased, ` +
        `${summary.withheld} withheld, ${summary.pending} pending, ${summary.failed} failed, ` +
        `${summary.error} not checked` +
        (operators.length > 0
          ? `; operator${operators.length > 1 ? "s" : ""}: ${operators.join(", ")}`
          : "") +
        `\n${policyLine(trust)}\n`,
    );
  }
  return exit;
}

function reportHistory(
  v: HistoryVerdict,
  trust: TrustPolicy,
  opts: VerifyCommandOptions,
  ctx: CliContext,
): number {
  const ok = v.ok || (opts.allowPending && v.status === "pending");
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify({ ...v, ok, rpc: redactRpcUrl(opts.rpc), kind: "patient-history" })}\n`,
    );
    return ok ? EXIT_OK : EXIT_NEGATIVE;
  }
  const w = (line: string) => ctx.stdout.write(`${line}\n`);
  const mark = (r: { ok: boolean; verdict: Verdict }) =>
    r.ok ? "✓" : r.verdict.status === "pending" ? "…" : "✗";
  for (const r of v.events) w(`  ${mark(r)} seq ${r.seq}: ${r.verdict.status}`);
  for (const r of v.notYetCovered)
    w(`  ${mark(r)} seq ${r.seq}: ${r.verdict.status} (after the covered batch)`);
  for (const f of v.findings)
    w(`  ✗ ${f.code}${f.seq !== undefined ? ` (seq ${f.seq})` : ""}: ${f.message}`);
  const who = whose(v.trust);
  switch (v.status) {
    case "verified":
      w(
        `VERIFIED: complete history of ${v.count} event(s)${who}, as of batch ${v.asOf!.batchNo} ` +
          `anchored in block ${v.asOf!.blockNumber}`,
      );
      break;
    case "pending":
      w(`PENDING: nothing anchored yet${who}: completeness cannot be proven`);
      break;
    case "failed":
      w(`FAILED: ${v.code}: ${v.findings.find((f) => f.code === v.code)?.message ?? ""}`);
      break;
    default:
      w(`NOT CHECKED: the chain could not be read (${v.code})`);
  }
  w(policyLine(trust));
  return ok ? EXIT_OK : EXIT_NEGATIVE;
}

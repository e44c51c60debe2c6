/**
 * `veritrail verify <bundle.json|bundles.ndjson|history.json|-> --rpc <url>`: checks proof
 * bundles — or a patient's whole history (veritrail-patient-history/1: every bundle, and that
 * the list is complete) — against the chain the user names, with the standalone verifier (no
 * Veritrail API involved).
 *
 * Exit code: 0 only when every bundle is verified (pending ones too with --allow-pending);
 * 1 when any bundle failed, is pending or could not be checked; 2 for a usage error, an
 * unreadable input or an unreachable RPC.
 */
import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { readFile } from "node:fs/promises";
import type { Check, Verdict, VerdictStatus } from "../verifier/verdict.ts";
import {
  type HistoryVerdict,
  PATIENT_HISTORY_FORMAT,
  verifyPatientHistory,
} from "../verifier/completeness.ts";
import { RpcUnavailableError, connectRpc, redact } from "../verifier/rpc.ts";
import {
  type BundleLine,
  parseBundleLines,
  verifyBundleLines,
} from "../verifier/verify-bundles.ts";
import { confirmationsOption, positiveInt, rpcOption, timeoutOption } from "./chain-options.ts";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE } from "./main.ts";

export interface VerifyCommandOptions {
  rpc: string;
  confirmations: number;
  json: boolean;
  allowPending: boolean;
  concurrency: number;
  timeout: number;
}

export function registerVerifyCommand(program: Command, ctx: CliContext): void {
  program
    .command("verify")
    .description(
      "verify proof bundles (veritrail-proof/1) against the chain: one JSON bundle, NDJSON, or - for stdin; or a patient history (GET /v1/patient/history), bundles and completeness",
    )
    .argument("<input>", "bundle.json, bundles.ndjson, history.json, or - to read standard input")
    .addOption(rpcOption("JSON-RPC URL of a node of the chain the bundles name"))
    .addOption(confirmationsOption())
    .option("--json", "print the verdicts as JSON on stdout", false)
    .option("--allow-pending", "exit 0 also for bundles not anchored yet", false)
    .addOption(
      new Option("--concurrency <n>", "bundles verified at once")
        .argParser(positiveInt)
        .default(16),
    )
    .addOption(timeoutOption("timeout of each RPC request"))
    .action(async (input: string, opts: VerifyCommandOptions) => {
      ctx.exitCode = await runVerify(input, opts, ctx);
    });
}

async function readInput(input: string, ctx: CliContext): Promise<string> {
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

const MARK: Record<string, string> = { true: "✓", false: "✗", skipped: "–" };

function checkLine(c: Check): string {
  const code = c.code ? ` ${c.code}:` : "";
  return `  ${MARK[String(c.ok)]} ${c.step.padEnd(13)}${code} ${c.reason}`;
}

function headline(v: Verdict): string {
  const who = v.seq !== undefined ? `seq ${v.seq}${v.log ? ` of log ${v.log}` : ""}` : "bundle";
  switch (v.status) {
    case "verified":
      return `VERIFIED: ${who} is in an anchored batch, checked against the chain`;
    case "pending":
      return `PENDING: ${who}: receipt verified, not yet anchored`;
    case "failed": {
      const step = v.checks.find((c) => c.ok === false && c.code === v.code)?.step;
      return `FAILED: ${who}: ${v.code} at step ${step}`;
    }
    case "error":
      return `NOT CHECKED: ${who}: the chain could not be read (${v.code})`;
  }
}

export async function runVerify(
  input: string,
  opts: VerifyCommandOptions,
  ctx: CliContext,
): Promise<number> {
  let text: string;
  try {
    text = await readInput(input, ctx);
  } catch (e) {
    ctx.stderr.write(`veritrail verify: cannot read ${input}: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  const lines = splitInput(text);
  const first = lines.length === 1 && lines[0] && "value" in lines[0] ? lines[0].value : undefined;
  if ((first as { format?: unknown } | undefined)?.format === PATIENT_HISTORY_FORMAT)
    return runVerifyHistory(first, opts, ctx);
  if (lines.length === 0) {
    ctx.stderr.write(`veritrail verify: ${input} holds no bundle\n`);
    return EXIT_USAGE;
  }
  let provider;
  try {
    provider = await connectRpc(opts.rpc, { timeoutMs: opts.timeout });
  } catch (e) {
    const message = e instanceof RpcUnavailableError ? e.message : String(e);
    if (opts.json)
      ctx.stdout.write(`${JSON.stringify({ ok: false, error: { code: "RPC_ERROR", message } })}\n`);
    ctx.stderr.write(`veritrail verify: ${message}\n`);
    return EXIT_USAGE;
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
      confirmations: opts.confirmations,
      concurrency: opts.concurrency,
      onProgress: (done) => bar?.update(done),
    });
  } finally {
    bar?.stop();
    provider.destroy();
  }
  const summary: Record<VerdictStatus, number> = { verified: 0, pending: 0, failed: 0, error: 0 };
  for (const v of verdicts) summary[v.status]++;
  const ok =
    summary.failed === 0 && summary.error === 0 && (opts.allowPending || summary.pending === 0);
  if (opts.json) {
    const out = { ok, rpc: redact(opts.rpc), confirmations: opts.confirmations, summary, verdicts };
    ctx.stdout.write(`${JSON.stringify(out)}\n`);
  } else if (verdicts.length === 1) {
    const v = verdicts[0]!;
    ctx.stdout.write(`${v.checks.map(checkLine).join("\n")}\n${headline(v)}\n`);
  } else {
    for (const v of verdicts)
      if (v.status !== "verified") ctx.stdout.write(`line ${v.line}: ${headline(v)}\n`);
    ctx.stdout.write(
      `${verdicts.length} bundles: ${summary.verified} verified, ${summary.pending} pending, ` +
        `${summary.failed} failed, ${summary.error} not checked\n`,
    );
  }
  return ok ? EXIT_OK : EXIT_NEGATIVE;
}

/**
 * A patient's history (veritrail-patient-history/1): every bundle verified, and the list proven
 * complete against the subject-index root anchored on-chain (services/verifier/completeness.ts).
 * Exit 0 only when it is complete (a history with nothing anchored yet is pending: 0 only with
 * --allow-pending).
 */
async function runVerifyHistory(
  history: unknown,
  opts: VerifyCommandOptions,
  ctx: CliContext,
): Promise<number> {
  let provider;
  try {
    provider = await connectRpc(opts.rpc, { timeoutMs: opts.timeout });
  } catch (e) {
    const message = e instanceof RpcUnavailableError ? e.message : String(e);
    ctx.stderr.write(`veritrail verify: ${message}\n`);
    return EXIT_USAGE;
  }
  let verdict: HistoryVerdict;
  try {
    verdict = await verifyPatientHistory(history, provider, { confirmations: opts.confirmations });
  } finally {
    provider.destroy();
  }
  const ok = verdict.ok || (opts.allowPending && verdict.status === "pending");
  if (opts.json) {
    ctx.stdout.write(`${JSON.stringify({ ok, rpc: redact(opts.rpc), history: verdict })}\n`);
    return ok ? EXIT_OK : EXIT_NEGATIVE;
  }
  const events = [...verdict.events, ...verdict.notYetCovered];
  for (const e of events)
    if (e.verdict.status !== "verified") ctx.stdout.write(`seq ${e.seq}: ${headline(e.verdict)}\n`);
  for (const f of verdict.findings) ctx.stdout.write(`  ✗ ${f.code}: ${f.message}\n`);
  const tag = (history as { subjectTag?: string }).subjectTag;
  ctx.stdout.write(
    verdict.status === "verified"
      ? `COMPLETE: ${verdict.events.length} events of subject ${tag}, each verified, and no event left out up to batch ${verdict.asOf!.batchNo} (anchored in block ${verdict.asOf!.blockNumber})${verdict.notYetCovered.length > 0 ? `; ${verdict.notYetCovered.length} later events not yet covered` : ""}\n`
      : `NOT COMPLETE (${verdict.status}): ${verdict.code ?? ""}\n`,
  );
  return ok ? EXIT_OK : EXIT_NEGATIVE;
}

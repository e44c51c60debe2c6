/**
 * `veritrail receipt check <file> --rpc <url> --trust <policy> [--bundle <file> | --url <api>
 * --key <key>] [--evidence <file>]`: holds a log to a receipt it signed (DESIGN.md "Receipt";
 * services/verifier/receipt-check.ts). The file is a receipt, a saved `POST /v1/events` answer
 * (each of its receipts is checked), or evidence this command wrote before, which is re-checked
 * from the chain alone.
 *
 * The bundle of an anchored seq comes from `--bundle`, or from the log's API (`--url`, `--key`),
 * asked only when the chain says the seq is anchored: a missed deadline is decided without the
 * API. A broken promise writes its evidence (`veritrail-receipt-evidence/1`) to `--evidence`
 * (default `veritrail-evidence-seq<N>.json` here).
 *
 * Exit code: 0 every receipt honored; 1 a deadline missed or a leaf mismatch (the evidence is
 * written, or re-checked and confirmed), a receipt pending, or one that is not a trusted log's
 * promise; 2 a usage error, no or a bad trust policy, an unreadable file, an unreachable RPC or
 * API, a bundle that is needed but missing or does not verify, or evidence that does not hold.
 */
import { type Command, Option } from "commander";
import { readFile, rename, writeFile } from "node:fs/promises";
import type { TrustPolicy } from "../core/trust-policy.ts";
import {
  type ReceiptCheck,
  type ReceiptStatus,
  type ReceiptVerdict,
  checkReceipt,
  isReceiptEvidence,
  recheckEvidence,
} from "../verifier/receipt-check.ts";
import { redactRpcUrl } from "../verifier/rpc.ts";
import { ApiCallError, apiJson } from "./api-client.ts";
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
import { MARK, readInput, whose } from "./verify-command.ts";

export interface ReceiptCheckCommandOptions {
  rpc: string;
  trust?: string;
  confirmations?: number;
  bundle?: string;
  url?: string;
  key?: string;
  evidence?: string;
  json: boolean;
  timeout: number;
}

export function registerReceiptCommand(program: Command, ctx: CliContext): void {
  const receipt = program
    .command("receipt")
    .description("hold a log to the receipts it signed: anchored by the deadline, with that leaf");
  receipt
    .command("check")
    .description(
      "check a receipt (or a saved POST /v1/events answer) against the chain: honored, pending, DEADLINE_MISSED or LEAF_MISMATCH; or re-check evidence written before",
    )
    .argument("<file>", "receipt.json, a POST /v1/events answer, evidence.json, or - for stdin")
    .addOption(rpcOption("JSON-RPC URL of a node of the chain the trust policy names"))
    .addOption(trustOption())
    .addOption(confirmationsOption())
    .option("--bundle <file>", "the receipt's veritrail-proof/1 bundle (instead of the API)")
    .addOption(
      new Option(
        "--url <api>",
        "the log's API, asked for the bundle of an anchored seq (GET /v1/events/<seq>/proof)",
      ).env("VERITRAIL_URL"),
    )
    .addOption(new Option("--key <key>", "API key for --url").env("VERITRAIL_KEY"))
    .option(
      "--evidence <file>",
      "where a broken promise's evidence goes (default veritrail-evidence-seq<N>.json)",
    )
    .option("--json", "print the verdicts as JSON on stdout", false)
    .addOption(timeoutOption("timeout of each RPC and API request"))
    .addHelpText(
      "after",
      "\nEvidence is re-checked with the same command, the chain and the trust policy only:\n" +
        "  veritrail receipt check veritrail-evidence-seq42.json --rpc <url> --trust trust.json\n" +
        "Exit codes: 0 honored; 1 DEADLINE_MISSED or LEAF_MISMATCH (evidence written or confirmed), pending, or not a trusted log's receipt; 2 usage, policy, input, RPC or API error, bundle needed or invalid, evidence that does not hold.",
    )
    .action(async (file: string, opts: ReceiptCheckCommandOptions) => {
      ctx.exitCode = await runReceiptCheck(file, opts, ctx);
    });
}

/** The receipts in a document: one receipt, or each one of a POST /v1/events answer. */
function receiptsIn(doc: unknown): unknown[] {
  if (typeof doc === "object" && doc !== null && "receipts" in doc) {
    const list = (doc as { receipts: unknown }).receipts;
    if (Array.isArray(list))
      return list.map((r) =>
        typeof r === "object" && r !== null && "receipt" in r
          ? (r as { receipt: unknown }).receipt
          : r,
      );
  }
  return [doc];
}

function checkLine(c: ReceiptCheck): string {
  const code = c.code ? ` ${c.code}:` : "";
  return `  ${MARK[String(c.ok)]} ${c.step.padEnd(9)}${code} ${c.reason}`;
}

const HEADLINE: Record<ReceiptStatus, string> = {
  honored: "HONORED",
  pending: "PENDING",
  DEADLINE_MISSED: "DEADLINE_MISSED",
  LEAF_MISMATCH: "LEAF_MISMATCH",
  invalid: "NOT A VALID RECEIPT",
  undecided: "UNDECIDED",
};

function headline(v: ReceiptVerdict): string {
  const who = v.seq !== undefined ? `seq ${v.seq} of log ${v.log}` : "receipt";
  return `${HEADLINE[v.status]}${v.code && v.status !== v.code ? ` (${v.code})` : ""}: ${who}${whose(v.trust)}: ${v.reason}`;
}

/** Exit code of one verdict: a definite negative answer is 1; not being able to tell is 2. */
function exitOf(v: ReceiptVerdict): number {
  if (v.status === "honored") return EXIT_OK;
  if (v.status === "undecided") return EXIT_USAGE;
  return EXIT_NEGATIVE;
}

/** `x.json` for one receipt; for several, `x-seq<N>.json`. */
function evidencePath(opts: ReceiptCheckCommandOptions, seq: number, several: boolean): string {
  if (opts.evidence === undefined) return `veritrail-evidence-seq${seq}.json`;
  if (!several) return opts.evidence;
  const stem = opts.evidence.endsWith(".json") ? opts.evidence.slice(0, -5) : opts.evidence;
  return `${stem}-seq${seq}.json`;
}

async function writeEvidence(file: string, evidence: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(evidence, null, 2)}\n`);
  await rename(tmp, file);
}

export async function runReceiptCheck(
  input: string,
  opts: ReceiptCheckCommandOptions,
  ctx: CliContext,
): Promise<number> {
  const usage = (message: string, code = "USAGE"): number => {
    if (opts.json) ctx.stdout.write(`${JSON.stringify({ ok: false, error: { code, message } })}\n`);
    ctx.stderr.write(`veritrail receipt check: ${message}\n`);
    return EXIT_USAGE;
  };
  let trust: TrustPolicy;
  try {
    trust = await requireTrustPolicy(opts.trust);
  } catch (e) {
    if (e instanceof TrustPolicyFileError) return usage(e.message, "TRUST_POLICY");
    throw e;
  }
  if (opts.url !== undefined && !opts.key)
    return usage("--url needs --key (or VERITRAIL_KEY): the proof route takes an API key");
  let doc: unknown;
  let bundle: unknown;
  try {
    doc = JSON.parse(await readInput(input, ctx));
  } catch (e) {
    return usage(`cannot read ${input}: ${(e as Error).message}`);
  }
  if (opts.bundle !== undefined) {
    try {
      bundle = JSON.parse(await readFile(opts.bundle, "utf8"));
    } catch (e) {
      return usage(`cannot read --bundle ${opts.bundle}: ${(e as Error).message}`);
    }
  }
  const chain = await connectChain(opts);
  if ("error" in chain) return usage(chain.error, "RPC_ERROR");
  const { provider } = chain;
  const options = { trust, ...confirmationsGiven(opts) };
  const verdicts: Array<ReceiptVerdict & { evidenceFile?: string; rechecked?: boolean }> = [];
  try {
    if (isReceiptEvidence(doc)) {
      verdicts.push({ ...(await recheckEvidence(doc, provider, options)), rechecked: true });
    } else {
      const receipts = receiptsIn(doc);
      for (const receipt of receipts) {
        let verdict = await checkReceipt(
          { receipt, ...(bundle !== undefined ? { bundle } : {}) },
          provider,
          options,
        );
        if (verdict.code === "BUNDLE_NEEDED" && opts.url !== undefined && opts.key) {
          let fetched: unknown;
          try {
            fetched = await apiJson(
              { url: opts.url, key: opts.key },
              "GET",
              `/v1/events/${verdict.seq}/proof`,
            );
          } catch (e) {
            if (!(e instanceof ApiCallError)) throw e;
            verdict = {
              ...verdict,
              reason: `${verdict.reason}; the API did not give it: ${e.message}`,
            };
          }
          if (fetched !== undefined)
            verdict = await checkReceipt({ receipt, bundle: fetched }, provider, options);
        }
        let evidenceFile: string | undefined;
        if (verdict.evidence && verdict.seq !== undefined) {
          evidenceFile = evidencePath(opts, verdict.seq, receipts.length > 1);
          try {
            await writeEvidence(evidenceFile, verdict.evidence);
          } catch (e) {
            return usage(`cannot write the evidence to ${evidenceFile}: ${(e as Error).message}`);
          }
        }
        verdicts.push({ ...verdict, ...(evidenceFile ? { evidenceFile } : {}) });
      }
    }
  } finally {
    provider.destroy();
  }
  const exits = verdicts.map(exitOf);
  const exit = exits.includes(EXIT_NEGATIVE)
    ? EXIT_NEGATIVE
    : exits.includes(EXIT_USAGE)
      ? EXIT_USAGE
      : EXIT_OK;
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify({
        ok: exit === EXIT_OK,
        rpc: redactRpcUrl(opts.rpc),
        trust: { fingerprint: trust.fingerprint, issuer: trust.issuer },
        verdicts,
      })}\n`,
    );
    return exit;
  }
  const w = (line: string) => ctx.stdout.write(`${line}\n`);
  for (const v of verdicts) {
    for (const c of v.checks) w(checkLine(c));
    w(headline(v));
    if (v.rechecked && (v.status === "DEADLINE_MISSED" || v.status === "LEAF_MISMATCH"))
      w("the evidence holds: re-checked against the chain, without the log's API");
    if (v.evidenceFile)
      w(
        `evidence written to ${v.evidenceFile}; anyone re-checks it with: veritrail receipt check ${v.evidenceFile} --rpc <url> --trust <policy>`,
      );
    if (v.code === "BUNDLE_NEEDED" && opts.url === undefined)
      w("give the bundle of this seq with --bundle, or the log's API with --url and --key");
  }
  w(`trust policy ${trust.fingerprint} (issuer: ${trust.issuer})`);
  return exit;
}

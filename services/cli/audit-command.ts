/**
 * `veritrail audit --data <dir> --rpc <url> --trust <policy> [--contract 0x…] [--json]`: the
 * regulator's audit (services/ledger/audit.ts) of a log on disk — every leaf, root and
 * completeness index recomputed from the stored events, every header compared with the registry
 * on the chain. The registry is the one the trust policy lists for this log (DESIGN.md "Trust
 * policy"), never one the log's own records name: a `--contract` the policy does not list for
 * the log is a finding (UNTRUSTED_REGISTRY / UNKNOWN_LOG), and so is a log the policy omits.
 *
 * `--data` is the service's DATA_DIR (the ledger is `<dir>/ledger`) or the LevelDB directory
 * itself. LevelDB admits one process: stop the service first, or audit a copy of the directory
 * (or, for a small log, use the running service's POST /v1/audit).
 *
 * Exit code: 0 when nothing was found, 1 on any finding, 2 for a usage error, no or a bad trust
 * policy, a data directory that cannot be opened, or an unreachable RPC.
 */
import { SingleBar } from "cli-progress";
import { type Command, InvalidArgumentError, Option } from "commander";
import { access } from "node:fs/promises";
import path from "node:path";
import { type TrustPolicy, placesOfLog, trustDecision } from "../core/trust-policy.ts";
import type { AuditFinding, AuditReport } from "../ledger/audit.ts";
import { AuditOpenError, LogDirectoryAudit } from "../ledger/audit-targets.ts";
import { ChainReads } from "../verifier/chain-reads.ts";
import { redactRpcUrl } from "../verifier/rpc.ts";
import { connectChain, trustOption } from "./chain-options.ts";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE } from "./context.ts";
import { TrustPolicyFileError, requireTrustPolicy } from "./trust-policy-file.ts";

export interface AuditCommandOptions {
  data: string;
  rpc: string;
  trust?: string;
  contract?: string;
  json: boolean;
  timeout: number;
}

function address(value: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value))
    throw new InvalidArgumentError("must be a 20-byte 0x-hex address");
  return value;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^[1-9]\d*$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError("must be a positive integer");
  return n;
}

export function registerAuditCommand(program: Command, ctx: CliContext): void {
  program
    .command("audit")
    .description(
      "replay a whole log from its data directory, recompute every hash, root and completeness index, and compare every batch header with the chain",
    )
    .requiredOption("--data <dir>", "the service's DATA_DIR (or the LevelDB directory itself)")
    .requiredOption("--rpc <url>", "JSON-RPC URL of a node of the chain the log anchors on")
    .addOption(trustOption())
    .addOption(
      new Option(
        "--contract <address>",
        "the registry (default: the one the trust policy lists for this log on the RPC's chain)",
      ).argParser(address),
    )
    .option("--json", "print the report as JSON on stdout", false)
    .addOption(
      new Option("--timeout <ms>", "timeout of each RPC request")
        .argParser(positiveInt)
        .default(15_000),
    )
    .action(async (opts: AuditCommandOptions) => {
      ctx.exitCode = await runAudit(opts, ctx);
    });
}

/** `<dir>/ledger` when it exists (a DATA_DIR), otherwise `<dir>`. */
async function ledgerLocation(dir: string): Promise<string> {
  const nested = path.join(dir, "ledger");
  try {
    await access(path.join(nested, "CURRENT"));
    return nested;
  } catch {
    return dir;
  }
}

export async function runAudit(opts: AuditCommandOptions, ctx: CliContext): Promise<number> {
  let trust: TrustPolicy;
  try {
    trust = await requireTrustPolicy(opts.trust);
  } catch (e) {
    if (e instanceof TrustPolicyFileError) {
      ctx.stderr.write(`veritrail audit: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  const location = await ledgerLocation(opts.data);
  try {
    await access(path.join(location, "CURRENT"));
  } catch {
    ctx.stderr.write(`veritrail audit: no ledger in ${opts.data}\n`);
    return EXIT_USAGE;
  }
  const chain = await connectChain(opts);
  if ("error" in chain) {
    ctx.stderr.write(`veritrail audit: ${chain.error}\n`);
    return EXIT_USAGE;
  }
  const { provider } = chain;
  let log: LogDirectoryAudit;
  try {
    log = await LogDirectoryAudit.open(location);
  } catch (e) {
    provider.destroy();
    if (!(e instanceof AuditOpenError)) throw e;
    const cause = e.cause;
    ctx.stderr.write(
      `veritrail audit: cannot open ${location}: ` +
        (e.locked
          ? "it is in use (stop the service, or audit a copy of the directory)\n"
          : `${cause instanceof Error ? cause.message : String(cause)}\n`),
    );
    return EXIT_USAGE;
  }
  const bar =
    ctx.stderr.isTTY === true
      ? new SingleBar({
          stream: ctx.stderr,
          format: "{phase} {bar} {value}/{total} | {eta_formatted} left",
          hideCursor: true,
        })
      : undefined;
  let phase: string | undefined;
  let report: AuditReport;
  let trustFinding: AuditFinding | undefined;
  try {
    // The registry to compare with comes from the policy, for this log on this chain.
    const logId = await log.logId();
    const chainId = Number((await provider.getNetwork()).chainId);
    let contract = opts.contract;
    if (logId !== undefined) {
      if (contract !== undefined) {
        const decision = trustDecision(trust, { chainId, registry: contract, logId });
        if (!decision.ok) trustFinding = { kind: decision.code, message: decision.message };
      } else {
        const place = placesOfLog(trust, logId).find((p) => p.registry.chainId === chainId);
        if (place) contract = place.registry.address;
        else
          trustFinding = {
            kind: "UNKNOWN_LOG",
            message: `the trust policy lists log ${logId} on no registry of chain ${chainId}`,
          };
      }
    }
    report = await log.run({
      chain: { reads: new ChainReads(provider), ...(contract ? { contract } : {}) },
      onProgress: (p) => {
        if (!bar) return;
        if (p.phase !== phase) {
          if (phase !== undefined) bar.stop();
          phase = p.phase;
          const label = p.phase === "replay" ? "replaying events" : "checking batches on-chain";
          bar.start(p.total, p.done, { phase: label });
        } else bar.update(p.done);
      },
    });
  } finally {
    if (phase !== undefined) bar?.stop();
    provider.destroy();
    await log.close();
  }
  if (trustFinding) {
    report = {
      ...report,
      ok: false,
      findings: [trustFinding, ...report.findings],
      findingCount: report.findingCount + 1,
    };
  }
  const trustInfo = { fingerprint: trust.fingerprint, issuer: trust.issuer };
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify({ ...report, rpc: redactRpcUrl(opts.rpc), trust: trustInfo })}\n`,
    );
  } else {
    ctx.stdout.write(humanReport(report));
    ctx.stdout.write(`trust policy ${trust.fingerprint} (issuer: ${trust.issuer})\n`);
  }
  return report.ok ? EXIT_OK : EXIT_NEGATIVE;
}

function humanReport(r: AuditReport): string {
  const lines: string[] = [];
  lines.push(`log ${r.logId ?? "(unknown)"}`);
  lines.push(
    `  ${r.events} events (${r.erased} erased, ${r.events - r.sealedEvents} not sealed yet) in ${r.batches} batches`,
  );
  lines.push(
    r.chain
      ? `  chain ${r.chain.chainId}, registry ${r.chain.contract}: ${r.chain.anchoredBatches} batches anchored (head ${r.chain.head})`
      : "  chain: not compared (no registry named by the log; pass --contract)",
  );
  const e = r.chain?.anchorEvidence;
  if (e && e.receipt + e.state + e.unverifiable > 0)
    lines.push(
      `  recorded anchors: ${e.receipt} checked by their transaction receipt, ${e.state} from registry state alone (no receipt: pruned, EIP-4444)` +
        (e.unverifiable > 0
          ? `, ${e.unverifiable} NOT checked (the node serves neither the receipt nor the state at that block: use an archive node)`
          : ""),
    );
  for (const f of r.findings) {
    const where = [
      f.batchNo !== undefined ? `batch ${f.batchNo}` : undefined,
      f.seq !== undefined ? `seq ${f.seq}` : undefined,
    ]
      .filter((x) => x !== undefined)
      .join(", ");
    lines.push(`  ✗ ${f.kind}${where ? ` (${where})` : ""}: ${f.message}`);
  }
  if (r.findingCount > r.findings.length)
    lines.push(`  … and ${r.findingCount - r.findings.length} more`);
  lines.push(
    r.ok
      ? `CLEAN: every hash, root and completeness index recomputed; no discrepancy (${r.durationMs} ms)`
      : `FINDINGS: ${r.findingCount} discrepancies`,
  );
  return `${lines.join("\n")}\n`;
}

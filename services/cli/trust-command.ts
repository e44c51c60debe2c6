/**
 * `veritrail trust init|show`: getting a trust policy (DESIGN.md "Trust policy").
 *
 *   veritrail trust init --rpc <url> --registry 0x… [--chain-id N] [--confirmations N]
 *                        [--issuer TEXT] [--name TEXT] [--log 0x…]… [--out trust.json]
 *     reads the registry's state (every registered log and its operator name) and writes a
 *     policy that trusts that registry; choosing the registry is the trust decision.
 *   veritrail trust show <trust.json> [--rpc <url> [--from-block N]] [--json]
 *     checks a policy and prints its registries, logs, operators and fingerprint, to compare
 *     with the fingerprint the policy's issuer publishes; with --rpc, also who holds each
 *     registry's admin role (and any transfer scheduled) and each log's history from the chain:
 *     its registration, anchorer and receipt-signer rotations and renames.
 *
 * Exit code: 0 done; 2 a usage error, an unreachable RPC, a registry that cannot be read, or a
 * file that is not a valid policy.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { isAddress } from "../core/address.ts";
import { isHex32 } from "../core/hex.ts";
import { registryLabel } from "../core/trust-policy.ts";
import { RegistryClient, RegistryError, probeChainId } from "../chain/registry-client.ts";
import {
  type RegistryHistory,
  formatDelay,
  readRegistryHistory,
} from "../chain/registry-history.ts";
import { TrustInitError, policyFromRegistry } from "../chain/trust-init.ts";
import type { TrustPolicy } from "../core/trust-policy.ts";
import { nonNegativeInt, positiveInt, timeoutOption } from "./chain-options.ts";
import { type CliContext, EXIT_OK, EXIT_USAGE } from "./context.ts";
import {
  TrustPolicyFileError,
  readTrustPolicyFile,
  writeTrustPolicyFile,
} from "./trust-policy-file.ts";

interface InitOptions {
  rpc: string;
  registry: string;
  chainId?: number;
  confirmations: number;
  issuer?: string;
  name?: string;
  log: string[];
  out?: string;
  timeout: number;
}

function address(value: string): string {
  if (!isAddress(value))
    throw new InvalidArgumentError("must be a 20-byte 0x address (lowercase or EIP-55)");
  return value;
}

function logId(value: string, previous: string[]): string[] {
  if (!isHex32(value)) throw new InvalidArgumentError("must be 0x and 64 lowercase hex digits");
  return [...previous, value];
}

export function registerTrustCommand(program: Command, ctx: CliContext): void {
  const trust = program
    .command("trust")
    .description(
      "build or inspect a trust policy (veritrail-trust/1): whose logs, on which registry",
    );
  trust
    .command("init")
    .description(
      "build a trust policy from a registry you trust: every log registered in it, with the operator name recorded on-chain",
    )
    .requiredOption("--rpc <url>", "JSON-RPC URL of a node of the registry's chain")
    .requiredOption("--registry <address>", "the registry contract you trust", address)
    .addOption(
      new Option(
        "--chain-id <n>",
        "the chain id the registry is on (checked against the RPC)",
      ).argParser(positiveInt),
    )
    .addOption(
      new Option(
        "--confirmations <n>",
        "blocks a verifier requires on top of an anchoring block, itself included",
      )
        .argParser(nonNegativeInt)
        .default(1),
    )
    .option(
      "--issuer <text>",
      "who publishes this policy (default: says it was read from the registry)",
    )
    .option("--name <text>", "a label for the registry")
    .option("--log <0x…>", "only this log (repeatable); default every registered log", logId, [])
    .option("--out <file>", "write the policy here (default: standard output)")
    .addOption(timeoutOption("timeout of each RPC request"))
    .action(async (opts: InitOptions) => {
      ctx.exitCode = await runTrustInit(opts, ctx);
    });
  trust
    .command("show")
    .description("check a trust policy and print its registries, logs, operators and fingerprint")
    .argument("<file>", "a veritrail-trust/1 policy")
    .option(
      "--rpc <url>",
      "also read, from this node, each registry's admin and each log's key rotation history",
    )
    .addOption(
      new Option(
        "--from-block <n>",
        "read the registry's events from this block (its deployment block on a long chain)",
      )
        .argParser(nonNegativeInt)
        .default(0),
    )
    .addOption(timeoutOption("timeout of each RPC request"))
    .option("--json", "print it as JSON (with its fingerprint)", false)
    .action(async (file: string, opts: ShowOptions) => {
      ctx.exitCode = await runTrustShow(file, opts, ctx);
    });
}

export async function runTrustInit(opts: InitOptions, ctx: CliContext): Promise<number> {
  const fail = (message: string): number => {
    ctx.stderr.write(`veritrail trust init: ${message}\n`);
    return EXIT_USAGE;
  };
  let chainId: number;
  try {
    chainId = await probeChainId(opts.rpc, opts.timeout);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (opts.chainId !== undefined && opts.chainId !== chainId)
    return fail(`the RPC serves chain ${chainId}, not chain ${opts.chainId} (--chain-id)`);
  const client = await RegistryClient.connect({
    rpcUrl: opts.rpc,
    address: opts.registry,
    chainId,
    requestTimeoutMs: opts.timeout,
  });
  let document;
  try {
    if (!(await client.hasCode()))
      return fail(`no contract at ${opts.registry} on chain ${chainId}`);
    document = await policyFromRegistry(client, {
      issuer:
        opts.issuer ??
        `read from registry ${client.address} on chain ${chainId} by veritrail trust init`,
      confirmations: opts.confirmations,
      ...(opts.name ? { name: opts.name } : {}),
      ...(opts.log.length > 0 ? { logs: opts.log } : {}),
    });
  } catch (e) {
    if (e instanceof TrustInitError || e instanceof RegistryError)
      return fail(`cannot read the registry's logs: ${e.message}`);
    if (e instanceof Error && "code" in e && e.code === "POLICY_MALFORMED")
      return fail(`the registry's logs do not make a valid policy: ${e.message}`);
    throw e;
  } finally {
    client.destroy();
  }
  if (document.logs.length === 0)
    ctx.stderr.write("veritrail trust init: warning: the registry has no log registered yet\n");
  if (opts.out) {
    const policy = await writeTrustPolicyFile(opts.out, document);
    ctx.stderr.write(
      `wrote ${opts.out}: ${document.logs.length} log(s) in ${registryLabel(policy.registries[0]!)}\n` +
        `fingerprint ${policy.fingerprint}\n`,
    );
  } else {
    ctx.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }
  return EXIT_OK;
}

interface ShowOptions {
  json: boolean;
  rpc?: string;
  fromBlock?: number;
  timeout?: number;
}

export async function runTrustShow(
  file: string,
  opts: ShowOptions,
  ctx: CliContext,
): Promise<number> {
  let policy;
  try {
    policy = await readTrustPolicyFile(file);
  } catch (e) {
    if (e instanceof TrustPolicyFileError) {
      ctx.stderr.write(`veritrail trust show: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  let histories: Map<string, RegistryHistory | string> | undefined;
  if (opts.rpc !== undefined) {
    try {
      histories = await readHistories(policy, opts.rpc, opts);
    } catch (e) {
      ctx.stderr.write(`veritrail trust show: ${e instanceof Error ? e.message : String(e)}\n`);
      return EXIT_USAGE;
    }
  }
  const historyOf = (r: TrustPolicy["registries"][number]) =>
    histories?.get(`${r.chainId}|${r.address.toLowerCase()}`);
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify(
        histories
          ? {
              ...policy,
              history: policy.registries.map((r) => {
                const h = historyOf(r);
                return typeof h === "string"
                  ? { chainId: r.chainId, registry: r.address, unavailable: h }
                  : h;
              }),
            }
          : policy,
      )}\n`,
    );
    return EXIT_OK;
  }
  const w = (line: string) => ctx.stdout.write(`${line}\n`);
  w(`${file}: veritrail-trust/1, issued by ${policy.issuer}`);
  for (const r of policy.registries) {
    w(`${registryLabel(r)}, ${r.confirmations} confirmation(s) required`);
    const logs = policy.logs.filter(
      (l) => l.chainId === r.chainId && l.registry.toLowerCase() === r.address.toLowerCase(),
    );
    const history = historyOf(r);
    if (typeof history === "string") w(`  history: ${history}`);
    else if (history) printAdmin(history, w);
    for (const l of logs) {
      w(`  log ${l.logId}  ${l.operator}${l.api ? `  (${l.api})` : ""}`);
      if (history && typeof history !== "string") printLogHistory(history, l.logId, l.operator, w);
    }
    if (logs.length === 0) w("  (no log)");
  }
  w(`fingerprint ${policy.fingerprint}`);
  w("Compare the fingerprint with the one the issuer publishes before relying on this policy.");
  return EXIT_OK;
}

/** Each registry of the policy on the RPC's chain: its history, or why it has none. */
async function readHistories(
  policy: TrustPolicy,
  rpc: string,
  opts: ShowOptions,
): Promise<Map<string, RegistryHistory | string>> {
  const timeout = opts.timeout ?? 15_000;
  const chainId = await probeChainId(rpc, timeout);
  const out = new Map<string, RegistryHistory | string>();
  for (const r of policy.registries) {
    const key = `${r.chainId}|${r.address.toLowerCase()}`;
    if (r.chainId !== chainId) {
      out.set(key, `not read: the RPC serves chain ${chainId}`);
      continue;
    }
    const client = await RegistryClient.connect({
      rpcUrl: rpc,
      address: r.address,
      chainId,
      requestTimeoutMs: timeout,
    });
    try {
      if (!(await client.hasCode())) {
        out.set(key, `no contract at ${r.address} on chain ${chainId}`);
        continue;
      }
      const logIds = policy.logs
        .filter((l) => l.chainId === r.chainId && l.registry.toLowerCase() === key.split("|")[1])
        .map((l) => l.logId);
      out.set(key, await readRegistryHistory(client, { logIds, fromBlock: opts.fromBlock ?? 0 }));
    } catch (e) {
      out.set(
        key,
        `cannot read the registry: ${e instanceof RegistryError ? e.message : e instanceof Error ? e.message.split("\n")[0] : String(e)}`,
      );
    } finally {
      client.destroy();
    }
  }
  return out;
}

function printAdmin(h: RegistryHistory, w: (line: string) => void): void {
  const a = h.admin.state;
  if (a === null)
    w(
      "  admin: this registry predates the delayed admin rules (no defaultAdmin()): its admin role moves in one step",
    );
  else
    w(
      `  admin ${a.admin}; a transfer of the admin role waits ${formatDelay(a.delaySeconds)} ` +
        `between being scheduled and accepted`,
    );
  if (a?.pending)
    w(
      `  PENDING: admin transfer to ${a.pending.newAdmin}, acceptable from ${a.pending.acceptableFrom}`,
    );
  if (a?.pendingDelay)
    w(
      `  PENDING: admin delay change to ${formatDelay(a.pendingDelay.newDelaySeconds)}, effective from ${a.pendingDelay.effectiveFrom}`,
    );
  if ("unavailable" in h.events) {
    w(`  history not available: ${h.events.unavailable}; showing the current state only`);
    return;
  }
  for (const e of h.admin.events) w(`    ${e.at}  block ${e.blockNumber}  ${e.text}`);
}

function printLogHistory(
  h: RegistryHistory,
  logId: string,
  policyOperator: string,
  w: (line: string) => void,
): void {
  const log = h.logs.find((l) => l.state.logId === logId.toLowerCase());
  if (!log) return;
  const s = log.state;
  if (!s.registered) {
    w("    NOT REGISTERED in this registry");
    return;
  }
  for (const e of log.events) w(`    ${e.at}  block ${e.blockNumber}  ${e.text}`);
  w(
    `    now: anchorer ${s.anchorer}, receipt signer ${s.receiptSigner}, operator ${JSON.stringify(s.operator)}`,
  );
  if (s.operator !== policyOperator)
    w(
      `    the registry now names the operator ${JSON.stringify(s.operator)}, the policy ${JSON.stringify(policyOperator)}`,
    );
  if (!("unavailable" in h.events) && !log.consistent)
    w(
      "    history INCOMPLETE: the events read do not end in the current state (earlier blocks pruned or not read: see --from-block)",
    );
}

/**
 * `veritrail status`: one log at a glance from a running Veritrail API (GET /v1/status, admin
 * or auditor key): log id, how far events have got (accepted, sealed, anchored), the anchoring
 * backlog, alarms and the trust policy's fingerprint. `--wait` waits, with a progress bar,
 * until every event accepted so far is anchored (before a backup, an export, or a proof).
 *
 * Exit code: 0 when anchoring has no alarm (and, with --wait, everything got anchored); 1 for
 * an alarm or a --wait that timed out; 2 for a usage error, an unreachable API or an error
 * answer.
 */
import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { setTimeout as sleep } from "node:timers/promises";
import { type LogStatus, LogStatusSchema } from "../ledger/log-status.ts";
import { type ApiOptions, ApiCallError, apiJson, keyOption, urlOption } from "./api-client.ts";
import { positiveInt } from "./chain-options.ts";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE } from "./context.ts";

export interface StatusCommandOptions extends ApiOptions {
  json: boolean;
  wait: boolean;
  timeout: number;
}

const POLL_MS = 250;

export async function fetchStatus(opts: ApiOptions): Promise<LogStatus> {
  const parsed = LogStatusSchema.safeParse(await apiJson(opts, "GET", "/v1/status"));
  if (!parsed.success)
    throw new ApiCallError("the API's /v1/status answer does not have the expected shape");
  return parsed.data;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1_000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}

/** The status as the lines an operator reads. */
export function describeStatus(s: LogStatus): string {
  const { events, batches, backlog, anchoring } = s;
  const range = events.accepted > 0 ? ` (seq 0–${events.accepted - 1})` : "";
  const waiting: string[] = [];
  if (backlog.unsealedEvents > 0)
    waiting.push(`${plural(backlog.unsealedEvents, "event")} not sealed yet`);
  if (backlog.unanchoredBatches > 0)
    waiting.push(
      `${plural(backlog.unanchoredBatches, "batch", "batches")} not anchored yet (oldest sealed ${seconds(backlog.oldestUnanchoredMs)} ago)`,
    );
  let chain = "no anchor loop in this service";
  if (anchoring) {
    const where = anchoring.contract
      ? `, registry ${anchoring.contract} on chain ${anchoring.chainId}`
      : "";
    const flight =
      anchoring.inFlight > 0 ? `, ${plural(anchoring.inFlight, "transaction")} in flight` : "";
    const error = anchoring.lastError ? `; last error: ${anchoring.lastError}` : "";
    const signer =
      anchoring.receiptSignerRegistered === false
        ? "; the registry does not list this log's receipt signer"
        : "";
    chain = `${anchoring.state}${where}${flight}${error}${signer}`;
  }
  const lines = [
    ["log", s.log.id],
    ["receipt signer", s.log.receiptSigner],
    [
      "events",
      `${events.accepted} accepted${range}: ${events.sealed} sealed, ${events.anchored} anchored`,
    ],
    ["batches", `${batches.sealed} sealed, ${batches.anchored} anchored`],
    ["backlog", waiting.length > 0 ? waiting.join("; ") : "none"],
    ["anchoring", chain],
    [
      "alarms",
      s.alarms.length === 0
        ? "none"
        : s.alarms
            .map(
              (a) =>
                `${a.code}: ${a.message}${a.recoverable ? " (clears by itself once fixed)" : ""}`,
            )
            .join("; "),
    ],
    [
      "storage",
      s.storage.state === "ok"
        ? "writable"
        : `writes refused since ${new Date(s.storage.since ?? 0).toISOString()} (${s.storage.reason}): ingest answers 503 until the disk takes them again`,
    ],
    [
      "lost",
      s.restorePending
        ? "restored copy: being compared with the chain"
        : s.lost.ranges.length === 0
          ? "none"
          : s.lost.ranges
              .map(
                (r) =>
                  `batches ${r.fromBatchNo}..${r.fromBatchNo + r.batches - 1} (seqs ${r.firstSeq}..${r.firstSeq + r.count - 1}, ${plural(r.count, "event")}) anchored on-chain, lost in a restore from a backup of ${r.restoredFrom}`,
              )
              .join("; "),
    ],
    [
      "trust policy",
      s.trust
        ? `${s.trust.fingerprint}${s.trust.issuer ? ` (${s.trust.issuer})` : ""}${s.trust.file ? `, ${s.trust.file}` : ""}`
        : "none published by this service",
    ],
  ];
  return lines.map(([label, value]) => `${label!.padEnd(15)}${value}`).join("\n");
}

/** Polls until events [0, target) are anchored, an alarm is raised, or the deadline passes. */
async function waitAnchored(
  opts: StatusCommandOptions,
  first: LogStatus,
  ctx: CliContext,
): Promise<{ status: LogStatus; done: boolean }> {
  const target = first.events.accepted;
  const deadline = Date.now() + opts.timeout * 1_000;
  const bar =
    ctx.stderr.isTTY === true
      ? new SingleBar({
          stream: ctx.stderr,
          format: "anchoring {bar} {value}/{total} events | {eta_formatted} left",
          hideCursor: true,
        })
      : undefined;
  bar?.start(target, Math.min(first.events.anchored, target));
  let status = first;
  try {
    while (status.events.anchored < target && status.alarms.length === 0) {
      if (Date.now() >= deadline) return { status, done: false };
      await sleep(POLL_MS);
      status = await fetchStatus(opts);
      bar?.update(Math.min(status.events.anchored, target));
    }
  } finally {
    bar?.stop();
  }
  return { status, done: status.events.anchored >= target };
}

export async function runStatus(opts: StatusCommandOptions, ctx: CliContext): Promise<number> {
  let status: LogStatus;
  let waited: boolean | undefined;
  try {
    status = await fetchStatus(opts);
    if (opts.wait) {
      const target = status.events.accepted;
      const result = await waitAnchored(opts, status, ctx);
      status = result.status;
      waited = result.done;
      if (!result.done && status.alarms.length === 0)
        ctx.stderr.write(
          `veritrail status: after ${opts.timeout} s, ${status.events.anchored} of the ${target} events accepted when it started are anchored\n`,
        );
    }
  } catch (e) {
    if (e instanceof ApiCallError) {
      ctx.stderr.write(`veritrail status: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  ctx.stdout.write(opts.json ? `${JSON.stringify(status)}\n` : `${describeStatus(status)}\n`);
  return status.alarms.length > 0 || waited === false ? EXIT_NEGATIVE : EXIT_OK;
}

export function registerStatusCommand(program: Command, ctx: CliContext): void {
  program
    .command("status")
    .description(
      "show a log's status: events accepted, sealed and anchored, the anchoring backlog, alarms, the trust policy",
    )
    .option("--json", "print the API's answer as JSON", false)
    .option("--wait", "first wait until every event accepted so far is anchored", false)
    .addOption(
      new Option("--timeout <seconds>", "how long --wait waits at most")
        .argParser(positiveInt)
        .default(120),
    )
    .addOption(urlOption())
    .addOption(keyOption("an admin or auditor API key"))
    .action(async (opts: StatusCommandOptions) => {
      ctx.exitCode = await runStatus(opts, ctx);
    });
}

/**
 * `npm run bench:reliability`: the reliability scenarios against the service run as
 * a user runs it. Prints one table row per property and exits 1 when any property fails.
 *
 *   node --import tsx bench/reliability/run.ts [--only kill9,outage,reset,tamper,bad,privacy,disk,backup,reorg]
 *     [--kill-cycles 20] [--outages 1] [--outage-seconds 300] [--long-outage] [--resets 3]
 *     [--tamperings 1000] [--bad-requests 100000] [--privacy-events 500] [--disk-fills 3]
 */
import { Command } from "commander";
import os from "node:os";
import { type ScenarioResult, renderResults, scenarioPassed } from "./result.ts";
import { BACKUP_RESTORE_DEFAULTS, runBackupRestore } from "./scenarios/backup-restore.ts";
import { BAD_REQUESTS_DEFAULTS, runBadRequests } from "./scenarios/bad-requests.ts";
import { CHAIN_RESET_DEFAULTS, runChainReset } from "./scenarios/chain-reset.ts";
import { DEEP_REORG_DEFAULTS, runDeepReorg } from "./scenarios/deep-reorg.ts";
import { DISK_FULL_DEFAULTS, runDiskFull } from "./scenarios/disk-full.ts";
import { KILL9_DEFAULTS, runKill9 } from "./scenarios/kill9.ts";
import { PRIVACY_DEFAULTS, runPrivacyScan } from "./scenarios/privacy.ts";
import { LONG_OUTAGE_MS, RPC_OUTAGE_DEFAULTS, runRpcOutage } from "./scenarios/rpc-outage.ts";
import { TAMPERING_DEFAULTS, runTampering } from "./scenarios/tampering.ts";

const SCENARIOS = [
  "kill9",
  "outage",
  "reset",
  "tamper",
  "bad",
  "privacy",
  "disk",
  "backup",
  "reorg",
] as const;
type ScenarioName = (typeof SCENARIOS)[number];

const int = (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${value}`);
  return n;
};

const program = new Command()
  .name("bench:reliability")
  .description(
    "Reliability scenarios: kill -9, RPC outage, dev chain reset, tampering, bad requests, privacy, full disk, backup/restore, deep reorg",
  )
  .option("--only <names>", `comma-separated subset of ${SCENARIOS.join(",")}`)
  .option("--kill-cycles <n>", "SIGKILL/restart cycles", int, KILL9_DEFAULTS.cycles)
  .option("--writers <n>", "concurrent writers under load", int, KILL9_DEFAULTS.writers)
  .option("--outages <n>", "RPC outages", int, RPC_OUTAGE_DEFAULTS.outages)
  .option("--outage-seconds <n>", "length of each outage", int, RPC_OUTAGE_DEFAULTS.outageMs / 1000)
  .option(
    "--long-outage",
    `one ${LONG_OUTAGE_MS / 60_000}-minute outage (overrides --outages and --outage-seconds)`,
    false,
  )
  .option("--resets <n>", "dev chain resets", int, CHAIN_RESET_DEFAULTS.resets)
  .option("--disk-fills <n>", "times the disk is filled under load", int, DISK_FULL_DEFAULTS.fills)
  .option("--tamperings <n>", "single-byte tamperings", int, TAMPERING_DEFAULTS.tamperings)
  .option("--bad-requests <n>", "generated bad requests", int, BAD_REQUESTS_DEFAULTS.requests)
  .option(
    "--privacy-events <n>",
    "events with distinct patients in the privacy scan",
    int,
    PRIVACY_DEFAULTS.events,
  )
  .parse();

const o = program.opts<{
  only?: string;
  killCycles: number;
  writers: number;
  outages: number;
  outageSeconds: number;
  longOutage: boolean;
  resets: number;
  diskFills: number;
  tamperings: number;
  badRequests: number;
  privacyEvents: number;
}>();
const only = o.only ? new Set(o.only.split(",")) : undefined;
for (const name of only ?? []) {
  if (!(SCENARIOS as readonly string[]).includes(name)) {
    process.stderr.write(`unknown scenario ${name}; known: ${SCENARIOS.join(", ")}\n`);
    process.exit(2);
  }
}
const want = (name: ScenarioName): boolean => !only || only.has(name);

const started = Date.now();
const log = (message: string): void => {
  process.stderr.write(`[reliability ${((Date.now() - started) / 1000).toFixed(0)}s] ${message}\n`);
};

const runs: Array<[ScenarioName, () => Promise<ScenarioResult>]> = [
  ["kill9", () => runKill9({ ...KILL9_DEFAULTS, cycles: o.killCycles, writers: o.writers, log })],
  [
    "outage",
    () =>
      runRpcOutage({
        ...RPC_OUTAGE_DEFAULTS,
        outages: o.longOutage ? 1 : o.outages,
        outageMs: o.longOutage ? LONG_OUTAGE_MS : o.outageSeconds * 1000,
        writers: o.writers,
        log,
      }),
  ],
  ["reset", () => runChainReset({ ...CHAIN_RESET_DEFAULTS, resets: o.resets, log })],
  ["tamper", () => runTampering({ ...TAMPERING_DEFAULTS, tamperings: o.tamperings, log })],
  ["bad", () => runBadRequests({ ...BAD_REQUESTS_DEFAULTS, requests: o.badRequests, log })],
  ["privacy", () => runPrivacyScan({ ...PRIVACY_DEFAULTS, events: o.privacyEvents, log })],
  [
    "disk",
    () => runDiskFull({ ...DISK_FULL_DEFAULTS, fills: o.diskFills, writers: o.writers, log }),
  ],
  ["backup", () => runBackupRestore({ ...BACKUP_RESTORE_DEFAULTS, writers: o.writers, log })],
  ["reorg", () => runDeepReorg({ ...DEEP_REORG_DEFAULTS, writers: o.writers, log })],
];

const results: ScenarioResult[] = [];
for (const [name, run] of runs) {
  if (!want(name)) continue;
  log(`scenario ${name}`);
  try {
    results.push(await run());
  } catch (error) {
    // A scenario that cannot run is a failed property, not a crash of the whole bench.
    results.push({
      scenario: name,
      size: "",
      seconds: 0,
      properties: [
        { name: "scenario ran to completion", ok: false, detail: String(error).slice(0, 500) },
      ],
    });
  }
}

const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
process.stdout.write(
  `\n${renderResults(results)}\n\n${machine}; total ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
);
const failed = results.filter((r) => !scenarioPassed(r));
if (failed.length > 0) {
  process.stderr.write(`FAILED: ${failed.map((r) => r.scenario).join(", ")}\n`);
  process.exit(1);
}
process.exit(0);

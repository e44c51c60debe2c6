/**
 * `npm run bench:reliability`: the reliability scenarios against the service run as
 * a user runs it. Prints one table row per property and exits 1 when any property fails.
 *
 *   node --import tsx bench/reliability/run.ts [--only kill9,outage,reset,tamper,bad,privacy,disk,backup,reorg]
 *     [--kill-cycles 20] [--outages 1] [--outage-seconds 300] [--long-outage] [--resets 3]
 *     [--tamperings 1000] [--bad-requests 100000] [--privacy-events 500] [--disk-fills 3]
 *     [--lanes 2]
 *
 * Scenarios run in `--lanes` lanes at once, longest first: the RPC outage is minutes of waiting
 * for the RPC to come back, and the other scenarios run meanwhile. Each scenario has its own
 * service, chain, ports and data directory, so they share nothing but the machine.
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
  .option(
    "--lanes <n>",
    "scenarios run at once (1: one after another, each timed alone)",
    (v) => {
      const n = int(v);
      if (n < 1) throw new Error(`--lanes must be at least 1: ${v}`);
      return n;
    },
    2,
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
  lanes: number;
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
const at = (): string => `${((Date.now() - started) / 1000).toFixed(0)}s`;
const logFor =
  (name: ScenarioName) =>
  (message: string): void => {
    process.stderr.write(`[reliability ${at()} ${name}] ${message}\n`);
  };

/** The scenarios, longest first (a lane that starts the outage is free again after ~6 minutes). */
const runs: Array<[ScenarioName, (log: (m: string) => void) => Promise<ScenarioResult>]> = [
  [
    "outage",
    (log) =>
      runRpcOutage({
        ...RPC_OUTAGE_DEFAULTS,
        outages: o.longOutage ? 1 : o.outages,
        outageMs: o.longOutage ? LONG_OUTAGE_MS : o.outageSeconds * 1000,
        writers: o.writers,
        log,
      }),
  ],
  [
    "kill9",
    (log) => runKill9({ ...KILL9_DEFAULTS, cycles: o.killCycles, writers: o.writers, log }),
  ],
  ["bad", (log) => runBadRequests({ ...BAD_REQUESTS_DEFAULTS, requests: o.badRequests, log })],
  ["tamper", (log) => runTampering({ ...TAMPERING_DEFAULTS, tamperings: o.tamperings, log })],
  ["reorg", (log) => runDeepReorg({ ...DEEP_REORG_DEFAULTS, writers: o.writers, log })],
  [
    "disk",
    (log) => runDiskFull({ ...DISK_FULL_DEFAULTS, fills: o.diskFills, writers: o.writers, log }),
  ],
  ["backup", (log) => runBackupRestore({ ...BACKUP_RESTORE_DEFAULTS, writers: o.writers, log })],
  ["reset", (log) => runChainReset({ ...CHAIN_RESET_DEFAULTS, resets: o.resets, log })],
  ["privacy", (log) => runPrivacyScan({ ...PRIVACY_DEFAULTS, events: o.privacyEvents, log })],
];

const results = new Map<ScenarioName, ScenarioResult>();
/** When each scenario ran, in seconds from the start of the run. */
const spans = new Map<ScenarioName, { from: number; to: number }>();
const queue = runs.filter(([name]) => want(name));
const lane = async (): Promise<void> => {
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const [name, run] = next;
    const log = logFor(name);
    const from = (Date.now() - started) / 1000;
    log("started");
    let result: ScenarioResult;
    try {
      result = await run(log);
    } catch (error) {
      // A scenario that cannot run is a failed property, not a crash of the whole bench.
      result = {
        scenario: name,
        size: "",
        seconds: (Date.now() - started) / 1000 - from,
        properties: [
          { name: "scenario ran to completion", ok: false, detail: String(error).slice(0, 500) },
        ],
      };
    }
    spans.set(name, { from, to: (Date.now() - started) / 1000 });
    log(`finished in ${result.seconds.toFixed(0)} s`);
    results.set(name, result);
  }
};
await Promise.all(Array.from({ length: Math.min(o.lanes, queue.length) }, lane));
// The table in the usual order, whatever order the lanes finished in.
const ordered = SCENARIOS.flatMap((name) => results.get(name) ?? []);
const timeline = SCENARIOS.flatMap((name) => {
  const span = spans.get(name);
  return span ? [`${name} ${span.from.toFixed(0)}–${span.to.toFixed(0)} s`] : [];
}).join(", ");

const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
process.stdout.write(
  `\n${renderResults(ordered)}\n\n${machine}; ${o.lanes} lane(s); total ${((Date.now() - started) / 1000).toFixed(0)} s\nwhen each ran: ${timeline}\n`,
);
const failed = ordered.filter((r) => !scenarioPassed(r));
if (failed.length > 0) {
  process.stderr.write(`FAILED: ${failed.map((r) => r.scenario).join(", ")}\n`);
  process.exit(1);
}
process.exit(0);

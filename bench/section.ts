/**
 * One section of `npm run bench`, in a process of its own: run.ts spawns
 *
 *   node --import tsx bench/section.ts <name> <options JSON> <rows file>
 *
 * for each section, so every section starts on a fresh heap (no section's garbage slows
 * another's GC) and its peak RSS is its own. The rows are written as JSON to <rows file>;
 * stdout and stderr are the parent's stderr (progress lines, chain node output).
 */
import { writeFile } from "node:fs/promises";
import { benchAckToAnchor, benchGas } from "./chain-bench.ts";
import { benchHttpBulk, benchHttpOffered, benchHttpSingle } from "./http-bench.ts";
import { benchLargeLog } from "./large-log.ts";
import { benchBulkIngest, benchConcurrentSingles } from "./ledger-bench.ts";
import { benchMerkleBuilders } from "./merkle-builders.ts";
import type { BenchRow } from "./table.ts";
import { benchPathVerification } from "./verifier-bench.ts";

/** What run.ts passes on: its flags, as numbers. */
export interface SectionOptions {
  bulkEvents: number;
  singleEvents: number;
  httpSeconds: number;
  logSize: number;
  patientEvents: number;
  proofSamples: number;
  historySamples: number;
  /** Replay the large log with the regulator audit (off with --no-log-audit). */
  logAudit: boolean;
  /** Keep the large log there and reuse it in later runs (--log-dir). */
  logDir?: string;
}

function say(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

/** The offered rate of the open-loop HTTP row (issue 21: p99 ≤ 25 ms at 2,000 events/s). */
const OFFERED_RATE = 2_000;

const sections: Record<string, (o: SectionOptions) => Promise<BenchRow[]>> = {
  bulk: (o) => benchBulkIngest({ total: o.bulkEvents, perCall: 1_000 }),
  single: (o) => benchConcurrentSingles({ total: o.singleEvents, concurrency: 64 }),
  http: async (o) => {
    // The saturation rate first: the offered-load rows stand next to it.
    const saturationRows = await benchHttpSingle({ seconds: o.httpSeconds, connections: 64 });
    const saturation = saturationRows[0]!.value;
    const offered = await benchHttpOffered({
      seconds: o.httpSeconds,
      rate: OFFERED_RATE,
      saturation,
    });
    const rows = [...offered, ...saturationRows];
    // The ceiling: what the machine served at the most, with 64 connections or with the
    // open loop's 256. Offered near or above it (the neighbours' load included), the queue
    // grows for the whole run and the p99 measures the run's length, not the service; the
    // latency at half the ceiling is then reported as well.
    const offeredAck = offered.find((r) => r.unit === "events/s")?.value ?? 0;
    const ceiling = Math.max(saturation, offeredAck);
    if (OFFERED_RATE > 0.8 * ceiling) {
      const half = Math.max(100, Math.round(ceiling / 2 / 100) * 100);
      rows.push(
        ...(await benchHttpOffered({
          seconds: o.httpSeconds,
          rate: half,
          saturation,
          rateNote: `half the measured ceiling of ${Math.round(ceiling).toLocaleString("en")} events/s`,
          target: false,
        })),
      );
    }
    rows.push(...(await benchHttpBulk({ seconds: o.httpSeconds, connections: 4, perCall: 1_000 })));
    return rows;
  },
  log: (o) =>
    benchLargeLog({
      logSize: o.logSize,
      patientEvents: o.patientEvents,
      proofSamples: o.proofSamples,
      historySamples: o.historySamples,
      audit: o.logAudit,
      ...(o.logDir ? { logDir: o.logDir } : {}),
      log: say,
    }),
  verify: () => benchPathVerification(10_000),
  merkle: async () =>
    benchMerkleBuilders([1_000, 10_000, 100_000], 3).map((r) => ({
      name: `tree build, ${r.size.toLocaleString("en")} leaves, array-of-levels builder`,
      value: r.levelsMs,
      unit: "ms",
      baselineName: "merkletreejs (RFC 9162 options)",
      baseline: r.merkletreejsMs,
    })),
  gas: () => benchGas([1, 100, 10_000, 100_000]),
  anchor: () => benchAckToAnchor(5),
};

const [name, optionsJson, rowsFile] = process.argv.slice(2);
const section = name === undefined ? undefined : sections[name];
if (!section || optionsJson === undefined || rowsFile === undefined) {
  process.stderr.write(
    `usage: node --import tsx bench/section.ts <${Object.keys(sections).join("|")}> <options JSON> <rows file>\n`,
  );
  process.exit(2);
}
const rows = await section(JSON.parse(optionsJson) as SectionOptions);
// The large-log section reports its own peak RSS, against the 512 MB target.
if (!rows.some((r) => r.name.startsWith("peak RSS")))
  rows.push({
    name: `peak RSS, ${name} section process`,
    value: process.resourceUsage().maxRSS / 1024,
    unit: "MB",
  });
await writeFile(rowsFile, JSON.stringify(rows));
// Chain and HTTP sections may leave sockets or timers behind; the rows are written.
process.exit(0);

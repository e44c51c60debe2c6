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
}

function say(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

const sections: Record<string, (o: SectionOptions) => Promise<BenchRow[]>> = {
  bulk: (o) => benchBulkIngest({ total: o.bulkEvents, perCall: 1_000 }),
  single: (o) => benchConcurrentSingles({ total: o.singleEvents, concurrency: 64 }),
  http: async (o) => [
    ...(await benchHttpOffered({ seconds: o.httpSeconds, rate: 2_000 })),
    ...(await benchHttpSingle({ seconds: o.httpSeconds, connections: 64 })),
    ...(await benchHttpBulk({ seconds: o.httpSeconds, connections: 4, perCall: 1_000 })),
  ],
  log: (o) =>
    benchLargeLog({
      logSize: o.logSize,
      patientEvents: o.patientEvents,
      proofSamples: o.proofSamples,
      historySamples: o.historySamples,
      audit: o.logAudit,
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

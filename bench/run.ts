import { Command } from "commander";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { benchAckToAnchor, benchGas } from "./chain-bench.ts";
import { benchHttpBulk, benchHttpSingle } from "./http-bench.ts";
import { benchMerkleBuilders } from "./merkle-builders.ts";
import { benchPathVerification } from "./verifier-bench.ts";
import { benchBulkIngest, benchConcurrentSingles, benchProofs } from "./ledger-bench.ts";
import { type BenchRow, meetsTarget, renderTable } from "./table.ts";

const program = new Command()
  .name("bench")
  .description("Veritrail benchmarks: every row next to a baseline measured in the same run")
  .option("--bulk-events <n>", "events for the bulk-ingest run", "200000")
  .option("--single-events <n>", "events for the 64-concurrent single-event run", "50000")
  .option(
    "--proof-log-size <n>",
    "log size for proof latency (10000000 for the large run)",
    "1000000",
  )
  .option("--proof-samples <n>", "proofs to time", "2000")
  .option("--http-seconds <n>", "duration of each HTTP load run", "10")
  .option(
    "--only <names>",
    "comma-separated subset: bulk,single,http,proof,verify,merkle,gas,anchor",
  )
  .parse();

const o = program.opts<Record<string, string>>();
const only = o.only ? new Set(o.only.split(",")) : undefined;
const want = (name: string) => !only || only.has(name);

const rows: BenchRow[] = [];
const started = Date.now();
function log(msg: string) {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}\n`);
}

if (want("bulk")) {
  log("bulk ingest");
  rows.push(...(await benchBulkIngest({ total: Number(o.bulkEvents), perCall: 1_000 })));
}
if (want("single")) {
  log("64 concurrent single-event callers");
  rows.push(...(await benchConcurrentSingles({ total: Number(o.singleEvents), concurrency: 64 })));
}
if (want("http")) {
  log("HTTP: 64 connections posting single events, then bulk calls");
  rows.push(...(await benchHttpSingle({ seconds: Number(o.httpSeconds), connections: 64 })));
  rows.push(
    ...(await benchHttpBulk({ seconds: Number(o.httpSeconds), connections: 4, perCall: 1_000 })),
  );
}
if (want("proof")) {
  log(`proof latency at ${o.proofLogSize} events (building the log first)`);
  rows.push(
    ...(await benchProofs({
      size: Number(o.proofLogSize),
      samples: Number(o.proofSamples),
      batchMaxEvents: 10_000,
    })),
  );
}
if (want("verify")) {
  log("path verifications per core");
  rows.push(...(await benchPathVerification(10_000)));
}
if (want("merkle")) {
  log("Merkle builders: array of levels vs merkletreejs");
  for (const r of benchMerkleBuilders([1_000, 10_000, 100_000], 3)) {
    rows.push({
      name: `tree build, ${r.size.toLocaleString("en")} leaves, array-of-levels builder`,
      value: r.levelsMs,
      unit: "ms",
      baselineName: "merkletreejs (RFC 9162 options)",
      baseline: r.merkletreejsMs,
    });
  }
}
if (want("gas")) {
  log("gas per anchor on a Hardhat node");
  rows.push(...(await benchGas([1, 100, 10_000, 100_000])));
}
if (want("anchor")) {
  log("acknowledgement to confirmed anchor (defaults, dev chain)");
  rows.push(...(await benchAckToAnchor(5)));
}
rows.push({ name: "peak RSS", value: process.resourceUsage().maxRSS / 1024, unit: "MB" });

const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
const table = renderTable(rows);
process.stdout.write(`\nMachine: ${machine}\n\n${table}\n`);
await mkdir("bench", { recursive: true });
await writeFile(
  "bench/results.json",
  JSON.stringify(
    { date: new Date().toISOString(), machine, argv: process.argv.slice(2), rows },
    null,
    2,
  ) + "\n",
);
const missed = rows.filter((r) => meetsTarget(r) === false);
if (missed.length > 0) {
  process.stderr.write(
    `\n${missed.length} target(s) missed: ${missed.map((r) => r.name).join("; ")}\n`,
  );
  process.exitCode = 1;
}

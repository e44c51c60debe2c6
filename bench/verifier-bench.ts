/**
 * Verifier throughput per core (CPU time), RPC excluded (an in-memory chain answers the view calls):
 *   node --import tsx bench/verifier-bench.ts [bundles]
 *
 * Rows: the RFC 9162 audit-path step alone (nodes already bytes); the verifier's inclusion step
 * (the bundle's hex path and root decoded and checked); every offline step of a bundle (shape,
 * commitment, entry, path, receipt with its group signature cached); the whole verifyBundles
 * pipeline; and, as the same-run baseline, one uncached EIP-712 signature recovery (what every
 * bundle would cost without the group-signature cache). Every row is one thread's rate by CPU
 * time, the median of several repetitions after a warm-up; the note gives the range. Nothing
 * is cached across bundles but the receipt group's verified signature and memos of strings a
 * group's bundles share (addresses, timestamps, the signature's canonical form).
 */
import type { Bundle } from "../services/core/bundle.ts";
import { fromHex } from "../services/core/hex.ts";
import { jcs } from "../services/core/jcs.ts";
import { verifyInclusion } from "../services/core/merkle.ts";
import {
  ReceiptSignatureCache,
  checkCommitment,
  checkEntry,
  checkInclusion,
  checkReceiptSignature,
  checkShape,
} from "../services/verifier/offline-checks.ts";
import { verifyBundles } from "../services/verifier/verify-bundles.ts";
import { fakeChain, fakePolicy, makeBatch } from "../test/services/verifier/fake-chain.ts";
import type { BenchRow } from "./table.ts";

const TARGET_BUNDLES_PER_S = 20_000;

function rate(n: number, ms: number): number {
  return (n * 1000) / ms;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface Rate {
  /** Median items per CPU-second over the repetitions. */
  median: number;
  min: number;
  max: number;
  reps: number;
}

const REPS = 5;

/**
 * Items per second of this process's CPU time — per core, and not distorted by other processes
 * on a loaded machine (GC helper threads count too, so it errs low). `body` handles `n` items;
 * it runs for `warmUpMs` first (JIT, caches, heap size settle), then `reps` times for at least
 * `minMs` of wall time each, and the median repetition is the value, so one GC pause or a
 * neighbour's burst does not decide the row.
 */
function timed(n: number, minMs: number, body: () => void, reps = REPS, warmUpMs = minMs): Rate {
  const warmUpEnd = performance.now() + warmUpMs;
  do body();
  while (performance.now() < warmUpEnd);
  const rates: number[] = [];
  for (let r = 0; r < reps; r++) {
    let rounds = 0;
    const start = performance.now();
    const cpuStart = cpuMs();
    do {
      body();
      rounds++;
    } while (performance.now() - start < minMs);
    rates.push(rate(n * rounds, cpuMs() - cpuStart));
  }
  return summary(rates);
}

function summary(rates: number[]): Rate {
  const sorted = [...rates].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)]!,
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    reps: sorted.length,
  };
}

function spread(r: Rate): string {
  const k = (v: number) => `${(v / 1000).toFixed(1)}k`;
  return `median of ${r.reps}, one thread, range ${k(r.min)}–${k(r.max)}`;
}

export async function benchPathVerification(n = 10_000): Promise<BenchRow[]> {
  const batch = await makeBatch(n);
  // Bundles as a verifier gets them: parsed from JSON text (the CLI's NDJSON, the page's paste),
  // the event in the canonical member order in which the ledger stores and serves it.
  const bundles = batch.bundles.map(
    (b) =>
      JSON.parse(
        JSON.stringify({ ...b, event: b.event === null ? null : JSON.parse(jcs(b.event)) }),
      ) as Bundle,
  );
  const shaped = bundles.map((b) => {
    const s = checkShape(b);
    if (!s.ok) throw new Error(s.check.reason);
    return s.bundle;
  });
  const leafHashes = shaped.map((b) => checkEntry(b).leafHash);
  const pathLength = shaped[0]!.inclusion.length;

  // The RFC 9162 step on pre-decoded bytes (what core's verifier does per proof).
  const decoded = shaped.map((b) => ({
    index: b.leafIndex!,
    path: b.inclusion.map(fromHex),
    root: fromHex(b.batch!.eventsRoot),
  }));
  const pathBytes = timed(n, 400, () => {
    for (let i = 0; i < n; i++) {
      const d = decoded[i]!;
      verifyInclusion(d.index, n, leafHashes[i]!, d.path, d.root);
    }
  });
  const pathStep = timed(n, 400, () => {
    for (let i = 0; i < n; i++) checkInclusion(shaped[i]!, leafHashes[i]!);
  });
  const cache = new ReceiptSignatureCache();
  const offline = timed(n, 800, () => {
    for (const input of bundles) {
      const s = checkShape(input);
      if (!s.ok) throw new Error(s.check.reason);
      checkCommitment(s.bundle);
      const entry = checkEntry(s.bundle);
      checkInclusion(s.bundle, entry.leafHash);
      checkReceiptSignature(s.bundle, cache);
    }
  });
  const recoveries = 200;
  const uncached = timed(
    recoveries,
    300,
    () => {
      for (let i = 0; i < recoveries; i++)
        checkReceiptSignature(shaped[i]!, new ReceiptSignatureCache());
    },
    3,
  );
  // The whole pipeline, a fresh session (chain reads, signature cache) per repetition.
  const { rpc, counts } = fakeChain([{ ...batch, bundles }]);
  const trust = fakePolicy(batch);
  await verifyBundles(bundles, rpc, { trust, confirmations: 1 }); // warm-up
  const pipelineRates: number[] = [];
  let calls = 0;
  for (let r = 0; r < 3; r++) {
    const callsBefore = counts.batchCommitment;
    const cpuStart = cpuMs();
    const verdicts = await verifyBundles(bundles, rpc, { trust, confirmations: 1 });
    pipelineRates.push(rate(n, cpuMs() - cpuStart));
    calls = counts.batchCommitment - callsBefore;
    if (!verdicts.every((v) => v.ok)) throw new Error("a good bundle failed in the benchmark");
  }
  const pipeline = summary(pipelineRates);
  return [
    {
      name: `verifier: audit path only (${pathLength} nodes, batch of ${n})`,
      value: pathBytes.median,
      unit: "paths/s",
      target: { op: ">=", value: TARGET_BUNDLES_PER_S },
      note: spread(pathBytes),
    },
    {
      name: "verifier: inclusion step incl. hex decoding",
      value: pathStep.median,
      unit: "bundles/s",
      target: { op: ">=", value: TARGET_BUNDLES_PER_S },
      note: spread(pathStep),
    },
    {
      name: "verifier: all offline steps (shape, commitment, entry, path, receipt cached)",
      value: offline.median,
      unit: "bundles/s",
      baselineName: "uncached receipt signature recovery",
      baseline: uncached.median,
      // Issues 7 and 10 set the 20k/s/core target on path verification (the two rows above);
      // this row, every offline step of a bundle, is reported for context without a target.
      note: spread(offline),
    },
    {
      name: `verifier: verifyBundles, in-memory chain (${calls} commitment call for ${n})`,
      value: pipeline.median,
      unit: "bundles/s",
      note: spread(pipeline),
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 10_000);
  const rows = await benchPathVerification(n);
  for (const r of rows) {
    const base =
      r.baseline !== undefined
        ? `  (baseline ${r.baselineName}: ${Math.round(r.baseline).toLocaleString("en")} /s)`
        : "";
    const note = r.note ? `  [${r.note}]` : "";
    console.log(`${r.name}: ${Math.round(r.value).toLocaleString("en")} ${r.unit}${base}${note}`);
  }
}

/**
 * Verifier throughput per core (CPU time), RPC excluded (an in-memory chain answers the view calls):
 *   node --import tsx bench/verifier-bench.ts [bundles]
 *
 * Rows: the RFC 9162 audit-path step alone; every offline step of a bundle (shape, commitment,
 * entry, path, receipt with its group signature cached); the whole verifyBundles pipeline; and,
 * as the same-run baseline, one uncached EIP-712 signature recovery (what every bundle would
 * cost without the group-signature cache).
 */
import { fromHex } from "../services/core/hex.ts";
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
import { fakeChain, makeBatch } from "../test/services/verifier/fake-chain.ts";
import type { BenchRow } from "./table.ts";

const TARGET_BUNDLES_PER_S = 20_000;

function rate(n: number, ms: number): number {
  return (n * 1000) / ms;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Runs `body` (n items) until at least `minMs` of wall time elapsed; returns items per second of
 * this process's CPU time — per core, and not distorted by other processes on a loaded machine
 * (GC threads count too, so it errs low).
 */
function timed(n: number, minMs: number, body: () => void): number {
  body(); // warm-up pass
  let rounds = 0;
  const start = performance.now();
  const cpuStart = cpuMs();
  do {
    body();
    rounds++;
  } while (performance.now() - start < minMs);
  return rate(n * rounds, cpuMs() - cpuStart);
}

export async function benchPathVerification(n = 10_000): Promise<BenchRow[]> {
  const batch = await makeBatch(n);
  const bundles = batch.bundles;
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
  const pathBytes = timed(n, 1_000, () => {
    for (let i = 0; i < n; i++) {
      const d = decoded[i]!;
      verifyInclusion(d.index, n, leafHashes[i]!, d.path, d.root);
    }
  });
  const pathStep = timed(n, 1_000, () => {
    for (let i = 0; i < n; i++) checkInclusion(shaped[i]!, leafHashes[i]!);
  });
  const cache = new ReceiptSignatureCache();
  const offline = timed(n, 2_000, () => {
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
  const uncached = timed(recoveries, 1_000, () => {
    for (let i = 0; i < recoveries; i++)
      checkReceiptSignature(shaped[i]!, new ReceiptSignatureCache());
  });
  const { rpc, counts } = fakeChain([batch]);
  await verifyBundles(bundles.slice(0, 100), rpc, { confirmations: 1 }); // warm-up
  const callsBefore = counts.batchCommitment;
  const cpuStart = cpuMs();
  const verdicts = await verifyBundles(bundles, rpc, { confirmations: 1 });
  const pipeline = rate(n, cpuMs() - cpuStart);
  const calls = counts.batchCommitment - callsBefore;
  if (!verdicts.every((v) => v.ok)) throw new Error("a good bundle failed in the benchmark");
  return [
    {
      name: `verifier: audit path only (${pathLength} nodes, batch of ${n})`,
      value: pathBytes,
      unit: "paths/s",
      target: { op: ">=", value: TARGET_BUNDLES_PER_S },
    },
    {
      name: "verifier: inclusion step incl. hex decoding",
      value: pathStep,
      unit: "bundles/s",
      target: { op: ">=", value: TARGET_BUNDLES_PER_S },
    },
    {
      name: "verifier: all offline steps (shape, commitment, entry, path, receipt cached)",
      value: offline,
      unit: "bundles/s",
      baselineName: "uncached receipt signature recovery",
      baseline: uncached,
      target: { op: ">=", value: TARGET_BUNDLES_PER_S },
    },
    {
      name: `verifier: verifyBundles, in-memory chain (${calls} commitment call for ${n})`,
      value: pipeline,
      unit: "bundles/s",
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
    console.log(`${r.name}: ${Math.round(r.value).toLocaleString("en")} ${r.unit}${base}`);
  }
}

/**
 * Benchmark for the per-patient completeness index: build a map of `subjects` keys in batches with
 * MemoryNodeStore, then time one batch updating `touched` random subjects (half existing, half new).
 *
 * Run: node --import tsx bench/subject-index.ts [subjects] [touched]
 */
import { randomFillSync } from "node:crypto";
import { pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { sha256 } from "../services/core/hash.ts";
import { MemoryNodeStore, applyUpdates } from "../services/core/subject-index.ts";
import type { SmtUpdate } from "../services/core/subject-index.ts";
import {
  subjectIndexProofToJson,
  verifySubjectIndexProof,
} from "../services/core/subject-index-proof.ts";

export interface SubjectIndexBenchResult {
  subjects: number;
  touched: number;
  buildBatch: number;
  buildMs: number;
  storedNodes: number;
  updateMs: number;
  /** Tree hashes (leaf + internal node) per touched subject; excludes the value hash itself. */
  hashesPerUpdate: number;
  readsPerUpdate: number;
  writes: number;
  /** Siblings in a proof for a random present subject, and its size. */
  proofSiblings: { mean: number; max: number };
  proofBytes: { binary: number; json: number };
  proveMsPerKey: number;
  verifyMsPerKey: number;
  /** Single-threaded SHA-256 rate over 65-byte inputs on this machine, just before the run. */
  sha256PerSecond: number;
  /** Process RSS at the end: includes heap grown for the build's garbage. */
  rssMiB: number;
  /** Heap + ArrayBuffers still reachable after a full GC, and that divided by stored nodes. */
  retainedMiB: number;
  retainedBytesPerNode: number;
}

/** A full GC, so the retained size is the store's and not the build's garbage. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** 32-byte keys as views into one buffer: a million separate allocations would distort RSS. */
function randomKeys(n: number): Uint8Array[] {
  const slab = new Uint8Array(n * 32);
  for (let off = 0; off < slab.length; off += 65536) {
    randomFillSync(slab.subarray(off, Math.min(off + 65536, slab.length)));
  }
  return Array.from({ length: n }, (_, i) => slab.subarray(i * 32, i * 32 + 32));
}

export async function benchSubjectIndex(opts: {
  subjects: number;
  touched: number;
  buildBatch?: number;
  log?: (line: string) => void;
}): Promise<SubjectIndexBenchResult> {
  const { subjects, touched } = opts;
  const buildBatch = opts.buildBatch ?? 100_000;
  const log = opts.log ?? (() => {});

  const probe = new Uint8Array(65);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 300) {
    for (let i = 0; i < 1000; i++) sha256(probe);
    n += 1000;
  }
  const sha256PerSecond = Math.round(n / ((performance.now() - t0) / 1000));

  const store = new MemoryNodeStore();
  const keys = randomKeys(subjects);
  const buildStart = performance.now();
  for (let i = 0; i < subjects; i += buildBatch) {
    // The value is irrelevant to the cost; reuse the key bytes rather than spend a hash on it.
    await store.update(keys.slice(i, i + buildBatch).map((key) => ({ key, valueHash: key })));
    log(`  built ${Math.min(i + buildBatch, subjects)} subjects`);
  }
  const buildMs = performance.now() - buildStart;

  const fresh = randomKeys(touched - Math.floor(touched / 2));
  const updates: SmtUpdate[] = [];
  const values = randomKeys(touched);
  const picked = new Set<number>();
  while (picked.size < Math.floor(touched / 2)) picked.add(Math.floor(Math.random() * subjects));
  let v = 0;
  for (const i of picked) updates.push({ key: keys[i]!, valueHash: values[v++]! });
  for (const key of fresh) updates.push({ key, valueHash: values[v++]! });

  const updateStart = performance.now();
  const result = await applyUpdates(store.reader, updates);
  store.apply(result.writes);
  const updateMs = performance.now() - updateStart;

  const samples = 1000;
  let siblingSum = 0;
  let siblingMax = 0;
  let binary = 0;
  let json = 0;
  const root = store.root;
  const proveStart = performance.now();
  const proofs = [];
  for (let i = 0; i < samples; i++) {
    const key = keys[Math.floor(Math.random() * subjects)]!;
    proofs.push({ key, proof: await store.prove(key) });
  }
  const proveMs = performance.now() - proveStart;
  const verifyStart = performance.now();
  for (const { key, proof } of proofs) {
    const claim = verifySubjectIndexProof(root, key, proof);
    if (!claim.member) throw new Error("bench: a present subject failed to prove membership");
  }
  const verifyMs = performance.now() - verifyStart;
  for (const { proof } of proofs) {
    siblingSum += proof.siblings.length;
    siblingMax = Math.max(siblingMax, proof.siblings.length);
    binary += 32 * proof.siblings.length + 64;
    json += JSON.stringify(subjectIndexProofToJson(proof)).length;
  }

  collectGarbage();
  const memory = process.memoryUsage();
  const retained = memory.heapUsed + memory.arrayBuffers;

  return {
    subjects,
    touched,
    buildBatch,
    buildMs: Math.round(buildMs),
    storedNodes: store.size,
    updateMs: Math.round(updateMs),
    hashesPerUpdate: +(result.stats.hashes / touched).toFixed(2),
    readsPerUpdate: +(result.stats.reads / touched).toFixed(2),
    writes: result.writes.length,
    proofSiblings: { mean: +(siblingSum / samples).toFixed(2), max: siblingMax },
    proofBytes: { binary: Math.round(binary / samples), json: Math.round(json / samples) },
    proveMsPerKey: +(proveMs / samples).toFixed(4),
    verifyMsPerKey: +(verifyMs / samples).toFixed(4),
    sha256PerSecond,
    rssMiB: Math.round(memory.rss / 2 ** 20),
    retainedMiB: Math.round(retained / 2 ** 20),
    retainedBytesPerNode: Math.round(retained / store.size),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const subjects = Number(process.argv[2] ?? 1_000_000);
  const touched = Number(process.argv[3] ?? 10_000);
  const result = await benchSubjectIndex({ subjects, touched, log: console.log });
  console.log(JSON.stringify(result, null, 2));
}

import {
  FIELD_SALT_BYTES,
  type FieldSalts,
  committedForm,
  redactableValues,
} from "../services/core/disclosure.ts";
import { ClassicLevel } from "classic-level";
import { Wallet } from "ethers";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  ENTRY_VERSION,
  SALT_BYTES,
  commitmentOfCanonical,
  encodeEntry,
  subjectTag,
} from "../services/core/entry.ts";
import type { NativeEvent } from "../services/core/event.ts";
import { toHex } from "../services/core/hex.ts";
import { jcs } from "../services/core/jcs.ts";
import { leafHash } from "../services/core/merkle.ts";
import { IngestOverloadedError } from "../services/ledger/ingest-gate.ts";
import { loadConfig } from "../services/config.ts";
import { Ledger } from "../services/ledger/ledger.ts";
import type { BenchRow } from "./table.ts";
import { percentile } from "./table.ts";

/** A realistic BALP PatientRead-like access event, varied per index. */
export function benchEvent(i: number, patients: number): NativeEvent {
  return {
    recorded: new Date(Date.UTC(2026, 0, 1) + i * 37).toISOString(),
    action: "R",
    type: {
      system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
      code: "rest",
      display: "Restful Operation",
    },
    subtype: [{ system: "http://hl7.org/fhir/restful-interaction", code: "read", display: "read" }],
    outcome: 0,
    purposeOfUse: ["TREAT"],
    breakGlass: false,
    agents: [
      {
        who: {
          system: "urn:oid:1.2.840.114350",
          value: `clinician-${i % 5000}`,
          display: `Dr. Clinician ${i % 5000}`,
        },
        organization: "Organization/hospital-a",
        requestor: true,
        network: { address: "10.1.2.3", type: "2" },
      },
    ],
    source: {
      organization: "Organization/hospital-a",
      observer: "Device/ehr-1",
      site: "Main campus",
    },
    patient: { system: "urn:oid:2.16.840.1.113883.4.1", value: `MRN-${i % patients}` },
    entities: [{ what: `Observation/${i}` }],
  } as NativeEvent;
}

function cpuMicros(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

/**
 * CPU time per event (all threads of the process, LevelDB's included). On a shared machine
 * wall-clock rates move with the neighbours' load; CPU per event moves much less, so it is
 * the number to compare between runs.
 */
function cpuRow(name: string, microsPerEvent: number): BenchRow {
  return { name, value: microsPerEvent, unit: "µs" };
}

async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `veritrail-bench-${label}-`));
}

const signer = new Wallet("0x" + "42".repeat(32));

/**
 * A ledger opened as the service opens it (index updates in the sealing worker, its memory
 * bounds from the config defaults, default backpressure), with the bench's signer and batches
 * of 10,000 events unless told otherwise.
 */
export async function openBenchLedger(
  location: string,
  opts: { batchMaxEvents?: number } = {},
): Promise<Ledger> {
  const defaults = loadConfig({});
  return Ledger.open({
    location,
    receiptSigner: signer,
    batchMaxEvents: opts.batchMaxEvents ?? 10_000,
    batchMaxWaitMs: 1_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
    sealWorker: true,
    indexNodeCacheMax: defaults.INDEX_NODE_CACHE_MAX,
    sealWorkerHeapMb: defaults.SEAL_WORKER_HEAP_MB,
    store: {
      tableFileBytes: defaults.STORE_TABLE_FILE_MB * 1024 * 1024,
      batchCacheRecords: defaults.BATCH_CACHE_RECORDS,
    },
  });
}

/**
 * `ledger.ingest` as a well-behaved client calls it: refused at the backlog bound, it waits as
 * told and tries again (the wait counts in the caller's time, as it would in production).
 */
export async function ingestHonouringBackpressure(
  ledger: Ledger,
  events: NativeEvent[],
): Promise<{ refusals: number }> {
  let refusals = 0;
  for (;;) {
    try {
      await ledger.ingest(events);
      return { refusals };
    } catch (error) {
      if (!(error instanceof IngestOverloadedError)) throw error;
      refusals++;
      await new Promise((r) => setTimeout(r, error.retryAfterMs));
    }
  }
}

/** Raw synced LevelDB batches of `perBatch` puts of entry-sized values: the disk's ceiling. */
async function rawLevelSyncedBatches(total: number, perBatch: number): Promise<number> {
  const dir = await tempDir("raw");
  const db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: "buffer" });
  await db.open();
  const value = randomBytes(600);
  const t0 = performance.now();
  for (let done = 0; done < total; done += perBatch) {
    const ops = [];
    for (let j = 0; j < perBatch; j++)
      ops.push({
        type: "put" as const,
        key: `e:${(done + j).toString(16).padStart(12, "0")}`,
        value,
      });
    await db.batch(ops, { sync: true });
  }
  const rate = total / ((performance.now() - t0) / 1000);
  await db.close();
  await rm(dir, { recursive: true, force: true });
  return rate;
}

/**
 * The floor under any design of this ledger: only the work DESIGN.md fixes per event (JCS of
 * the event, a fresh salt, the salted commitment, the subject tag HMAC, the entry's JCS and its
 * RFC 9162 leaf hash) and one synced put per event holding entry and body, in calls of
 * `perBatch`. No indexes, no receipts, no sealing, no completeness index: a ledger that does
 * all of those cannot ingest faster than this on the same machine.
 */
export async function ingestFloor(total: number, perBatch: number): Promise<number> {
  const dir = await tempDir("floor");
  const db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: "buffer" });
  await db.open();
  const logId = toHex(randomBytes(32));
  const secret = randomBytes(32);
  let ms = 0;
  for (let done = 0; done < total; done += perBatch) {
    const n = Math.min(perBatch, total - done);
    const events = Array.from({ length: n }, (_, j) => benchEvent(done + j, 100_000));
    const t0 = performance.now();
    const salts = randomBytes(SALT_BYTES * n);
    const ops = events.map((event, j) => {
      const seq = done + j;
      const salt = salts.subarray(j * SALT_BYTES, (j + 1) * SALT_BYTES);
      const eventJcs = jcs(event);
      // Entry v2: a field salt and digest per redactable (staff identity) value.
      const fieldSalts: FieldSalts = {};
      for (const { pointer } of redactableValues(event))
        fieldSalts[pointer] = toHex(randomBytes(FIELD_SALT_BYTES));
      const entryJcs = encodeEntry({
        v: ENTRY_VERSION,
        log: logId,
        seq,
        recorded: event.recorded,
        commitment: commitmentOfCanonical(salt, jcs(committedForm(event, fieldSalts))),
        subject: event.patient ? subjectTag(secret, event.patient, "jcs") : null,
      });
      const entryBytes = Buffer.from(entryJcs, "utf8");
      leafHash(entryBytes);
      return {
        type: "put" as const,
        key: `e:${seq.toString(16).padStart(12, "0")}`,
        value: Buffer.from(`${entryJcs}\n{"event":${eventJcs},"salt":"${toHex(salt)}"}`, "utf8"),
      };
    });
    await db.batch(ops, { sync: true });
    ms += performance.now() - t0;
  }
  await db.close();
  await rm(dir, { recursive: true, force: true });
  return total / (ms / 1000);
}

/** The naive design: one synced put per event, callers serialised on the disk. */
async function rawLevelOneFsyncPerEvent(
  total: number,
  concurrency: number,
): Promise<{ rate: number; p50: number; p99: number }> {
  const dir = await tempDir("naive");
  const db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: "buffer" });
  await db.open();
  const value = randomBytes(600);
  let next = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const seq = next++;
        const s = performance.now();
        await db.put(`e:${seq.toString(16).padStart(12, "0")}`, value, { sync: true });
        latencies.push(performance.now() - s);
      }
    }),
  );
  const rate = total / ((performance.now() - t0) / 1000);
  await db.close();
  await rm(dir, { recursive: true, force: true });
  return { rate, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

export async function benchBulkIngest(opts: {
  total: number;
  perCall: number;
}): Promise<BenchRow[]> {
  const baseline = await rawLevelSyncedBatches(opts.total, opts.perCall);
  const floor = await ingestFloor(opts.total, opts.perCall);
  const dir = await tempDir("bulk");
  const ledger = await openBenchLedger(dir);
  // Each call's events are made just before the call and only the call is timed: a server
  // holds one request's events at a time, not the whole run's (100k+ live objects would slow
  // every GC of the ingest being measured).
  let ms = 0;
  let cpu = 0;
  let refusals = 0;
  for (let i = 0; i < opts.total; i += opts.perCall) {
    const events = Array.from({ length: Math.min(opts.perCall, opts.total - i) }, (_, j) =>
      benchEvent(i + j, 100_000),
    );
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    refusals += (await ingestHonouringBackpressure(ledger, events)).refusals;
    ms += performance.now() - t0;
    cpu += cpuMicros(process.cpuUsage(cpu0));
  }
  const rate = opts.total / (ms / 1000);
  const cpuPerEvent = cpu / opts.total;
  await ledger.close();
  await rm(dir, { recursive: true, force: true });
  return [
    {
      name: `bulk ingest, ${opts.perCall}/call, durable (in-process)`,
      value: rate,
      unit: "events/s",
      baselineName: `raw LevelDB synced batches of ${opts.perCall}`,
      baseline,
      // Its target, a ratio to the floor row below, is set by run.ts once both are measured.
      ...(refusals > 0 ? { note: `${refusals} calls waited out backpressure` } : {}),
    },
    {
      name: `floor: the per-event hashing DESIGN.md fixes + 1 synced put per event, ${opts.perCall}/call (no indexes, receipts or sealing)`,
      value: floor,
      unit: "events/s",
      baselineName: `raw LevelDB synced batches of ${opts.perCall}`,
      baseline,
    },
    cpuRow(`bulk ingest, ${opts.perCall}/call: process CPU per event`, cpuPerEvent),
  ];
}

export async function benchConcurrentSingles(opts: {
  total: number;
  concurrency: number;
}): Promise<BenchRow[]> {
  const naive = await rawLevelOneFsyncPerEvent(Math.min(opts.total, 5_000), opts.concurrency);
  const dir = await tempDir("single");
  const ledger = await openBenchLedger(dir);
  let next = 0;
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < opts.total) {
        const event = benchEvent(next++, 100_000);
        const s = performance.now();
        await ingestHonouringBackpressure(ledger, [event]);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const rate = opts.total / ((performance.now() - t0) / 1000);
  const cpuPerEvent = cpuMicros(process.cpuUsage(cpu0)) / opts.total;
  await ledger.close();
  await rm(dir, { recursive: true, force: true });
  return [
    {
      name: `single-event calls, ${opts.concurrency} concurrent, durable (in-process)`,
      value: rate,
      unit: "events/s",
      baselineName: "naive one fsync per event",
      baseline: naive.rate,
      target: { op: ">=", value: 5_000 },
    },
    {
      name: `single-event latency p99, ${opts.concurrency} concurrent (in-process)`,
      value: percentile(latencies, 99),
      unit: "ms",
      baselineName: "naive one fsync per event p99",
      baseline: naive.p99,
    },
    cpuRow(
      `single-event calls, ${opts.concurrency} concurrent: process CPU per event`,
      cpuPerEvent,
    ),
  ];
}

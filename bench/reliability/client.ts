/**
 * What a writer and an auditor do over HTTP during the reliability scenarios: create a writer
 * key, post events concurrently while keeping every acknowledged receipt, and later check that
 * each acknowledged event is still there, unchanged, anchored and provable against the chain.
 */
import { type TrustPolicy, parseTrustPolicy } from "../../services/core/trust-policy.ts";
import { JsonRpcProvider } from "ethers";
import { EntrySchema, entryLeafHash } from "../../services/core/entry.ts";
import type { Entry } from "../../services/core/entry.ts";
import type { NativeEvent } from "../../services/core/event.ts";
import { toHex } from "../../services/core/hex.ts";
import { auditLog } from "../../services/ledger/audit.ts";
import { LedgerStore } from "../../services/store/ledger-store.ts";
import { ChainReads } from "../../services/verifier/chain-reads.ts";
import { connectRpc } from "../../services/verifier/rpc.ts";
import { newSession } from "../../services/verifier/verify-bundle.ts";
import { verifyBundles } from "../../services/verifier/verify-bundles.ts";
import { makeNativeEvent } from "../../test/fixtures/events.ts";
import { sleep } from "./service-process.ts";

export const WRITER_ORG = "org:st-mary-general";

/** The answer of a log whose backlog is at its bound (services/ledger/ingest-gate.ts). */
const OVERLOADED = "503 OVERLOADED";

export interface AckedReceipt {
  seq: number;
  leafHash: string;
  log: string;
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
  text: string;
  /** The Retry-After header, when the answer has one. */
  retryAfter?: string;
}

/** One HTTP call with a timeout; the body is parsed as JSON when it is JSON. */
export async function call<T = unknown>(
  base: string,
  key: string | undefined,
  method: string,
  route: string,
  body?: unknown,
  timeoutMs = 15_000,
): Promise<HttpAnswer<T>> {
  const response = await fetch(base + route, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const retryAfter = response.headers.get("retry-after");
  return {
    status: response.status,
    body: parsed as T,
    text,
    ...(retryAfter !== null ? { retryAfter } : {}),
  };
}

export async function createKey(
  base: string,
  adminKey: string,
  body: Record<string, string>,
): Promise<string> {
  const created = await call<{ secret: string }>(base, adminKey, "POST", "/v1/keys", body);
  if (created.status !== 201) throw new Error(`key creation: ${created.status} ${created.text}`);
  return created.body.secret;
}

export function writerEvent(requestId: string, patient?: { system: string; value: string }) {
  const e: NativeEvent = makeNativeEvent({ requestId, ...(patient ? { patient } : {}) });
  return { ...e, source: { ...e.source, organization: WRITER_ORG } };
}

interface ReceiptsAnswer {
  receipts: Array<{ receipt: AckedReceipt }>;
}

/**
 * Writers posting single events (and now and then a small array) as fast as the service takes
 * them, each with a unique requestId, until `stop` (or `maxMs`/`maxEvents`, whichever first).
 * Only answers that arrived as 201 count as acknowledged; a refused or cut connection does not.
 */
export class Load {
  readonly acked: AckedReceipt[] = [];
  readonly statuses = new Map<number, number>();
  /** Error codes of answers other than 201 (`error.code` of the body), counted. */
  readonly errorCodes = new Map<string, number>();
  errors = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  private serial = 0;

  constructor(
    private readonly base: () => string,
    private readonly writerKey: string,
    opts: {
      concurrency: number;
      maxMs: number;
      maxEvents: number;
      runId: string;
      patient?: (i: number) => { system: string; value: string };
    },
  ) {
    const deadline = Date.now() + opts.maxMs;
    const worker = async (): Promise<void> => {
      while (!this.stopped && Date.now() < deadline && this.serial < opts.maxEvents) {
        const n = this.serial;
        const size = n % 10 === 9 ? 5 : 1;
        this.serial += size;
        const events = Array.from({ length: size }, (_, j) =>
          writerEvent(`${opts.runId}-${n + j}`, opts.patient?.(n + j)),
        );
        try {
          const answer = await call<ReceiptsAnswer>(
            this.base(),
            this.writerKey,
            "POST",
            "/v1/events",
            size === 1 ? events[0] : events,
            10_000,
          );
          this.statuses.set(answer.status, (this.statuses.get(answer.status) ?? 0) + 1);
          if (answer.status !== 201) {
            const code = (answer.body as { error?: { code?: string } } | undefined)?.error?.code;
            const label = `${answer.status} ${code ?? "?"}`;
            this.errorCodes.set(label, (this.errorCodes.get(label) ?? 0) + 1);
            // Backpressure: a client waits as long as Retry-After says (bounded here, so that
            // a stuck run stays finite) before it sends again.
            if (label === OVERLOADED)
              await sleep(Math.min(5_000, 1_000 * (Number(answer.retryAfter) || 1)));
          }
          // Only what the checks need: a full receipt with its group path is ≈ 1 KB, and a
          // long outage acknowledges hundreds of thousands.
          if (answer.status === 201)
            for (const { receipt: r } of answer.body.receipts)
              this.acked.push({ seq: r.seq, leafHash: r.leafHash, log: r.log });
        } catch {
          this.errors++;
          await sleep(50);
        }
      }
    };
    this.done = Promise.all(Array.from({ length: opts.concurrency }, worker)).then(() => undefined);
  }

  count(status: number): number {
    return this.statuses.get(status) ?? 0;
  }

  /**
   * Requests answered with a status of at least 500, except 503 OVERLOADED: that is the log's
   * backpressure (it answers with Retry-After and stores nothing), counted by `overloaded`.
   */
  get serverErrors(): number {
    let n = 0;
    for (const [status, count] of this.statuses) if (status >= 500) n += count;
    return n - this.overloaded;
  }

  /** Requests answered 503 OVERLOADED (the backlog at its bound; nothing stored). */
  get overloaded(): number {
    return this.errorCodes.get(OVERLOADED) ?? 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  finished(): Promise<void> {
    return this.done;
  }
}

/**
 * The highest acknowledged seq, or -1 for none. A loop, not `Math.max(...seqs)`: spreading an
 * array passes every element as an argument, and a few hundred thousand receipts (a 5-minute
 * outage under load) overflow the call stack.
 */
export function lastSeq(acked: readonly AckedReceipt[]): number {
  let last = -1;
  for (const r of acked) if (r.seq > last) last = r.seq;
  return last;
}

export interface AckedCheck {
  checked: number;
  missing: number[];
  changed: number[];
  unproven: Array<{ seq: number; why: string }>;
}

/** Bundles fetched and verified at a time. */
const CHECK_SLICE = 5_000;

interface ProofAnswer {
  status: string;
  entry: unknown;
  receipt: { leafHash: string };
}

/**
 * Every acknowledged receipt: the event is served, its bundle's entry hashes to the receipt's
 * leafHash, and (waiting up to `anchorTimeoutMs` for the anchor loop) the bundle verifies
 * against the chain with the standalone verifier.
 */
/**
 * The service's own trust policy (/.well-known/veritrail-trust.json). These scenarios test that
 * acknowledged events survive, not whom to trust, so the service's self-description will do.
 */
export async function servicePolicy(base: string): Promise<TrustPolicy> {
  const response = await fetch(`${base}/.well-known/veritrail-trust.json`);
  if (response.status !== 200)
    throw new Error(`${base} serves no trust policy yet (HTTP ${response.status})`);
  return parseTrustPolicy(await response.json());
}

export async function checkAcknowledged(
  base: string,
  key: string,
  rpcUrl: string,
  acked: readonly AckedReceipt[],
  opts: {
    anchorTimeoutMs: number;
    confirmations?: number;
    onProgress?: (checked: number, total: number) => void;
  },
): Promise<AckedCheck> {
  const result: AckedCheck = { checked: 0, missing: [], changed: [], unproven: [] };
  if (acked.length === 0) return result;
  const last = lastSeq(acked);
  // Anchoring is in batch order: once the last acknowledged seq is anchored, all are.
  const deadline = Date.now() + opts.anchorTimeoutMs;
  for (;;) {
    const answer = await call<ProofAnswer>(base, key, "GET", `/v1/events/${last}/proof`).catch(
      () => undefined,
    );
    if (answer?.status === 200 && answer.body.status === "anchored") break;
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
  // One session for all slices: chain reads cached per batch, signatures per receipt group.
  const session = newSession(provider);
  try {
    const trust = await servicePolicy(base);
    // In slices: a bundle is a few KB parsed, and all of a long outage's would not fit the heap.
    for (let from = 0; from < acked.length; from += CHECK_SLICE) {
      const bundles: Array<{ seq: number; bundle: unknown }> = [];
      const queue = acked.slice(from, from + CHECK_SLICE).reverse();
      const fetchOne = async (): Promise<void> => {
        for (let r = queue.pop(); r !== undefined; r = queue.pop()) {
          const answer = await call<ProofAnswer>(base, key, "GET", `/v1/events/${r.seq}/proof`);
          result.checked++;
          if (answer.status !== 200) {
            result.missing.push(r.seq);
            continue;
          }
          const entry = EntrySchema.safeParse(answer.body.entry);
          if (
            !entry.success ||
            // The schema checked the hex fields; its inferred type only lacks the template-literal brand.
            toHex(entryLeafHash(entry.data as Entry)) !== r.leafHash ||
            answer.body.receipt.leafHash !== r.leafHash
          ) {
            result.changed.push(r.seq);
            continue;
          }
          bundles.push({ seq: r.seq, bundle: answer.body });
        }
      };
      await Promise.all(Array.from({ length: 8 }, fetchOne));
      const verdicts = await verifyBundles(
        bundles.map((b) => b.bundle),
        provider,
        { trust, confirmations: opts.confirmations ?? 1, concurrency: 16, session },
      );
      verdicts.forEach((v, i) => {
        if (!v.ok) result.unproven.push({ seq: bundles[i]!.seq, why: v.code ?? v.status });
      });
      opts.onProgress?.(Math.min(acked.length, from + CHECK_SLICE), acked.length);
    }
  } finally {
    provider.destroy();
  }
  result.missing.sort((a, b) => a - b);
  result.changed.sort((a, b) => a - b);
  return result;
}

export function describeCheck(c: AckedCheck): string {
  const parts = [`${c.checked} checked`];
  if (c.missing.length) parts.push(`missing ${c.missing.slice(0, 5).join(",")}`);
  if (c.changed.length) parts.push(`changed ${c.changed.slice(0, 5).join(",")}`);
  if (c.unproven.length)
    parts.push(
      `unproven ${c.unproven
        .slice(0, 5)
        .map((u) => `${u.seq}:${u.why}`)
        .join(",")}`,
    );
  return parts.join("; ");
}

export function checkPassed(c: AckedCheck): boolean {
  return c.missing.length === 0 && c.changed.length === 0 && c.unproven.length === 0;
}

/** At most `max` items spread evenly over `items`, in order. */
export function sampleOf<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return [...items];
  const step = (items.length - 1) / (max - 1);
  // The first and the last always: waiting for the last one's anchor waits for all.
  return Array.from({ length: max }, (_, i) => items[Math.round(i * step)]!);
}

export interface StoredCheck {
  checked: number;
  missing: number[];
  changed: number[];
  auditFindings: string[];
  events: number;
  batches: number;
  anchoredBatches: number;
}

/**
 * The whole log of a stopped service, checked in-process: every acknowledged receipt's seq holds
 * an entry whose leaf hash is the receipt's, and the regulator's audit against the chain
 * (services/ledger/audit.ts: every leaf, root and completeness index recomputed, every header
 * compared with the registry) finds nothing. Together: every acknowledged event is in a batch
 * the chain holds. For hundreds of thousands of events this takes seconds, where fetching and
 * verifying every bundle over HTTP takes many minutes on a shared 2-core machine.
 */
export async function checkAcknowledgedStored(
  ledgerDir: string,
  rpcUrl: string,
  acked: readonly AckedReceipt[],
): Promise<StoredCheck> {
  const store = await LedgerStore.open(ledgerDir);
  const rpc = await connectRpc(rpcUrl, { timeoutMs: 15_000 });
  try {
    const result: StoredCheck = {
      checked: 0,
      missing: [],
      changed: [],
      auditFindings: [],
      events: 0,
      batches: 0,
      anchoredBatches: 0,
    };
    for (let from = 0; from < acked.length; from += CHECK_SLICE) {
      const slice = acked.slice(from, from + CHECK_SLICE);
      const entries = await store.getEntriesJcs(slice.map((r) => r.seq));
      slice.forEach((r, i) => {
        result.checked++;
        const jcs = entries[i];
        if (jcs === undefined) result.missing.push(r.seq);
        else if (toHex(entryLeafHash(JSON.parse(jcs) as Entry)) !== r.leafHash)
          result.changed.push(r.seq);
      });
    }
    const report = await auditLog(store, { chain: { reads: new ChainReads(rpc) } });
    result.auditFindings = report.findings.map((f) => `${f.kind}: ${f.message}`);
    result.events = report.events;
    result.batches = report.batches;
    result.anchoredBatches = report.chain?.anchoredBatches ?? 0;
    if (!report.chain) result.auditFindings.push("the audit could not compare with the chain");
    return result;
  } finally {
    rpc.destroy();
    await store.close();
  }
}

export function describeStoredCheck(c: StoredCheck): string {
  const parts = [
    `${c.checked} receipts checked against the stored entries`,
    `audit against the chain: ${c.events} events, ${c.batches} batches, ${c.anchoredBatches} anchored, ${c.auditFindings.length} findings`,
  ];
  if (c.missing.length) parts.push(`missing ${c.missing.slice(0, 5).join(",")}`);
  if (c.changed.length) parts.push(`changed ${c.changed.slice(0, 5).join(",")}`);
  if (c.auditFindings.length) parts.push(c.auditFindings.slice(0, 2).join("; "));
  return parts.join("; ");
}

export function storedCheckPassed(c: StoredCheck): boolean {
  return (
    c.missing.length === 0 &&
    c.changed.length === 0 &&
    c.auditFindings.length === 0 &&
    c.anchoredBatches === c.batches
  );
}

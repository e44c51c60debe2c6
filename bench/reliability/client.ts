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
import { verifyBundles } from "../../services/verifier/verify-bundles.ts";
import { makeNativeEvent } from "../../test/fixtures/events.ts";
import { sleep } from "./service-process.ts";

export const WRITER_ORG = "org:st-mary-general";

export interface AckedReceipt {
  seq: number;
  leafHash: string;
  log: string;
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
  text: string;
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
  return { status: response.status, body: parsed as T, text };
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
          if (answer.status === 201)
            for (const r of answer.body.receipts) this.acked.push(r.receipt);
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

  /** Requests answered with a status of at least 500. */
  get serverErrors(): number {
    let n = 0;
    for (const [status, count] of this.statuses) if (status >= 500) n += count;
    return n;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  finished(): Promise<void> {
    return this.done;
  }
}

export interface AckedCheck {
  checked: number;
  missing: number[];
  changed: number[];
  unproven: Array<{ seq: number; why: string }>;
}

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
  opts: { anchorTimeoutMs: number; confirmations?: number },
): Promise<AckedCheck> {
  const result: AckedCheck = { checked: 0, missing: [], changed: [], unproven: [] };
  if (acked.length === 0) return result;
  const last = Math.max(...acked.map((r) => r.seq));
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
  try {
    const bundles: Array<{ seq: number; bundle: unknown }> = [];
    const queue = [...acked];
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
      { trust: await servicePolicy(base), confirmations: opts.confirmations ?? 1, concurrency: 16 },
    );
    verdicts.forEach((v, i) => {
      if (!v.ok) result.unproven.push({ seq: bundles[i]!.seq, why: v.code ?? v.status });
    });
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

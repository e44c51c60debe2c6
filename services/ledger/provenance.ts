import { type Bundle, BundleSchema } from "../core/bundle.ts";
import { PURPOSE_OF_USE_CODES, SYSTEM, displayOf } from "../core/codes.ts";
import { type NativeEvent, parseNativeEvent } from "../core/event.ts";
import type { StoredEvent } from "./ledger.ts";
import {
  EXPORT_TYPE_CODE,
  IMPORT_TYPE_CODE,
  type TransferRecord,
  type UnmatchedReason,
  matchTransfers,
  transferOf,
} from "../core/transfer.ts";
import { invariant } from "./errors.ts";
import type { EventQueries } from "./queries.ts";

/**
 * Transfers and provenance across institutions. A transfer is an Export (DCM 110106, BALP
 * PrivacyDisclosure.Source) in the sender's log and an Import (DCM 110107, PrivacyDisclosure
 * .Recipient) in the recipient's log that carry the same `transfer.reference` and
 * `transfer.dataHash`. Each log anchors into the same registry, so every hop can be checked
 * with `verifyBundle` on its own, against the chain, without trusting either institution.
 *
 * An export with no matching import (sent, never acknowledged as received) and an import that
 * matches no export (unknown reference, a data hash that differs from the export's, or a
 * receiver other than the export's recipient) are listed, not silently dropped.
 */

/** One log that can be searched for transfers: a local ledger, or a client of a remote API. */
export interface TransferLog {
  /** A name for reports (e.g. the institution); the log id comes from the bundles. */
  name: string;
  /** Every Export and Import event of the log that carries `transfer`. */
  transferEvents(): AsyncIterable<{ seq: number; event: NativeEvent }>;
  prove(seq: number): Promise<Bundle>;
}

const EXPORT = EXPORT_TYPE_CODE;
const IMPORT = IMPORT_TYPE_CODE;
const PAGE = 1_000;

/** A TransferLog over a local ledger (its Export/Import events through the query index). */
export function ledgerTransferLog(
  name: string,
  ledger: { prove(seq: number): Promise<Bundle> },
  queries: EventQueries,
): TransferLog {
  return {
    name,
    prove: (seq) => ledger.prove(seq),
    async *transferEvents() {
      for (const code of [EXPORT, IMPORT]) {
        let cursor: string | undefined;
        for (;;) {
          const page = await queries.listEvents(
            { type: code },
            cursor === undefined ? { limit: PAGE } : { cursor, limit: PAGE },
          );
          for (const stored of page.events) if (isTransfer(stored)) yield stored;
          if (page.nextCursor === null) break;
          cursor = page.nextCursor;
        }
      }
    },
  };
}

/** How much of a peer's answers a trace reads, and for how long (config PEER_*). */
export interface PeerLimits {
  /** Per request: a peer that accepts the connection and never answers must not hang a trace. */
  timeoutMs?: number;
  /** Per answer, in bytes: a peer answering without end must not fill the memory. */
  maxResponseBytes?: number;
  /** For everything read from this peer in one trace (every page of its transfer events). */
  totalTimeoutMs?: number;
}

/** Events per page asked of a peer: at ≤ 32 KiB each, a page stays well under 16 MiB. */
const PEER_PAGE = 200;
/** Same-origin redirects followed per request (a peer behind a path-rewriting proxy). */
const MAX_PEER_REDIRECTS = 3;

function urlOrUndefined(location: string, base: URL): URL | undefined {
  try {
    return new URL(location, base);
  } catch {
    return undefined;
  }
}

/** The body of `res` as text, refusing more than `maxBytes` (read as it arrives, then cut). */
async function boundedText(res: Response, maxBytes: number, what: string): Promise<string> {
  const tooBig = () => new Error(`${what}: the answer is over ${maxBytes} bytes`);
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw tooBig();
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooBig();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A TransferLog over another institution's Veritrail API (an auditor key of that API). What the
 * API returns is not trusted: events are parsed with the native schema and bundles with the
 * bundle schema here, and every bundle is meant to be checked with `verifyBundle` afterwards.
 * Answers are bounded in size and time (PeerLimits), and redirects are followed only within the
 * peer's origin: the auditor key is never sent to, and no answer read from, another origin.
 */
export function apiTransferLog(
  name: string,
  baseUrl: string,
  auditorKey: string,
  opts: PeerLimits = {},
): TransferLog {
  const maxBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
  // Started when the log is made: one trace makes one TransferLog per peer.
  const deadline =
    opts.totalTimeoutMs !== undefined ? AbortSignal.timeout(opts.totalTimeoutMs) : undefined;
  const get = async (route: string): Promise<unknown> => {
    const what = `${name}: GET ${route.split("?")[0]}`;
    let url = new URL(route, baseUrl);
    const origin = url.origin;
    for (let redirects = 0; ; redirects++) {
      const signals = [
        ...(opts.timeoutMs !== undefined ? [AbortSignal.timeout(opts.timeoutMs)] : []),
        ...(deadline ? [deadline] : []),
      ];
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${auditorKey}` },
        redirect: "manual",
        ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}),
      });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        const location = res.headers.get("location");
        const next = location === null ? undefined : urlOrUndefined(location, url);
        if (!next) throw new Error(`${what} answered ${res.status} without a usable Location`);
        if (next.origin !== origin)
          throw new Error(`${what} redirected to another origin (${next.origin}); not followed`);
        if (redirects >= MAX_PEER_REDIRECTS)
          throw new Error(`${what} redirected more than ${MAX_PEER_REDIRECTS} times`);
        url = next;
        continue;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`${what} answered ${res.status}`);
      }
      const text = await boundedText(res, maxBytes, what);
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new Error(`${what}: the answer is not JSON`);
      }
    }
  };
  return {
    name,
    async prove(seq) {
      const raw = await get(`/v1/events/${seq}/proof`);
      if (!BundleSchema.safeParse(raw).success)
        throw new Error(`${name}: the proof of seq ${seq} is not a bundle`);
      // Passed on as the peer wrote it (its extensions and erasure record included): the
      // verifier that checks the trace parses it again and trusts none of it.
      return raw as Bundle;
    },
    async *transferEvents() {
      for (const code of [EXPORT, IMPORT]) {
        let cursor: string | null = null;
        do {
          const query = new URLSearchParams({ type: code, limit: String(PEER_PAGE) });
          if (cursor !== null) query.set("cursor", cursor);
          const page = (await get(`/v1/events?${query.toString()}`)) as {
            events?: Array<{ seq?: unknown; event?: unknown }>;
            nextCursor?: unknown;
          };
          for (const item of page.events ?? []) {
            if (item.event === null || !Number.isSafeInteger(item.seq)) continue;
            const parsed = parseNativeEvent(item.event);
            if (!parsed.ok) throw new Error(`${name}: event ${String(item.seq)} is not valid`);
            if (parsed.value.transfer !== undefined && parsed.value.type.system === SYSTEM.dcm)
              yield { seq: item.seq as number, event: parsed.value };
          }
          cursor = typeof page.nextCursor === "string" ? page.nextCursor : null;
        } while (cursor !== null);
      }
    },
  };
}

function isTransfer(s: StoredEvent): s is StoredEvent & { event: NativeEvent } {
  return s.event !== null && s.event.transfer !== undefined && s.event.type.system === SYSTEM.dcm;
}

/** One side of a transfer, with the bundle that proves it. */
export interface TransferSide {
  log: string;
  logId: string;
  seq: number;
  organization: string;
  recorded: string;
  bundle: Bundle;
}

/**
 * A side of a hop the caller may not see (services/ledger/access.ts): the hop exists, nothing
 * of the other organization's event is shown.
 */
export interface WithheldSide {
  withheld: true;
}

export const WITHHELD_SIDE: WithheldSide = Object.freeze({ withheld: true });

export function isWithheld(side: TransferSide | WithheldSide): side is WithheldSide {
  return "withheld" in side;
}

export interface TransferHop {
  reference: string;
  dataHash: string;
  from: TransferSide;
  to: TransferSide;
}

/** A hop as a caller is shown it: a side it may not see is withheld. */
export interface ScopedHop {
  reference: string;
  dataHash: string;
  from: TransferSide | WithheldSide;
  to: TransferSide | WithheldSide;
}

export type { UnmatchedReason };

export interface UnmatchedTransfer {
  kind: "export" | "import";
  reason: UnmatchedReason;
  reference: string;
  dataHash: string;
  /** An export's intended recipient organization, when the export names one. */
  recipient?: string;
  side: TransferSide;
}

export interface ProvenanceTrace {
  /** The data item traced (its hash), or null for every transfer of the logs. */
  dataHash: string | null;
  /** The transfer reference the data item was looked up by, or null. */
  reference: string | null;
  /** Matched hops in the order the exports were recorded: the chain of custody. */
  hops: TransferHop[];
  /** Organizations in custody order (the first sender, then each recipient). */
  custody: string[];
  unmatched: UnmatchedTransfer[];
}

/** A trace as a caller is shown it (services/ledger/access.ts). */
export type ScopedTrace = Omit<ProvenanceTrace, "hops"> & { hops: ScopedHop[] };

interface Found {
  log: TransferLog;
  seq: number;
  event: NativeEvent & { transfer: NonNullable<NativeEvent["transfer"]> };
}

async function side(f: Found): Promise<TransferSide> {
  const bundle = await f.log.prove(f.seq);
  return {
    log: f.log.name,
    logId: bundle.entry.log,
    seq: f.seq,
    organization: f.event.source.organization,
    recorded: f.event.recorded,
    bundle,
  };
}

/**
 * Follows a data item across the logs: matches each import to the export with the same
 * reference and data hash whose recipient is the importing organization, and lists what does
 * not match. An import that reuses an export's reference with another data hash is a
 * DATA_HASH_MISMATCH (it claims to be that transfer but received other bytes); it is listed when
 * tracing either hash.
 *
 * The item is named by `dataHash`, or by a `reference` of one of its transfers (the item is then
 * the data hash of the export(s) with that reference, else of the import(s) with it: an import
 * nobody exported is still traced, so it shows up as unmatched). With neither, every transfer of
 * the logs is reported. With both, `dataHash` names the item.
 */
export async function traceProvenance(
  logs: TransferLog[],
  opts: { dataHash?: string; reference?: string } = {},
): Promise<ProvenanceTrace> {
  const exports: Found[] = [];
  const imports: Found[] = [];
  for (const log of logs) {
    for await (const { seq, event } of log.transferEvents()) {
      if (event.transfer === undefined) continue;
      const found = { log, seq, event: event as Found["event"] };
      (event.type.code === EXPORT ? exports : imports).push(found);
    }
  }
  let wanted: Set<string> | undefined;
  if (opts.dataHash !== undefined) wanted = new Set([opts.dataHash]);
  else if (opts.reference !== undefined) {
    const byRef = (list: Found[]) =>
      list
        .filter((f) => f.event.transfer.reference === opts.reference)
        .map((f) => f.event.transfer.dataHash);
    const fromExports = byRef(exports);
    wanted = new Set(fromExports.length > 0 ? fromExports : byRef(imports));
  }
  const exportRefs = new Set(
    exports.filter((e) => wanted === undefined || wanted.has(e.event.transfer.dataHash)),
  );
  const refsOfItem = new Set([...exportRefs].map((e) => e.event.transfer.reference));
  const relevantImports = imports.filter(
    (i) =>
      wanted === undefined ||
      wanted.has(i.event.transfer.dataHash) ||
      refsOfItem.has(i.event.transfer.reference),
  );

  const record = (f: Found): TransferRecord<Found> => {
    const r = transferOf(f.event, f);
    invariant(r, `seq ${f.seq} of ${f.log.name} is not a transfer`);
    return r;
  };
  const { matched, unmatched: left } = matchTransfers(
    exports.map(record),
    relevantImports.map(record),
  );
  const hops: TransferHop[] = [];
  for (const m of matched)
    hops.push({
      reference: m.reference,
      dataHash: m.dataHash,
      from: await side(m.from),
      to: await side(m.to),
    });
  const unmatched: UnmatchedTransfer[] = [];
  for (const u of left) {
    // Exports of other data items are matched (an import may claim their reference) but only
    // the item's own are reported as not imported.
    if (u.kind === "export" && !exportRefs.has(u.side)) continue;
    unmatched.push({ ...u, side: await side(u.side) });
  }
  hops.sort((a, b) => a.from.recorded.localeCompare(b.from.recorded) || a.from.seq - b.from.seq);
  const dataHash = opts.dataHash ?? (wanted?.size === 1 ? [...wanted][0]! : null);
  return { dataHash, reference: opts.reference ?? null, hops, custody: custodyOf(hops), unmatched };
}

/** Organizations in custody order (the first sender, then each recipient); withheld sides name none. */
export function custodyOf(hops: readonly ScopedHop[]): string[] {
  const custody: string[] = [];
  for (const hop of hops) {
    if (!isWithheld(hop.from) && custody[custody.length - 1] !== hop.from.organization)
      custody.push(hop.from.organization);
    if (!isWithheld(hop.to)) custody.push(hop.to.organization);
  }
  return custody;
}

/** A log that could not be read (a peer API down, refusing the key, answering garbage). */
export interface UnreadableLog {
  log: string;
  message: string;
}

/**
 * Reads every log's transfer events once, in parallel, and hands back logs that replay them, so
 * a trace over several institutions still answers when one of them cannot be read: the caller
 * reports `unreadable` next to the trace (which is then incomplete) instead of failing.
 */
export async function readTransferLogs(
  logs: TransferLog[],
): Promise<{ logs: TransferLog[]; unreadable: UnreadableLog[] }> {
  const results = await Promise.all(
    logs.map(async (log) => {
      try {
        const events: Array<{ seq: number; event: NativeEvent }> = [];
        for await (const e of log.transferEvents()) events.push(e);
        const replay: TransferLog = {
          name: log.name,
          prove: (seq) => log.prove(seq),
          async *transferEvents() {
            yield* events;
          },
        };
        return { ok: true as const, log: replay };
      } catch (e) {
        return { ok: false as const, failure: { log: log.name, message: messageOf(e) } };
      }
    }),
  );
  return {
    logs: results.flatMap((r) => (r.ok ? [r.log] : [])),
    unreadable: results.flatMap((r) => (r.ok ? [] : [r.failure])),
  };
}

function messageOf(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === "TimeoutError") return `${e.message} (no answer in time)`;
  // fetch() says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND…) is in its cause.
  const cause: unknown = e.cause;
  const code =
    typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : "";
  return code ? `${e.message} (${code})` : e.message;
}

// ---- FHIR R4 Provenance ----------------------------------------------------------------------

export interface FhirProvenance {
  resourceType: "Provenance";
  id: string;
  target: Array<{ reference?: string; identifier?: { system: string; value: string } }>;
  /** From the export to the import; a withheld side's time is left out. */
  occurredPeriod: { start?: string; end?: string };
  recorded: string;
  activity: { coding: Array<{ system: string; code: string; display: string }> };
  agent: Array<{
    type: { coding: Array<{ system: string; code: string; display: string }> };
    who: { identifier: { system: string; value: string }; display: string };
  }>;
  /** Why the data was disclosed: the export's purposes of use (v3 ActReason), when recorded. */
  reason?: Array<{ coding: Array<{ system: string; code: string; display?: string }> }>;
  entity: Array<{
    role: "source";
    what: { identifier: { system: string; value: string } };
  }>;
  extension: Array<{ url: string; valueString: string }>;
}

export const TRANSFER_REFERENCE_SYSTEM = "urn:veritrail:transfer";
export const ORGANIZATION_SYSTEM = "urn:veritrail:organization";
export const PROOF_EXTENSION = "https://veritrail.dev/fhir/StructureDefinition/proof";

const orgRef = (organization: string) => ({
  identifier: { system: ORGANIZATION_SYSTEM, value: organization },
  display: organization,
});

/**
 * One FHIR R4 Provenance per hop: the transferred data (the export's data references, else the
 * transfer reference) is the target; the sender is the custodian that released it and the
 * recipient the custodian that received it; the proof of each side is named in an extension
 * (`log:seq`), so a reader can fetch and verify both bundles. A side withheld from the caller
 * (services/ledger/access.ts) contributes nothing: no custodian, time, purpose or proof.
 */
export function toFhirProvenance(hop: ScopedHop): FhirProvenance {
  const from = isWithheld(hop.from) ? undefined : hop.from;
  const to = isWithheld(hop.to) ? undefined : hop.to;
  const named = to ?? from;
  invariant(named !== undefined, "a hop shows at least one side");
  const exported = (from?.bundle.event ?? null) as NativeEvent | null;
  const whats = (exported?.entities ?? []).flatMap((e) => (e.what ? [e.what] : []));
  const custodian = (organization: string) => ({
    type: {
      coding: [
        { system: SYSTEM.provenanceParticipantType, code: "custodian", display: "Custodian" },
      ],
    },
    who: orgRef(organization),
  });
  const purposes = exported?.purposeOfUse ?? [];
  const visible = [from, to].flatMap((s) => (s === undefined ? [] : [s]));
  return {
    resourceType: "Provenance",
    id: `${named.logId.slice(2, 18)}-${named.seq}`,
    target:
      whats.length > 0
        ? whats.map((reference) => ({ reference }))
        : [{ identifier: { system: TRANSFER_REFERENCE_SYSTEM, value: hop.reference } }],
    occurredPeriod: {
      ...(from ? { start: from.recorded } : {}),
      ...(to ? { end: to.recorded } : {}),
    },
    recorded: named.recorded,
    activity: {
      coding: [
        {
          system: SYSTEM.iso21089Lifecycle,
          code: "disclose",
          display: "Disclose Record Lifecycle Event",
        },
      ],
    },
    agent: visible.map((s) => custodian(s.organization)),
    ...(purposes.length > 0
      ? {
          reason: purposes.map((code) => {
            const display = displayOf(PURPOSE_OF_USE_CODES, code);
            return {
              coding: [{ system: SYSTEM.actReason, code, ...(display ? { display } : {}) }],
            };
          }),
        }
      : {}),
    entity: [
      {
        role: "source",
        what: { identifier: { system: TRANSFER_REFERENCE_SYSTEM, value: hop.reference } },
      },
    ],
    extension: [
      ...visible.map((s) => ({ url: PROOF_EXTENSION, valueString: `${s.logId}:${s.seq}` })),
      { url: `${PROOF_EXTENSION}-data-hash`, valueString: hop.dataHash },
    ],
  };
}

/** Where an unmatched transfer's own reason is explained (codes of `UnmatchedReason`). */
export const UNMATCHED_CODE_SYSTEM = "https://veritrail.dev/fhir/CodeSystem/unmatched-transfer";

const UNMATCHED_TEXT: Record<UnmatchedReason, string> = {
  NOT_IMPORTED: "exported, no matching import was found in the logs searched",
  NO_SUCH_EXPORT: "imported, no export with this transfer reference was found",
  DATA_HASH_MISMATCH: "imported, but the data hash differs from the export with this reference",
  RECIPIENT_MISMATCH: "imported by an organization other than the export's recipient",
};

export interface FhirOperationOutcomeIssue {
  severity: "fatal" | "error" | "warning" | "information";
  code: string;
  details?: { coding: Array<{ system: string; code: string }>; text?: string };
  diagnostics?: string;
  expression?: string[];
}

/**
 * The trace as a FHIR R4 `collection` Bundle: one Provenance per matched hop, in custody order,
 * then (when any transfer is unmatched) one OperationOutcome with a warning per unmatched
 * export or import, naming its reason and the `log:seq` of its proof. FHIR JSON has no empty
 * arrays, so a trace with nothing in it is a Bundle without `entry`.
 */
export function toFhirProvenanceBundle(trace: ScopedTrace, now = new Date()) {
  const entry: Array<{ resource: FhirProvenance | Record<string, unknown> }> = trace.hops.map(
    (hop) => ({ resource: toFhirProvenance(hop) }),
  );
  if (trace.unmatched.length > 0) {
    const issue: FhirOperationOutcomeIssue[] = trace.unmatched.map((u) => ({
      severity: "warning",
      code:
        u.reason === "NOT_IMPORTED" || u.reason === "NO_SUCH_EXPORT"
          ? "not-found"
          : "business-rule",
      details: {
        coding: [{ system: UNMATCHED_CODE_SYSTEM, code: u.reason }],
        text: UNMATCHED_TEXT[u.reason],
      },
      diagnostics:
        `${u.kind} by ${u.side.organization} (${u.side.log} seq ${u.side.seq}, proof ` +
        `${u.side.logId}:${u.side.seq}): reference ${u.reference}, data hash ${u.dataHash}`,
    }));
    entry.push({ resource: { resourceType: "OperationOutcome", issue } });
  }
  return {
    resourceType: "Bundle" as const,
    type: "collection" as const,
    timestamp: now.toISOString(),
    ...(entry.length > 0 ? { entry } : {}),
  };
}

import type { Bundle } from "../core/bundle.ts";
import { SYSTEM } from "../core/codes.ts";
import type { NativeEvent } from "../core/event.ts";
import { type WithheldSide, custodyOf, isWithheld } from "../core/provenance-trace.ts";
import type { TransferLog } from "../core/transfer-log.ts";
import type { StoredEvent } from "./ledger.ts";
import {
  EXPORT_TYPE_CODE,
  IMPORT_TYPE_CODE,
  type TransferRecord,
  type UnmatchedReason,
  matchTransfers,
  transferOf,
} from "../core/transfer.ts";
import { LedgerError, invariant } from "./errors.ts";
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
      for (const code of [EXPORT_TYPE_CODE, IMPORT_TYPE_CODE]) {
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
export const WITHHELD_SIDE: WithheldSide = Object.freeze({ withheld: true });

export type { TransferLog, WithheldSide };
export { custodyOf, isWithheld };

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
      (event.type.code === EXPORT_TYPE_CODE ? exports : imports).push(found);
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

/** One log the trace searched: this service's own, or a peer's API, and whether it answered. */
export interface SearchedLog {
  name: string;
  peer: boolean;
  readable: boolean;
  error?: string;
}

/** GET /v1/provenance's answer: the trace as the caller may see it, and the logs searched. */
export type ProvenanceAnswer = ScopedTrace & {
  logs: SearchedLog[];
  /** False when a peer could not be read: hops through it may be missing or shown unmatched. */
  complete: boolean;
};

/**
 * The provenance use case: one data item's chain of custody across this log and the peer logs.
 * Every peer is read once, in parallel; a peer that cannot be read is named in `logs` and makes
 * the answer incomplete, while a peer whose proof cannot be fetched after its events were read
 * fails the whole answer (UNAVAILABLE, naming the peer). `scope` is what the caller may see of
 * the trace (services/ledger/access.ts).
 */
export async function traceAcrossLogs(input: {
  local: TransferLog;
  peers: TransferLog[];
  query: { dataHash?: string; reference?: string };
  scope: (trace: ProvenanceTrace) => ScopedTrace;
}): Promise<ProvenanceAnswer> {
  const read = await readTransferLogs(input.peers.map(guardProofs));
  const unreadable = new Map<string, UnreadableLog>(read.unreadable.map((u) => [u.log, u]));
  let trace: ProvenanceTrace;
  try {
    trace = await traceProvenance([input.local, ...read.logs], input.query);
  } catch (e) {
    if (e instanceof PeerProofError) throw new LedgerError("UNAVAILABLE", e.message);
    throw e;
  }
  const logs: SearchedLog[] = [
    { name: input.local.name, peer: false, readable: true },
    ...input.peers.map((p) => {
      const failure = unreadable.get(p.name);
      return failure
        ? { name: p.name, peer: true, readable: false, error: failure.message }
        : { name: p.name, peer: true, readable: true };
    }),
  ];
  return { ...input.scope(trace), logs, complete: unreadable.size === 0 };
}

/** A peer that failed while its bundles were fetched, after its events were read. */
class PeerProofError extends Error {}

/** A peer's proof that cannot be fetched names the peer (a 503 at the API, not a 500). */
function guardProofs(log: TransferLog): TransferLog {
  return {
    name: log.name,
    transferEvents: () => log.transferEvents(),
    async prove(seq) {
      try {
        return await log.prove(seq);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        throw new PeerProofError(
          `the proof of seq ${seq} could not be read from peer ${log.name}: ${message}`,
        );
      }
    },
  };
}

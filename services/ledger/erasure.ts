import { SYSTEM } from "../core/codes.ts";
import { erasedEntityReference } from "../core/erasure.ts";
import {
  MAX_STRING_CHARS,
  type NativeEvent,
  badCharacter,
  parseNativeEvent,
} from "../core/event.ts";
import { hmacSha256 } from "../core/hash.ts";
import { fromHex, toHex, utf8 } from "../core/hex.ts";
import type { Receipt } from "../core/receipt.ts";
import { LedgerError, invariant } from "./errors.ts";
import type { Ledger } from "./ledger.ts";

/**
 * Erasure by crypto-shredding (GDPR Art. 17, DESIGN.md "Data model"): the event body and its
 * salt are deleted; the entry stays, so every other proof stays valid and the erased seq still
 * proves that something was logged there. Without the salt, the commitment cannot be tested
 * against guesses of the content. The erasure itself is logged as a new event that names the
 * erased seq only — never anything of the erased content.
 */

/** What is kept of an erasure, next to the (kept) entry: when, on what basis, by which key. */
export interface Tombstone {
  seq: number;
  erasedAt: string;
  legalBasis: string;
  /** API key id (or operator id) that requested the erasure. */
  keyId: string;
  reason: string;
  /** Seq of the event that logs the erasure. */
  erasureSeq: number;
}

export interface ErasureRequest {
  seq: number;
  legalBasis: string;
  reason: string;
  /** Who asks: the admin's API key id. */
  keyId: string;
}

export interface ErasureResult {
  tombstone: Tombstone;
  /** The receipt of the event that logs the erasure. */
  receipt: Receipt;
  /**
   * What is left of the body on disk once the answer is given: `none` (it was sealed under a
   * key that is now destroyed: no file holds it in a form anyone can open), or, for a body
   * written before bodies were sealed, `plaintext-until-compaction` (LevelDB keeps the old
   * table files that hold it until a compaction rewrites them; see docs/compliance.md).
   */
  residue: "none" | "plaintext-until-compaction";
}

export const MAX_LEGAL_BASIS_CHARS = 256;
export const MAX_REASON_CHARS = MAX_STRING_CHARS;
/** Observer named in erasure events: the ledger service itself. */
export const ERASURE_OBSERVER = "Device/veritrail-ledger";

/** Seqs being erased right now, per ledger: a second concurrent request is a conflict. */
const inFlight = new WeakMap<Ledger, Set<number>>();

function checkText(value: string, field: string, max: number): void {
  if (value.length === 0 || value.length > max)
    throw new LedgerError("VALIDATION_FAILED", `${field} must be 1..${max} characters`, field);
  const bad = badCharacter(value);
  if (bad !== null) throw new LedgerError("VALIDATION_FAILED", `${field} ${bad}`, field);
}

export async function getTombstone(ledger: Ledger, seq: number): Promise<Tombstone | undefined> {
  return ledger.store.getTombstone(seq);
}

/**
 * Erases the body and salt of `seq`. The erasure event is logged first, under a request id only
 * the log can compute (HMAC of the log secret), so a retry after a crash between the two steps
 * re-uses that event instead of logging a second one, and no writer can pre-empt the id.
 * 409 CONFLICT when the event is already erased (or being erased).
 */
export async function eraseEvent(
  ledger: Ledger,
  req: ErasureRequest,
  opts: { now?: () => Date } = {},
): Promise<ErasureResult> {
  if (!Number.isSafeInteger(req.seq) || req.seq < 0)
    throw new LedgerError("VALIDATION_FAILED", "seq must be a non-negative integer", "seq");
  checkText(req.legalBasis, "legalBasis", MAX_LEGAL_BASIS_CHARS);
  checkText(req.reason, "reason", MAX_REASON_CHARS);
  let running = inFlight.get(ledger);
  if (!running) {
    running = new Set();
    inFlight.set(ledger, running);
  }
  if (running.has(req.seq))
    throw new LedgerError("CONFLICT", `event ${req.seq} is being erased`, "seq");
  running.add(req.seq);
  try {
    const stored = await ledger.getEvent(req.seq);
    if (stored.event === null || (await getTombstone(ledger, req.seq)) !== undefined)
      throw new LedgerError("CONFLICT", `event ${req.seq} is already erased`, "seq");
    const now = (opts.now ?? (() => new Date()))();
    const organization = stored.event.source.organization;
    // A retry after a crash between logging and shredding finds its erasure event logged; a new
    // one (another time) under the same request id would be an idempotency conflict.
    const loggedSeq = await ledger.findRequest(organization, erasureRequestId(ledger, req.seq));
    const [logged] =
      loggedSeq !== undefined
        ? [{ receipt: await ledger.receipt(loggedSeq) }]
        : await ledger.ingest([
            erasureEvent(ledger, {
              seq: req.seq,
              legalBasis: req.legalBasis,
              keyId: req.keyId,
              organization,
              recorded: now.toISOString(),
            }),
          ]);
    invariant(logged !== undefined, "one receipt per ingested event");
    const tombstone: Tombstone = {
      seq: req.seq,
      erasedAt: now.toISOString(),
      legalBasis: req.legalBasis,
      keyId: req.keyId,
      reason: req.reason,
      erasureSeq: logged.receipt.seq,
    };
    const { legacyPlaintext } = await ledger.eraseBody(req.seq, tombstone);
    return {
      tombstone,
      receipt: logged.receipt,
      residue: legacyPlaintext ? "plaintext-until-compaction" : "none",
    };
  } finally {
    running.delete(req.seq);
  }
}

/**
 * The event that logs an erasure, shaped like an IHE BALP Delete: a REST delete by the admin
 * (requestor) through the ledger service, of one data entity — the erased seq of this log.
 * It carries no patient (that would re-record the erased identifier) and no free-text reason.
 */
export function erasureEvent(
  ledger: Ledger,
  e: { seq: number; legalBasis: string; keyId: string; organization: string; recorded: string },
): NativeEvent {
  const requestId = erasureRequestId(ledger, e.seq);
  const input = {
    recorded: e.recorded,
    action: "D",
    type: { system: SYSTEM.auditEventType, code: "rest", display: "Restful Operation" },
    subtype: [{ system: SYSTEM.restfulInteraction, code: "delete", display: "delete" }],
    outcome: 0,
    purposeOfUse: ["RECORDMGT"],
    agents: [
      {
        who: { system: "urn:veritrail:api-key", value: e.keyId },
        type: { system: SYSTEM.dcm, code: "110153", display: "Source Role ID" },
        organization: e.organization,
        requestor: true,
      },
      {
        who: { value: ERASURE_OBSERVER },
        type: { system: SYSTEM.dcm, code: "110152", display: "Destination Role ID" },
        organization: e.organization,
        requestor: false,
      },
    ],
    source: { organization: e.organization, observer: ERASURE_OBSERVER },
    entities: [
      {
        what: erasedEntityReference(ledger.logId, e.seq),
        type: { system: SYSTEM.auditEntityType, code: "2", display: "System Object" },
        role: { system: SYSTEM.objectRole, code: "4", display: "Domain Resource" },
        description: "event body and salt erased (crypto-shredding); the entry is kept",
        detail: [{ type: "legalBasis", value: e.legalBasis }],
      },
    ],
    requestId,
  };
  const parsed = parseNativeEvent(input);
  invariant(parsed.ok, `erasure event is valid: ${parsed.ok ? "" : JSON.stringify(parsed.issues)}`);
  return parsed.value;
}

/** The request id of the event that logs the erasure of `seq`: only the log can compute it. */
function erasureRequestId(ledger: Ledger, seq: number): string {
  return `vt-erasure-${toHex(
    hmacSha256(fromHex(ledger.meta.logSecret), utf8(`veritrail/erasure/1|${seq}`)),
  ).slice(2)}`;
}

export { erasedEntityReference };

import { SYSTEM } from "./codes.ts";

/**
 * Transfers between institutions (DESIGN.md "Data model"): an Export (DCM 110106, BALP
 * PrivacyDisclosure.Source) in the sender's log and an Import (DCM 110107,
 * PrivacyDisclosure.Recipient) in the recipient's log that carry the same `transfer.reference`
 * and `transfer.dataHash`. The matching rule lives here, pure, so the API's provenance trace and
 * the regulator console (which matches what it verified in the browser) cannot drift apart.
 */
export const EXPORT_TYPE_CODE = "110106";
export const IMPORT_TYPE_CODE = "110107";

/** One side of a transfer as the matcher needs it; `side` is whatever the caller carries along. */
export interface TransferRecord<S> {
  kind: "export" | "import";
  reference: string;
  dataHash: string;
  /** The organization that logged it (`source.organization`): the sender or the receiver. */
  organization: string;
  /** An export's intended recipient organization (`recipient.organization`), when it names one. */
  recipient?: string;
  side: S;
}

export type UnmatchedReason =
  "NOT_IMPORTED" | "NO_SUCH_EXPORT" | "DATA_HASH_MISMATCH" | "RECIPIENT_MISMATCH";

export interface MatchedTransfer<S> {
  reference: string;
  dataHash: string;
  from: S;
  to: S;
}

export interface UnmatchedRecord<S> {
  kind: "export" | "import";
  reason: UnmatchedReason;
  reference: string;
  dataHash: string;
  recipient?: string;
  side: S;
}

/** The shape of an event the matcher reads (a NativeEvent, or an event from a bundle). */
interface EventLike {
  type?: { system?: unknown; code?: unknown };
  transfer?: { reference?: unknown; dataHash?: unknown };
  source?: { organization?: unknown };
  recipient?: { organization?: unknown };
}

/**
 * The transfer an event records, or undefined: only DCM Export/Import events that carry
 * `transfer` are transfers. Reads untrusted input (a bundle's event) defensively.
 */
export function transferOf<S>(event: unknown, side: S): TransferRecord<S> | undefined {
  if (typeof event !== "object" || event === null) return undefined;
  const e = event as EventLike;
  if (e.type?.system !== SYSTEM.dcm) return undefined;
  const kind =
    e.type.code === EXPORT_TYPE_CODE
      ? "export"
      : e.type.code === IMPORT_TYPE_CODE
        ? "import"
        : undefined;
  const reference = e.transfer?.reference;
  const dataHash = e.transfer?.dataHash;
  const organization = e.source?.organization;
  if (kind === undefined || typeof reference !== "string" || typeof dataHash !== "string")
    return undefined;
  if (typeof organization !== "string") return undefined;
  const recipient = e.recipient?.organization;
  return {
    kind,
    reference,
    dataHash,
    organization,
    ...(kind === "export" && typeof recipient === "string" ? { recipient } : {}),
    side,
  };
}

/**
 * Matches each import to the export with the same reference and data hash whose recipient is
 * the importing organization (or that names no recipient); an export received twice matches
 * both imports. What does not match is listed with why: an import with an unknown reference
 * (NO_SUCH_EXPORT), one that reuses an export's reference with other bytes (DATA_HASH_MISMATCH),
 * one received by another organization than the export's recipient (RECIPIENT_MISMATCH), and an
 * export never acknowledged as received (NOT_IMPORTED). Unmatched imports come first, in input
 * order, then unmatched exports.
 */
export function matchTransfers<S>(
  exports: ReadonlyArray<TransferRecord<S>>,
  imports: ReadonlyArray<TransferRecord<S>>,
): { matched: Array<MatchedTransfer<S>>; unmatched: Array<UnmatchedRecord<S>> } {
  const byReference = new Map<string, Array<TransferRecord<S>>>();
  for (const e of exports) {
    const list = byReference.get(e.reference);
    if (list) list.push(e);
    else byReference.set(e.reference, [e]);
  }
  const matched: Array<MatchedTransfer<S>> = [];
  const unmatched: Array<UnmatchedRecord<S>> = [];
  const used = new Set<TransferRecord<S>>();
  for (const imp of imports) {
    const sameRef = byReference.get(imp.reference) ?? [];
    const sameHash = sameRef.filter((e) => e.dataHash === imp.dataHash);
    const match = sameHash.find(
      (e) => e.recipient === undefined || e.recipient === imp.organization,
    );
    if (match) {
      used.add(match);
      matched.push({
        reference: imp.reference,
        dataHash: imp.dataHash,
        from: match.side,
        to: imp.side,
      });
      continue;
    }
    const reason: UnmatchedReason =
      sameRef.length === 0
        ? "NO_SUCH_EXPORT"
        : sameHash.length === 0
          ? "DATA_HASH_MISMATCH"
          : "RECIPIENT_MISMATCH";
    unmatched.push({
      kind: "import",
      reason,
      reference: imp.reference,
      dataHash: imp.dataHash,
      side: imp.side,
    });
  }
  for (const exp of exports) {
    if (used.has(exp)) continue;
    unmatched.push({
      kind: "export",
      reason: "NOT_IMPORTED",
      reference: exp.reference,
      dataHash: exp.dataHash,
      ...(exp.recipient !== undefined ? { recipient: exp.recipient } : {}),
      side: exp.side,
    });
  }
  return { matched, unmatched };
}

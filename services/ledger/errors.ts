/** Errors the ledger's use cases raise for the caller's mistakes (mapped to 4xx by the API). */
export type LedgerErrorCode =
  | "VALIDATION_FAILED"
  | "NOT_FOUND"
  | "FORBIDDEN"
  | "CONFLICT"
  | "IDEMPOTENCY_CONFLICT"
  | "UNAVAILABLE"
  | "BAD_CURSOR"
  /** The backlog is at its bound (ingest-gate.ts): retry after `retryAfterMs`. */
  | "OVERLOADED"
  /** A restored copy is being compared with the chain (restore-reconcile.ts): retry shortly. */
  | "RESTORE_PENDING";

export class LedgerError extends Error {
  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    readonly field?: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "LedgerError";
  }
}

/**
 * An idempotency key reused for different content: (organization, requestId) already names an
 * event, and the event now sent under it is not the same one (its JCS differs), or is not
 * comparable any more (the original was erased). As the IETF Idempotency-Key draft and payment
 * APIs do, such a retry is refused rather than answered with the receipt of an event the caller
 * did not send (the second event would otherwise be dropped silently). `index` is the event's
 * position in the request.
 */
export class IdempotencyConflictError extends LedgerError {
  constructor(
    readonly index: number,
    readonly requestId: string,
    /** The seq the requestId already names (absent when the clash is inside one request). */
    readonly seq: number | undefined,
    /** The earlier position in the same request that used the requestId for another event. */
    readonly earlierIndex?: number,
    /** The original was erased, so the two cannot be compared. */
    readonly erased = false,
  ) {
    super(
      "IDEMPOTENCY_CONFLICT",
      seq === undefined
        ? `requestId ${JSON.stringify(requestId)} is used for two different events in this request (positions ${earlierIndex} and ${index})`
        : erased
          ? `requestId ${JSON.stringify(requestId)} already names seq ${seq}, whose event was erased; it cannot be compared, so the retry is refused`
          : `requestId ${JSON.stringify(requestId)} already names seq ${seq}, a different event; a retry must resend the identical event`,
    );
    this.name = "IdempotencyConflictError";
  }
}

/**
 * A stored record that does not decode (services/store/record-codec.ts): our fault, named by
 * its key. Re-exported here for the API, which answers it 500 STORE_CORRUPT and never imports
 * the store.
 */
export { StoreCorruptError } from "../store/record-codec.ts";

/** A broken invariant: our fault, never the caller's. Crash loudly (STYLE.md §5). */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}

/** The disk refuses writes (full, quota, I/O error): nothing was acknowledged; 503 + retry. */
export { StorageUnavailableError } from "../store/storage-failure.ts";

/** Errors the ledger's use cases raise for the caller's mistakes (mapped to 4xx by the API). */
export type LedgerErrorCode =
  "VALIDATION_FAILED" | "NOT_FOUND" | "FORBIDDEN" | "CONFLICT" | "UNAVAILABLE" | "BAD_CURSOR";

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

/** A broken invariant: our fault, never the caller's. Crash loudly (STYLE.md §5). */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}

/**
 * The verifier's answer (DESIGN.md "Proof bundle"): one check per step, in the order DESIGN.md
 * lists them, each naming its step and, when it fails, a code from a closed union (STYLE.md §5).
 * New steps (the per-patient completeness check) are added as new `VerifierStep` values; a
 * consumer that does not know a step still reads `ok`, `status` and the per-check `ok`.
 */

export type VerifierStep =
  | "shape"
  | "commitment"
  | "entry"
  | "inclusion"
  | "anchor"
  | "confirmations"
  | "receipt"
  | "signer";

export const VERIFIER_STEPS: readonly VerifierStep[] = [
  "shape",
  "commitment",
  "entry",
  "inclusion",
  "anchor",
  "confirmations",
  "receipt",
  "signer",
];

export type VerifierErrorCode =
  /** Not a `veritrail-proof/1` bundle, or its fields contradict each other (step shape). */
  | "BUNDLE_MALFORMED"
  /** SHA-256(salt ‖ JCS(event)) differs from entry.commitment (step commitment). */
  | "COMMITMENT_MISMATCH"
  /** Entry v2: a redactable value is shown in clear without its field salt (step commitment). */
  | "DISCLOSURE_MISSING"
  /** entry.log ≠ batch.logId, entry.seq ≠ batch.firstSeq + leafIndex, or leafIndex ≥ count. */
  | "ENTRY_BATCH_MISMATCH"
  /** The receipt's log/seq/recorded/leafHash do not describe this entry (step entry). */
  | "RECEIPT_ENTRY_MISMATCH"
  /** The audit path has the wrong length for (leafIndex, count) — RFC 9162 §2.1.3.2. */
  | "PATH_INVALID"
  /** The audit path yields a root other than batch.eventsRoot. */
  | "ROOT_MISMATCH"
  /** The RPC serves another chain than anchor.chainId (step anchor). */
  | "WRONG_CHAIN"
  /** The registry holds no commitment for (logId, batchNo), or no registry answers. */
  | "NOT_ANCHORED"
  /** The registry holds a different commitment for (logId, batchNo). */
  | "HEADER_MISMATCH"
  /** The anchoring transaction's receipt is available and contradicts the bundle's anchor. */
  | "ANCHOR_TX_MISMATCH"
  /** The commitment is not yet in the state `confirmations` blocks deep. */
  | "TOO_FEW_CONFIRMATIONS"
  /** The receipt's group path or EIP-712 signature does not verify. */
  | "RECEIPT_INVALID"
  /** The receipt's signer never was a registered receipt signer of this log. */
  | "SIGNER_NOT_REGISTERED"
  /** The signer was registered, but not at the receipt's issuedAt. */
  | "SIGNER_NOT_VALID_AT_ISSUE"
  /** The chain could not be asked (the verdict is then "error", not a proof of tampering). */
  | "RPC_ERROR";

export interface Check {
  step: VerifierStep;
  ok: boolean | "skipped";
  code?: VerifierErrorCode;
  reason: string;
}

/**
 * - `verified`: every check passed against the chain (`ok` is true only then);
 * - `pending`: the bundle is not anchored yet (status unsealed/sealed/submitted) and everything
 *   it carries checks out — receipt signature included — but nothing could be checked on-chain;
 * - `failed`: at least one check failed: the bundle is not genuine (or not for this chain);
 * - `error`: no check failed, but the chain could not be read (RPC_ERROR): try again.
 */
export type VerdictStatus = "verified" | "pending" | "failed" | "error";

export interface Verdict {
  ok: boolean;
  status: VerdictStatus;
  /** The first failed check's code, if any. */
  code?: VerifierErrorCode;
  /** entry.seq and entry.log when the bundle could be read, so a report can name the event. */
  seq?: number;
  log?: string;
  checks: Check[];
}

export function pass(step: VerifierStep, reason: string): Check {
  return { step, ok: true, reason };
}

export function fail(step: VerifierStep, code: VerifierErrorCode, reason: string): Check {
  return { step, ok: false, code, reason };
}

export function skip(step: VerifierStep, reason: string): Check {
  return { step, ok: "skipped", reason };
}

/** Derives ok/status/code from the checks; `pending` when the bundle names no anchor. */
export function verdictOf(
  checks: Check[],
  pending: boolean,
  ids: { seq?: number; log?: string } = {},
): Verdict {
  const failures = checks.filter((c) => c.ok === false);
  const real = failures.find((c) => c.code !== "RPC_ERROR");
  const first = real ?? failures[0];
  const status: VerdictStatus = real
    ? "failed"
    : failures.length > 0
      ? "error"
      : pending
        ? "pending"
        : "verified";
  return {
    ok: status === "verified",
    status,
    ...(first?.code !== undefined ? { code: first.code } : {}),
    ...ids,
    checks,
  };
}

/** A verdict for input that is not even JSON (one bad line of an NDJSON file). */
export function malformedVerdict(reason: string): Verdict {
  return verdictOf(
    [
      fail("shape", "BUNDLE_MALFORMED", reason),
      ...VERIFIER_STEPS.slice(1).map((step) => skip(step, "bundle malformed")),
    ],
    false,
  );
}

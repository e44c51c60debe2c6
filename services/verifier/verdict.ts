/**
 * The verifier's answer (DESIGN.md "Proof bundle"): one check per step, in the order DESIGN.md
 * lists them, each naming its step and, when it fails, a code from a closed union (STYLE.md §5).
 * New steps (the per-patient completeness check) are added as new `VerifierStep` values; a
 * consumer that does not know a step still reads `ok`, `status` and the per-check `ok`.
 */

export type VerifierStep =
  | "shape"
  | "trust"
  | "commitment"
  | "entry"
  | "inclusion"
  | "anchor"
  | "confirmations"
  | "receipt"
  | "signer"
  | "erasure";

/**
 * `trust` comes right after the shape: it decides which registry the chain steps may ask (the
 * trust policy's, never one the bundle picked). `erasure` comes last: it checks another bundle.
 */
export const VERIFIER_STEPS: readonly VerifierStep[] = [
  "shape",
  "trust",
  "commitment",
  "entry",
  "inclusion",
  "anchor",
  "confirmations",
  "receipt",
  "signer",
  "erasure",
];

export type VerifierErrorCode =
  /** Not a `veritrail-proof/1` bundle, or its fields contradict each other (step shape). */
  | "BUNDLE_MALFORMED"
  /** The bundle's (chainId, registry) is not a registry the trust policy lists (step trust). */
  | "UNTRUSTED_REGISTRY"
  /** The trust policy does not list the bundle's log (in that registry) (step trust). */
  | "UNKNOWN_LOG"
  /** The erasure record is not a bundle that verifies (step erasure). */
  | "ERASURE_INVALID"
  /** The erasure record verifies but does not record erasing this event (step erasure). */
  | "ERASURE_MISMATCH"
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
 * - `verified`: every check passed against the chain, in a registry and log the trust policy
 *   lists;
 * - `erased`: the same for the entry, whose content was erased: the bundle carries the erasure
 *   event's bundle, which verified too and names this seq (`ok` is true for these two only);
 * - `withheld`: the entry verified, but the bundle carries no content and no erasure record: the
 *   content was withheld, and nothing proves that it was erased;
 * - `pending`: the bundle's batch is not anchored in the trusted registry yet (or not even
 *   sealed), or its erasure record is not; everything it carries checks out;
 * - `failed`: at least one check failed: the bundle is not genuine, or not from a trusted log;
 * - `error`: no check failed, but the chain could not be read (RPC_ERROR): try again.
 */
export type VerdictStatus = "verified" | "erased" | "withheld" | "pending" | "failed" | "error";

/** Whom the verdict's trust comes from: the policy, and what it says of this bundle's log. */
export interface VerdictTrust {
  /** SHA-256(JCS(policy)), to compare with the one the policy's issuer publishes. */
  fingerprint: string;
  issuer: string;
  /** The log's operator per the policy (when the policy lists the log). */
  operator?: string;
  /** The registry the chain steps asked (when the policy lists it). */
  registry?: { chainId: number; address: string; name?: string };
}

export interface Verdict {
  ok: boolean;
  status: VerdictStatus;
  /** The first failed check's code, if any. */
  code?: VerifierErrorCode;
  /** entry.seq and entry.log when the bundle could be read, so a report can name the event. */
  seq?: number;
  log?: string;
  /** Present whenever a trust policy was applied (always, past a malformed bundle). */
  trust?: VerdictTrust;
  /** For an erased event: the seq of the event that logged the erasure. */
  erasedBy?: number;
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

/** What the checks alone cannot say: how far the bundle got, and what became of its content. */
export interface VerdictState {
  /** Not anchored in the trusted registry yet (or its erasure record is not). */
  pending?: boolean;
  /** No content: erased (with a verified erasure record) or withheld (without one). */
  content?: "present" | "erased" | "withheld";
}

/** Derives ok/status/code from the checks and the state; failures and errors come first. */
export function verdictOf(
  checks: Check[],
  state: VerdictState,
  extra: Omit<Verdict, "ok" | "status" | "code" | "checks"> = {},
): Verdict {
  const failures = checks.filter((c) => c.ok === false);
  const real = failures.find((c) => c.code !== "RPC_ERROR");
  const first = real ?? failures[0];
  const status: VerdictStatus = real
    ? "failed"
    : failures.length > 0
      ? "error"
      : state.pending
        ? "pending"
        : state.content === "withheld"
          ? "withheld"
          : state.content === "erased"
            ? "erased"
            : "verified";
  return {
    ok: status === "verified" || status === "erased",
    status,
    ...(first?.code !== undefined ? { code: first.code } : {}),
    ...extra,
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
    {},
  );
}

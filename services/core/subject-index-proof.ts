/**
 * Proofs for the per-patient completeness index (byte formats: subject-index.ts).
 *
 * A proof for key K under root R is the path from R down K's bits to the first node that is not
 * internal — the "terminal" — at depth d:
 *
 *   siblings   d hashes, bottom-up: siblings[0] is the terminal's sibling at depth d,
 *              siblings[d-1] the sibling at depth 1 (a child of the root).
 *   leaf       the terminal: { key, valueHash } of a leaf, or null for an empty subtree.
 *
 * Verification: terminal = leaf ? H(0x02 || leaf.key || leaf.valueHash) : 32 zero bytes; then for
 * i = 0..d-1 with b = bit (d-1-i) of K: h = b ? H(0x03 || siblings[i] || h) : H(0x03 || h || siblings[i]);
 * h must equal R. A leaf whose key is K proves membership with its valueHash; an empty terminal,
 * or a leaf whose key differs from K but shares K's first d bits, proves non-membership.
 * Because every internal hash opens to one (left, right) pair, only one terminal is reachable
 * on K's path under a given root, so a prover cannot show both answers.
 *
 * JSON (API responses): { "siblings": ["0x…", …], "leaf": { "key": "0x…", "valueHash": "0x…" } | null }
 * with 0x-prefixed lowercase 32-byte hex.
 */
import { z } from "zod";
import { bytesEqual, fromHex, isHex32, toHex } from "./hex.ts";
import type { Hex } from "./hex.ts";
import {
  EMPTY_ROOT,
  SMT_HASH_BYTES,
  SMT_MAX_DEPTH,
  historyChain,
  historyValueHash,
  internalNodeHash,
  keyBit,
  leafNodeHash,
} from "./subject-index.ts";

export interface SubjectIndexProof {
  /** Bottom-up; length = depth of the terminal node. */
  siblings: Uint8Array[];
  /** The terminal node: a leaf, or null for an empty subtree. */
  leaf: { key: Uint8Array; valueHash: Uint8Array } | null;
}

export type SubjectIndexClaim = { member: true; valueHash: Uint8Array } | { member: false };

export type SubjectIndexProofErrorCode =
  /** The root or key given to the verifier is not 32 bytes. */
  | "BAD_INPUT"
  /** Wrong field types or lengths, more than 256 siblings, malformed hex. */
  | "BAD_PROOF_SHAPE"
  /** The terminal leaf's key does not lie on the queried key's path. */
  | "KEY_MISMATCH"
  /** A leaf or empty terminal next to an empty sibling: no map has this shape (the leaf moves up). */
  | "NON_CANONICAL"
  /** The path does not hash to the root. */
  | "ROOT_MISMATCH";

export class SubjectIndexProofError extends Error {
  override readonly name = "SubjectIndexProofError";
  constructor(
    readonly code: SubjectIndexProofErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

const hex32Schema = z
  .string()
  .refine(isHex32, { message: "expected 0x-prefixed lowercase hex of 32 bytes" });

export const subjectIndexProofJsonSchema = z
  .object({
    siblings: z.array(hex32Schema).max(SMT_MAX_DEPTH),
    leaf: z.object({ key: hex32Schema, valueHash: hex32Schema }).strict().nullable(),
  })
  .strict();

export type SubjectIndexProofJson = {
  siblings: Hex[];
  leaf: { key: Hex; valueHash: Hex } | null;
};

export function subjectIndexProofToJson(proof: SubjectIndexProof): SubjectIndexProofJson {
  return {
    siblings: proof.siblings.map(toHex),
    leaf:
      proof.leaf === null
        ? null
        : { key: toHex(proof.leaf.key), valueHash: toHex(proof.leaf.valueHash) },
  };
}

/** Parses a proof received as JSON; throws SubjectIndexProofError('BAD_PROOF_SHAPE'). */
export function subjectIndexProofFromJson(json: unknown): SubjectIndexProof {
  const parsed = subjectIndexProofJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? "" : `${issue.path.join(".") || "proof"}: `;
    throw new SubjectIndexProofError(
      "BAD_PROOF_SHAPE",
      `malformed subject index proof: ${where}${issue?.message ?? "invalid"}`,
    );
  }
  const { siblings, leaf } = parsed.data;
  return {
    siblings: siblings.map(fromHex),
    leaf: leaf === null ? null : { key: fromHex(leaf.key), valueHash: fromHex(leaf.valueHash) },
  };
}

// ---------------------------------------------------------------------------------------------
// Verification

// Keys and hashes are both 32 bytes (SMT_KEY_BYTES = SMT_HASH_BYTES).
function is32(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === SMT_HASH_BYTES;
}

function checkShape(proof: SubjectIndexProof): void {
  const bad = (why: string) => new SubjectIndexProofError("BAD_PROOF_SHAPE", why);
  if (typeof proof !== "object" || proof === null || !Array.isArray(proof.siblings)) {
    throw bad("proof must have a siblings array");
  }
  if (proof.siblings.length > SMT_MAX_DEPTH) {
    throw bad(`proof has ${proof.siblings.length} siblings, at most ${SMT_MAX_DEPTH} allowed`);
  }
  proof.siblings.forEach((s, i) => {
    if (!is32(s)) throw bad(`siblings[${i}] must be 32 bytes`);
  });
  if (proof.leaf !== null) {
    if (typeof proof.leaf !== "object" || proof.leaf === undefined) {
      throw bad("leaf must be an object or null");
    }
    if (!is32(proof.leaf.key)) throw bad("leaf.key must be 32 bytes");
    if (!is32(proof.leaf.valueHash)) throw bad("leaf.valueHash must be 32 bytes");
  }
}

/**
 * Checks `proof` for `key` against `root` and returns what it proves. Throws
 * SubjectIndexProofError naming the failed step.
 */
export function verifySubjectIndexProof(
  root: Uint8Array,
  key: Uint8Array,
  proof: SubjectIndexProof,
): SubjectIndexClaim {
  if (!is32(root)) throw new SubjectIndexProofError("BAD_INPUT", "root must be 32 bytes");
  if (!is32(key)) throw new SubjectIndexProofError("BAD_INPUT", "key must be 32 bytes");
  checkShape(proof);
  const depth = proof.siblings.length;
  const { leaf } = proof;
  let member = false;
  if (leaf !== null) {
    member = bytesEqual(leaf.key, key);
    // A different leaf proves absence only if it occupies K's own position on the path.
    for (let i = 0; !member && i < depth; i++) {
      if (keyBit(leaf.key, i) !== keyBit(key, i)) {
        throw new SubjectIndexProofError(
          "KEY_MISMATCH",
          `the proof's leaf leaves the key's path at depth ${i}`,
        );
      }
    }
  }
  // In a canonical map a leaf never has an empty sibling and two empty siblings are one empty
  // subtree; rejecting these keeps exactly one valid proof per (root, key).
  if (depth > 0 && bytesEqual(proof.siblings[0]!, EMPTY_ROOT)) {
    throw new SubjectIndexProofError(
      "NON_CANONICAL",
      `the proof's ${leaf === null ? "empty subtree" : "leaf"} has an empty sibling`,
    );
  }
  let hash = leaf === null ? EMPTY_ROOT : leafNodeHash(leaf.key, leaf.valueHash);
  for (let i = 0; i < depth; i++) {
    const sibling = proof.siblings[i]!;
    hash =
      keyBit(key, depth - 1 - i) === 0
        ? internalNodeHash(hash, sibling)
        : internalNodeHash(sibling, hash);
  }
  if (!bytesEqual(hash, root)) {
    throw new SubjectIndexProofError("ROOT_MISMATCH", "the proof does not hash to the index root");
  }
  return member && leaf !== null ? { member: true, valueHash: leaf.valueHash } : { member: false };
}

// ---------------------------------------------------------------------------------------------
// Completeness

export type CompletenessErrorCode =
  | SubjectIndexProofErrorCode
  /** Two events shown with the same seq, or a seq that is not a non-negative integer. */
  | "BAD_HISTORY"
  /** The recomputed (count, chain) differs from the proven value: an event is missing or extra. */
  | "INCOMPLETE_HISTORY"
  /** The index proves the subject has no events, yet events were shown. */
  | "UNEXPECTED_EVENTS";

export type CompletenessResult =
  { ok: true; count: number } | { ok: false; code: CompletenessErrorCode; message: string };

export interface CompletenessInput {
  indexRoot: Uint8Array;
  subjectTag: Uint8Array;
  /** The events the patient was shown, in any order. */
  events: ReadonlyArray<{ seq: number; leafHash: Uint8Array }>;
  /** As decoded, or as received in JSON. */
  proof: SubjectIndexProof | SubjectIndexProofJson;
}

/** True for the decoded form; anything else goes through the JSON schema. */
function isDecodedProof(proof: unknown): proof is SubjectIndexProof {
  if (typeof proof !== "object" || proof === null) return false;
  const { siblings, leaf } = proof as { siblings?: unknown; leaf?: unknown };
  if (!Array.isArray(siblings)) return false;
  const values: unknown[] = [...siblings];
  if (typeof leaf === "object" && leaf !== null) {
    const { key, valueHash } = leaf as { key?: unknown; valueHash?: unknown };
    values.push(key, valueHash);
  }
  return values.every((v) => v instanceof Uint8Array);
}

/**
 * Checks that `events` is the subject's whole history as committed to by `indexRoot` (the
 * batch header's indexRoot, read from the chain). Never throws on bad input.
 */
export function verifyCompleteness(input: CompletenessInput): CompletenessResult {
  let claim: SubjectIndexClaim;
  try {
    const proof = isDecodedProof(input.proof)
      ? input.proof
      : subjectIndexProofFromJson(input.proof);
    claim = verifySubjectIndexProof(input.indexRoot, input.subjectTag, proof);
  } catch (err) {
    if (err instanceof SubjectIndexProofError) {
      return { ok: false, code: err.code, message: err.message };
    }
    throw err;
  }

  const events = [...input.events].sort((a, b) => a.seq - b.seq);
  let count: number;
  let valueHash: Uint8Array;
  try {
    const history = historyChain(events);
    count = history.count;
    valueHash = historyValueHash(history.count, history.chain);
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) {
      return { ok: false, code: "BAD_HISTORY", message: err.message };
    }
    throw err;
  }

  if (!claim.member) {
    if (count === 0) return { ok: true, count: 0 };
    return {
      ok: false,
      code: "UNEXPECTED_EVENTS",
      message: `the index proves this subject has no events, but ${count} were shown`,
    };
  }
  if (!bytesEqual(valueHash, claim.valueHash)) {
    return {
      ok: false,
      code: "INCOMPLETE_HISTORY",
      message: `the ${count} events shown do not match the subject's history in the index`,
    };
  }
  return { ok: true, count };
}

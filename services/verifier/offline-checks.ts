/**
 * The checks of a proof bundle that need no chain: shape, commitment, entry ↔ batch ↔ receipt,
 * audit path, receipt signature. Pure functions of the bundle (and a signature cache), so the
 * benchmark measures exactly what a verifier does per bundle besides RPC.
 */
import { type ParsedBundle, BundleSchema, parseBundleFast } from "../core/bundle.ts";
import { rebuildCommitted } from "../core/disclosure.ts";
import { type Entry, entryLeafHash, eventCommitment } from "../core/entry.ts";
import { type Hex, fromHex, toHex } from "../core/hex.ts";
import { MerkleProofError, verifyInclusionHex } from "../core/merkle.ts";
import { type Receipt, ReceiptError, verifyReceipt } from "../core/receipt.ts";
import { type Check, fail, pass, skip } from "./verdict.ts";

export type ShapeResult =
  { ok: true; bundle: ParsedBundle; check: Check } | { ok: false; check: Check };

/**
 * Step 0: the bundle parses as `veritrail-proof/1` and its optional parts agree with each other,
 * so later steps never guess: no batch ⇔ no leafIndex (and no path); an anchor needs a batch; an
 * event without its salt (or a salt without its event) is malformed; an erasure record belongs
 * only to a bundle without content. A `status` field is not read (DESIGN.md: never trusted).
 */
export function checkShape(input: unknown): ShapeResult {
  const parsed = parseBundle(input);
  if (!parsed.ok) return { ok: false, check: fail("shape", "BUNDLE_MALFORMED", parsed.reason) };
  const b = parsed.bundle;
  const contradiction = contradictionIn(b);
  if (contradiction) return { ok: false, check: fail("shape", "BUNDLE_MALFORMED", contradiction) };
  return { ok: true, bundle: b, check: pass("shape", "veritrail-proof/1, fields consistent") };
}

/**
 * BundleSchema's verdict: its structural fast path (core/bundle.ts) for well-formed bundles,
 * zod itself for everything the fast path declines, so the outcome and message are zod's.
 */
export function parseBundle(
  input: unknown,
): { ok: true; bundle: ParsedBundle } | { ok: false; reason: string } {
  const fast = parseBundleFast(input);
  if (fast !== undefined) return { ok: true, bundle: fast };
  const parsed = BundleSchema.safeParse(input);
  if (parsed.success) return { ok: true, bundle: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : "bundle";
  return { ok: false, reason: `${where}: ${issue?.message ?? "invalid"}` };
}

function contradictionIn(b: ParsedBundle): string | undefined {
  if ((b.event === null) !== (b.salt === null))
    return "event and salt must both be present or both be null (erased or withheld)";
  if (b.entry.v === 1 && b.disclosures !== undefined)
    return "disclosures belong to entry v2 bundles; this entry is v1 (its commitment has no field digests)";
  if (b.entry.v === 2 && b.event !== null) {
    // An `_sd` object outside the redactable paths, or a disclosure for no clear value.
    const rebuilt = rebuildCommitted(b.event, b.disclosures);
    if (!rebuilt.ok && rebuilt.code === "BUNDLE_MALFORMED") return rebuilt.reason;
  }
  if ((b.batch === null) !== (b.leafIndex === null))
    return `batch is ${b.batch ? "set" : "null"} but leafIndex is ${b.leafIndex === null ? "null" : "set"}`;
  if (b.batch === null && b.inclusion.length > 0)
    return "a bundle without a batch carries an inclusion path";
  if (b.anchor !== null && b.batch === null) return "an anchor without a batch header";
  if (b.erasure !== undefined && b.event !== null)
    return "an erasure record in a bundle that still carries its event";
  return undefined;
}

/**
 * Step 1: entry v1, commitment = SHA-256(salt ‖ JCS(event)); entry v2, SHA-256(salt ‖
 * JCS(C(event))) with C(event) rebuilt from the values shown in clear (each with its field salt
 * from `disclosures`) and the withheld `{"_sd": …}` digests (DESIGN.md "Entry v2"). Skipped for
 * a bundle without content (erased, or withheld: the erasure step says which).
 */
export function checkCommitment(b: ParsedBundle): Check {
  if (b.event === null || b.salt === null)
    return skip(
      "commitment",
      b.erasure === undefined
        ? "no content: the bundle carries neither event nor salt, and no erasure record"
        : "no content: erased (see the erasure step)",
    );
  let committed: unknown = b.event;
  let withheld: string[] = [];
  if (b.entry.v === 2) {
    const rebuilt = rebuildCommitted(b.event, b.disclosures);
    if (!rebuilt.ok)
      return fail(
        "commitment",
        rebuilt.code === "DISCLOSURE_MISSING" ? "DISCLOSURE_MISSING" : "COMMITMENT_MISMATCH",
        rebuilt.reason,
      );
    committed = rebuilt.committed;
    withheld = rebuilt.withheld;
  }
  const form = b.entry.v === 2 ? "JCS(C(event))" : "JCS(event)";
  let computed: Hex;
  try {
    computed = eventCommitment(fromHex(b.salt), committed);
  } catch (e) {
    return fail("commitment", "COMMITMENT_MISMATCH", `event cannot be canonicalised: ${msg(e)}`);
  }
  if (computed !== b.entry.commitment)
    return fail(
      "commitment",
      "COMMITMENT_MISMATCH",
      `SHA-256(salt ‖ ${form}) is ${computed}, entry.commitment is ${b.entry.commitment}`,
    );
  const hidden =
    withheld.length === 0
      ? ""
      : `; ${withheld.length} value(s) withheld, each proven by its digest (${withheld.join(", ")})`;
  return pass("commitment", `SHA-256(salt ‖ ${form}) equals entry.commitment${hidden}`);
}

/**
 * Step 2: the entry sits where the batch header says, and the receipt describes this very
 * entry (same log, seq, time and leaf hash). Returns the leaf hash for step 3.
 */
export function checkEntry(b: ParsedBundle): { check: Check; leafHash: Uint8Array } {
  const leafHash = entryLeafHash(b.entry as Entry);
  const e = b.entry;
  if (b.batch !== null && b.leafIndex !== null) {
    const h = b.batch;
    if (e.log !== h.logId)
      return {
        leafHash,
        check: fail("entry", "ENTRY_BATCH_MISMATCH", `entry.log ${e.log} ≠ batch.logId ${h.logId}`),
      };
    if (b.leafIndex >= h.count)
      return {
        leafHash,
        check: fail(
          "entry",
          "ENTRY_BATCH_MISMATCH",
          `leafIndex ${b.leafIndex} is not below batch.count ${h.count}`,
        ),
      };
    if (e.seq !== h.firstSeq + b.leafIndex)
      return {
        leafHash,
        check: fail(
          "entry",
          "ENTRY_BATCH_MISMATCH",
          `entry.seq ${e.seq} ≠ batch.firstSeq ${h.firstSeq} + leafIndex ${b.leafIndex}`,
        ),
      };
  }
  const r = b.receipt;
  const leafHex = toHex(leafHash);
  const mismatch =
    r.log !== e.log
      ? `receipt.log ${r.log} ≠ entry.log`
      : r.seq !== e.seq
        ? `receipt.seq ${r.seq} ≠ entry.seq ${e.seq}`
        : r.recorded !== e.recorded
          ? `receipt.recorded ${r.recorded} ≠ entry.recorded ${e.recorded}`
          : r.leafHash !== leafHex
            ? `receipt.leafHash ${r.leafHash} ≠ leaf hash of the entry ${leafHex}`
            : undefined;
  if (mismatch) return { leafHash, check: fail("entry", "RECEIPT_ENTRY_MISMATCH", mismatch) };
  const where = b.batch ? `seq ${e.seq} = firstSeq + leafIndex ${b.leafIndex}; ` : "";
  return { leafHash, check: pass("entry", `${where}receipt describes this entry`) };
}

/** Step 3: RFC 9162 §2.1.3.2, the audit path from the leaf yields batch.eventsRoot. */
export function checkInclusion(b: ParsedBundle, leafHash: Uint8Array): Check {
  if (b.batch === null || b.leafIndex === null)
    return skip("inclusion", "not sealed into a batch yet");
  try {
    verifyInclusionHex(b.leafIndex, b.batch.count, leafHash, b.inclusion, b.batch.eventsRoot);
  } catch (e) {
    if (e instanceof MerkleProofError && e.code === "ROOT_MISMATCH")
      return fail(
        "inclusion",
        "ROOT_MISMATCH",
        `audit path does not yield batch.eventsRoot ${b.batch.eventsRoot}`,
      );
    const code = e instanceof MerkleProofError ? `${e.code}: ` : "";
    return fail("inclusion", "PATH_INVALID", `${code}${msg(e)}`);
  }
  return pass(
    "inclusion",
    `${b.inclusion.length}-node audit path yields eventsRoot (leaf ${b.leafIndex} of ${b.batch.count})`,
  );
}

/**
 * Remembers receipt groups whose EIP-712 signature already verified. Receipts of one group
 * commit share one signature, so verifying 10,000 receipts recovers one signature, not 10,000
 * (ecrecover costs ~1 ms; everything else about a bundle costs microseconds).
 */
export class ReceiptSignatureCache {
  private readonly verified = new Map<string, string>();

  /** The recovered signer, or a ReceiptError. */
  verify(receipt: Receipt): { signer: string } | { error: ReceiptError } {
    const key = groupKey(receipt);
    const signer = this.verified.get(key);
    if (signer !== undefined) {
      const pathError = groupPathError(receipt);
      return pathError ? { error: pathError } : { signer };
    }
    try {
      const { signer: recovered } = verifyReceipt(receipt);
      this.verified.set(key, recovered);
      return { signer: recovered };
    } catch (e) {
      if (e instanceof ReceiptError) return { error: e };
      throw e;
    }
  }
}

/** Everything the group signature covers, plus the signature and the stated signer. */
function groupKey(r: Receipt): string {
  return [
    r.log,
    r.group.firstSeq,
    r.group.count,
    r.group.leavesRoot,
    r.issuedAt,
    r.anchorDeadline,
    r.signer.toLowerCase(),
    r.signature,
  ].join("|");
}

/** The receipt's own path to a group root whose signature is already known good. */
function groupPathError(r: Receipt): ReceiptError | undefined {
  const index = r.seq - r.group.firstSeq;
  if (index < 0 || index >= r.group.count)
    return new ReceiptError("RECEIPT_PATH_INVALID", "seq is outside the signed group");
  try {
    verifyInclusionHex(index, r.group.count, fromHex(r.leafHash), r.group.path, r.group.leavesRoot);
    return undefined;
  } catch {
    // falls through: a path of the wrong shape does not reach the root either
  }
  return new ReceiptError("RECEIPT_PATH_INVALID", "leaf does not lead to the signed group root");
}

/** Step 6a: the receipt's group path and EIP-712 signature; returns the recovered signer. */
export function checkReceiptSignature(
  b: ParsedBundle,
  cache: ReceiptSignatureCache,
): { check: Check; signer?: string } {
  const signature = b.receipt.signature;
  if (signature !== lastCanonicalSignature) {
    const nonCanonical = nonCanonicalSignature(signature);
    if (nonCanonical) return { check: fail("receipt", "RECEIPT_INVALID", nonCanonical) };
    lastCanonicalSignature = signature; // a group's receipts share it
  }
  const result = cache.verify(b.receipt);
  if ("error" in result)
    return {
      check: fail("receipt", "RECEIPT_INVALID", `${result.error.code}: ${result.error.message}`),
    };
  return {
    signer: result.signer,
    check: pass("receipt", `EIP-712 receipt signature recovers ${result.signer}`),
  };
}

let lastCanonicalSignature: string | undefined;

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/**
 * One signature, one encoding: v must be 27 or 28 and s in the lower half (EIP-2). ethers
 * would also accept an EIP-155-style v (e.g. 59 for 27) and recovers the same signer from the
 * high-s twin, so without this a receipt with different bytes would still verify.
 */
export function nonCanonicalSignature(signature: string): string | undefined {
  const v = parseInt(signature.slice(130, 132), 16);
  if (v !== 27 && v !== 28) return `RECEIPT_SIGNATURE_INVALID: v is ${v}, must be 27 or 28`;
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  if (s === 0n || s > SECP256K1_N / 2n)
    return "RECEIPT_SIGNATURE_INVALID: s is not in the lower half of the curve order (EIP-2)";
  return undefined;
}

export function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

import { z } from "zod";
import { AddressSchema } from "./address.ts";
import { BundleSchema } from "./bundle.ts";
import { isHex32 } from "./hex.ts";
import { ReceiptSchema } from "./receipt.ts";

/**
 * Evidence that a log broke a receipt's promise (`veritrail-receipt-evidence/1`): what
 * `veritrail receipt check` writes when a receipt's deadline was missed or its seq holds another
 * leaf, and what anyone re-checks with the same command, the chain, and nothing from the log's
 * API (the way Certificate Transparency monitors hand out an SCT with the proof that its log
 * broke it).
 *
 * - `DEADLINE_MISSED`: the signed receipt, the registry it was checked in, the last block at or
 *   before `anchorDeadline` and the first block after it (number, hash, timestamp), and the log's
 *   head in the registry state at the end of that last block, i.e. as the first block after the
 *   deadline found it: `nextSeq ≤ receipt.seq` means seq was not anchored by then.
 * - `LEAF_MISMATCH`: the signed receipt and a `veritrail-proof/1` bundle for the same log and
 *   seq, anchored in the registry, whose entry hashes to another leaf. The bundle is carried
 *   without its content (`event`, `salt`, `disclosures`, `erasure` removed): the entry, its path
 *   and the anchored header are the proof, and evidence may travel where patient data must not.
 *
 * Nothing in it identifies a patient: a receipt holds hashes and times, an entry a keyed
 * subject tag.
 */
export const EVIDENCE_FORMAT = "veritrail-receipt-evidence/1";

const hex32 = z
  .string()
  .refine((v): boolean => isHex32(v), "must be 0x-prefixed lowercase hex of 32 bytes");
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const EvidenceBlockSchema = z.object({
  number: uint,
  hash: hex32,
  /** Seconds (the block's timestamp). */
  timestamp: uint,
});
export type EvidenceBlock = z.infer<typeof EvidenceBlockSchema>;

export const EvidenceRegistrySchema = z.object({
  chainId: uint,
  address: AddressSchema,
});

export const DeadlineEvidenceSchema = z.object({
  format: z.literal(EVIDENCE_FORMAT),
  verdict: z.literal("DEADLINE_MISSED"),
  receipt: ReceiptSchema,
  registry: EvidenceRegistrySchema,
  /** The last block whose timestamp is at or before the deadline. */
  lastBlockByDeadline: EvidenceBlockSchema,
  /** The next block: the first whose timestamp is after the deadline. */
  firstBlockAfterDeadline: EvidenceBlockSchema,
  /**
   * The log's head in the registry state at the end of block `block`: `lastBlockByDeadline`, or
   * a later block when the node no longer served that state (a log's next seq only grows, so a
   * later `nextSeq ≤ receipt.seq` shows the same).
   */
  logHead: z.object({ nextBatchNo: uint, nextSeq: uint, block: uint }),
  /** When the evidence was written (informational). */
  observedAt: z.iso.datetime({ precision: 3 }),
});

export const LeafEvidenceSchema = z.object({
  format: z.literal(EVIDENCE_FORMAT),
  verdict: z.literal("LEAF_MISMATCH"),
  receipt: ReceiptSchema,
  registry: EvidenceRegistrySchema,
  bundle: BundleSchema,
  observedAt: z.iso.datetime({ precision: 3 }),
});

export const ReceiptEvidenceSchema = z.discriminatedUnion("verdict", [
  DeadlineEvidenceSchema,
  LeafEvidenceSchema,
]);

export type DeadlineEvidence = z.infer<typeof DeadlineEvidenceSchema>;
export type LeafEvidence = z.infer<typeof LeafEvidenceSchema>;
export type ReceiptEvidence = z.infer<typeof ReceiptEvidenceSchema>;

/**
 * A bundle without its content: what LEAF_MISMATCH evidence carries (the entry, the path, the
 * header, the anchor and the bundle's own receipt prove where the other leaf is anchored).
 */
export function withoutContent(bundle: Record<string, unknown>): Record<string, unknown> {
  const {
    event: _event,
    salt: _salt,
    disclosures: _disclosures,
    erasure: _erasure,
    status: _status,
    ...rest
  } = bundle;
  return { ...rest, event: null, salt: null };
}

import type { Hex } from "../core/hex.ts";
import type { MerkleNodeId, MerkleTree } from "../core/merkle.ts";

/**
 * The records of a group commit (ledger/ingest.ts) as the store keeps them, so that any receipt
 * of the group can be re-issued byte for byte: the group with its leaves (`g:`), its signed
 * header alone (`h:`), and each event's audit path within the group (`r:`).
 */

/** What the store keeps per group commit so any of its receipts can be re-issued verbatim. */
export interface ReceiptGroupRecord {
  firstSeq: number;
  count: number;
  leavesRoot: Hex;
  issuedAt: number;
  anchorDeadline: number;
  signer: string;
  signature: string;
  /** The group's leaf hashes, concatenated, base64: serves each receipt's audit path. */
  leafHashes: string;
}

/** A receipt group's signed header (the `h:` record): the group record without its leaves. */
export type ReceiptGroupHeader = Omit<ReceiptGroupRecord, "leafHashes">;

export const RECEIPT_PATH_HEADER_BYTES = 6;

/** `r:<seq>` value: the group's firstSeq (6 bytes, big-endian) then the path's 32-byte nodes. */
export function encodeReceiptPath(firstSeq: number, ids: MerkleNodeId[], tree: MerkleTree): Buffer {
  const out = Buffer.allocUnsafe(RECEIPT_PATH_HEADER_BYTES + 32 * ids.length);
  out.writeUIntBE(firstSeq, 0, RECEIPT_PATH_HEADER_BYTES);
  ids.forEach((id, k) =>
    out.set(tree.levels[id.level]![id.index]!, RECEIPT_PATH_HEADER_BYTES + 32 * k),
  );
  return out;
}

/** The group's firstSeq of an `r:` value; undefined when the value is not a path's layout. */
export function decodeReceiptPath(raw: Buffer): { firstSeq: number } | undefined {
  if (raw.length < RECEIPT_PATH_HEADER_BYTES || (raw.length - RECEIPT_PATH_HEADER_BYTES) % 32 !== 0)
    return undefined;
  return { firstSeq: raw.readUIntBE(0, RECEIPT_PATH_HEADER_BYTES) };
}

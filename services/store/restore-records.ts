/**
 * Records of a restore (keys.ts): the marker `veritrail restore` sets (`m:restore`), and the
 * ranges of batches the chain proves existed but a restored ledger does not hold
 * (`l:<fromBatchNo>`; ledger/lost-ranges.ts says what they mean). Stored as JSON, checked
 * against these schemas when read (LedgerStore.getLostRanges, getRestoreMarker).
 */
import { z } from "zod";

/** What the chain said about one lost batch (from its BatchAnchored event). */
export interface LostBatch {
  batchNo: number;
  firstSeq: number;
  count: number;
  txHash: string;
  blockNumber: number;
}

/** Batches [fromBatchNo, fromBatchNo + batches) holding seqs [firstSeq, firstSeq + count). */
export interface LostRange {
  fromBatchNo: number;
  batches: number;
  firstSeq: number;
  count: number;
  /** When the ledger compared itself with the chain and found the range missing. */
  detectedAt: string;
  cause: "restore";
  /** The backup the ledger was restored from (its manifest). */
  restoredFrom: { createdAt: string; headSeq: number; manifestSha256: string };
  /** Where the chain was read. */
  chain: { chainId: number; contract: string; blockNumber: number };
  /** Per batch, when the node still served the BatchAnchored events (EIP-4444 may prune). */
  anchors: LostBatch[];
}

/** The restore marker (`m:restore`): set by `veritrail restore`, removed by reconciliation. */
export interface RestoreMarker {
  restoredAt: string;
  backup: {
    createdAt: string;
    headSeq: number;
    lastSealedBatchNo: number;
    lastAnchoredBatchNo: number;
    manifestSha256: string;
  };
}

const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A stored lost range, as decoded (record-codec.ts: STORE_CORRUPT if not one). */
export const LostRangeSchema = z.object({
  fromBatchNo: uint,
  batches: uint,
  firstSeq: uint,
  count: uint,
  detectedAt: z.string(),
  cause: z.literal("restore"),
  restoredFrom: z.object({ createdAt: z.string(), headSeq: uint, manifestSha256: z.string() }),
  chain: z.object({ chainId: uint, contract: z.string(), blockNumber: uint }),
  anchors: z.array(
    z.object({
      batchNo: uint,
      firstSeq: uint,
      count: uint,
      txHash: z.string(),
      blockNumber: uint,
    }),
  ),
});

/** The stored restore marker (`m:restore`). */
export const RestoreMarkerSchema = z.object({
  restoredAt: z.string(),
  backup: z.object({
    createdAt: z.string(),
    headSeq: uint,
    lastSealedBatchNo: z.number().int().min(-1),
    lastAnchoredBatchNo: z.number().int().min(-1),
    manifestSha256: z.string(),
  }),
});

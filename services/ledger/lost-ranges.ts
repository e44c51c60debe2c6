/**
 * Batches the chain proves existed but this ledger does not hold. A ledger restored from a
 * backup is older than the chain: the batches its predecessor anchored after the backup are
 * on-chain (their commitments, and usually their BatchAnchored events) and nowhere else. They
 * are recorded as lost — never sealed again under the same numbers, their seqs never given to
 * new events — and reported by /readyz, /metrics and the regulator's audit.
 */
import { z } from "zod";
import type { BatchOp, LedgerStore } from "../store/ledger-store.ts";
import { K, prefixEnd } from "../store/keys.ts";
import { decodeJson } from "../store/record-codec.ts";

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

/** A stored lost range, as decoded (services/store/record-codec.ts: STORE_CORRUPT if not one). */
const LostRangeSchema = z.object({
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

export async function readLostRanges(store: LedgerStore): Promise<LostRange[]> {
  const out: LostRange[] = [];
  for await (const [k, v] of store.scan({
    gte: K.lostRangePrefix,
    lt: prefixEnd(K.lostRangePrefix),
  }))
    out.push(decodeJson(k, v, LostRangeSchema));
  return out;
}

export function lostRangeOp(store: LedgerStore, range: LostRange): BatchOp {
  return store.putJsonOp(K.lostRange(range.fromBatchNo), range);
}

/** The range holding `seq`, if any (ranges are few: a linear scan). */
export function lostRangeOfSeq(ranges: readonly LostRange[], seq: number): LostRange | undefined {
  return ranges.find((r) => seq >= r.firstSeq && seq < r.firstSeq + r.count);
}

export function lostRangeOfBatch(
  ranges: readonly LostRange[],
  batchNo: number,
): LostRange | undefined {
  return ranges.find((r) => batchNo >= r.fromBatchNo && batchNo < r.fromBatchNo + r.batches);
}

/** The first seq and batch number past every lost range (0, 0 without any). */
export function pastLostRanges(ranges: readonly LostRange[]): { seq: number; batchNo: number } {
  let seq = 0;
  let batchNo = 0;
  for (const r of ranges) {
    seq = Math.max(seq, r.firstSeq + r.count);
    batchNo = Math.max(batchNo, r.fromBatchNo + r.batches);
  }
  return { seq, batchNo };
}

export function describeLostRange(r: LostRange): string {
  return `batches ${r.fromBatchNo}..${r.fromBatchNo + r.batches - 1} (seqs ${r.firstSeq}..${r.firstSeq + r.count - 1}, ${r.count} events) are anchored on-chain but missing here: lost when this ledger was restored from a backup of ${r.restoredFrom.createdAt} (head seq ${r.restoredFrom.headSeq})`;
}

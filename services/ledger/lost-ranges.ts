/**
 * Batches the chain proves existed but this ledger does not hold. A ledger restored from a
 * backup is older than the chain: the batches its predecessor anchored after the backup are
 * on-chain (their commitments, and usually their BatchAnchored events) and nowhere else. They
 * are recorded as lost — never sealed again under the same numbers, their seqs never given to
 * new events — and reported by /readyz, /metrics and the regulator's audit.
 */

export type { LostBatch, LostRange, RestoreMarker } from "../store/restore-records.ts";
import type { LostRange } from "../store/restore-records.ts";

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

/** The lost ranges as /readyz and /v1/status report them: totals, then each range. */
export function lostRangesReport(ranges: readonly LostRange[]) {
  return {
    events: ranges.reduce((n, r) => n + r.count, 0),
    batches: ranges.reduce((n, r) => n + r.batches, 0),
    ranges: ranges.map((r) => ({
      fromBatchNo: r.fromBatchNo,
      batches: r.batches,
      firstSeq: r.firstSeq,
      count: r.count,
      detectedAt: r.detectedAt,
      restoredFrom: r.restoredFrom.createdAt,
    })),
  };
}

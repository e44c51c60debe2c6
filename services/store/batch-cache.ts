import type { BatchRecord } from "./batch-record.ts";

/**
 * The batch records most recently read, found by number or by a seq in their range, at most
 * `max` of them (least recently used out first). Every proof needs its event's batch record;
 * without it the record takes two reads in a row (the seq → batch lookup, an iterator seek that
 * opens a table on every LevelDB level, then the record), before the proof's Merkle path can be
 * read at all. The store drops a record's copy whenever it writes that record's key.
 */
export class BatchRecordCache {
  /** By batchNo, in use order (a Map iterates in insertion order: the first is the oldest). */
  private readonly byNo = new Map<number, BatchRecord>();
  /** The cached batches' first seqs, ascending, and their numbers at the same index. */
  private firstSeqs: number[] = [];
  private batchNos: number[] = [];

  constructor(readonly max: number) {}

  get size(): number {
    return this.byNo.size;
  }

  get(batchNo: number): BatchRecord | undefined {
    const record = this.byNo.get(batchNo);
    if (record !== undefined) this.touch(batchNo, record);
    return record;
  }

  /** The cached record of the batch whose range holds `seq`, if it is cached. */
  forSeq(seq: number): BatchRecord | undefined {
    // The last cached batch starting at or before `seq` (seqs are integers).
    const at = this.indexOf(seq + 1);
    if (at === 0) return undefined;
    const batchNo = this.batchNos[at - 1]!;
    const record = this.byNo.get(batchNo)!;
    const { firstSeq, count } = record.header;
    if (seq >= firstSeq + count) return undefined;
    this.touch(batchNo, record);
    return record;
  }

  /**
   * Caches `record` as read, replacing a copy cached before. It is frozen: every reader gets the
   * same object.
   */
  put(record: BatchRecord): void {
    if (this.max <= 0) return;
    const { batchNo, firstSeq } = record.header;
    freeze(record);
    if (this.byNo.has(batchNo)) {
      this.touch(batchNo, record);
      return;
    }
    if (this.byNo.size >= this.max) {
      const oldest = this.byNo.keys().next().value!;
      this.delete(oldest);
    }
    this.byNo.set(batchNo, record);
    const at = this.indexOf(firstSeq);
    this.firstSeqs.splice(at, 0, firstSeq);
    this.batchNos.splice(at, 0, batchNo);
  }

  /** Drops batch `batchNo`'s copy (its record is being written, or the oldest made room). */
  delete(batchNo: number): void {
    const record = this.byNo.get(batchNo);
    if (record === undefined) return;
    this.byNo.delete(batchNo);
    let at = this.indexOf(record.header.firstSeq);
    while (this.batchNos[at] !== batchNo) at++;
    this.firstSeqs.splice(at, 1);
    this.batchNos.splice(at, 1);
  }

  clear(): void {
    this.byNo.clear();
    this.firstSeqs = [];
    this.batchNos = [];
  }

  private touch(batchNo: number, record: BatchRecord): void {
    this.byNo.delete(batchNo);
    this.byNo.set(batchNo, record);
  }

  /** The first index whose first seq is not below `firstSeq`. */
  private indexOf(firstSeq: number): number {
    let lo = 0;
    let hi = this.firstSeqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.firstSeqs[mid]! < firstSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function freeze(record: BatchRecord): BatchRecord {
  for (const part of [record.header, record.submission, record.anchor, record.reorgedAnchors])
    if (part !== undefined) Object.freeze(part);
  for (const anchor of record.reorgedAnchors ?? []) Object.freeze(anchor);
  return Object.freeze(record);
}

/**
 * Whole-log reads in key order, for the regulator's audit (ledger/audit.ts), which replays every
 * record as stored and trusts no digest: the values of one kind of per-seq record
 * ({@link SeqValues}) and the receipt-group records ({@link GroupRecords}), each through one
 * LevelDB iterator. An iterator reads from the snapshot taken when it was opened, so a live
 * log's later writes never show up half-way through a replay.
 */
import type { ClassicLevel } from "classic-level";
import { K, parseSeqPart, prefixEnd, seqPart } from "./keys.ts";

type Db = ClassicLevel<string, Buffer>;

/** The per-seq records a replay reads in seq order. */
export type SeqRecordKind = "entries" | "bodies" | "receiptPaths";

export const SEQ_RECORD_PREFIX: Record<SeqRecordKind, string> = {
  entries: K.entryPrefix,
  bodies: K.bodyPrefix,
  receiptPaths: K.receiptPathPrefix,
};

/**
 * The values under `prefix` for seqs [0, total), read through one LevelDB iterator in pages of
 * {@link SeqValues.PAGE}: a range read costs a fraction of one `get` per key, and a page is all
 * that is held in memory.
 */
export class SeqValues {
  private static readonly PAGE = 1_024;
  private readonly iterator;
  private seqs: number[] = [];
  private values: Buffer[] = [];
  private at = 0;
  /** Every seq below this has been read (the page ends there or the range is exhausted). */
  private loadedTo = 0;
  private ended = false;
  private ahead: Promise<Array<[string, Buffer]>> | undefined;

  /** Over the keys `<prefix><seq>` of seqs [0, total) of `db`. */
  constructor(
    db: Db,
    private readonly prefix: string,
    total: number,
  ) {
    this.iterator = db.iterator({
      gte: `${prefix}${seqPart(0)}`,
      lt: `${prefix}${seqPart(total)}`,
    });
  }

  /** Whether `seq` lies within what has been read (so `get` can answer it). */
  has(seq: number): boolean {
    return seq < this.loadedTo || this.ended;
  }

  /** Reads on until `seq` is covered; seqs are asked in increasing order. */
  async load(seq: number): Promise<void> {
    while (!this.has(seq)) {
      const page = await (this.ahead ?? this.iterator.nextv(SeqValues.PAGE));
      // Read the next page on LevelDB's thread while this one is checked on the main thread.
      this.ahead = page.length === 0 ? undefined : this.iterator.nextv(SeqValues.PAGE);
      // Awaited by the next load or by close; an audit that stops early must not leave it
      // as an unhandled rejection.
      this.ahead?.catch(() => undefined);
      if (page.length === 0) {
        this.ended = true;
        break;
      }
      // Keep what is not consumed yet (seqs ≥ the last one asked).
      this.seqs = this.seqs.slice(this.at);
      this.values = this.values.slice(this.at);
      this.at = 0;
      for (const [k, v] of page) {
        this.seqs.push(parseSeqPart(k.slice(this.prefix.length)));
        this.values.push(v);
      }
      const last = this.seqs[this.seqs.length - 1]!;
      // nextv may answer fewer than asked before the end (it also caps bytes): only an empty
      // page ends the range. Seqs below the last one read are settled.
      if (!Number.isNaN(last)) this.loadedTo = last;
    }
  }

  /** The value at `seq` (asked in increasing order, after `load`), or undefined when absent. */
  get(seq: number): Buffer | undefined {
    while (this.at < this.seqs.length && this.seqs[this.at]! < seq) this.at++;
    return this.seqs[this.at] === seq ? this.values[this.at] : undefined;
  }

  async close(): Promise<void> {
    await this.ahead?.catch(() => undefined);
    await this.iterator.close();
  }
}

/** A receipt-group record as stored, under the first seq its key names. */
export interface StoredGroup {
  keySeq: number;
  raw: Buffer;
}

/** The receipt-group records (`g:`) in seq order, one at a time. */
export class GroupRecords {
  private readonly iterator;

  constructor(db: Db) {
    this.iterator = db.iterator({ gte: K.groupPrefix, lt: prefixEnd(K.groupPrefix) });
  }

  /** The next record, or undefined past the last. */
  async next(): Promise<StoredGroup | undefined> {
    const next = await this.iterator.next();
    if (next === undefined) return undefined;
    return { keySeq: parseSeqPart(next[0].slice(K.groupPrefix.length)), raw: next[1] };
  }

  async close(): Promise<void> {
    await this.iterator.close();
  }
}

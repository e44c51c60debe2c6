import type { Ledger } from "../ledger/ledger.ts";
import { lostRangeOfBatch } from "../ledger/lost-ranges.ts";
import type { AnchorLoopEvent, CatchUpReason, DeepReorg } from "./anchor-events.ts";

/**
 * How far anchoring has come: the cursor (first batch not anchored with enough confirmations),
 * the last sealed batch, the lag between them, a backlog being worked off (reported when it is
 * anchored) and the latest reorg deeper than CONFIRMATIONS. What /readyz, /metrics and the
 * service log say about anchoring comes from here.
 */
export class AnchorProgress {
  /** First batchNo not known to be anchored with enough confirmations; undefined until known. */
  private next: number | undefined;
  private nextSealedAt: number | undefined;
  /** Seal time of the first batch sealed while the cursor was still unknown (chain never reached). */
  private firstSealedBeforeCursor: number | undefined;
  private sealed = -1;
  /** A backlog being worked off, reported once it is anchored (for the operator's log). */
  private catchUp:
    { reason: CatchUpReason; since: number; from: number; through: number } | undefined;
  private reorg: DeepReorg | undefined;
  private reorgs = 0;

  constructor(
    private readonly ledger: Pick<Ledger, "listBatches" | "lostRanges">,
    private readonly emit: (event: AnchorLoopEvent) => void,
  ) {}

  /** Batches [0, cursor) are anchored; undefined until the chain was reached once. */
  get cursor(): number | undefined {
    return this.next;
  }

  get lastSealed(): number {
    return this.sealed;
  }

  /** The latest reorg deeper than CONFIRMATIONS (its lost anchors included). */
  get deepReorg(): DeepReorg | undefined {
    return this.reorg;
  }

  get deepReorgs(): number {
    return this.reorgs;
  }

  /** The ledger sealed a batch (its seal listener). */
  noteSealed(batchNo: number, sealedAt: string): void {
    this.sealed = Math.max(this.sealed, batchNo);
    if (this.next === batchNo) this.nextSealedAt = Date.parse(sealedAt);
    if (this.next === undefined) this.firstSealedBeforeCursor ??= Date.parse(sealedAt);
  }

  /** The ledger says its last sealed batch is `batchNo` (read at each cycle). */
  sealedThrough(batchNo: number): void {
    this.sealed = Math.max(this.sealed, batchNo);
  }

  /** Sealed batches not anchored yet, and how long the oldest of them has waited. */
  lag(now = Date.now()): { anchoredThrough: number; lagBatches: number; lagMs: number } {
    const anchoredThrough = this.next ?? 0;
    const lagBatches = Math.max(0, this.sealed + 1 - anchoredThrough);
    // Until the chain has been reached once the cursor is unknown: the lag then runs from the
    // first batch this process saw sealed, not zero (a service started with its RPC down lags).
    const waitingSince = this.next === undefined ? this.firstSealedBeforeCursor : this.nextSealedAt;
    const lagMs =
      lagBatches > 0 && waitingSince !== undefined ? Math.max(0, now - waitingSince) : 0;
    return { anchoredThrough, lagBatches, lagMs };
  }

  /** `batchNo`, or the first batch number past the lost range that holds it. */
  pastLost(batchNo: number): number {
    const lost = lostRangeOfBatch(this.ledger.lostRanges(), batchNo);
    return lost ? lost.fromBatchNo + lost.batches : batchNo;
  }

  /**
   * Moves the cursor to `next`, with its batch's seal time (read when not given). The batch may
   * be sealed while that read is in flight: the time the seal listener recorded then stands (lag
   * would otherwise read 0 for as long as the batch waits).
   */
  async moveCursor(next: number, sealedAt?: number): Promise<void> {
    // Batch numbers of a range lost in a restore are on-chain, never here: step over them.
    const to = this.pastLost(next);
    this.next = to;
    this.nextSealedAt = sealedAt;
    if (sealedAt !== undefined || to > this.sealed) return;
    const [record] = await this.ledger.listBatches({ fromBatchNo: to, limit: 1 });
    if (this.next === to && record && record.header.batchNo === to)
      this.nextSealedAt = Date.parse(record.sealedAt);
  }

  /**
   * Batch `batchNo` is anchored: the cursor moves past it (`nextSealedAt` is the next batch's
   * seal time when known), and a deep reorg whose batches are all anchored again is over.
   */
  async anchored(batchNo: number, nextSealedAt: number | undefined): Promise<void> {
    await this.moveCursor(batchNo + 1, nextSealedAt);
    const r = this.reorg;
    if (!r || r.reanchoredAt !== undefined || (this.next ?? 0) < r.fromBatchNo + r.batches) return;
    r.reanchoredAt = new Date().toISOString();
    this.emit({
      type: "reanchored",
      fromBatchNo: r.fromBatchNo,
      batches: r.batches,
      ms: Date.parse(r.reanchoredAt) - Date.parse(r.detectedAt),
    });
  }

  /** After the `anchored` event of `batchNo`: reports a backlog that is now anchored. */
  reportCaughtUp(batchNo: number): void {
    if (!this.catchUp || batchNo < this.catchUp.through) return;
    const { reason, since, from } = this.catchUp;
    this.catchUp = undefined;
    this.emit({ type: "caught-up", reason, batches: batchNo + 1 - from, ms: Date.now() - since });
  }

  /** Remembers the backlog [from, lastSealed] so its catching up can be reported. */
  noteBacklog(reason: CatchUpReason, from: number): void {
    const batches = this.sealed + 1 - from;
    if (batches <= 0) return;
    this.catchUp = { reason, since: Date.now(), from, through: this.sealed };
    if (reason === "restart") this.emit({ type: "backlog", reason, batches });
  }

  /**
   * The first cycle after an outage succeeded; batches [0, from) were anchored when it started.
   * The backlog the outage left is every batch sealed and not anchored by then: from `from`
   * through the last sealed batch (the cycle may already have anchored some of it, so the lag
   * after it would understate the backlog).
   */
  recovered(outage: { from: number; returnedAt: number; failures: number; since: number }): void {
    const { from, returnedAt } = outage;
    const lagBatches = Math.max(0, this.sealed + 1 - from);
    this.emit({
      type: "recovered",
      failures: outage.failures,
      downMs: returnedAt - outage.since,
      lagBatches,
    });
    if (lagBatches === 0 || this.catchUp !== undefined) return;
    if ((this.next ?? 0) > this.sealed)
      this.emit({
        type: "caught-up",
        reason: "outage",
        batches: lagBatches,
        ms: Date.now() - returnedAt,
      });
    else this.catchUp = { reason: "outage", since: returnedAt, from, through: this.sealed };
  }

  /** A reorg deeper than CONFIRMATIONS was found (the batches are reset already): report it. */
  deepReorgFound(reorg: DeepReorg): void {
    this.reorgs++;
    this.reorg = reorg;
    this.emit({ type: "reorg", fromBatchNo: reorg.fromBatchNo, reason: reorg.reason });
    this.emit({ type: "deep-reorg", ...reorg });
  }
}

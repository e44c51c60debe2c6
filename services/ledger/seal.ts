import { type Hex, toHex, utf8 } from "../core/hex.ts";
import { buildTree, leafHash } from "../core/merkle.ts";
import type { BatchOp, LedgerStore } from "../store/ledger-store.ts";
import { decodeEntryOf } from "../store/record-codec.ts";
import { StorageUnavailableError } from "../store/storage-failure.ts";
import type { BatchHeader } from "../core/batch-header.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import { invariant } from "./errors.ts";
import type { CommittedGroup } from "./ingest.ts";
import { type NodeLayout, TILE_HEIGHT, nodeValues } from "../store/node-layout.ts";
import type { SubjectIndex } from "./subject-index-store.ts";

/** How many batches' worth of unsealed leaves the sealer keeps in memory at most. */
const PENDING_LIMIT_BATCHES = 4;

/** New batches store their nodes in tiles (node-layout.ts); their records say so. */
const SEAL_LAYOUT: NodeLayout = { kind: "tiles", height: TILE_HEIGHT };

export interface SealerOptions {
  logId: Hex;
  /** Batch numbers and seqs below these are taken (lost ranges, lost-ranges.ts): start past them. */
  floor?: { batchNo: number; firstSeq: number };
  maxEvents: number;
  maxWaitMs: number;
  onSealed: (record: BatchRecord) => void;
  onError: (error: unknown) => void;
}

/**
 * Seals contiguous runs of accepted events into batches: when BATCH_MAX_EVENTS are waiting, or
 * BATCH_MAX_WAIT_MS after the oldest unsealed event was acknowledged, whichever comes first.
 * A batch's Merkle levels are stored with it, so any inclusion proof is a handful of reads.
 */
export class Sealer {
  private nextBatchNo: number;
  private nextFirstSeq: number;
  private acceptedThrough: number;
  private timer: NodeJS.Timeout | null = null;
  private sealing: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly store: LedgerStore,
    private readonly subjectIndex: SubjectIndex,
    last: BatchRecord | undefined,
    acceptedThrough: number,
    private readonly opts: SealerOptions,
  ) {
    this.nextBatchNo = Math.max(last ? last.header.batchNo + 1 : 0, opts.floor?.batchNo ?? 0);
    this.nextFirstSeq = Math.max(
      last ? last.header.firstSeq + last.header.count : 0,
      opts.floor?.firstSeq ?? 0,
    );
    this.acceptedThrough = acceptedThrough;
    invariant(this.nextFirstSeq <= acceptedThrough, "batches never run ahead of accepted events");
  }

  get unsealed(): number {
    return this.acceptedThrough - this.nextFirstSeq;
  }

  get sealedThrough(): number {
    return this.nextFirstSeq;
  }

  /**
   * Called after each durable group commit, with the group's leaves and subjects when the
   * caller has them: sealing then uses them instead of reading the entries back.
   */
  accepted(nextSeq: number, group?: CommittedGroup): void {
    if (group && group.firstSeq === this.acceptedThrough) this.remember(group);
    else this.forgetPending();
    this.acceptedThrough = nextSeq;
    this.schedule();
  }

  /** Leaves and subjects of accepted, unsealed events, from `pendingFrom` on, in seq order. */
  private pendingFrom = -1;
  private pendingLeaves: Uint8Array[] = [];
  private pendingSubjects: Array<Hex | null> = [];
  private pendingStart = 0;

  private remember(group: CommittedGroup): void {
    const held = this.pendingLeaves.length - this.pendingStart;
    // Bounded: when sealing falls far behind, stop holding leaves and read them back instead.
    if (held + group.leafHashes.length > PENDING_LIMIT_BATCHES * this.opts.maxEvents) {
      this.forgetPending();
      return;
    }
    if (held === 0) {
      this.forgetPending();
      this.pendingFrom = group.firstSeq;
    } else if (this.pendingFrom + held !== group.firstSeq) {
      this.forgetPending();
      return;
    }
    for (let i = 0; i < group.leafHashes.length; i++) {
      this.pendingLeaves.push(group.leafHashes[i]!);
      this.pendingSubjects.push(group.subjects[i]!);
    }
  }

  private forgetPending(): void {
    this.pendingFrom = -1;
    this.pendingLeaves = [];
    this.pendingSubjects = [];
    this.pendingStart = 0;
  }

  /**
   * The held leaves of [firstSeq, firstSeq + count), consumed. Undefined when they are not all
   * held (e.g. the batch starts with events accepted before a restart); the held leaves that
   * the batch covers are then dropped, the rest kept for the next batches.
   */
  private takePending(
    firstSeq: number,
    count: number,
  ): { leaves: Uint8Array[]; subjects: Array<Hex | null> } | undefined {
    if (this.pendingFrom < 0) return undefined;
    const held = this.pendingLeaves.length - this.pendingStart;
    const usable = this.pendingFrom === firstSeq && held >= count;
    const drop = usable ? count : Math.min(held, Math.max(0, firstSeq + count - this.pendingFrom));
    const from = this.pendingStart;
    const taken = usable
      ? {
          leaves: this.pendingLeaves.slice(from, from + count),
          subjects: this.pendingSubjects.slice(from, from + count),
        }
      : undefined;
    this.pendingStart += drop;
    this.pendingFrom += drop;
    if (this.pendingStart === this.pendingLeaves.length) this.forgetPending();
    else if (this.pendingStart > 65_536) {
      this.pendingLeaves = this.pendingLeaves.slice(this.pendingStart);
      this.pendingSubjects = this.pendingSubjects.slice(this.pendingStart);
      this.pendingStart = 0;
    }
    return taken;
  }

  /**
   * Arms the timers. Events left unsealed by a previous run (crash or stop) are old: they are
   * sealed at once rather than after another full wait.
   */
  start(): void {
    if (this.unsealed > 0) this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.sealing) await this.sealing;
  }

  /**
   * Seals what is accepted now, while ingest goes on: waits for the sealing under way, then
   * seals the partial batch at once instead of after its wait (a few rounds, a smaller batch each
   * time). A backup calls it before it holds ingest back, so that the hold seals only the few
   * events accepted meanwhile, not up to a whole batch.
   */
  async catchUp(rounds = 3): Promise<void> {
    if (this.sealing) await this.sealing;
    // Each round seals what came in during the one before, fewer events each time.
    for (let round = 0; round < rounds && this.unsealed > 0 && !this.stopped; round++) {
      this.kick();
      if (this.sealing) await this.sealing;
    }
  }

  /** Seals everything accepted so far (used at shutdown and by tests). */
  async sealAll(): Promise<void> {
    for (;;) {
      while (this.sealing) await this.sealing;
      if (this.unsealed === 0) return;
      // Held as the sealing under way, so the batch timer (armed when the last kick ended with
      // a partial batch) cannot start a second seal of the same batch meanwhile.
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      const run = this.sealOne();
      this.sealing = run.then(
        () => undefined,
        () => undefined,
      );
      void this.sealing.finally(() => {
        this.sealing = null;
      });
      await run;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.unsealed >= this.opts.maxEvents) {
      this.kick();
    } else if (this.unsealed > 0 && !this.timer && !this.sealing) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, this.opts.maxWaitMs);
    }
  }

  private kick(): void {
    if (this.sealing || this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sealing = (async () => {
      try {
        // Seal full batches back to back; a partial one only when its wait is over (here).
        do await this.sealOne();
        while (this.unsealed >= this.opts.maxEvents && !this.stopped);
      } catch (error) {
        // The disk refuses writes: retrying would spin. The ledger builds a new sealer once
        // the store is writable again (ledger.ts), and it seals what is left from disk.
        if (error instanceof StorageUnavailableError) this.stopped = true;
        this.opts.onError(error);
      }
    })().finally(() => {
      this.sealing = null;
      this.schedule();
    });
  }

  private async sealOne(): Promise<void> {
    const count = Math.min(this.unsealed, this.opts.maxEvents);
    if (count === 0) return;
    const firstSeq = this.nextFirstSeq;
    const batchNo = this.nextBatchNo;
    let leafHashes: Uint8Array[] = [];
    const subjects: Array<{ subject: Hex; seq: number; leafHash: Uint8Array }> = [];
    const held = this.takePending(firstSeq, count);
    if (held) {
      leafHashes = held.leaves;
      held.subjects.forEach((subject, i) => {
        if (subject !== null)
          subjects.push({ subject, seq: firstSeq + i, leafHash: leafHashes[i]! });
      });
    } else {
      // After a restart, or when sealing fell behind: the entries as stored are the truth.
      for await (const [seq, entryJcs] of this.store.scanEntries(firstSeq, firstSeq + count)) {
        invariant(
          seq === firstSeq + leafHashes.length,
          `entries are contiguous (missing seq ${firstSeq + leafHashes.length})`,
        );
        const leaf = leafHash(utf8(entryJcs));
        leafHashes.push(leaf);
        const entry = decodeEntryOf(seq, entryJcs);
        if (entry.subject !== null) subjects.push({ subject: entry.subject, seq, leafHash: leaf });
      }
    }
    invariant(leafHashes.length === count, `batch ${batchNo} has all ${count} entries`);
    const tree = buildTree(leafHashes);
    const index = await this.subjectIndex.prepareBatch(batchNo, subjects);
    const header: BatchHeader = {
      logId: this.opts.logId,
      batchNo,
      firstSeq,
      count,
      eventsRoot: toHex(tree.root),
      indexRoot: index.root,
    };
    const record: BatchRecord = {
      header,
      state: "sealed",
      sealedAt: new Date().toISOString(),
      tileHeight: TILE_HEIGHT,
    };
    // The batch's own nodes and record go in the index update's last, atomic write: once the
    // record is stored, its index is whole (subject-index-store.ts).
    const ops: BatchOp[] = nodeValues(batchNo, tree.levels, SEAL_LAYOUT).map(
      ({ key, value }): BatchOp => ({ type: "put", key, value }),
    );
    ops.push(...this.store.newBatchOps(record));
    await this.subjectIndex.writeBatch(index, ops);
    this.nextBatchNo = batchNo + 1;
    this.nextFirstSeq = firstSeq + count;
    this.opts.onSealed(record);
  }
}

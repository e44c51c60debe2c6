import type { RegistryClient } from "../chain/registry-client.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { alarmOf } from "./alarms.ts";
import type { AnchorLoopEvent } from "./anchor-events.ts";
import type { AnchorProgress } from "./anchor-progress.ts";
import type { AnchorTransactions } from "./anchor-transactions.ts";
import type { AnchoredWaiters } from "./anchored-waiters.ts";
import type { ChainSession } from "./chain-session.ts";
import * as reconcile from "./reconcile.ts";

/** Reads per cycle when reconciling a long backlog (restart, dev chain reset). */
const RECONCILE_PAGE = 256;

export interface AnchorRecordsOptions {
  ledger: Pick<
    Ledger,
    "logId" | "signerAddress" | "listBatches" | "lastBatchNo" | "saveBatchState"
  >;
  session: ChainSession;
  transactions: AnchorTransactions;
  progress: AnchorProgress;
  waiters: AnchoredWaiters;
  confirmations: number;
  /** How many of the latest anchored batches are re-checked against reorgs. */
  recheckDepth: number;
  recheckIntervalMs: number;
  emit: (event: AnchorLoopEvent) => void;
}

/**
 * The batch records' anchoring state kept in step with the chain: it reads the commitments and
 * blocks, asks reconcile.ts what they mean, and writes the records (submitted, anchored, an
 * anchor moved to another block, back to sealed after a reorg or a chain reset).
 */
export class AnchorRecords {
  private lastRecheck = 0;

  constructor(private readonly opts: AnchorRecordsOptions) {}

  /**
   * The registry or the log registration is gone: on a dev chain the session deploys and
   * registers again (in production it raises the alarm), and every batch is anchored again.
   */
  async registerAgain(code: "CONTRACT_MISSING" | "LOG_NOT_REGISTERED", why: string): Promise<void> {
    const done = await this.opts.session.registerAgain(code, why, this.opts.ledger);
    if (!done) return;
    this.opts.transactions.clear();
    const reset = await this.resetFrom(0);
    // A first start on a fresh dev chain is a registration, not a reset.
    if (reset > 0 || (done.deployed && code === "CONTRACT_MISSING")) {
      this.opts.progress.sealedThrough(await this.opts.ledger.lastBatchNo());
      this.opts.emit({
        type: "chain-reset",
        contract: done.address,
        previousContract: done.previousContract,
        redeployed: done.deployed,
        reason: why,
        batchesReset: reset,
        backlog: this.opts.progress.lastSealed + 1,
      });
      this.opts.progress.noteBacklog("chain-reset", 0);
    } else {
      this.opts.emit({ type: "registered", contract: done.address });
    }
  }

  /** The first batch not recorded as anchored on this registry (a scan, once per start). */
  async findCursor(client: RegistryClient): Promise<void> {
    const { ledger, progress } = this.opts;
    let cursor = 0;
    for (;;) {
      const page = await ledger.listBatches({ fromBatchNo: cursor, limit: 1_000 });
      const firstOpen = page.find((r) => !reconcile.isAnchoredOn(r, registryOf(client)));
      if (firstOpen) {
        cursor = firstOpen.header.batchNo;
        break;
      }
      const last = page.at(-1);
      if (!last) break;
      cursor = last.header.batchNo + 1;
    }
    await progress.moveCursor(cursor);
    progress.noteBacklog("restart", cursor);
    // Re-check the latest anchored batches at once: the chain may have moved while we were down.
    this.lastRecheck = 0;
  }

  /**
   * Batches below the chain's head: the stored commitment against the local header hash.
   * Equal → anchored once confirmed; different → fork alarm. True while not caught up.
   */
  async settleBelowHead(client: RegistryClient, chainNext: number, head: number): Promise<boolean> {
    const { ledger, session, transactions, progress } = this.opts;
    const cursor = progress.cursor ?? 0;
    if (cursor >= chainNext) return false;
    const logId = ledger.logId;
    // Batch numbers may jump over a lost range: only records the chain has a slot for.
    const records = (
      await ledger.listBatches({
        fromBatchNo: cursor,
        limit: Math.min(RECONCILE_PAGE, chainNext - cursor),
      })
    ).filter((r) => r.header.batchNo < chainNext);
    const commitments = await Promise.all(
      records.map((r) => client.batchCommitment(logId, r.header.batchNo)),
    );
    const steps = reconcile.planBelowHead(records, commitments);
    for (const [i, step] of steps.entries()) {
      if (step.kind === "chain-moved") return true;
      if (step.kind === "alarm") throw alarmOf(step);
      const batchNo = step.record.header.batchNo;
      const tx = await session.findAnchoringTx(
        client,
        step.record,
        head,
        transactions.hashesOf(batchNo),
      );
      const flight = transactions.flightOf(batchNo);
      const settled = reconcile.settle(step.record, tx, {
        registry: registryOf(client),
        confirmations: this.opts.confirmations,
        ...(flight ? { flight } : {}),
        now: new Date(),
      });
      if (settled.kind === "wait") {
        if (settled.save) await ledger.saveBatchState(settled.save);
        return true;
      }
      await ledger.saveBatchState(settled.save);
      transactions.settled(batchNo);
      const next = records[i + 1];
      await progress.anchored(batchNo, next ? Date.parse(next.sealedAt) : undefined);
      this.opts.emit({
        type: "anchored",
        batchNo,
        txHash: tx.txHash,
        blockNumber: tx.blockNumber,
        gasUsed: tx.gasUsed,
        sentByThisRun: flight !== undefined,
      });
      progress.reportCaughtUp(batchNo);
      this.opts.waiters.resolveThrough(batchNo);
    }
    return (progress.cursor ?? 0) < chainNext;
  }

  /**
   * Reorg check of the latest anchored batches (every recheckIntervalMs): the anchoring block
   * must still be canonical and the commitment still in state. A batch that lost its anchor goes
   * back to `sealed` together with every later batch. Returns true if it reset anything.
   */
  async recheckAnchored(client: RegistryClient, head: number): Promise<boolean> {
    const { ledger, session, transactions, progress } = this.opts;
    const cursor = progress.cursor ?? 0;
    if (cursor === 0 || Date.now() - this.lastRecheck < this.opts.recheckIntervalMs) return false;
    this.lastRecheck = Date.now();
    const from = Math.max(0, cursor - this.opts.recheckDepth);
    const records = (await ledger.listBatches({ fromBatchNo: from, limit: cursor - from })).filter(
      (r) => reconcile.isAnchoredOn(r, registryOf(client)),
    );
    const evidence = await Promise.all(
      records.map(async (record) => {
        const anchor = record.anchor!;
        const [commitment, blockHash] = await Promise.all([
          client.batchCommitment(record.header.logId, record.header.batchNo),
          anchor.blockNumber <= head
            ? client.blockHashAt(anchor.blockNumber)
            : Promise.resolve(undefined),
        ]);
        return { record, commitment, canonical: blockHash === anchor.blockHash };
      }),
    );
    for (const step of reconcile.planRecheck(evidence)) {
      if (step.kind === "alarm") throw alarmOf(step);
      if (step.kind === "deep-reorg") {
        await this.deepReorgFrom(step.fromBatchNo, step.reason);
        return true;
      }
      const tx = await session.findAnchoringTx(
        client,
        step.record,
        head,
        transactions.hashesOf(step.record.header.batchNo),
      );
      await ledger.saveBatchState(reconcile.relocate(step.record, tx));
    }
    return false;
  }

  /**
   * A reorg deeper than CONFIRMATIONS took the anchors of batches [fromBatchNo, cursor): raise
   * the alarm (status, event; it stays up until they are anchored again), keep the lost anchors
   * in the batch records, and re-anchor from `fromBatchNo`. Nothing acknowledged is touched.
   */
  async deepReorgFrom(fromBatchNo: number, reason: string): Promise<void> {
    const { ledger, session, transactions, progress } = this.opts;
    const until = Math.max(progress.cursor ?? fromBatchNo, fromBatchNo + 1);
    const records = await ledger.listBatches({ fromBatchNo, limit: until - fromBatchNo });
    session.tracker?.reset();
    transactions.clear();
    await this.resetFrom(fromBatchNo, { reorged: true });
    progress.deepReorgFound({
      detectedAt: new Date().toISOString(),
      fromBatchNo,
      batches: until - fromBatchNo,
      reason,
      confirmations: Math.max(1, this.opts.confirmations),
      lostAnchors: reconcile.lostAnchors(records, until),
    });
  }

  /**
   * Puts batches [fromBatchNo, …) back to `sealed` (they will be anchored again, in order).
   * Returns how many were submitted or anchored before.
   */
  async resetFrom(fromBatchNo: number, opts: { reorged?: boolean } = {}): Promise<number> {
    const { ledger } = this.opts;
    let reset = 0;
    for (let from = fromBatchNo; ;) {
      const page = await ledger.listBatches({ fromBatchNo: from, limit: 500 });
      const last = page.at(-1);
      if (!last) break;
      for (const record of page) {
        const sealed = reconcile.resetToSealed(record, opts.reorged === true);
        if (!sealed) continue;
        await ledger.saveBatchState(sealed);
        reset++;
      }
      from = last.header.batchNo + 1;
    }
    await this.opts.progress.moveCursor(fromBatchNo);
    this.opts.transactions.forgetFrom(fromBatchNo);
    return reset;
  }
}

function registryOf(client: RegistryClient): reconcile.RegistryRef {
  return { chainId: client.chainId, contract: client.address };
}

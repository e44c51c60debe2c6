import { ZeroHash } from "ethers";
import { type RegistryClient, RegistryError } from "../chain/registry-client.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { StoreCorruptError } from "../ledger/errors.ts";
import { lostRangeOfBatch } from "../ledger/lost-ranges.ts";
import { type AnchorAlarm, AlarmRaised, alarmError, alarmOf } from "./alarms.ts";
import type { AnchorLoopEvent, AnchorLoopState, AnchorLoopStatus } from "./anchor-events.ts";
import { AnchorProgress } from "./anchor-progress.ts";
import { AnchorRecords } from "./anchor-records.ts";
import { AnchorTransactions } from "./anchor-transactions.ts";
import { AnchoredWaiters } from "./anchored-waiters.ts";
import { type AnchorTuning, withDefaults } from "./anchor-tuning.ts";
import type { ChainSession } from "./chain-session.ts";
import { checkChainHead, checkRegistration } from "./reconcile.ts";
import { RestoreConflict, reconcileRestoredLedger } from "./restore-reconcile.ts";

export type * from "./alarms.ts";
export type * from "./anchor-events.ts";
export { anchorLoopTuning } from "./anchor-tuning.ts";

/**
 * The anchor loop (DESIGN.md "Batches and anchoring"): seal → send tx → wait CONFIRMATIONS →
 * record tx hash, block and gas, strictly in batchNo order. It schedules the room's parts: the
 * chain session (connection, dev deployment), the reconciliation (reconcile.ts: what the chain
 * says against the records, no I/O) and the transactions in flight (anchor-transactions.ts).
 *
 * Failure policy:
 * - RPC errors, timeouts, a paused registry: `backoff` (exponential with jitter), then retry.
 *   The ledger never waits for the loop: ingest and sealing go on, the backlog drains later.
 * - A different commitment on-chain for a batch this ledger sealed (a fork, or someone else
 *   anchoring with the anchorer key), a chain that is ahead of the ledger, a wrong anchorer:
 *   `alarm`. The loop stops anchoring and exposes the alarm for /readyz.
 * - Registry code or log registration gone: on a development chain (restarted Hardhat node)
 *   redeploy, re-register and re-anchor every batch; in production an alarm.
 */

/** The part of the Ledger the loop uses (so tests can wrap it). */
export type AnchorLedger = Pick<
  Ledger,
  | "logId"
  | "signerAddress"
  | "onSealed"
  | "listBatches"
  | "getBatch"
  | "lastBatchNo"
  | "saveBatchState"
  | "restorePending"
  | "sealedThrough"
  | "nextSeq"
  | "completeRestore"
  | "lostRanges"
>;

export interface AnchorLoopOptions extends AnchorTuning {
  ledger: AnchorLedger;
  /** The connection to the registry (system.ts composes it). */
  session: ChainSession;
  onEvent?: (event: AnchorLoopEvent) => void;
}

export class AnchorLoop {
  private readonly settings: Required<AnchorTuning>;
  private readonly ledger: AnchorLedger;
  private readonly session: ChainSession;
  private readonly transactions: AnchorTransactions;
  private readonly progress: AnchorProgress;
  private readonly records: AnchorRecords;
  private readonly waiters = new AnchoredWaiters();

  private state: AnchorLoopState = "stopped";
  private alarm: AnchorAlarm | undefined;
  private lastError: string | undefined;
  private failures = 0;
  private failingSince = 0;
  private running: Promise<void> | undefined;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private listening = false;
  private receiptSignerRegistered: boolean | undefined;

  constructor(private readonly opts: AnchorLoopOptions) {
    this.settings = withDefaults(opts);
    this.ledger = opts.ledger;
    this.session = opts.session;
    const emit = (event: AnchorLoopEvent): void => this.emit(event);
    this.transactions = new AnchorTransactions({
      session: opts.session,
      ledger: opts.ledger,
      maxInFlight: this.settings.maxInFlight,
      gasLimit: this.settings.gasLimit,
      txTimeoutMs: this.settings.txTimeoutMs,
      dropCheckMs: this.settings.dropCheckMs,
      emit,
    });
    this.progress = new AnchorProgress(opts.ledger, emit);
    this.records = new AnchorRecords({
      ledger: opts.ledger,
      session: opts.session,
      transactions: this.transactions,
      progress: this.progress,
      waiters: this.waiters,
      confirmations: this.settings.confirmations,
      recheckDepth: this.settings.recheckDepth,
      recheckIntervalMs: this.settings.recheckIntervalMs,
      emit,
    });
  }

  /** Starts the loop; it runs until `stop()` or an alarm. Never throws into the ledger. */
  start(): void {
    if (this.running) return;
    this.stopping = false;
    this.state = "running";
    if (!this.listening) this.listenToLedger();
    this.running = this.run();
  }

  private listenToLedger(): void {
    this.listening = true;
    // The ledger cannot remove a listener: a stopped loop ignores the calls.
    this.ledger.onSealed((record) => {
      if (this.stopping) return;
      this.progress.noteSealed(record.header.batchNo, record.sealedAt);
      this.wake();
    });
  }

  /** Stops after the current cycle; call before closing the ledger. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.running;
    this.running = undefined;
    if (this.state !== "alarm") this.state = "stopped";
    this.session.close();
    this.waiters.rejectAll(new Error("anchor loop stopped"));
  }

  status(): AnchorLoopStatus {
    const client = this.session.client;
    const alarm = this.alarm;
    const deepReorg = this.progress.deepReorg;
    return {
      state: this.state,
      ...this.progress.lag(),
      inFlight: this.transactions.size,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(alarm
        ? { alarm: { code: alarm.code, message: alarm.message, recoverable: alarm.recoverable } }
        : {}),
      ...(client ? { contract: client.address, chainId: client.chainId } : {}),
      ...(this.receiptSignerRegistered !== undefined
        ? { receiptSignerRegistered: this.receiptSignerRegistered }
        : {}),
      ...(deepReorg
        ? {
            deepReorg: {
              detectedAt: deepReorg.detectedAt,
              fromBatchNo: deepReorg.fromBatchNo,
              batches: deepReorg.batches,
              reason: deepReorg.reason,
              confirmations: deepReorg.confirmations,
              ...(deepReorg.reanchoredAt ? { reanchoredAt: deepReorg.reanchoredAt } : {}),
            },
          }
        : {}),
      deepReorgs: this.progress.deepReorgs,
    };
  }

  /** Resolves once batches [0, batchNo] are anchored; rejects on alarm, stop or timeout. */
  waitForAnchored(batchNo: number, timeoutMs: number): Promise<void> {
    const cursor = this.progress.cursor;
    if (cursor !== undefined && cursor > batchNo) return Promise.resolve();
    if (this.alarm && !this.alarm.recoverable)
      return Promise.reject(new Error(`anchor loop alarm: ${this.alarm.message}`));
    return this.waiters.add(
      batchNo,
      timeoutMs,
      () =>
        `batch ${batchNo} not anchored within ${timeoutMs} ms: ${JSON.stringify(this.status())}`,
    );
  }

  /** Runs a cycle now instead of at the next tick. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  // -------------------------------------------------------------------------------------------

  private emit(event: AnchorLoopEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch {
      // a listener's failure is not the loop's
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let pause: number;
      try {
        // Where anchoring stood when the RPC came back, before this cycle anchors anything.
        const outage =
          this.failures > 0
            ? {
                from: this.progress.cursor ?? 0,
                returnedAt: Date.now(),
                failures: this.failures,
                since: this.failingSince,
              }
            : undefined;
        const busy = await this.cycle();
        if (outage) this.progress.recovered(outage);
        this.failures = 0;
        this.lastError = undefined;
        this.alarm = undefined; // only recoverable alarms get here
        this.state = "running";
        pause = busy ? this.settings.pollMs : this.settings.tickMs;
      } catch (caught) {
        // A record that does not decode will not decode on a retry either: an alarm, which
        // clears once the operator has restored the record.
        const error =
          caught instanceof StoreCorruptError
            ? alarmError("STORE_CORRUPT", caught.message)
            : caught;
        if (error instanceof AlarmRaised) {
          this.raise(error.alarm);
          if (!error.alarm.recoverable) return;
          await this.sleep(this.settings.retryMaxMs);
          continue;
        }
        if (this.failures === 0) this.failingSince = Date.now();
        this.failures++;
        this.state = "backoff";
        this.lastError = this.session.describeError(error);
        this.emit({ type: "error", message: this.lastError });
        // Equal jitter: half fixed, half random, so loops that lost the same RPC do not retry
        // in lockstep.
        const ceiling = Math.min(
          this.settings.retryMaxMs,
          this.settings.retryMinMs * 2 ** Math.min(this.failures - 1, 30),
        );
        pause = ceiling / 2 + Math.random() * (ceiling / 2);
        if (error instanceof RegistryError && error.code === "NONCE_CONFLICT")
          pause = this.settings.pollMs;
      }
      await this.sleep(pause);
    }
  }

  /**
   * One pass: connect, check the registration and the log's head, re-check reorgs, settle what
   * the chain holds, watch the transactions in flight, send the next ones. True while there is
   * more to do soon (poll), false when idle (tick).
   */
  private async cycle(): Promise<boolean> {
    const { client, deployed } = await this.session.connect();
    if (deployed) this.emit({ type: "deployed", contract: deployed });
    const { ledger, progress } = this;
    const registration = checkRegistration({
      contract: client.address,
      logId: ledger.logId,
      log: await this.session.readLog(client, ledger.logId),
      anchorer: this.session.anchorerAddress,
      receiptSigner: ledger.signerAddress,
    });
    if (registration.kind === "alarm") throw alarmOf(registration);
    if (registration.kind === "register-again") {
      await this.records.registerAgain(registration.code, registration.why);
      return true;
    }
    this.receiptSignerRegistered = registration.receiptSignerRegistered;
    if (ledger.restorePending) await this.reconcileRestore(client);

    progress.sealedThrough(await ledger.lastBatchNo());
    if (progress.cursor === undefined) await this.records.findCursor(client);
    const chainNext = registration.chainNext;
    const view = {
      chainNext,
      lastSealed: progress.lastSealed,
      sealedEnd: progress.pastLost(progress.lastSealed + 1),
      lostAtChainNext: lostRangeOfBatch(ledger.lostRanges(), chainNext),
      cursor: progress.cursor,
      confirmations: this.settings.confirmations,
    };
    let head = checkChainHead(view);
    if (head.kind === "read-commitment") {
      const gone = (await client.batchCommitment(ledger.logId, head.batchNo)) === ZeroHash;
      head = checkChainHead({ ...view, lastConfirmedGone: gone });
    }
    if (head.kind === "alarm") throw alarmOf(head);
    if (head.kind === "deep-reorg") {
      await this.records.deepReorgFrom(head.fromBatchNo, head.reason);
      return true;
    }

    let busy = false;
    const blockNumber = await client.blockNumber();
    if (await this.records.recheckAnchored(client, blockNumber)) return true;
    if (await this.records.settleBelowHead(client, chainNext, blockNumber)) busy = true;
    if (this.stopping) return true;
    if (await this.transactions.watch(client, chainNext)) busy = true;
    if (
      await this.transactions.sendNext(client, chainNext, progress.lastSealed, () => this.stopping)
    )
      busy = true;
    return busy || this.transactions.size > 0;
  }

  /** A restored ledger's first contact with the chain (restore-reconcile.ts). */
  private async reconcileRestore(client: RegistryClient): Promise<void> {
    try {
      const lost = await reconcileRestoredLedger(this.ledger, client, {
        logLookbackBlocks: this.session.logLookbackBlocks,
      });
      this.emit({ type: "restore-reconciled", lost: lost ?? null });
    } catch (error) {
      if (error instanceof RestoreConflict)
        throw alarmError(error.code, error.message, error.batchNo);
      throw error;
    }
  }

  private raise(alarm: AnchorAlarm): void {
    const repeated = this.alarm?.code === alarm.code;
    this.alarm = alarm;
    this.state = "alarm";
    this.transactions.clear();
    if (!repeated) this.emit({ type: "alarm", alarm });
    if (alarm.recoverable) return;
    this.waiters.rejectAll(new Error(`anchor loop alarm ${alarm.code}: ${alarm.message}`));
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken || this.stopping) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}

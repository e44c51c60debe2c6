import { ZeroHash } from "ethers";
import { type RegistryClient, RegistryError } from "../chain/registry-client.ts";
import type { Config } from "../config.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { StoreCorruptError } from "../ledger/errors.ts";
import { lostRangeOfBatch } from "../ledger/lost-ranges.ts";
import { type AnchorAlarm, AlarmRaised, alarmError } from "./alarms.ts";
import type {
  AnchorLoopEvent,
  AnchorLoopState,
  AnchorLoopStatus,
  CatchUpReason,
  DeepReorg,
} from "./anchor-events.ts";
import { AnchorTransactions } from "./anchor-transactions.ts";
import { AnchoredWaiters } from "./anchored-waiters.ts";
import type { ChainSession } from "./chain-session.ts";
import {
  type RaiseAlarm,
  type RegistryRef,
  checkChainHead,
  checkRegistration,
  isAnchoredOn,
  lostAnchors,
  planBelowHead,
  planRecheck,
  relocate,
  resetToSealed,
  settle,
} from "./reconcile.ts";
import { RestoreConflict, reconcileRestoredLedger } from "./restore-reconcile.ts";

export type * from "./alarms.ts";
export type * from "./anchor-events.ts";

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

export interface AnchorLoopOptions {
  ledger: AnchorLedger;
  /** The connection to the registry (system.ts composes it). */
  session: ChainSession;
  confirmations: number;
  /** Idle re-check period (the loop also wakes on every sealed batch). */
  tickMs?: number;
  /** Poll period while transactions are in flight or waiting for confirmations. */
  pollMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** A transaction not mined after this long is replaced (same nonce, higher fee). */
  txTimeoutMs?: number;
  /** After this long, a transaction the node no longer knows counts as dropped and is resent. */
  dropCheckMs?: number;
  /** Anchor transactions in flight at once (consecutive nonces). */
  maxInFlight?: number;
  /** How many of the latest anchored batches are re-checked against reorgs. */
  recheckDepth?: number;
  recheckIntervalMs?: number;
  gasLimit?: bigint;
  onEvent?: (event: AnchorLoopEvent) => void;
}

const DEFAULTS = {
  tickMs: 1_000,
  pollMs: 100,
  retryMinMs: 250,
  retryMaxMs: 30_000,
  txTimeoutMs: 30_000,
  dropCheckMs: 3_000,
  maxInFlight: 8,
  recheckDepth: 16,
  recheckIntervalMs: 5_000,
  gasLimit: 150_000n,
} as const;

/** Reads per cycle when reconciling a long backlog (restart, dev chain reset). */
const RECONCILE_PAGE = 256;

type Settings = Required<Omit<AnchorLoopOptions, "ledger" | "session" | "onEvent">>;

export class AnchorLoop {
  private readonly settings: Settings;
  private readonly ledger: AnchorLedger;
  private readonly session: ChainSession;
  private readonly transactions: AnchorTransactions;
  private readonly waiters = new AnchoredWaiters();

  private state: AnchorLoopState = "stopped";
  private alarm: AnchorAlarm | undefined;
  private lastError: string | undefined;
  private failures = 0;
  private failingSince = 0;
  /** A backlog being worked off, reported once it is anchored (for the operator's log). */
  private catchUp:
    { reason: CatchUpReason; since: number; from: number; through: number } | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private listening = false;

  /** First batchNo not known to be anchored with enough confirmations; undefined until known. */
  private cursor: number | undefined;
  private cursorSealedAt: number | undefined;
  /** Seal time of the first batch sealed while the cursor was still unknown (chain never reached). */
  private firstSealedBeforeCursor: number | undefined;
  private lastSealed = -1;
  private lastRecheck = 0;
  private receiptSignerRegistered: boolean | undefined;
  private deepReorg: DeepReorg | undefined;
  private deepReorgs = 0;

  constructor(private readonly opts: AnchorLoopOptions) {
    this.settings = {
      ...DEFAULTS,
      ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
    } as Settings;
    this.ledger = opts.ledger;
    this.session = opts.session;
    this.transactions = new AnchorTransactions({
      session: opts.session,
      ledger: opts.ledger,
      maxInFlight: this.settings.maxInFlight,
      gasLimit: this.settings.gasLimit,
      txTimeoutMs: this.settings.txTimeoutMs,
      dropCheckMs: this.settings.dropCheckMs,
      emit: (event) => this.emit(event),
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
      this.lastSealed = Math.max(this.lastSealed, record.header.batchNo);
      if (this.cursor === record.header.batchNo) this.cursorSealedAt = Date.parse(record.sealedAt);
      if (this.cursor === undefined) this.firstSealedBeforeCursor ??= Date.parse(record.sealedAt);
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
    const anchoredThrough = this.cursor ?? 0;
    const lagBatches = Math.max(0, this.lastSealed + 1 - anchoredThrough);
    // Until the chain has been reached once the cursor is unknown: the lag then runs from the
    // first batch this process saw sealed, not zero (a service started with its RPC down lags).
    const waitingSince =
      this.cursor === undefined ? this.firstSealedBeforeCursor : this.cursorSealedAt;
    const lagMs =
      lagBatches > 0 && waitingSince !== undefined ? Math.max(0, Date.now() - waitingSince) : 0;
    const client = this.session.client;
    const { lostAnchors: _lost, ...deepReorg } = this.deepReorg ?? { lostAnchors: [] };
    return {
      state: this.state,
      lagBatches,
      lagMs,
      anchoredThrough,
      inFlight: this.transactions.size,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.alarm
        ? {
            alarm: {
              code: this.alarm.code,
              message: this.alarm.message,
              recoverable: this.alarm.recoverable,
            },
          }
        : {}),
      ...(client ? { contract: client.address, chainId: client.chainId } : {}),
      ...(this.receiptSignerRegistered !== undefined
        ? { receiptSignerRegistered: this.receiptSignerRegistered }
        : {}),
      ...(this.deepReorg ? { deepReorg: deepReorg as Omit<DeepReorg, "lostAnchors"> } : {}),
      deepReorgs: this.deepReorgs,
    };
  }

  /** Resolves once batches [0, batchNo] are anchored; rejects on alarm, stop or timeout. */
  waitForAnchored(batchNo: number, timeoutMs: number): Promise<void> {
    if (this.cursor !== undefined && this.cursor > batchNo) return Promise.resolve();
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
        const atReturn =
          this.failures > 0 ? { anchoredThrough: this.cursor ?? 0, at: Date.now() } : undefined;
        const busy = await this.cycle();
        if (atReturn) this.recovered(atReturn.anchoredThrough, atReturn.at);
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
    const ledger = this.ledger;
    const registration = checkRegistration({
      contract: client.address,
      logId: ledger.logId,
      log: await this.session.readLog(client, ledger.logId),
      anchorer: this.session.anchorerAddress,
      receiptSigner: ledger.signerAddress,
    });
    if (registration.kind === "alarm") throw raised(registration);
    if (registration.kind === "register-again") {
      await this.registerAgain(registration.code, registration.why);
      return true;
    }
    this.receiptSignerRegistered = registration.receiptSignerRegistered;
    if (ledger.restorePending) await this.reconcileRestore(client);

    this.lastSealed = Math.max(this.lastSealed, await ledger.lastBatchNo());
    if (this.cursor === undefined) await this.initCursor(client);
    const chainNext = registration.chainNext;
    const view = {
      chainNext,
      lastSealed: this.lastSealed,
      sealedEnd: this.pastLost(this.lastSealed + 1),
      lostAtChainNext: lostRangeOfBatch(ledger.lostRanges(), chainNext),
      cursor: this.cursor,
      confirmations: this.settings.confirmations,
    };
    let head = checkChainHead(view);
    if (head.kind === "read-commitment") {
      const gone = (await client.batchCommitment(ledger.logId, head.batchNo)) === ZeroHash;
      head = checkChainHead({ ...view, lastConfirmedGone: gone });
    }
    if (head.kind === "alarm") throw raised(head);
    if (head.kind === "deep-reorg") {
      await this.deepReorgFrom(head.fromBatchNo, head.reason);
      return true;
    }

    let busy = false;
    const blockNumber = await client.blockNumber();
    if (await this.recheckAnchored(client, blockNumber)) return true;
    if (await this.settleBelowHead(client, chainNext, blockNumber)) busy = true;
    if (this.stopping) return true;
    if (await this.transactions.watch(client, chainNext)) busy = true;
    if (await this.transactions.sendNext(client, chainNext, this.lastSealed, () => this.stopping))
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

  /**
   * The registry or the log registration is gone: on a dev chain the session deploys and
   * registers again (in production it raises the alarm), and every batch is anchored again.
   */
  private async registerAgain(
    code: "CONTRACT_MISSING" | "LOG_NOT_REGISTERED",
    why: string,
  ): Promise<void> {
    const done = await this.session.registerAgain(code, why, this.ledger);
    if (!done) return;
    this.transactions.clear();
    const reset = await this.resetFrom(0);
    // A first start on a fresh dev chain is a registration, not a reset.
    if (reset > 0 || (done.deployed && code === "CONTRACT_MISSING")) {
      this.lastSealed = Math.max(this.lastSealed, await this.ledger.lastBatchNo());
      this.emit({
        type: "chain-reset",
        contract: done.address,
        previousContract: done.previousContract,
        redeployed: done.deployed,
        reason: why,
        batchesReset: reset,
        backlog: this.lastSealed + 1,
      });
      this.noteBacklog("chain-reset", 0);
    } else {
      this.emit({ type: "registered", contract: done.address });
    }
  }

  /**
   * The first cycle after an outage succeeded; batches [0, from) were anchored when it started.
   * The backlog the outage left is every batch sealed and not anchored by then: from `from`
   * through the last sealed batch (the cycle may already have anchored some of it, so the lag
   * after it would understate the backlog).
   */
  private recovered(from: number, returnedAt: number): void {
    const lagBatches = Math.max(0, this.lastSealed + 1 - from);
    this.emit({
      type: "recovered",
      failures: this.failures,
      downMs: returnedAt - this.failingSince,
      lagBatches,
    });
    if (lagBatches === 0 || this.catchUp !== undefined) return;
    if ((this.cursor ?? 0) > this.lastSealed)
      this.emit({
        type: "caught-up",
        reason: "outage",
        batches: lagBatches,
        ms: Date.now() - returnedAt,
      });
    else this.catchUp = { reason: "outage", since: returnedAt, from, through: this.lastSealed };
  }

  /** Remembers the backlog [from, lastSealed] so its catching up can be reported. */
  private noteBacklog(reason: CatchUpReason, from: number): void {
    const batches = this.lastSealed + 1 - from;
    if (batches <= 0) return;
    this.catchUp = { reason, since: Date.now(), from, through: this.lastSealed };
    if (reason === "restart") this.emit({ type: "backlog", reason, batches });
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

  /** `batchNo`, or the first batch number past the lost range that holds it. */
  private pastLost(batchNo: number): number {
    const lost = lostRangeOfBatch(this.ledger.lostRanges(), batchNo);
    return lost ? lost.fromBatchNo + lost.batches : batchNo;
  }

  /**
   * A reorg deeper than CONFIRMATIONS took the anchors of batches [fromBatchNo, cursor): raise
   * the alarm (status, event; it stays up until they are anchored again), keep the lost anchors
   * in the batch records, and re-anchor from `fromBatchNo`. Nothing acknowledged is touched.
   */
  private async deepReorgFrom(fromBatchNo: number, reason: string): Promise<void> {
    const until = Math.max(this.cursor ?? fromBatchNo, fromBatchNo + 1);
    const records = await this.ledger.listBatches({ fromBatchNo, limit: until - fromBatchNo });
    this.session.tracker?.reset();
    this.transactions.clear();
    await this.resetFrom(fromBatchNo, { reorged: true });
    this.deepReorgs++;
    this.deepReorg = {
      detectedAt: new Date().toISOString(),
      fromBatchNo,
      batches: until - fromBatchNo,
      reason,
      confirmations: Math.max(1, this.settings.confirmations),
      lostAnchors: lostAnchors(records, until),
    };
    this.emit({ type: "reorg", fromBatchNo, reason });
    this.emit({ type: "deep-reorg", ...this.deepReorg });
  }

  /** Clears the deep-reorg alarm once every batch it took is anchored again. */
  private noteReanchored(): void {
    const r = this.deepReorg;
    if (!r || r.reanchoredAt !== undefined || (this.cursor ?? 0) < r.fromBatchNo + r.batches)
      return;
    r.reanchoredAt = new Date().toISOString();
    this.emit({
      type: "reanchored",
      fromBatchNo: r.fromBatchNo,
      batches: r.batches,
      ms: Date.parse(r.reanchoredAt) - Date.parse(r.detectedAt),
    });
  }

  /**
   * Puts batches [fromBatchNo, …) back to `sealed` (they will be anchored again, in order).
   * Returns how many were submitted or anchored before.
   */
  private async resetFrom(fromBatchNo: number, opts: { reorged?: boolean } = {}): Promise<number> {
    let reset = 0;
    for (let from = fromBatchNo; ;) {
      const page = await this.ledger.listBatches({ fromBatchNo: from, limit: 500 });
      const last = page.at(-1);
      if (!last) break;
      for (const record of page) {
        const sealed = resetToSealed(record, opts.reorged === true);
        if (!sealed) continue;
        await this.ledger.saveBatchState(sealed);
        reset++;
      }
      from = last.header.batchNo + 1;
    }
    await this.moveCursor(fromBatchNo);
    this.transactions.forgetFrom(fromBatchNo);
    return reset;
  }

  /**
   * Moves the cursor to `next`, with its batch's seal time (read when not given). The batch may
   * be sealed while that read is in flight: the time the seal listener recorded then stands (lag
   * would otherwise read 0 for as long as the batch waits).
   */
  private async moveCursor(next: number, sealedAt?: number): Promise<void> {
    // Batch numbers of a range lost in a restore are on-chain, never here: step over them.
    const to = this.pastLost(next);
    this.cursor = to;
    this.cursorSealedAt = sealedAt;
    if (sealedAt !== undefined || to > this.lastSealed) return;
    const [record] = await this.ledger.listBatches({ fromBatchNo: to, limit: 1 });
    if (this.cursor === to && record && record.header.batchNo === to)
      this.cursorSealedAt = Date.parse(record.sealedAt);
  }

  /** The first batch not recorded as anchored on this registry (a scan, once per start). */
  private async initCursor(client: RegistryClient): Promise<void> {
    let cursor = 0;
    for (;;) {
      const page = await this.ledger.listBatches({ fromBatchNo: cursor, limit: 1_000 });
      const firstOpen = page.find((r) => !isAnchoredOn(r, registryOf(client)));
      if (firstOpen) {
        cursor = firstOpen.header.batchNo;
        break;
      }
      const last = page.at(-1);
      if (!last) break;
      cursor = last.header.batchNo + 1;
    }
    await this.moveCursor(cursor);
    this.noteBacklog("restart", cursor);
    // Re-check the latest anchored batches at once: the chain may have moved while we were down.
    this.lastRecheck = 0;
  }

  /**
   * Batches below the chain's head: the stored commitment against the local header hash.
   * Equal → anchored once confirmed; different → fork alarm. True while not caught up.
   */
  private async settleBelowHead(
    client: RegistryClient,
    chainNext: number,
    head: number,
  ): Promise<boolean> {
    const cursor = this.cursor ?? 0;
    if (cursor >= chainNext) return false;
    const logId = this.ledger.logId;
    // Batch numbers may jump over a lost range: only records the chain has a slot for.
    const records = (
      await this.ledger.listBatches({
        fromBatchNo: cursor,
        limit: Math.min(RECONCILE_PAGE, chainNext - cursor),
      })
    ).filter((r) => r.header.batchNo < chainNext);
    const commitments = await Promise.all(
      records.map((r) => client.batchCommitment(logId, r.header.batchNo)),
    );
    const steps = planBelowHead(records, commitments);
    for (const [i, step] of steps.entries()) {
      if (step.kind === "chain-moved") return true;
      if (step.kind === "alarm") throw raised(step);
      const batchNo = step.record.header.batchNo;
      const tx = await this.session.findAnchoringTx(
        client,
        step.record,
        head,
        this.transactions.hashesOf(batchNo),
      );
      const flight = this.transactions.flightOf(batchNo);
      const settled = settle(step.record, tx, {
        registry: registryOf(client),
        confirmations: this.settings.confirmations,
        ...(flight ? { flight } : {}),
        now: new Date(),
      });
      if (settled.kind === "wait") {
        if (settled.save) await this.ledger.saveBatchState(settled.save);
        return true;
      }
      await this.ledger.saveBatchState(settled.save);
      this.transactions.settled(batchNo);
      const next = records[i + 1];
      await this.moveCursor(batchNo + 1, next ? Date.parse(next.sealedAt) : undefined);
      this.noteReanchored();
      this.emit({
        type: "anchored",
        batchNo,
        txHash: tx.txHash,
        blockNumber: tx.blockNumber,
        gasUsed: tx.gasUsed,
        sentByThisRun: flight !== undefined,
      });
      if (this.catchUp && batchNo >= this.catchUp.through) {
        const { reason, since, from } = this.catchUp;
        this.catchUp = undefined;
        this.emit({
          type: "caught-up",
          reason,
          batches: batchNo + 1 - from,
          ms: Date.now() - since,
        });
      }
      this.waiters.resolveThrough(batchNo);
    }
    return (this.cursor ?? 0) < chainNext;
  }

  /**
   * Reorg check of the latest anchored batches: the anchoring block must still be canonical and
   * the commitment still in state. A batch that lost its anchor goes back to `sealed` together
   * with every later batch. Returns true if it reset anything.
   */
  private async recheckAnchored(client: RegistryClient, head: number): Promise<boolean> {
    const cursor = this.cursor ?? 0;
    if (cursor === 0 || Date.now() - this.lastRecheck < this.settings.recheckIntervalMs)
      return false;
    this.lastRecheck = Date.now();
    const from = Math.max(0, cursor - this.settings.recheckDepth);
    const records = (
      await this.ledger.listBatches({ fromBatchNo: from, limit: cursor - from })
    ).filter((r) => isAnchoredOn(r, registryOf(client)));
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
    for (const step of planRecheck(evidence)) {
      if (step.kind === "alarm") throw raised(step);
      if (step.kind === "deep-reorg") {
        await this.deepReorgFrom(step.fromBatchNo, step.reason);
        return true;
      }
      const tx = await this.session.findAnchoringTx(
        client,
        step.record,
        head,
        this.transactions.hashesOf(step.record.header.batchNo),
      );
      await this.ledger.saveBatchState(relocate(step.record, tx));
    }
    return false;
  }
}

function registryOf(client: RegistryClient): RegistryRef {
  return { chainId: client.chainId, contract: client.address };
}

function raised(alarm: RaiseAlarm): AlarmRaised {
  return alarmError(alarm.code, alarm.message, alarm.batchNo);
}

/** The loop's tuning from the validated config (services/config.ts, ANCHOR_* and friends). */
export function anchorLoopTuning(
  config: Pick<
    Config,
    | "CONFIRMATIONS"
    | "ANCHOR_RETRY_MIN_MS"
    | "ANCHOR_RETRY_MAX_MS"
    | "ANCHOR_TX_TIMEOUT_MS"
    | "ANCHOR_DROP_CHECK_MS"
    | "ANCHOR_POLL_MS"
    | "ANCHOR_MAX_IN_FLIGHT"
    | "ANCHOR_RECHECK_DEPTH"
    | "ANCHOR_RECHECK_INTERVAL_MS"
    | "ANCHOR_GAS_LIMIT"
    | "RPC_TIMEOUT_MS"
  >,
): Omit<AnchorLoopOptions, "ledger" | "session" | "tickMs" | "onEvent"> & {
  /** The chain session's RPC timeout (ChainSessionOptions.requestTimeoutMs). */
  requestTimeoutMs: number;
} {
  return {
    confirmations: config.CONFIRMATIONS,
    retryMinMs: config.ANCHOR_RETRY_MIN_MS,
    retryMaxMs: Math.max(config.ANCHOR_RETRY_MIN_MS, config.ANCHOR_RETRY_MAX_MS),
    txTimeoutMs: config.ANCHOR_TX_TIMEOUT_MS,
    dropCheckMs: config.ANCHOR_DROP_CHECK_MS,
    pollMs: config.ANCHOR_POLL_MS,
    maxInFlight: config.ANCHOR_MAX_IN_FLIGHT,
    recheckDepth: config.ANCHOR_RECHECK_DEPTH,
    recheckIntervalMs: config.ANCHOR_RECHECK_INTERVAL_MS,
    gasLimit: BigInt(config.ANCHOR_GAS_LIMIT),
    requestTimeoutMs: config.RPC_TIMEOUT_MS,
  };
}

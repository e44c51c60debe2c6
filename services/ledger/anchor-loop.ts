import { type Wallet, ZeroHash, getAddress } from "ethers";
import { DevDeployment } from "../chain/dev-deployment.ts";
import {
  type AnchoredEvent,
  type Fees,
  NonceTracker,
  RegistryClient,
  RegistryError,
  headerHash,
  makeProvider,
  probeChainId,
  redactRpcUrl,
} from "../chain/registry-client.ts";
import type { Config } from "../config.ts";
import type { BatchHeader } from "../core/batch-header.ts";
import type { AnchorRecord, BatchRecord } from "../store/batch-record.ts";
import type { Ledger } from "./ledger.ts";
import { type LostRange, lostRangeOfBatch } from "./lost-ranges.ts";
import { RestoreConflict, reconcileRestoredLedger } from "./restore-reconcile.ts";
import { StoreCorruptError } from "./errors.ts";

/**
 * The anchor loop (DESIGN.md "Batches and anchoring"): seal → send tx → wait CONFIRMATIONS →
 * record tx hash, block and gas, strictly in batchNo order.
 *
 * Every cycle starts from what the chain says, not from what this process remembers: it reads
 * the log's head and the commitments of the batches below it, so a restart, a lost RPC answer,
 * a dropped transaction or a reorg all converge to the same place. The contract refuses a
 * wrong batchNo or firstSeq, which makes resending always safe; the loop only has to avoid
 * wasting gas.
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

export type AnchorLoopState = "running" | "backoff" | "alarm" | "stopped";

export type AnchorAlarmCode =
  | "FORK_DETECTED"
  | "CONTRACT_MISSING"
  | "LOG_NOT_REGISTERED"
  | "ANCHORER_MISMATCH"
  | "CHAIN_ID_CHANGED"
  | "NO_ADMIN_KEY"
  | "ANCHOR_REJECTED"
  | "RESTORE_CONFLICT"
  | "LOST_BATCHES_UNANCHORED"
  /** A batch record does not decode (services/store/record-codec.ts): restore it. */
  | "STORE_CORRUPT";

export interface AnchorAlarm {
  code: AnchorAlarmCode;
  message: string;
  /**
   * An operator can fix the cause on-chain (register the log, deploy the registry, rotate the
   * anchorer to this key): the loop keeps re-checking every retryMaxMs and clears the alarm by
   * itself. A fork never clears: the loop stops.
   */
  recoverable: boolean;
  batchNo?: number;
  at: string;
}

const RECOVERABLE_ALARMS: ReadonlySet<AnchorAlarmCode> = new Set([
  "CONTRACT_MISSING",
  "LOG_NOT_REGISTERED",
  "ANCHORER_MISMATCH",
  "LOST_BATCHES_UNANCHORED",
  "STORE_CORRUPT",
]);

/**
 * A reorg that removed anchors the loop had already counted as confirmed (CONFIRMATIONS deep):
 * the chain's finality assumption failed. The loop re-anchors those batches; the alarm stays up
 * (`reanchoredAt` unset) until it has. The lost anchors are kept in each batch record
 * (`reorgedAnchors`): bundles handed out before name one of them.
 */
export interface DeepReorg {
  detectedAt: string;
  fromBatchNo: number;
  batches: number;
  reason: string;
  confirmations: number;
  lostAnchors: Array<{ batchNo: number; txHash: string; blockNumber: number; blockHash: string }>;
  reanchoredAt?: string;
}

export interface AnchorLoopStatus {
  state: AnchorLoopState;
  /** Sealed batches not yet anchored with the required confirmations. */
  lagBatches: number;
  /** Age of the oldest sealed batch that is not anchored yet; 0 when there is none. */
  lagMs: number;
  /** Batches [0, anchoredThrough) are anchored. */
  anchoredThrough: number;
  inFlight: number;
  lastError?: string;
  alarm?: { code: AnchorAlarmCode; message: string; recoverable: boolean };
  contract?: string;
  chainId?: number;
  /** Whether the ledger's receipt signer is the one registered on-chain (after a rotation). */
  receiptSignerRegistered?: boolean;
  /** The latest reorg deeper than CONFIRMATIONS, and how many there were since start. */
  deepReorg?: Omit<DeepReorg, "lostAnchors">;
  deepReorgs: number;
}

export type AnchorLoopEvent =
  | { type: "submitted"; batchNo: number; txHash: string; nonce: number; attempt: number }
  | {
      type: "anchored";
      batchNo: number;
      txHash: string;
      blockNumber: number;
      gasUsed: number;
      /** false when this run did not send it (already on-chain at start, or re-found). */
      sentByThisRun: boolean;
    }
  | { type: "rebroadcast"; batchNo: number; txHash: string; nonce: number }
  | { type: "reorg"; fromBatchNo: number; reason: string }
  | { type: "deployed"; contract: string }
  | { type: "registered"; contract: string }
  | {
      type: "chain-reset";
      contract: string;
      /** The registry address in use when the registry or the log registration was found gone. */
      previousContract: string;
      /** Whether the registry had to be deployed again (false: only the log registration was gone). */
      redeployed: boolean;
      reason: string;
      /** Batches that were submitted or anchored before, now to be anchored again. */
      batchesReset: number;
      /** Sealed batches to anchor into the new registry, from batch 0. */
      backlog: number;
    }
  /** Sealed batches not anchored yet when the loop started (a stop or crash left them). */
  | { type: "backlog"; reason: "restart"; batches: number }
  /** The RPC answers again after `failures` failed cycles over `downMs`. */
  | { type: "recovered"; failures: number; downMs: number; lagBatches: number }
  /** The backlog noted by `backlog` or `chain-reset` is anchored: `batches` in `ms`. */
  | { type: "caught-up"; reason: CatchUpReason; batches: number; ms: number }
  /** A restored ledger compared with the chain; `lost` is what the chain holds beyond it. */
  | { type: "restore-reconciled"; lost: LostRange | null }
  /** Anchors this loop had confirmed are gone: a reorg deeper than CONFIRMATIONS. Re-anchoring. */
  | ({ type: "deep-reorg" } & DeepReorg)
  /** Every batch a deep reorg took is anchored again. */
  | { type: "reanchored"; fromBatchNo: number; batches: number; ms: number }
  | { type: "alarm"; alarm: AnchorAlarm }
  | { type: "error"; message: string };

export type CatchUpReason = "restart" | "outage" | "chain-reset";

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
  rpcUrl: string;
  chainMode: "development" | "production";
  /** The registry. Required in production; on a dev chain it is deployed when missing. */
  contractAddress?: string;
  anchorer: Wallet;
  /** Admin (deployer) key: dev chain only, for deploy, log registration and reset recovery. */
  admin?: Wallet;
  /**
   * The operator name recorded on-chain when this loop registers the log (dev chain only; in
   * production the registry's admin registers the log with scripts/register-log.ts).
   */
  operator?: string;
  /** Share one DevDeployment between loops on the same dev chain (one registry for all). */
  deployment?: DevDeployment;
  /** Share one tracker between loops that use the same anchorer account. */
  nonceTracker?: NonceTracker;
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
  requestTimeoutMs?: number;
  /** Blocks searched back for BatchAnchored events when a tx hash is unknown. */
  logLookbackBlocks?: number;
  gasLimit?: bigint;
  onEvent?: (event: AnchorLoopEvent) => void;
  /** Called when a dev chain reset made the loop deploy a new registry. */
  onContractChanged?: (address: string) => void;
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
  requestTimeoutMs: 10_000,
  logLookbackBlocks: 100_000,
  gasLimit: 150_000n,
} as const;

/** Reads per cycle when reconciling a long backlog (restart, dev chain reset). */
const RECONCILE_PAGE = 256;

/** Raised inside a cycle to stop the loop with an alarm. */
class AlarmRaised extends Error {
  constructor(readonly alarm: AnchorAlarm) {
    super(alarm.message);
    this.name = "AlarmRaised";
  }
}

interface Flight {
  header: BatchHeader;
  nonce: number;
  fees: Fees;
  /** The newest signed transaction (rebroadcast verbatim if the node dropped it). */
  raw: string;
  /** When the current fees were first sent (the replacement timer). */
  sentAt: number;
  /** Last broadcast of any kind (the drop-check timer). */
  broadcastAt: number;
  attempts: number;
  /** Every hash sent for this batch (the original and its replacements), newest last. */
  hashes: string[];
}

type CycleResult = "idle" | "busy";

export class AnchorLoop {
  /** The options with their defaults filled in (DEFAULTS), for the timing and RPC settings. */
  private readonly settings: Required<
    Omit<
      AnchorLoopOptions,
      "contractAddress" | "admin" | "deployment" | "nonceTracker" | "onEvent" | "onContractChanged"
    >
  > &
    Pick<AnchorLoopOptions, "onEvent" | "onContractChanged">;
  private readonly deployment: DevDeployment | undefined;
  private client: RegistryClient | undefined;
  private contractAddress: string | undefined;
  private tracker: NonceTracker | undefined;
  private readonly sharedTracker: NonceTracker | undefined;
  private readonly anchorerAddress: string;

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
  private readonly flights = new Map<number, Flight>();
  private lastRecheck = 0;
  private receiptSignerRegistered: boolean | undefined;
  private deepReorg: DeepReorg | undefined;
  private deepReorgs = 0;
  private readonly anchoredWaiters = new Set<{
    batchNo: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }>();

  constructor(private readonly opts: AnchorLoopOptions) {
    this.settings = {
      ...DEFAULTS,
      ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
    } as AnchorLoop["settings"];
    if (opts.chainMode === "production" && !opts.contractAddress) {
      throw new Error("CONTRACT_ADDRESS is required in production mode");
    }
    this.anchorerAddress = getAddress(opts.anchorer.address);
    this.contractAddress = opts.contractAddress ?? opts.deployment?.address;
    this.deployment =
      opts.chainMode === "development"
        ? (opts.deployment ??
          (opts.admin ? new DevDeployment(opts.admin, opts.contractAddress) : undefined))
        : undefined;
    this.sharedTracker = opts.nonceTracker;
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
    this.opts.ledger.onSealed((record) => {
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
    this.client?.destroy();
    this.client = undefined;
    for (const w of this.anchoredWaiters) w.reject(new Error("anchor loop stopped"));
    this.anchoredWaiters.clear();
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
    return {
      state: this.state,
      lagBatches,
      lagMs,
      anchoredThrough,
      inFlight: this.flights.size,
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
      ...(this.client ? { contract: this.client.address, chainId: this.client.chainId } : {}),
      ...(this.receiptSignerRegistered !== undefined
        ? { receiptSignerRegistered: this.receiptSignerRegistered }
        : {}),
      ...(this.deepReorg
        ? {
            deepReorg: {
              detectedAt: this.deepReorg.detectedAt,
              fromBatchNo: this.deepReorg.fromBatchNo,
              batches: this.deepReorg.batches,
              reason: this.deepReorg.reason,
              confirmations: this.deepReorg.confirmations,
              ...(this.deepReorg.reanchoredAt ? { reanchoredAt: this.deepReorg.reanchoredAt } : {}),
            },
          }
        : {}),
      deepReorgs: this.deepReorgs,
    };
  }

  /** Resolves once batches [0, batchNo] are anchored; rejects on alarm, stop or timeout. */
  waitForAnchored(batchNo: number, timeoutMs: number): Promise<void> {
    if (this.cursor !== undefined && this.cursor > batchNo) return Promise.resolve();
    if (this.alarm && !this.alarm.recoverable)
      return Promise.reject(new Error(`anchor loop alarm: ${this.alarm.message}`));
    return new Promise((resolve, reject) => {
      const waiter = {
        batchNo,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.anchoredWaiters.delete(waiter);
        reject(
          new Error(
            `batch ${batchNo} not anchored within ${timeoutMs} ms: ${JSON.stringify(this.status())}`,
          ),
        );
      }, timeoutMs);
      this.anchoredWaiters.add(waiter);
    });
  }

  /** Runs a cycle now instead of at the next tick. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  // -------------------------------------------------------------------------------------------

  private emit(event: AnchorLoopEvent): void {
    try {
      this.settings.onEvent?.(event);
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
        const result = await this.cycle();
        if (atReturn) this.recovered(atReturn.anchoredThrough, atReturn.at);
        this.failures = 0;
        this.lastError = undefined;
        this.alarm = undefined; // only recoverable alarms get here
        this.state = "running";
        pause = result === "busy" ? this.settings.pollMs : this.settings.tickMs;
      } catch (caught) {
        // A record that does not decode will not decode on a retry either: an alarm, which
        // clears once the operator has restored the record.
        const error =
          caught instanceof StoreCorruptError
            ? this.alarmError("STORE_CORRUPT", caught.message)
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
        this.lastError = errorSummary(error, this.settings.rpcUrl);
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
    this.flights.clear();
    if (!repeated) this.emit({ type: "alarm", alarm });
    if (alarm.recoverable) return;
    for (const w of this.anchoredWaiters)
      w.reject(new Error(`anchor loop alarm ${alarm.code}: ${alarm.message}`));
    this.anchoredWaiters.clear();
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

  private alarmError(code: AnchorAlarmCode, message: string, batchNo?: number): AlarmRaised {
    return new AlarmRaised({
      code,
      message,
      recoverable: RECOVERABLE_ALARMS.has(code),
      ...(batchNo !== undefined ? { batchNo } : {}),
      at: new Date().toISOString(),
    });
  }

  private get isDev(): boolean {
    return this.opts.chainMode === "development";
  }

  /** One pass: connect, check the registry, reconcile, re-check reorgs, manage flights, send. */
  private async cycle(): Promise<CycleResult> {
    const client = await this.connect();
    const ledger = this.opts.ledger;
    const logId = ledger.logId;

    const log = await client.getLog(logId).catch(async (error: unknown) => {
      if (error instanceof RegistryError && error.code === "NO_CONTRACT") return undefined;
      throw error;
    });
    if (!log) {
      await this.recoverChainState("CONTRACT_MISSING", `no registry code at ${client.address}`);
      return "busy";
    }
    if (!log.registered) {
      await this.recoverChainState(
        "LOG_NOT_REGISTERED",
        `log ${logId} is not registered at ${client.address}`,
      );
      return "busy";
    }
    if (getAddress(log.anchorer) !== this.anchorerAddress) {
      throw this.alarmError(
        "ANCHORER_MISMATCH",
        `the registry's anchorer for this log is ${log.anchorer}, this service anchors as ${this.anchorerAddress}`,
      );
    }
    this.receiptSignerRegistered =
      getAddress(log.receiptSigner) === getAddress(ledger.signerAddress);
    if (ledger.restorePending) await this.reconcileRestore(client);

    this.lastSealed = Math.max(this.lastSealed, await ledger.lastBatchNo());
    if (this.cursor === undefined) await this.initCursor(client);
    const chainNext = log.nextBatchNo;
    const lost = lostRangeOfBatch(ledger.lostRanges(), chainNext);
    if (lost) {
      // A reorg or a chain reset took batches this ledger lost in a restore: it cannot anchor
      // them again (it does not hold them) nor anything after them.
      throw this.alarmError(
        "LOST_BATCHES_UNANCHORED",
        `the registry holds ${chainNext} batches of this log; batches ${lost.fromBatchNo}..${lost.fromBatchNo + lost.batches - 1} were lost in a restore and cannot be anchored again from this ledger`,
        chainNext,
      );
    }
    if (chainNext > this.pastLost(this.lastSealed + 1)) {
      throw this.alarmError(
        "FORK_DETECTED",
        `the registry holds ${chainNext} batches of this log but the ledger sealed only ${this.lastSealed + 1} (a data directory put back by hand from an older copy? \`veritrail restore\` reconciles a copy with the chain)`,
        this.lastSealed + 1,
      );
    }

    if (this.cursor !== undefined && chainNext < this.cursor) {
      // The registry holds fewer batches than this loop saw confirmed. One node's lagging view
      // is not a reorg: the last confirmed batch must really be gone from state.
      const last = this.cursor - 1;
      if ((await client.batchCommitment(logId, last)) === ZeroHash) {
        await this.deepReorgFrom(
          chainNext,
          `the registry holds ${chainNext} batches of this log; ${this.cursor} had ${Math.max(1, this.settings.confirmations)} confirmations`,
        );
        return "busy";
      }
    }

    let busy = false;
    const head = await client.blockNumber();
    if (await this.recheckAnchored(client, head)) return "busy";
    if ((await this.reconcile(client, chainNext, head)) === "busy") busy = true;
    if (this.stopping) return "busy";
    if ((await this.manageFlights(client, chainNext)) === "busy") busy = true;
    if ((await this.sendNext(client, chainNext)) === "busy") busy = true;
    return busy || this.flights.size > 0 ? "busy" : "idle";
  }

  /** A restored ledger's first contact with the chain (restore-reconcile.ts). */
  private async reconcileRestore(client: RegistryClient): Promise<void> {
    try {
      const lost = await reconcileRestoredLedger(this.opts.ledger, client, {
        logLookbackBlocks: this.settings.logLookbackBlocks,
      });
      this.emit({ type: "restore-reconciled", lost: lost ?? null });
    } catch (error) {
      if (error instanceof RestoreConflict)
        throw this.alarmError(error.code, error.message, error.batchNo);
      throw error;
    }
  }

  /** `batchNo`, or the first batch number past the lost range that holds it. */
  private pastLost(batchNo: number): number {
    const lost = lostRangeOfBatch(this.opts.ledger.lostRanges(), batchNo);
    return lost ? lost.fromBatchNo + lost.batches : batchNo;
  }

  private async connect(): Promise<RegistryClient> {
    if (this.client) return this.client;
    const chainId = await probeChainId(this.settings.rpcUrl, this.settings.requestTimeoutMs);
    const provider = makeProvider(this.settings.rpcUrl, chainId, this.settings.requestTimeoutMs);
    let address = this.contractAddress;
    if (address === undefined) {
      if (!this.deployment) {
        provider.destroy();
        throw this.alarmError(
          "NO_ADMIN_KEY",
          "no CONTRACT_ADDRESS and no admin key to deploy the registry",
        );
      }
      // First start on a dev chain: deploy once.
      const bootstrap = new RegistryClient(provider, chainId, ZeroHash.slice(0, 42));
      const ensured = await this.deployment.ensure(bootstrap);
      address = ensured.address;
      this.contractAddress = address;
      this.opts.onContractChanged?.(address);
      if (ensured.deployed) this.emit({ type: "deployed", contract: address });
    }
    this.client = new RegistryClient(provider, chainId, address);
    this.tracker = this.sharedTracker ?? NonceTracker.forAccount(provider, this.anchorerAddress);
    return this.client;
  }

  /**
   * The registry or the log registration is gone. On a dev chain that is a node restart:
   * redeploy, re-register, and re-anchor every batch. In production, refuse.
   */
  private async recoverChainState(
    code: "CONTRACT_MISSING" | "LOG_NOT_REGISTERED",
    why: string,
  ): Promise<void> {
    const client = this.client;
    if (!client) return;
    if (!this.isDev)
      throw this.alarmError(code, `${why}; production mode never redeploys or re-registers`);
    if (!this.deployment)
      throw this.alarmError("NO_ADMIN_KEY", `${why}; no admin key to redeploy the registry`);
    const chainId = await probeChainId(this.settings.rpcUrl, this.settings.requestTimeoutMs);
    if (chainId !== client.chainId) {
      // A different dev chain behind the same URL: start over with a fresh provider.
      client.destroy();
      this.client = undefined;
      this.tracker = undefined;
      throw new Error(`chain id changed from ${client.chainId} to ${chainId}; reconnecting`);
    }
    const { address, deployed } = await this.deployment.ensure(client);
    const target = address === client.address ? client : client.at(address);
    const ledger = this.opts.ledger;
    await target.registerLog(this.deployment.admin, {
      logId: ledger.logId,
      anchorer: this.anchorerAddress,
      receiptSigner: ledger.signerAddress,
      operator: this.opts.operator ?? DEV_LOG_OPERATOR,
    });
    this.client = target;
    this.contractAddress = address;
    if (address !== client.address) this.opts.onContractChanged?.(address);
    this.tracker?.reset();
    this.flights.clear();
    const reset = await this.resetFrom(0);
    // A first start on a fresh dev chain is a registration, not a reset.
    if (reset > 0 || (deployed && code === "CONTRACT_MISSING")) {
      this.lastSealed = Math.max(this.lastSealed, await ledger.lastBatchNo());
      this.emit({
        type: "chain-reset",
        contract: address,
        previousContract: client.address,
        redeployed: deployed,
        reason: why,
        batchesReset: reset,
        backlog: this.lastSealed + 1,
      });
      this.noteBacklog("chain-reset", 0);
    } else {
      this.emit({ type: "registered", contract: address });
    }
  }

  /**
   * A reorg deeper than CONFIRMATIONS took the anchors of batches [fromBatchNo, cursor): raise
   * the alarm (status, event; it stays up until they are anchored again), keep the lost anchors
   * in the batch records, and re-anchor from `fromBatchNo`. Nothing acknowledged is touched.
   */
  private async deepReorgFrom(fromBatchNo: number, reason: string): Promise<void> {
    const until = Math.max(this.cursor ?? fromBatchNo, fromBatchNo + 1);
    const records = await this.opts.ledger.listBatches({
      fromBatchNo,
      limit: until - fromBatchNo,
    });
    const lostAnchors = records
      .filter((r) => r.state === "anchored" && r.anchor && r.header.batchNo < until)
      .map((r) => ({
        batchNo: r.header.batchNo,
        txHash: r.anchor!.txHash,
        blockNumber: r.anchor!.blockNumber,
        blockHash: r.anchor!.blockHash,
      }));
    this.tracker?.reset();
    this.flights.clear();
    await this.resetFrom(fromBatchNo, { reorged: true });
    this.deepReorgs++;
    this.deepReorg = {
      detectedAt: new Date().toISOString(),
      fromBatchNo,
      batches: until - fromBatchNo,
      reason,
      confirmations: Math.max(1, this.settings.confirmations),
      lostAnchors,
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
   * Returns how many were submitted or anchored before. After a reorg (`reorged`), an anchor
   * that is gone is kept in the record's `reorgedAnchors`.
   */
  private async resetFrom(fromBatchNo: number, opts: { reorged?: boolean } = {}): Promise<number> {
    const ledger = this.opts.ledger;
    let reset = 0;
    for (let from = fromBatchNo; ;) {
      const page = await ledger.listBatches({ fromBatchNo: from, limit: 500 });
      if (page.length === 0) break;
      for (const record of page) {
        if (record.state === "sealed") continue;
        await ledger.saveBatchState(
          opts.reorged && record.state === "anchored" && record.anchor
            ? {
                ...asSealed(record),
                reorgedAnchors: [...(record.reorgedAnchors ?? []), record.anchor],
              }
            : asSealed(record),
        );
        reset++;
      }
      const last = page.at(-1);
      if (!last) break;
      from = last.header.batchNo + 1;
    }
    await this.moveCursor(fromBatchNo);
    for (const [batchNo] of this.flights) if (batchNo >= fromBatchNo) this.flights.delete(batchNo);
    return reset;
  }

  /**
   * Moves the cursor to `to`, with its batch's seal time (read when not given). The batch may be
   * sealed while that read is in flight: the time the seal listener recorded then stands (lag
   * would otherwise read 0 for as long as the batch waits).
   */
  private async moveCursor(next: number, sealedAt?: number): Promise<void> {
    // Batch numbers of a range lost in a restore are on-chain, never here: step over them.
    const to = this.pastLost(next);
    this.cursor = to;
    this.cursorSealedAt = sealedAt;
    if (sealedAt !== undefined) return;
    const read = await this.sealedAtOf(to);
    if (this.cursor === to && read !== undefined) this.cursorSealedAt = read;
  }

  private async sealedAtOf(batchNo: number): Promise<number | undefined> {
    if (batchNo > this.lastSealed) return undefined;
    const [record] = await this.opts.ledger.listBatches({ fromBatchNo: batchNo, limit: 1 });
    return record && record.header.batchNo === batchNo ? Date.parse(record.sealedAt) : undefined;
  }

  private isAnchoredHere(record: BatchRecord, client: RegistryClient): boolean {
    return (
      record.state === "anchored" &&
      record.anchor !== undefined &&
      record.anchor.chainId === client.chainId &&
      getAddress(record.anchor.contract) === client.address
    );
  }

  /** The first batch not recorded as anchored on this registry (a scan, once per start). */
  private async initCursor(client: RegistryClient): Promise<void> {
    const ledger = this.opts.ledger;
    let cursor = 0;
    for (;;) {
      const page = await ledger.listBatches({ fromBatchNo: cursor, limit: 1_000 });
      const firstOpen = page.findIndex((r) => !this.isAnchoredHere(r, client));
      if (firstOpen >= 0) {
        cursor = page[firstOpen]?.header.batchNo ?? cursor;
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
   * Batches below the chain's head: compare the stored commitment with the local header hash.
   * Equal → anchored (once confirmed); different → fork alarm.
   */
  private async reconcile(
    client: RegistryClient,
    chainNext: number,
    head: number,
  ): Promise<CycleResult> {
    const cursor = this.cursor ?? 0;
    if (cursor >= chainNext) return "idle";
    const ledger = this.opts.ledger;
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
    const wanted = Math.max(1, this.settings.confirmations);
    for (const [i, record] of records.entries()) {
      const batchNo = record.header.batchNo;
      const onChain = commitments[i];
      if (onChain === undefined || onChain === ZeroHash) return "busy"; // the chain moved under us
      const local = headerHash(record.header);
      if (onChain !== local) {
        throw this.alarmError(
          "FORK_DETECTED",
          `batch ${batchNo} on-chain commitment ${onChain} differs from the sealed header's ${local}`,
          batchNo,
        );
      }
      const mined = await this.findAnchoringTx(client, record, head);
      const flight = this.flights.get(batchNo);
      if (mined.confirmations < wanted) {
        if (record.state !== "submitted" || record.submission?.txHash !== mined.txHash) {
          await ledger.saveBatchState({
            ...record,
            state: "submitted",
            submission: {
              chainId: client.chainId,
              contract: client.address,
              txHash: mined.txHash,
              nonce: flight?.nonce ?? record.submission?.nonce ?? -1,
              submittedAt: record.submission?.submittedAt ?? new Date().toISOString(),
              attempts: flight?.attempts ?? record.submission?.attempts ?? 0,
            },
          });
        }
        return "busy";
      }
      const anchor: AnchorRecord = {
        chainId: client.chainId,
        contract: client.address,
        txHash: mined.txHash,
        blockNumber: mined.blockNumber,
        blockHash: mined.blockHash,
        gasUsed: mined.gasUsed,
        anchoredAt: new Date().toISOString(),
      };
      await ledger.saveBatchState({ ...record, state: "anchored", anchor });
      this.flights.delete(batchNo);
      const next = records[i + 1];
      await this.moveCursor(batchNo + 1, next ? Date.parse(next.sealedAt) : undefined);
      this.noteReanchored();
      this.emit({
        type: "anchored",
        batchNo,
        txHash: mined.txHash,
        blockNumber: mined.blockNumber,
        gasUsed: mined.gasUsed,
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
      for (const w of this.anchoredWaiters) {
        if (w.batchNo <= batchNo) {
          this.anchoredWaiters.delete(w);
          w.resolve();
        }
      }
    }
    return (this.cursor ?? 0) < chainNext ? "busy" : "idle";
  }

  /**
   * The transaction that put a batch's commitment on-chain: one of ours if we know it, else
   * the BatchAnchored event. If the node no longer serves old logs (EIP-4444 pruning), the
   * state itself is the evidence: record the current head as the block it was observed in.
   */
  private async findAnchoringTx(
    client: RegistryClient,
    record: BatchRecord,
    head: number,
  ): Promise<{
    txHash: string;
    blockNumber: number;
    blockHash: string;
    gasUsed: number;
    confirmations: number;
  }> {
    const candidates = [...(this.flights.get(record.header.batchNo)?.hashes ?? []).toReversed()];
    if (record.submission?.txHash && !candidates.includes(record.submission.txHash))
      candidates.push(record.submission.txHash);
    for (const txHash of candidates) {
      const mined = await client.minedTransaction(txHash);
      if (mined && mined.status === "success") return mined;
    }
    const fromBlock = Math.max(0, head - this.settings.logLookbackBlocks);
    let event: AnchoredEvent | undefined;
    try {
      event = await client.findBatchAnchored(record.header.logId, record.header.batchNo, fromBlock);
    } catch (error) {
      // Nodes that pruned history or cap log ranges answer with an error. If the next call
      // fails too, the node is down: an outage, not pruning.
      await client.blockNumber().catch(() => {
        throw error;
      });
      event = undefined;
    }
    if (event) {
      const mined = await client.minedTransaction(event.txHash);
      if (mined && mined.status === "success") return mined;
      return { ...event, gasUsed: 0, confirmations: Math.max(0, head - event.blockNumber + 1) };
    }
    const blockHash = (await client.blockHashAt(head)) ?? ZeroHash;
    return {
      txHash: ZeroHash,
      blockNumber: head,
      blockHash,
      gasUsed: 0,
      confirmations: Number.MAX_SAFE_INTEGER,
    };
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
    const ledger = this.opts.ledger;
    const from = Math.max(0, cursor - this.settings.recheckDepth);
    const records = (await ledger.listBatches({ fromBatchNo: from, limit: cursor - from })).filter(
      (r) => this.isAnchoredHere(r, client),
    );
    const checks = await Promise.all(
      records.map(async (r) => {
        const anchor = r.anchor as AnchorRecord;
        const [commitment, blockHash] = await Promise.all([
          client.batchCommitment(r.header.logId, r.header.batchNo),
          anchor.blockNumber <= head
            ? client.blockHashAt(anchor.blockNumber)
            : Promise.resolve(undefined),
        ]);
        return { record: r, commitment, canonical: blockHash === anchor.blockHash };
      }),
    );
    for (const { record, commitment, canonical } of checks) {
      const batchNo = record.header.batchNo;
      const local = headerHash(record.header);
      if (commitment === local && canonical) continue;
      if (commitment !== ZeroHash && commitment !== local) {
        throw this.alarmError(
          "FORK_DETECTED",
          `batch ${batchNo} on-chain commitment ${commitment} differs from the sealed header's ${local}`,
          batchNo,
        );
      }
      if (commitment === local) {
        // Still in state, but in another block (re-included after a reorg): record where.
        const mined = await this.findAnchoringTx(client, record, head);
        await ledger.saveBatchState({
          ...record,
          anchor: {
            ...(record.anchor as AnchorRecord),
            txHash: mined.txHash,
            blockNumber: mined.blockNumber,
            blockHash: mined.blockHash,
            gasUsed: mined.gasUsed || (record.anchor?.gasUsed ?? 0),
          },
        });
        continue;
      }
      // The anchoring block left the canonical chain and took the commitment with it. The batch
      // was anchored, so it had the required confirmations: the reorg was deeper than those.
      const reason = `anchoring block ${record.anchor?.blockNumber ?? "?"} of batch ${batchNo} is no longer canonical`;
      await this.deepReorgFrom(batchNo, reason);
      return true;
    }
    return false;
  }

  /**
   * Transactions sent but not (yet) reflected in state. Mined but reverted → forget it and
   * send again. Unknown to the node after `dropCheckMs`, or unmined after `txTimeoutMs` →
   * replace it with the same nonce and a higher fee, unless the nonce was consumed meanwhile,
   * in which case it is sent again with a fresh nonce.
   */
  private async manageFlights(client: RegistryClient, chainNext: number): Promise<CycleResult> {
    let busy = false;
    for (const [batchNo, flight] of [...this.flights.entries()].sort((a, b) => a[0] - b[0])) {
      if (batchNo < chainNext) continue; // reconcile handles it once confirmed
      const latest = flight.hashes.at(-1) as string;
      const mined = await client.minedTransaction(latest);
      if (mined) {
        if (mined.status === "reverted") {
          // Typically a pipelined batch whose predecessor was dropped: it ran too early.
          this.flights.delete(batchNo);
          busy = true;
        }
        continue;
      }
      const now = Date.now();
      if (now - flight.broadcastAt < this.settings.dropCheckMs) continue;
      const known = await client.hasTransaction(latest);
      const stuck = now - flight.sentAt >= this.settings.txTimeoutMs;
      if (known && !stuck) continue;
      const consumed =
        (await client.provider.getTransactionCount(this.anchorerAddress, "latest")) > flight.nonce;
      if (consumed) {
        // The nonce went to another transaction (a replacement we lost track of, or another
        // process with this key): if none of ours is mined, send the batch again.
        let ours = false;
        for (const h of flight.hashes) if (await client.minedTransaction(h)) ours = true;
        if (!ours) {
          this.flights.delete(batchNo);
          this.tracker?.reset();
          busy = true;
        }
        continue;
      }
      if (!known && !stuck) {
        // Dropped from the pool (or never received: the broadcast's answer was lost). The same
        // signed bytes again cost nothing extra; a fee bump waits for txTimeoutMs.
        await client.rebroadcast(flight.raw);
        flight.broadcastAt = Date.now();
        this.emit({ type: "rebroadcast", batchNo, txHash: latest, nonce: flight.nonce });
      } else {
        await this.replace(client, flight);
      }
      busy = true;
    }
    return busy ? "busy" : "idle";
  }

  private async replace(client: RegistryClient, flight: Flight): Promise<void> {
    const current = await client.feeData();
    // Nodes accept a replacement only with both fees raised (geth: +10%); +25% leaves room.
    const bump = (v: bigint): bigint => (v * 125n) / 100n + 1n;
    const fees: Fees = {
      maxFeePerGas: max(bump(flight.fees.maxFeePerGas), current.maxFeePerGas),
      maxPriorityFeePerGas: max(
        bump(flight.fees.maxPriorityFeePerGas),
        current.maxPriorityFeePerGas,
      ),
    };
    if (fees.maxPriorityFeePerGas > fees.maxFeePerGas)
      fees.maxFeePerGas = fees.maxPriorityFeePerGas;
    const sent = await client.sendAnchor(this.opts.anchorer, flight.header, {
      nonce: flight.nonce,
      fees,
      gasLimit: this.settings.gasLimit,
      ...(this.tracker ? { nonceTracker: this.tracker } : {}),
    });
    flight.fees = fees;
    flight.raw = sent.raw;
    flight.sentAt = Date.now();
    flight.broadcastAt = flight.sentAt;
    flight.attempts++;
    flight.hashes.push(sent.txHash);
    await this.recordSubmission(client, flight, sent.txHash);
    this.emit({
      type: "submitted",
      batchNo: flight.header.batchNo,
      txHash: sent.txHash,
      nonce: flight.nonce,
      attempt: flight.attempts,
    });
  }

  /** Sends the next batches (up to maxInFlight, consecutive nonces), in batchNo order. */
  private async sendNext(client: RegistryClient, chainNext: number): Promise<CycleResult> {
    const ledger = this.opts.ledger;
    // Flights below chainNext are mined and only wait for confirmations: they do not hold
    // back the next batches.
    const pending = (): number => [...this.flights.keys()].filter((b) => b >= chainNext).length;
    let sent = false;
    for (let batchNo = chainNext; batchNo <= this.lastSealed && !this.stopping; batchNo++) {
      if (this.flights.has(batchNo)) continue;
      if (pending() >= this.settings.maxInFlight) break;
      const record = await ledger.getBatch(batchNo);
      if (batchNo === chainNext && pending() === 0) {
        // Only the batch the chain expects next can be simulated; surface typed errors before
        // paying gas for them.
        try {
          await client.preflightAnchor(this.anchorerAddress, record.header);
        } catch (error) {
          this.onPreflightError(error, batchNo);
        }
      }
      const sentAnchor = await client.sendAnchor(this.opts.anchorer, record.header, {
        gasLimit: this.settings.gasLimit,
        ...(this.tracker ? { nonceTracker: this.tracker } : {}),
      });
      const flight: Flight = {
        header: record.header,
        nonce: sentAnchor.nonce,
        fees: sentAnchor.fees,
        raw: sentAnchor.raw,
        sentAt: Date.now(),
        // An uncertain broadcast is checked (and rebroadcast if unknown) at the next cycle.
        broadcastAt: sentAnchor.uncertain ? 0 : Date.now(),
        attempts: 1,
        hashes: [sentAnchor.txHash],
      };
      this.flights.set(batchNo, flight);
      await this.recordSubmission(client, flight, sentAnchor.txHash, record);
      this.emit({
        type: "submitted",
        batchNo,
        txHash: sentAnchor.txHash,
        nonce: sentAnchor.nonce,
        attempt: 1,
      });
      sent = true;
    }
    return sent ? "busy" : "idle";
  }

  private onPreflightError(error: unknown, batchNo: number): never {
    if (error instanceof RegistryError) {
      switch (error.code) {
        case "UNEXPECTED_BATCH":
          // The chain moved between our reads; the next cycle reconciles.
          throw error;
        case "UNEXPECTED_FIRST_SEQ":
          throw this.alarmError(
            "FORK_DETECTED",
            `batch ${batchNo} does not continue the chain's log: ${error.message}`,
            batchNo,
          );
        case "UNAUTHORIZED_ANCHORER":
          throw this.alarmError("ANCHORER_MISMATCH", error.message, batchNo);
        case "EMPTY_BATCH":
        case "ZERO_EVENTS_ROOT":
        case "SEQ_OVERFLOW":
        case "BATCH_NO_OVERFLOW":
          throw this.alarmError(
            "ANCHOR_REJECTED",
            `the registry refuses batch ${batchNo}: ${error.message}`,
            batchNo,
          );
        default:
          throw error; // PAUSED and the like: back off and retry
      }
    }
    throw error;
  }

  private async recordSubmission(
    client: RegistryClient,
    flight: Flight,
    txHash: string,
    known?: BatchRecord,
  ): Promise<void> {
    const ledger = this.opts.ledger;
    const record = known ?? (await ledger.getBatch(flight.header.batchNo));
    if (record.state === "anchored") return;
    await ledger.saveBatchState({
      ...record,
      state: "submitted",
      submission: {
        chainId: client.chainId,
        contract: client.address,
        txHash,
        nonce: flight.nonce,
        submittedAt: new Date(flight.sentAt).toISOString(),
        attempts: flight.attempts,
      },
    });
  }
}

function asSealed(record: BatchRecord): BatchRecord {
  const { submission: _submission, anchor: _anchor, ...rest } = record;
  return { ...rest, state: "sealed" };
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** A one-line reason for status output; never the RPC URL's credentials. */
function errorSummary(error: unknown, rpcUrl: string): string {
  const text =
    error instanceof RegistryError
      ? `${error.code}: ${error.message}`
      : error instanceof Error
        ? ((error as { shortMessage?: string }).shortMessage ?? error.message)
        : String(error);
  return text.split(rpcUrl).join(redactRpcUrl(rpcUrl)).slice(0, 500);
}

/** The loop's tuning from the validated config (services/config.ts, ANCHOR_* and friends). */
/** The operator name a development registration records when none is configured. */
export const DEV_LOG_OPERATOR = "Veritrail development log";

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
): Pick<
  AnchorLoopOptions,
  | "confirmations"
  | "retryMinMs"
  | "retryMaxMs"
  | "txTimeoutMs"
  | "dropCheckMs"
  | "pollMs"
  | "maxInFlight"
  | "recheckDepth"
  | "recheckIntervalMs"
  | "gasLimit"
  | "requestTimeoutMs"
> {
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

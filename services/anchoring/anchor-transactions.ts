import type { BatchHeader } from "../core/batch-header.ts";
import { type Fees, type RegistryClient, RegistryError } from "../chain/registry-client.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { alarmError } from "./alarms.ts";
import type { AnchorLoopEvent } from "./anchor-events.ts";
import type { ChainSession } from "./chain-session.ts";

/** One batch's anchor transaction from sending until its commitment is in state. */
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

export interface AnchorTransactionsOptions {
  session: ChainSession;
  ledger: Pick<Ledger, "getBatch" | "saveBatchState">;
  /** Anchor transactions in flight at once (consecutive nonces). */
  maxInFlight: number;
  gasLimit: bigint;
  /** A transaction not mined after this long is replaced (same nonce, higher fee). */
  txTimeoutMs: number;
  /** After this long, a transaction the node no longer knows counts as dropped and is resent. */
  dropCheckMs: number;
  emit: (event: AnchorLoopEvent) => void;
}

/**
 * The anchor transactions in flight: sent in batchNo order with consecutive nonces (up to
 * maxInFlight), each submission recorded in the batch record, rebroadcast when the node drops
 * one, replaced with a fee bump when one is stuck, sent again with a fresh nonce when another
 * transaction took its nonce. The contract refuses a wrong batchNo or firstSeq, which makes
 * resending always safe; this only has to avoid wasting gas.
 */
export class AnchorTransactions {
  private readonly flights = new Map<number, Flight>();

  constructor(private readonly opts: AnchorTransactionsOptions) {}

  get size(): number {
    return this.flights.size;
  }

  /** This run's transaction for `batchNo`, if it sent one. */
  flightOf(batchNo: number): { nonce: number; attempts: number } | undefined {
    return this.flights.get(batchNo);
  }

  /** Every hash this run sent for `batchNo`, newest first. */
  hashesOf(batchNo: number): string[] {
    return (this.flights.get(batchNo)?.hashes ?? []).toReversed();
  }

  /** The batch is anchored: nothing more to watch. */
  settled(batchNo: number): void {
    this.flights.delete(batchNo);
  }

  /** Forgets every flight (an alarm; a reorg or reset that starts over, with fresh nonces). */
  clear(): void {
    this.flights.clear();
  }

  /** Forgets the flights of batches [fromBatchNo, …) (they will be sent again). */
  forgetFrom(fromBatchNo: number): void {
    for (const batchNo of this.flights.keys())
      if (batchNo >= fromBatchNo) this.flights.delete(batchNo);
  }

  /**
   * Transactions sent but not (yet) reflected in state. Mined but reverted → forget it and
   * send again. Unknown to the node after `dropCheckMs`, or unmined after `txTimeoutMs` →
   * replace it with the same nonce and a higher fee, unless the nonce was consumed meanwhile,
   * in which case it is sent again with a fresh nonce. Returns whether it did anything.
   */
  async watch(client: RegistryClient, chainNext: number): Promise<boolean> {
    let busy = false;
    for (const [batchNo, flight] of [...this.flights.entries()].sort((a, b) => a[0] - b[0])) {
      if (batchNo < chainNext) continue; // reconciliation settles it once confirmed
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
      if (now - flight.broadcastAt < this.opts.dropCheckMs) continue;
      const known = await client.hasTransaction(latest);
      const stuck = now - flight.sentAt >= this.opts.txTimeoutMs;
      if (known && !stuck) continue;
      const consumed =
        (await client.provider.getTransactionCount(this.opts.session.anchorerAddress, "latest")) >
        flight.nonce;
      if (consumed) {
        // The nonce went to another transaction (a replacement we lost track of, or another
        // process with this key): if none of ours is mined, send the batch again.
        let ours = false;
        for (const h of flight.hashes) if (await client.minedTransaction(h)) ours = true;
        if (!ours) {
          this.flights.delete(batchNo);
          this.opts.session.tracker?.reset();
          busy = true;
        }
        continue;
      }
      if (!known && !stuck) {
        // Dropped from the pool (or never received: the broadcast's answer was lost). The same
        // signed bytes again cost nothing extra; a fee bump waits for txTimeoutMs.
        await client.rebroadcast(flight.raw);
        flight.broadcastAt = Date.now();
        this.opts.emit({ type: "rebroadcast", batchNo, txHash: latest, nonce: flight.nonce });
      } else {
        await this.replace(client, flight);
      }
      busy = true;
    }
    return busy;
  }

  /**
   * Sends the next batches from `chainNext` through `lastSealed` (up to maxInFlight,
   * consecutive nonces), in batchNo order. Returns whether it sent any.
   */
  async sendNext(
    client: RegistryClient,
    chainNext: number,
    lastSealed: number,
    stopping: () => boolean,
  ): Promise<boolean> {
    const { session } = this.opts;
    // Flights below chainNext are mined and only wait for confirmations: they do not hold
    // back the next batches.
    const pending = (): number => [...this.flights.keys()].filter((b) => b >= chainNext).length;
    let sent = false;
    for (let batchNo = chainNext; batchNo <= lastSealed && !stopping(); batchNo++) {
      if (this.flights.has(batchNo)) continue;
      if (pending() >= this.opts.maxInFlight) break;
      const record = await this.opts.ledger.getBatch(batchNo);
      if (batchNo === chainNext && pending() === 0) {
        // Only the batch the chain expects next can be simulated; surface typed errors before
        // paying gas for them.
        try {
          await client.preflightAnchor(session.anchorerAddress, record.header);
        } catch (error) {
          throw preflightFailure(error, batchNo);
        }
      }
      const sentAnchor = await client.sendAnchor(session.anchorer, record.header, {
        gasLimit: this.opts.gasLimit,
        ...(session.tracker ? { nonceTracker: session.tracker } : {}),
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
      this.opts.emit({
        type: "submitted",
        batchNo,
        txHash: sentAnchor.txHash,
        nonce: sentAnchor.nonce,
        attempt: 1,
      });
      sent = true;
    }
    return sent;
  }

  private async replace(client: RegistryClient, flight: Flight): Promise<void> {
    const fees = replacementFees(flight.fees, await client.feeData());
    const { session } = this.opts;
    const sent = await client.sendAnchor(session.anchorer, flight.header, {
      nonce: flight.nonce,
      fees,
      gasLimit: this.opts.gasLimit,
      ...(session.tracker ? { nonceTracker: session.tracker } : {}),
    });
    flight.fees = fees;
    flight.raw = sent.raw;
    flight.sentAt = Date.now();
    flight.broadcastAt = flight.sentAt;
    flight.attempts++;
    flight.hashes.push(sent.txHash);
    await this.recordSubmission(client, flight, sent.txHash);
    this.opts.emit({
      type: "submitted",
      batchNo: flight.header.batchNo,
      txHash: sent.txHash,
      nonce: flight.nonce,
      attempt: flight.attempts,
    });
  }

  private async recordSubmission(
    client: RegistryClient,
    flight: Flight,
    txHash: string,
    known?: BatchRecord,
  ): Promise<void> {
    const record = known ?? (await this.opts.ledger.getBatch(flight.header.batchNo));
    if (record.state === "anchored") return;
    await this.opts.ledger.saveBatchState({
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

/**
 * The fees of a replacement. Nodes accept one only with both fees raised (geth: +10%); +25%
 * leaves room. Never below what the node asks for now, and the tip never above the cap.
 */
export function replacementFees(sent: Fees, current: Fees): Fees {
  const bump = (v: bigint): bigint => (v * 125n) / 100n + 1n;
  const fees: Fees = {
    maxFeePerGas: max(bump(sent.maxFeePerGas), current.maxFeePerGas),
    maxPriorityFeePerGas: max(bump(sent.maxPriorityFeePerGas), current.maxPriorityFeePerGas),
  };
  if (fees.maxPriorityFeePerGas > fees.maxFeePerGas) fees.maxFeePerGas = fees.maxPriorityFeePerGas;
  return fees;
}

/** What a failed simulation of the next anchor means: an alarm, or an error to back off on. */
function preflightFailure(error: unknown, batchNo: number): Error {
  if (!(error instanceof RegistryError)) return error as Error;
  switch (error.code) {
    case "UNEXPECTED_BATCH":
      // The chain moved between our reads; the next cycle reconciles.
      return error;
    case "UNEXPECTED_FIRST_SEQ":
      return alarmError(
        "FORK_DETECTED",
        `batch ${batchNo} does not continue the chain's log: ${error.message}`,
        batchNo,
      );
    case "UNAUTHORIZED_ANCHORER":
      return alarmError("ANCHORER_MISMATCH", error.message, batchNo);
    case "EMPTY_BATCH":
    case "ZERO_EVENTS_ROOT":
    case "SEQ_OVERFLOW":
    case "BATCH_NO_OVERFLOW":
      return alarmError(
        "ANCHOR_REJECTED",
        `the registry refuses batch ${batchNo}: ${error.message}`,
        batchNo,
      );
    default:
      return error; // PAUSED and the like: back off and retry
  }
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

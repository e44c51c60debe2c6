/**
 * What the anchor loop reports: its status (/readyz, /metrics, `veritrail status`) and its
 * events (the service log, tests, benchmarks).
 */
import type { LostRange } from "../ledger/lost-ranges.ts";
import type { AnchorAlarm, AnchorAlarmCode } from "./alarms.ts";

export type AnchorLoopState = "running" | "backoff" | "alarm" | "stopped";

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
  lostAnchors: LostAnchor[];
  reanchoredAt?: string;
}

export interface LostAnchor {
  batchNo: number;
  txHash: string;
  blockNumber: number;
  blockHash: string;
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

export type CatchUpReason = "restart" | "outage" | "chain-reset";

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

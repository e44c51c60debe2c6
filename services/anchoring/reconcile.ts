/**
 * What the chain says against what the ledger sealed, as decisions: pure functions from chain
 * state and batch records to the actions the loop takes (mark a batch submitted or anchored,
 * re-register, re-anchor after a reorg, raise an alarm). No I/O: the loop reads the chain and
 * the ledger, asks here what follows, and applies it.
 *
 * Every decision starts from what the chain says, not from what the loop remembers: a restart,
 * a lost RPC answer, a dropped transaction or a reorg all converge to the same place.
 */
import { ZeroHash, getAddress } from "ethers";
import { batchHeaderHash } from "../core/batch-header.ts";
import type { LogInfo } from "../chain/registry-client.ts";
import type { LostRange } from "../ledger/lost-ranges.ts";
import type { AnchorRecord, BatchRecord } from "../store/batch-record.ts";
import type { AnchorAlarmCode } from "./alarms.ts";
import type { LostAnchor } from "./anchor-events.ts";

/** An alarm to raise: the loop stops anchoring (docs/operations.md says what each means). */
export interface RaiseAlarm {
  kind: "alarm";
  code: AnchorAlarmCode;
  message: string;
  batchNo?: number;
}

/** The transaction (or, where history is pruned, the state) that anchored a batch. */
export interface AnchoringTx {
  txHash: string;
  blockNumber: number;
  blockHash: string;
  gasUsed: number;
  /** Blocks on top of and including the transaction's block (1 = just mined). */
  confirmations: number;
}

/** The registry and chain a record's anchor or submission is about. */
export interface RegistryRef {
  chainId: number;
  contract: string;
}

// ---------------------------------------------------------------------------------------------
// The registration

export type RegistrationCheck =
  /** Registered to this anchorer; `chainNext` is the log's nextBatchNo on-chain. */
  | { kind: "ok"; receiptSignerRegistered: boolean; chainNext: number }
  /** Registry code or log registration gone: on a dev chain, deploy and register again. */
  | { kind: "register-again"; code: "CONTRACT_MISSING" | "LOG_NOT_REGISTERED"; why: string }
  | RaiseAlarm;

/** The log's registration (undefined: no registry code at `contract`) against this service. */
export function checkRegistration(view: {
  contract: string;
  logId: string;
  log: LogInfo | undefined;
  anchorer: string;
  receiptSigner: string;
}): RegistrationCheck {
  const { log } = view;
  if (!log)
    return {
      kind: "register-again",
      code: "CONTRACT_MISSING",
      why: `no registry code at ${view.contract}`,
    };
  if (!log.registered)
    return {
      kind: "register-again",
      code: "LOG_NOT_REGISTERED",
      why: `log ${view.logId} is not registered at ${view.contract}`,
    };
  if (getAddress(log.anchorer) !== getAddress(view.anchorer))
    return {
      kind: "alarm",
      code: "ANCHORER_MISMATCH",
      message: `the registry's anchorer for this log is ${log.anchorer}, this service anchors as ${getAddress(view.anchorer)}`,
    };
  return {
    kind: "ok",
    receiptSignerRegistered: getAddress(log.receiptSigner) === getAddress(view.receiptSigner),
    chainNext: log.nextBatchNo,
  };
}

// ---------------------------------------------------------------------------------------------
// The log's head on-chain

export interface ChainHeadView {
  /** The registry's nextBatchNo for this log. */
  chainNext: number;
  lastSealed: number;
  /** lastSealed + 1, stepped past a lost range that holds it. */
  sealedEnd: number;
  /** The lost range (restore) holding `chainNext`, if any. */
  lostAtChainNext: LostRange | undefined;
  /** First batch not known to be anchored with enough confirmations; undefined until known. */
  cursor: number | undefined;
  confirmations: number;
  /**
   * Whether batch cursor − 1's commitment is gone from state. Read only when the chain holds
   * fewer batches than the cursor (`reorgEvidenceNeeded`).
   */
  lastConfirmedGone?: boolean;
}

export type ChainHeadCheck =
  | { kind: "ok" }
  | RaiseAlarm
  /** Read batch `batchNo`'s commitment and ask again with `lastConfirmedGone`. */
  | { kind: "read-commitment"; batchNo: number }
  | { kind: "deep-reorg"; fromBatchNo: number; reason: string };

export function checkChainHead(view: ChainHeadView): ChainHeadCheck {
  const { chainNext, lostAtChainNext: lost } = view;
  if (lost) {
    // A reorg or a chain reset took batches this ledger lost in a restore: it cannot anchor
    // them again (it does not hold them) nor anything after them.
    return {
      kind: "alarm",
      code: "LOST_BATCHES_UNANCHORED",
      message: `the registry holds ${chainNext} batches of this log; batches ${lost.fromBatchNo}..${lost.fromBatchNo + lost.batches - 1} were lost in a restore and cannot be anchored again from this ledger`,
      batchNo: chainNext,
    };
  }
  if (chainNext > view.sealedEnd) {
    return {
      kind: "alarm",
      code: "FORK_DETECTED",
      message: `the registry holds ${chainNext} batches of this log but the ledger sealed only ${view.lastSealed + 1} (a data directory put back by hand from an older copy? \`veritrail restore\` reconciles a copy with the chain)`,
      batchNo: view.lastSealed + 1,
    };
  }
  if (view.cursor !== undefined && chainNext < view.cursor) {
    // The registry holds fewer batches than the loop saw confirmed. One node's lagging view is
    // not a reorg: the last confirmed batch must really be gone from state.
    if (view.lastConfirmedGone === undefined)
      return { kind: "read-commitment", batchNo: view.cursor - 1 };
    if (view.lastConfirmedGone)
      return {
        kind: "deep-reorg",
        fromBatchNo: chainNext,
        reason: `the registry holds ${chainNext} batches of this log; ${view.cursor} had ${Math.max(1, view.confirmations)} confirmations`,
      };
  }
  return { kind: "ok" };
}

// ---------------------------------------------------------------------------------------------
// Batches below the chain's head, not yet counted as anchored

export type BelowHeadStep =
  /** The commitment is this ledger's: find the anchoring transaction, then `settle`. */
  | { kind: "settle"; record: BatchRecord }
  /** No commitment where the head said there is one: the chain moved under the reads. */
  | { kind: "chain-moved"; batchNo: number }
  | RaiseAlarm;

/**
 * Each record (batchNo < chainNext, in order) against its on-chain commitment. The plan ends
 * at the first batch that is not this ledger's commitment.
 */
export function planBelowHead(
  records: readonly BatchRecord[],
  commitments: readonly (string | undefined)[],
): BelowHeadStep[] {
  const steps: BelowHeadStep[] = [];
  for (const [i, record] of records.entries()) {
    const onChain = commitments[i];
    const batchNo = record.header.batchNo;
    if (onChain === undefined || onChain === ZeroHash) {
      steps.push({ kind: "chain-moved", batchNo });
      break;
    }
    const local = batchHeaderHash(record.header);
    if (onChain !== local) {
      steps.push(forkAt(batchNo, onChain, local));
      break;
    }
    steps.push({ kind: "settle", record });
  }
  return steps;
}

export type Settlement =
  /** Mined, not deep enough yet: `save` the submission if the record does not say it already. */
  | { kind: "wait"; save?: BatchRecord }
  | { kind: "anchored"; save: BatchRecord; anchor: AnchorRecord };

/**
 * A batch whose commitment is on-chain, with the transaction that put it there: anchored once
 * it has `confirmations` blocks, else recorded as submitted with that transaction.
 * `flight` is this run's transaction for the batch, if it sent one.
 */
export function settle(
  record: BatchRecord,
  tx: AnchoringTx,
  at: {
    registry: RegistryRef;
    confirmations: number;
    flight?: { nonce: number; attempts: number };
    now: Date;
  },
): Settlement {
  const { registry, flight } = at;
  if (tx.confirmations < Math.max(1, at.confirmations)) {
    if (record.state === "submitted" && record.submission?.txHash === tx.txHash)
      return { kind: "wait" };
    return {
      kind: "wait",
      save: {
        ...record,
        state: "submitted",
        submission: {
          chainId: registry.chainId,
          contract: registry.contract,
          txHash: tx.txHash,
          nonce: flight?.nonce ?? record.submission?.nonce ?? -1,
          submittedAt: record.submission?.submittedAt ?? at.now.toISOString(),
          attempts: flight?.attempts ?? record.submission?.attempts ?? 0,
        },
      },
    };
  }
  const anchor: AnchorRecord = {
    chainId: registry.chainId,
    contract: registry.contract,
    txHash: tx.txHash,
    blockNumber: tx.blockNumber,
    blockHash: tx.blockHash,
    gasUsed: tx.gasUsed,
    anchoredAt: at.now.toISOString(),
  };
  return { kind: "anchored", save: { ...record, state: "anchored", anchor }, anchor };
}

// ---------------------------------------------------------------------------------------------
// Re-checking the latest anchored batches against reorgs

export interface RecheckEvidence {
  record: BatchRecord;
  /** The on-chain commitment now. */
  commitment: string;
  /** Whether the anchor's block is still the canonical block at its height. */
  canonical: boolean;
}

export type RecheckStep =
  /** Still in state, but in another block (re-included after a reorg): find where, `relocate`. */
  | { kind: "relocate"; record: BatchRecord }
  /** The anchoring block left the chain with the commitment: re-anchor from `fromBatchNo`. */
  | { kind: "deep-reorg"; fromBatchNo: number; reason: string }
  | RaiseAlarm;

/** The anchored batches (oldest first) as the chain has them now; ends at a reorg or a fork. */
export function planRecheck(evidence: readonly RecheckEvidence[]): RecheckStep[] {
  const steps: RecheckStep[] = [];
  for (const { record, commitment, canonical } of evidence) {
    const batchNo = record.header.batchNo;
    const local = batchHeaderHash(record.header);
    if (commitment === local && canonical) continue;
    if (commitment !== ZeroHash && commitment !== local) {
      steps.push(forkAt(batchNo, commitment, local));
      break;
    }
    if (commitment === local) {
      steps.push({ kind: "relocate", record });
      continue;
    }
    // The batch was anchored, so it had the required confirmations: the reorg was deeper.
    steps.push({
      kind: "deep-reorg",
      fromBatchNo: batchNo,
      reason: `anchoring block ${record.anchor?.blockNumber ?? "?"} of batch ${batchNo} is no longer canonical`,
    });
    break;
  }
  return steps;
}

/** An anchored record whose transaction is now in another block. */
export function relocate(record: BatchRecord, tx: AnchoringTx): BatchRecord {
  const anchor = record.anchor as AnchorRecord;
  return {
    ...record,
    anchor: {
      ...anchor,
      txHash: tx.txHash,
      blockNumber: tx.blockNumber,
      blockHash: tx.blockHash,
      gasUsed: tx.gasUsed || anchor.gasUsed,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Starting over from a batch (reorg, dev chain reset)

/** Whether the record is anchored on this registry (not an older one, not another chain). */
export function isAnchoredOn(record: BatchRecord, registry: RegistryRef): boolean {
  return (
    record.state === "anchored" &&
    record.anchor !== undefined &&
    record.anchor.chainId === registry.chainId &&
    getAddress(record.anchor.contract) === registry.contract
  );
}

/**
 * The record put back to `sealed` to be anchored again; undefined if it is sealed already.
 * After a reorg (`reorged`) a lost anchor is kept in `reorgedAnchors`.
 */
export function resetToSealed(record: BatchRecord, reorged: boolean): BatchRecord | undefined {
  if (record.state === "sealed") return undefined;
  const { submission: _submission, anchor, ...rest } = record;
  const sealed: BatchRecord = { ...rest, state: "sealed" };
  if (reorged && record.state === "anchored" && anchor)
    return { ...sealed, reorgedAnchors: [...(record.reorgedAnchors ?? []), anchor] };
  return sealed;
}

/** The anchors a deep reorg took: those of the records anchored below `until`. */
export function lostAnchors(records: readonly BatchRecord[], until: number): LostAnchor[] {
  return records
    .filter((r) => r.state === "anchored" && r.anchor && r.header.batchNo < until)
    .map((r) => ({
      batchNo: r.header.batchNo,
      txHash: r.anchor!.txHash,
      blockNumber: r.anchor!.blockNumber,
      blockHash: r.anchor!.blockHash,
    }));
}

function forkAt(batchNo: number, onChain: string, local: string): RaiseAlarm {
  return {
    kind: "alarm",
    code: "FORK_DETECTED",
    message: `batch ${batchNo} on-chain commitment ${onChain} differs from the sealed header's ${local}`,
    batchNo,
  };
}

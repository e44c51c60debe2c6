/**
 * The first thing a restored ledger does (the anchor loop calls it before anything else while
 * `ledger.restorePending` is set): compare the copy with the chain.
 *
 * A backup holds sealed batches 0..L, every event sealed (`veritrail backup` seals the tail
 * before it takes its snapshot). The registry's log head (nextBatchNo, nextSeq) says how far the
 * log got before the copy was put back:
 *
 * - nextBatchNo ≤ L + 1: nothing the chain knows of is missing; the loop anchors what is not
 *   anchored yet, as after any restart.
 * - nextBatchNo > L + 1: batches L+1 .. nextBatchNo−1 (seqs sealedEnd .. nextSeq−1) were anchored
 *   after the backup and exist nowhere else. The chain proves they existed, so they are recorded
 *   as lost, and the log continues at nextBatchNo / nextSeq: no seq or batch number is ever
 *   given to a second event or batch. The copy's own last batch must be the chain's (else it is
 *   not this log's history: FORK_DETECTED).
 *
 * Events acknowledged after the backup that the chain never saw anchored cannot be known from
 * here; their writers hold signed receipts for them (docs/operations.md says how to keep that
 * window short).
 */
import { ZeroHash } from "ethers";
import { headerHash } from "../chain/registry-client.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { LostBatch, LostRange } from "../ledger/lost-ranges.ts";

/** What reconciliation needs from the registry (RegistryClient fits). */
export interface RestoreChain {
  readonly chainId: number;
  readonly address: string;
  logHead(logId: string): Promise<{ nextBatchNo: number; nextSeq: number }>;
  batchCommitment(logId: string, batchNo: number): Promise<string>;
  blockNumber(): Promise<number>;
  findBatchesAnchored(
    logId: string,
    fromBatchNo: number,
    toBatchNo: number,
    fromBlock?: number,
  ): Promise<LostBatch[]>;
}

export type RestoreLedger = Pick<
  Ledger,
  | "logId"
  | "restorePending"
  | "lastBatchNo"
  | "getBatch"
  | "sealedThrough"
  | "nextSeq"
  | "completeRestore"
>;

/** The copy cannot be reconciled: it is not this log's history, or it is inconsistent. */
export class RestoreConflict extends Error {
  constructor(
    readonly code: "FORK_DETECTED" | "RESTORE_CONFLICT",
    message: string,
    readonly batchNo?: number,
  ) {
    super(message);
    this.name = "RestoreConflict";
  }
}

/**
 * Compares the restored copy with the chain and ends the restore (see the file comment).
 * Returns the lost range, or undefined when nothing the chain knows of is missing. RPC errors
 * propagate (the loop retries with backoff; ingest stays refused meanwhile).
 */
export async function reconcileRestoredLedger(
  ledger: RestoreLedger,
  chain: RestoreChain,
  opts: { logLookbackBlocks: number },
): Promise<LostRange | undefined> {
  const marker = ledger.restorePending;
  if (!marker) return undefined;
  const logId = ledger.logId;
  const head = await chain.logHead(logId);
  const lastNo = await ledger.lastBatchNo();
  if (head.nextBatchNo <= lastNo + 1) {
    await ledger.completeRestore(undefined);
    return undefined;
  }
  const sealedEnd = ledger.sealedThrough;
  if (ledger.nextSeq !== sealedEnd)
    throw new RestoreConflict(
      "RESTORE_CONFLICT",
      `the restored copy holds unsealed events (seqs ${sealedEnd}..${ledger.nextSeq - 1}) where the chain has anchored batches ${lastNo + 1}..${head.nextBatchNo - 1} beyond it; restore a copy made by veritrail backup (it seals first)`,
      lastNo + 1,
    );
  if (lastNo >= 0) {
    const last = await ledger.getBatch(lastNo);
    const onChain = await chain.batchCommitment(logId, lastNo);
    const local = headerHash(last.header);
    if (onChain !== local)
      throw new RestoreConflict(
        "FORK_DETECTED",
        `the restored copy's batch ${lastNo} hashes to ${local}, the registry holds ${onChain === ZeroHash ? "nothing" : onChain} for it: this copy is not the history the chain anchored`,
        lastNo,
      );
  }
  if (head.nextSeq <= sealedEnd)
    throw new RestoreConflict(
      "FORK_DETECTED",
      `the registry holds ${head.nextBatchNo} batches ending before seq ${head.nextSeq}, the restored copy's ${lastNo + 1} batches end at ${sealedEnd}`,
      lastNo + 1,
    );
  const blockNumber = await chain.blockNumber();
  let anchors: LostBatch[] = [];
  try {
    anchors = await chain.findBatchesAnchored(
      logId,
      lastNo + 1,
      head.nextBatchNo,
      Math.max(0, blockNumber - opts.logLookbackBlocks),
    );
  } catch {
    // Pruned or capped logs: the range from the log head is the evidence that remains.
    anchors = [];
  }
  const lost: LostRange = {
    fromBatchNo: lastNo + 1,
    batches: head.nextBatchNo - lastNo - 1,
    firstSeq: sealedEnd,
    count: head.nextSeq - sealedEnd,
    detectedAt: new Date().toISOString(),
    cause: "restore",
    restoredFrom: {
      createdAt: marker.backup.createdAt,
      headSeq: marker.backup.headSeq,
      manifestSha256: marker.backup.manifestSha256,
    },
    chain: { chainId: chain.chainId, contract: chain.address, blockNumber },
    anchors,
  };
  await ledger.completeRestore(lost);
  return lost;
}

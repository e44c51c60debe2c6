/**
 * The audit's check of every anchor field a batch record stores (services/ledger/audit.ts calls
 * it for each batch once the header itself matched the registry). A record says where its batch
 * was anchored — chain, registry, transaction, block, block hash, gas — and what was sent; each
 * of those claims is compared with the chain, so a record that was rewritten, even with a
 * recomputed digest, is reported with a finding of its own:
 *
 * - the chain and registry named are the ones audited;
 * - the anchoring block exists and its hash is the canonical one at that height;
 * - the transaction's receipt, when the node still has it: it succeeded, sits in that block, and
 *   its logs carry `BatchAnchored` with exactly this header from this registry; its gas is the
 *   recorded one;
 * - without the receipt (pruned, EIP-4444): the registry state at that block holds the header
 *   hash and the state at the block before does not, i.e. the batch was anchored in that very
 *   block; an anchor the loop itself found in state alone (recorded with a zero tx hash and the
 *   block it was observed in) must be in the state at that block; the audit counts these and
 *   says so;
 * - the submission record names the same chain and registry, and, where it is the anchoring
 *   transaction, the nonce that transaction has.
 */
import { isAddress } from "ethers";
import { type BatchHeader, batchHeaderHash } from "../core/batch-header.ts";
import type { BatchRecord } from "../store/batch-record.ts";

const ZERO_HASH = `0x${"0".repeat(64)}`;

/**
 * What the anchor checks read of the chain, beyond the registry state (audit.ts RegistryReads):
 * given by the caller, as the rest of the audit's reads (verifier/chain-reads.ts's ChainReads is
 * one). Reads throw an error named "RpcUnavailableError" when the node cannot answer, and
 * `batchCommitment` one named "NotARegistry" when no registry answers.
 */
export interface AnchorReads {
  batchCommitment(contract: string, logId: string, batchNo: number, block: number): Promise<string>;
  /** Block `n` (number, hash, timestamp), or null above the head. */
  blockHeader(n: number): Promise<{ number: number; hash: string; timestamp: number } | null>;
  /** The transaction's receipt as it bears on an anchor, or null when the node has none. */
  anchoringTx(
    txHash: string,
    contract: string,
  ): Promise<{
    blockNumber: number;
    blockHash: string | undefined;
    status: number | null;
    gasUsed: bigint | undefined;
    headers: BatchHeader[];
  } | null>;
  /** Transaction hashes of block `n`, or null when the node does not serve it. */
  blockTransactions(n: number): Promise<ReadonlyArray<string> | null>;
  /** The transaction's nonce, or null when the node does not know it. */
  transaction(txHash: string): Promise<{ nonce: number } | null>;
}

/** A read the node could not answer: pruned history or an outage, not a discrepancy. */
const unavailable = (e: unknown): boolean =>
  e instanceof Error && (e.name === "RpcUnavailableError" || e.name === "NotARegistry");

export type AnchorFindingKind =
  /** The record's anchor or submission names another chain than the one audited. */
  | "ANCHOR_CHAIN_MISMATCH"
  /** The record's anchor or submission names another registry than the one audited. */
  | "ANCHOR_CONTRACT_MISMATCH"
  /** The anchoring block is not on the chain, or the chain has another block at that height. */
  | "ANCHOR_BLOCK_NOT_CANONICAL"
  /** The anchoring transaction is in no block the node knows, or in another one. */
  | "ANCHOR_TX_MISMATCH"
  /** The anchoring transaction reverted. */
  | "ANCHOR_TX_FAILED"
  /** The anchoring transaction emits no BatchAnchored with this header from this registry. */
  | "ANCHOR_TX_NO_HEADER"
  /** The recorded gas is not what the anchoring transaction used. */
  | "ANCHOR_GAS_MISMATCH"
  /** Without a receipt: the registry state does not show the batch anchored in that block. */
  | "ANCHOR_STATE_MISMATCH"
  /** The submission's nonce is not the nonce of the transaction it names. */
  | "SUBMISSION_MISMATCH"
  /** The record's state and its anchor contradict each other (sealed with an anchor, …). */
  | "BATCH_STATE_INCONSISTENT";

/** How an anchor was checked: by its transaction receipt, by state alone, or not at all. */
export type AnchorEvidence = "receipt" | "state" | "unverifiable";

export interface AnchorCheckContext {
  reads: AnchorReads;
  chainId: number;
  contract: string;
  head: number;
}

export interface AnchorFinding {
  batchNo: number;
  kind: AnchorFindingKind;
  message: string;
}

const sameAddress = (a: string, b: string) =>
  isAddress(a) && isAddress(b) && a.toLowerCase() === b.toLowerCase();

/**
 * Checks the anchor and submission fields of `record` (whose header matched the registry's
 * commitment) and reports each discrepancy; returns how the anchor was established (undefined
 * for a record that names no anchor).
 */
export async function checkAnchorFields(
  record: BatchRecord,
  ctx: AnchorCheckContext,
  report: (f: AnchorFinding) => void,
): Promise<AnchorEvidence | undefined> {
  const batchNo = record.header.batchNo;
  const found = (kind: AnchorFindingKind, message: string) =>
    report({ batchNo, kind, message: `batch ${batchNo}: ${message}` });

  const s = record.submission;
  if (s) {
    if (s.chainId !== ctx.chainId)
      found(
        "ANCHOR_CHAIN_MISMATCH",
        `submitted on chain ${s.chainId}, the audit reads ${ctx.chainId}`,
      );
    if (!sameAddress(s.contract, ctx.contract))
      found(
        "ANCHOR_CONTRACT_MISMATCH",
        `submitted to ${s.contract}, not the registry ${ctx.contract}`,
      );
  }
  const a = record.anchor;
  if (record.state !== "anchored") {
    if (a)
      found(
        "BATCH_STATE_INCONSISTENT",
        `recorded as ${record.state} but with an anchor (tx ${a.txHash}); a batch that lost its anchor keeps none`,
      );
    if (s && s.nonce >= 0) await checkNonce(s.txHash, s.nonce, ctx, found);
    return undefined;
  }
  if (!a) return undefined; // the record schema makes this impossible
  if (a.chainId !== ctx.chainId)
    found(
      "ANCHOR_CHAIN_MISMATCH",
      `anchored on chain ${a.chainId}, the audit reads ${ctx.chainId}`,
    );
  if (!sameAddress(a.contract, ctx.contract))
    found(
      "ANCHOR_CONTRACT_MISMATCH",
      `anchored in ${a.contract}, not the registry ${ctx.contract}`,
    );

  if (a.blockNumber > ctx.head) {
    found(
      "ANCHOR_BLOCK_NOT_CANONICAL",
      `anchoring block ${a.blockNumber} is above the chain head ${ctx.head}`,
    );
    return "unverifiable";
  }
  try {
    const block = await ctx.reads.blockHeader(a.blockNumber);
    if (block === null)
      found("ANCHOR_BLOCK_NOT_CANONICAL", `the chain has no block ${a.blockNumber}`);
    else if (block.hash !== a.blockHash.toLowerCase())
      found(
        "ANCHOR_BLOCK_NOT_CANONICAL",
        `block ${a.blockNumber} on the chain is ${block.hash}, the record says ${a.blockHash}`,
      );
  } catch (e) {
    if (!unavailable(e)) throw e;
    // A block the node no longer serves (EIP-4444): nothing to compare, nothing contradicts.
  }

  let receipt = null;
  if (a.txHash !== ZERO_HASH)
    receipt = await ctx.reads.anchoringTx(a.txHash, ctx.contract).catch((e: unknown) => {
      if (unavailable(e)) return null; // pruned or unreadable: state decides
      throw e;
    });
  if (receipt !== null) {
    if (receipt.status !== 1) found("ANCHOR_TX_FAILED", `anchoring tx ${a.txHash} reverted`);
    if (receipt.blockNumber !== a.blockNumber)
      found(
        "ANCHOR_TX_MISMATCH",
        `anchoring tx ${a.txHash} is in block ${receipt.blockNumber}, the record says ${a.blockNumber}`,
      );
    else if (
      receipt.blockHash !== undefined &&
      receipt.blockHash.toLowerCase() !== a.blockHash.toLowerCase()
    )
      found(
        "ANCHOR_TX_MISMATCH",
        `anchoring tx ${a.txHash} is in block ${receipt.blockHash}, the record says ${a.blockHash}`,
      );
    if (!receipt.headers.some((h) => sameHeader(h, record.header)))
      found(
        "ANCHOR_TX_NO_HEADER",
        `anchoring tx ${a.txHash} emits no BatchAnchored with this header from ${ctx.contract}`,
      );
    // 0: the loop found the anchor without its receipt and could not know the gas.
    if (receipt.gasUsed !== undefined && a.gasUsed !== 0 && BigInt(a.gasUsed) !== receipt.gasUsed)
      found(
        "ANCHOR_GAS_MISMATCH",
        `recorded gas ${a.gasUsed}, anchoring tx ${a.txHash} used ${receipt.gasUsed}`,
      );
    if (s && s.txHash === a.txHash && s.nonce >= 0) await checkNonce(s.txHash, s.nonce, ctx, found);
    return "receipt";
  }

  // No receipt: a zero tx hash (the loop saw the anchor in state only) or a pruned one.
  if (a.txHash !== ZERO_HASH) {
    const txs = await ctx.reads.blockTransactions(a.blockNumber);
    if (txs !== null && !txs.includes(a.txHash.toLowerCase()))
      found(
        "ANCHOR_TX_MISMATCH",
        `anchoring tx ${a.txHash} is not in block ${a.blockNumber}, which the node serves, and the node has no receipt for it`,
      );
  }
  return stateEvidence(record.header, a.blockNumber, a.txHash === ZERO_HASH, ctx, found);
}

/**
 * The batch was anchored in `blockNumber`: in the state at its end, not at the end of the one
 * before — or, `observedOnly` (the loop recorded where it saw the anchor, not where it was made),
 * in the state at its end.
 */
async function stateEvidence(
  header: BatchHeader,
  blockNumber: number,
  observedOnly: boolean,
  ctx: AnchorCheckContext,
  found: (kind: AnchorFindingKind, message: string) => void,
): Promise<AnchorEvidence> {
  const local = batchHeaderHash(header);
  try {
    const at = await ctx.reads.batchCommitment(
      ctx.contract,
      header.logId,
      header.batchNo,
      blockNumber,
    );
    const before =
      blockNumber === 0 || observedOnly
        ? ZERO_HASH
        : await ctx.reads.batchCommitment(
            ctx.contract,
            header.logId,
            header.batchNo,
            blockNumber - 1,
          );
    if (at !== local)
      found(
        "ANCHOR_STATE_MISMATCH",
        `the registry state at the end of block ${blockNumber} does not hold the header (it holds ${at})`,
      );
    else if (before !== ZERO_HASH)
      found(
        "ANCHOR_STATE_MISMATCH",
        `the registry already held the header at the end of block ${blockNumber - 1}: it was not anchored in block ${blockNumber}`,
      );
    return "state";
  } catch (e) {
    // A full node keeps recent state only: neither receipt nor state at that block.
    if (unavailable(e)) return "unverifiable";
    throw e;
  }
}

async function checkNonce(
  txHash: string,
  nonce: number,
  ctx: AnchorCheckContext,
  found: (kind: AnchorFindingKind, message: string) => void,
): Promise<void> {
  let tx;
  try {
    tx = await ctx.reads.transaction(txHash);
  } catch (e) {
    if (unavailable(e)) return;
    throw e;
  }
  // Unknown to the node: a replaced or dropped transaction; nothing to compare.
  if (tx === null) return;
  // Not `tx.to`: an anchorer may be a contract account (a multisig) calling the registry.
  if (tx.nonce !== nonce)
    found(
      "SUBMISSION_MISMATCH",
      `submission names nonce ${nonce}, tx ${txHash} has nonce ${tx.nonce}`,
    );
}

function sameHeader(a: BatchHeader, b: BatchHeader): boolean {
  return (
    a.logId === b.logId &&
    a.batchNo === b.batchNo &&
    a.firstSeq === b.firstSeq &&
    a.count === b.count &&
    a.eventsRoot === b.eventsRoot &&
    a.indexRoot === b.indexRoot
  );
}

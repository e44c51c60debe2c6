/**
 * What the verifier asks the chain, and nothing else: the registry's stored batch commitment,
 * a signer's validity period, the chain id, the head, and (optionally) the anchoring
 * transaction's receipt. Its own minimal ABI: the verifier never imports services/chain, so
 * the browser bundle and outside readers see the whole trusted surface here.
 *
 * Reads are cached per run, as promises, so concurrent bundles of one batch share one call:
 * 10,000 bundles of one batch cost one `batchCommitment` call.
 */
import { Interface, isError } from "ethers";
import type { BatchHeader } from "../core/batch-header.ts";
import { RpcUnavailableError } from "./rpc.ts";

export const VERIFIER_REGISTRY_ABI = [
  "function batchCommitment(bytes32 logId, uint64 batchNo) view returns (bytes32)",
  "function signerPeriod(bytes32 logId, address signer) view returns (uint64 validFrom, uint64 validUntil)",
  "function getLog(bytes32 logId) view returns (address anchorer, address receiptSigner, uint64 nextBatchNo, uint64 nextSeq, uint64 registeredAt)",
  "event BatchAnchored(bytes32 indexed logId, uint64 indexed batchNo, uint64 firstSeq, uint32 count, bytes32 eventsRoot, bytes32 indexRoot)",
] as const;

/** A block as the receipt check needs it: where the chain's clock stood, and which block. */
export interface BlockHeader {
  number: number;
  hash: string;
  /** Seconds. */
  timestamp: number;
}

const registry = new Interface(VERIFIER_REGISTRY_ABI);
export const ZERO_HASH = `0x${"0".repeat(64)}`;

export { batchHeaderHash } from "../core/batch-header.ts";

export interface TxLogLike {
  address: string;
  topics: ReadonlyArray<string>;
  data: string;
}

export interface TxReceiptLike {
  blockNumber: number;
  status: number | null;
  logs: ReadonlyArray<TxLogLike>;
  /** Read by the audit, which compares every anchor field it stores (an ethers receipt has them). */
  blockHash?: string;
  gasUsed?: bigint;
}

/** A transaction as the audit reads it (ethers' TransactionResponse has these fields). */
export interface TxLike {
  nonce: number;
}

/** An anchoring transaction as its receipt shows it: where it was mined, and what it emitted. */
export interface AnchoringTx {
  blockNumber: number;
  blockHash: string | undefined;
  status: number | null;
  gasUsed: bigint | undefined;
  /** The BatchAnchored headers it emitted from the registry asked about. */
  headers: BatchHeader[];
}

/**
 * The part of an ethers Provider the verifier uses; a JsonRpcProvider fits, and so does an
 * in-memory fake in unit tests.
 */
export interface ChainRpc {
  call(tx: { to: string; data: string; blockTag?: number | string }): Promise<string>;
  getBlockNumber(): Promise<number>;
  getTransactionReceipt(hash: string): Promise<TxReceiptLike | null>;
  getNetwork(): Promise<{ chainId: bigint }>;
  /**
   * The block (with transaction hashes) or null; used when a tx receipt is missing, and (hash,
   * timestamp) by the receipt check to find the first block after a deadline.
   */
  getBlock(blockNumber: number): Promise<{
    transactions: ReadonlyArray<string>;
    hash?: string | null;
    timestamp?: number;
  } | null>;
  /** The transaction, or null when the node does not know it (the audit reads its nonce). */
  getTransaction?(hash: string): Promise<TxLike | null>;
}

/** The address answered, but not as a registry does (no code there, or a revert). */
export class NotARegistry extends Error {
  override readonly name = "NotARegistry";
}

export interface SignerPeriod {
  /** Seconds (block timestamp). */
  validFrom: bigint;
  /** Seconds; 0 while the signer is current. */
  validUntil: bigint;
}

export class ChainReads {
  private chainIdPromise: Promise<bigint> | undefined;
  private latestPromise: Promise<number> | undefined;
  private readonly memo = new Map<string, Promise<unknown>>();
  /** Number of `eth_call`s actually sent (tests assert the per-batch caching with it). */
  calls = 0;

  constructor(readonly rpc: ChainRpc) {}

  chainId(): Promise<bigint> {
    if (!this.chainIdPromise) {
      const p = rpcCall(async () => (await this.rpc.getNetwork()).chainId);
      this.chainIdPromise = p;
      p.catch(() => {
        if (this.chainIdPromise === p) this.chainIdPromise = undefined;
      });
    }
    return this.chainIdPromise;
  }

  /** The head, read once per run so that every bundle is judged at the same height. */
  latest(): Promise<number> {
    if (!this.latestPromise) {
      const p = rpcCall(() => this.rpc.getBlockNumber());
      this.latestPromise = p;
      p.catch(() => {
        if (this.latestPromise === p) this.latestPromise = undefined;
      });
    }
    return this.latestPromise;
  }

  batchCommitment(
    contract: string,
    logId: string,
    batchNo: number,
    block: number,
  ): Promise<string> {
    return this.cached(`c|${contract.toLowerCase()}|${logId}|${batchNo}|${block}`, async () => {
      const data = registry.encodeFunctionData("batchCommitment", [logId, batchNo]);
      const out = await this.viewCall(contract, data, block);
      return String(decode("batchCommitment", out)[0]);
    });
  }

  signerPeriod(
    contract: string,
    logId: string,
    signer: string,
    block: number,
  ): Promise<SignerPeriod> {
    return this.cached(
      `s|${contract.toLowerCase()}|${logId}|${signer.toLowerCase()}|${block}`,
      async () => {
        const data = registry.encodeFunctionData("signerPeriod", [logId, signer]);
        const out = decode("signerPeriod", await this.viewCall(contract, data, block));
        return { validFrom: BigInt(out[0] as bigint), validUntil: BigInt(out[1] as bigint) };
      },
    );
  }

  /** When the log was registered (block timestamp, seconds; 0 for an unknown log). */
  logRegisteredAt(contract: string, logId: string, block: number): Promise<bigint> {
    return this.cached(`r|${contract.toLowerCase()}|${logId}|${block}`, async () => {
      const data = registry.encodeFunctionData("getLog", [logId]);
      const out = decode("getLog", await this.viewCall(contract, data, block));
      return BigInt(out[4] as bigint);
    });
  }

  /**
   * The log's head (getLog's nextBatchNo and nextSeq) in the state at the end of `block`: where
   * its anchored events end. Zeros for a log that is not registered there.
   */
  logHead(
    contract: string,
    logId: string,
    block: number,
  ): Promise<{ nextBatchNo: number; nextSeq: number }> {
    return this.cached(`h|${contract.toLowerCase()}|${logId}|${block}`, async () => {
      const data = registry.encodeFunctionData("getLog", [logId]);
      const out = decode("getLog", await this.viewCall(contract, data, block));
      return { nextBatchNo: Number(out[2] as bigint), nextSeq: Number(out[3] as bigint) };
    });
  }

  /**
   * Block `n`'s number, hash and timestamp, or null above the head. Throws RpcUnavailableError
   * when the node cannot say (down, or a block it no longer serves).
   */
  blockHeader(n: number): Promise<BlockHeader | null> {
    return this.cached(`H|${n}`, async () => {
      const block = await rpcCall(() => this.rpc.getBlock(n));
      if (block === null) return null;
      if (typeof block.hash !== "string" || typeof block.timestamp !== "number")
        throw new RpcUnavailableError(`block ${n} came without its hash or timestamp`);
      return { number: n, hash: block.hash.toLowerCase(), timestamp: block.timestamp };
    });
  }

  /** The anchoring transaction's receipt, or null when the node no longer has it (EIP-4444). */
  txReceipt(txHash: string): Promise<TxReceiptLike | null> {
    return this.cached(`t|${txHash}`, () => rpcCall(() => this.rpc.getTransactionReceipt(txHash)));
  }

  /**
   * The anchoring transaction `txHash` as its receipt shows it, with the BatchAnchored headers it
   * emitted from `contract`; null when the node has no receipt for it (pruned, EIP-4444).
   */
  async anchoringTx(txHash: string, contract: string): Promise<AnchoringTx | null> {
    const receipt = await this.txReceipt(txHash);
    if (receipt === null) return null;
    return {
      blockNumber: receipt.blockNumber,
      blockHash: receipt.blockHash?.toLowerCase(),
      status: receipt.status,
      gasUsed: receipt.gasUsed,
      headers: anchoredHeadersIn(receipt, contract),
    };
  }

  /** The transaction (its nonce), or null when the node does not know it or cannot be asked. */
  transaction(txHash: string): Promise<TxLike | null> {
    return this.cached(`T|${txHash}`, async () => {
      const get = this.rpc.getTransaction?.bind(this.rpc);
      if (!get) return null;
      return rpcCall(() => get(txHash));
    });
  }

  /**
   * Transaction hashes of block `n`, or null when the node does not serve that block (pruned
   * history answers with an error, EIP-4444; a block above the head with null).
   */
  blockTransactions(n: number): Promise<ReadonlyArray<string> | null> {
    return this.cached(`b|${n}`, async () => {
      try {
        const block = await this.rpc.getBlock(n);
        return block ? block.transactions.map((t) => t.toLowerCase()) : null;
      } catch {
        return null;
      }
    });
  }

  /** Remembers a derived result (a whole check) for the run; failures are not remembered. */
  memoize<T>(key: string, compute: () => Promise<T>): Promise<T> {
    return this.cached(`m|${key}`, compute);
  }

  private cached<T>(key: string, read: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read();
      this.memo.set(key, p);
      // A failed read (RPC down) is not remembered: the next bundle asks again.
      const stored = p;
      p.catch(() => {
        if (this.memo.get(key) === stored) this.memo.delete(key);
      });
    }
    return p;
  }

  private async viewCall(to: string, data: string, block: number): Promise<string> {
    this.calls++;
    try {
      return await this.rpc.call({ to, data, blockTag: block });
    } catch (e) {
      if (isError(e, "CALL_EXCEPTION"))
        throw new NotARegistry(`${to} reverted: ${shortMessage(e)}`);
      throw new RpcUnavailableError(
        `eth_call to ${to} at block ${block} failed: ${shortMessage(e)}`,
      );
    }
  }
}

/** The BatchAnchored header in a transaction receipt's logs from `contract`, if any. */
export function anchoredHeadersIn(receipt: TxReceiptLike, contract: string): BatchHeader[] {
  const headers: BatchHeader[] = [];
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== contract.toLowerCase()) continue;
    let parsed;
    try {
      parsed = registry.parseLog({ topics: [...log.topics], data: log.data });
    } catch {
      continue;
    }
    if (parsed?.name !== "BatchAnchored") continue;
    const a = parsed.args;
    headers.push({
      logId: String(a[0]),
      batchNo: Number(a[1]),
      firstSeq: Number(a[2]),
      count: Number(a[3]),
      eventsRoot: String(a[4]),
      indexRoot: String(a[5]),
    });
  }
  return headers;
}

function decode(
  fn: "batchCommitment" | "signerPeriod" | "getLog",
  out: string,
): ReadonlyArray<unknown> {
  try {
    return registry.decodeFunctionResult(fn, out);
  } catch {
    // "0x" from an address without code: there is no registry there.
    throw new NotARegistry(`no registry answers ${fn} (returned ${out.slice(0, 18)})`);
  }
}

async function rpcCall<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    throw new RpcUnavailableError(shortMessage(e));
  }
}

function shortMessage(e: unknown): string {
  if (e && typeof e === "object" && "shortMessage" in e && typeof e.shortMessage === "string")
    return e.shortMessage;
  return e instanceof Error ? e.message : String(e);
}

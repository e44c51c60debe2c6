/**
 * An in-memory batch of good bundles and a fake chain that answers the verifier's view calls
 * from a map, for fast unit and property tests of the verifier module (the real chain is
 * covered by vectors.test.ts).
 */
import type { TrustPolicy } from "../../../services/core/trust-policy.ts";
import { policyFor } from "../../support/trust.ts";
import { Interface, Wallet, getAddress } from "ethers";
import { randomBytes } from "node:crypto";
import type { BatchHeader } from "../../../services/core/batch-header.ts";
import { BUNDLE_FORMAT, type Bundle } from "../../../services/core/bundle.ts";
import { type Entry, entryLeafHash, eventCommitment } from "../../../services/core/entry.ts";
import { erasedEntityReference } from "../../../services/core/erasure.ts";
import { type Hex, toHex } from "../../../services/core/hex.ts";
import { buildTree } from "../../../services/core/merkle.ts";
import {
  RECEIPT_DOMAIN,
  RECEIPT_FORMAT,
  RECEIPT_TYPES,
  receiptGroupValue,
} from "../../../services/core/receipt.ts";
import {
  type ChainRpc,
  type TxReceiptLike,
  VERIFIER_REGISTRY_ABI,
  ZERO_HASH,
  batchHeaderHash,
} from "../../../services/verifier/chain-reads.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

export const SIGNER = new Wallet("0x" + "11".repeat(32));
export const CHAIN_ID = 31337;
export const CONTRACT = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
export const ANCHOR_BLOCK = 100;
export const HEAD = 110;
/** Signer period in seconds: from 2024-01-01 on, still current. */
export const SIGNER_VALID_FROM = 1_704_067_200n;

const ABI = new Interface(VERIFIER_REGISTRY_ABI);

export interface FakeBatch {
  bundles: Bundle[];
  header: BatchHeader;
  txHash: Hex;
}

/**
 * `count` anchored bundles of one batch, their receipts from one group commit. Each seq in
 * `erase` is erased as the ledger does it: its body and salt are gone, and one of the batch's
 * last events (one per erased seq, in order) is the Delete that records the erasure, carried as
 * the erased bundle's `erasure`.
 */
export async function makeBatch(
  count: number,
  opts: { erase?: number[] } = {},
): Promise<FakeBatch> {
  const logId = toHex(randomBytes(32));
  const issuedAt = Date.parse("2025-03-01T10:00:00.000Z");
  const anchorDeadline = issuedAt + 3_600_000;
  const erase = opts.erase ?? [];
  const erasureSeqOf = (erased: number) => count - erase.length + erase.indexOf(erased);
  const items = Array.from({ length: count }, (_, seq) => {
    const base = makeNativeEvent({ requestId: `req-fake-${seq}` }) as unknown as Record<
      string,
      unknown
    >;
    const erasedHere = erase.find((e) => erasureSeqOf(e) === seq);
    const event =
      erasedHere === undefined
        ? base
        : {
            ...base,
            action: "D",
            entities: [{ what: erasedEntityReference(logId, erasedHere) }],
          };
    const salt = randomBytes(32);
    const entry: Entry = {
      v: 1,
      log: logId,
      seq,
      recorded: new Date(issuedAt - 1_000 + seq).toISOString(),
      commitment: eventCommitment(salt, event),
      subject: toHex(randomBytes(32)),
    };
    return { event, salt: toHex(salt), entry, leafHash: entryLeafHash(entry) };
  });
  const tree = buildTree(items.map((i) => i.leafHash));
  const leavesRoot = toHex(tree.root);
  const signature = await SIGNER.signTypedData(
    RECEIPT_DOMAIN,
    RECEIPT_TYPES,
    receiptGroupValue({ log: logId, firstSeq: 0, count, leavesRoot, issuedAt, anchorDeadline }),
  );
  const header: BatchHeader = {
    logId,
    batchNo: 0,
    firstSeq: 0,
    count,
    eventsRoot: leavesRoot,
    indexRoot: toHex(randomBytes(32)),
  };
  const txHash = toHex(randomBytes(32));
  const bundles = items.map((item, i): Bundle => {
    const path = tree.inclusionProof(i).map(toHex);
    const erased = erase.includes(i);
    return {
      format: BUNDLE_FORMAT,
      event: erased ? null : item.event,
      salt: erased ? null : item.salt,
      entry: item.entry,
      leafIndex: i,
      batch: { ...header },
      inclusion: path,
      anchor: { chainId: CHAIN_ID, contract: CONTRACT, txHash, blockNumber: ANCHOR_BLOCK },
      receipt: {
        format: RECEIPT_FORMAT,
        log: logId,
        seq: i,
        leafHash: toHex(item.leafHash),
        recorded: item.entry.recorded,
        anchorDeadline: new Date(anchorDeadline).toISOString(),
        issuedAt: new Date(issuedAt).toISOString(),
        group: { firstSeq: 0, count, leavesRoot, path },
        signer: SIGNER.address,
        signature,
      },
      status: "anchored",
    };
  });
  for (const e of erase) bundles[e]!.erasure = bundles[erasureSeqOf(e)]!;
  return { bundles, header, txHash };
}

/** Counts of what the verifier asked. */
export interface FakeChainCounts {
  batchCommitment: number;
  signerPeriod: number;
  receipts: number;
  blocks: number;
  network: number;
  head: number;
}

/** A chain holding `batches` (anchored at ANCHOR_BLOCK), head at HEAD, SIGNER registered. */
export function fakeChain(
  batches: FakeBatch[],
  opts: { failCalls?: boolean; failFirstRequests?: number } = {},
) {
  let failuresLeft = opts.failFirstRequests ?? 0;
  /** Throws for the first `failFirstRequests` requests of any kind (a flaky RPC). */
  const flaky = (): void => {
    if (failuresLeft > 0) {
      failuresLeft--;
      throw new Error("socket hang up");
    }
  };
  const counts: FakeChainCounts = {
    batchCommitment: 0,
    signerPeriod: 0,
    receipts: 0,
    blocks: 0,
    network: 0,
    head: 0,
  };
  const commitments = new Map<string, string>();
  const receipts = new Map<string, TxReceiptLike>();
  for (const b of batches) {
    commitments.set(`${b.header.logId}|${b.header.batchNo}`, batchHeaderHash(b.header));
    receipts.set(b.txHash, {
      blockNumber: ANCHOR_BLOCK,
      status: 1,
      logs: [
        {
          address: CONTRACT,
          ...ABI.encodeEventLog("BatchAnchored", [
            b.header.logId,
            b.header.batchNo,
            b.header.firstSeq,
            b.header.count,
            b.header.eventsRoot,
            b.header.indexRoot,
          ]),
        },
      ],
    });
  }
  const rpc: ChainRpc = {
    async call(tx) {
      flaky();
      if (opts.failCalls) throw new Error("connection refused");
      if (tx.to.toLowerCase() !== CONTRACT.toLowerCase()) return "0x";
      const block = typeof tx.blockTag === "number" ? tx.blockTag : HEAD;
      const parsed = ABI.parseTransaction({ data: tx.data });
      if (parsed?.name === "batchCommitment") {
        counts.batchCommitment++;
        const key = `${String(parsed.args[0])}|${Number(parsed.args[1])}`;
        const value = block >= ANCHOR_BLOCK ? (commitments.get(key) ?? ZERO_HASH) : ZERO_HASH;
        return ABI.encodeFunctionResult("batchCommitment", [value]);
      }
      if (parsed?.name === "signerPeriod") {
        counts.signerPeriod++;
        const registered = String(parsed.args[1]).toLowerCase() === SIGNER.address.toLowerCase();
        return ABI.encodeFunctionResult(
          "signerPeriod",
          registered ? [SIGNER_VALID_FROM, 0n] : [0n, 0n],
        );
      }
      if (parsed?.name === "getLog") {
        // SIGNER was rotated in after the log's registration (so its period is closed below).
        return ABI.encodeFunctionResult("getLog", [
          CONTRACT,
          SIGNER.address,
          1n,
          0n,
          SIGNER_VALID_FROM - 3_600n,
        ]);
      }
      throw new Error(`unexpected call ${tx.data.slice(0, 10)}`);
    },
    async getBlockNumber() {
      flaky();
      counts.head++;
      return HEAD;
    },
    async getNetwork() {
      flaky();
      counts.network++;
      return { chainId: BigInt(CHAIN_ID) };
    },
    async getTransactionReceipt(hash) {
      counts.receipts++;
      return receipts.get(hash) ?? null;
    },
    async getBlock(n) {
      counts.blocks++;
      if (n > HEAD) return null;
      return { transactions: n === ANCHOR_BLOCK ? batches.map((b) => b.txHash) : [] };
    },
  };
  return { rpc, counts };
}

/** A trust policy listing the fake registry and the logs of `batches`. */
export function fakePolicy(...batches: FakeBatch[]): TrustPolicy {
  return policyFor({
    chainId: CHAIN_ID,
    contract: CONTRACT,
    logIds: [...new Set(batches.map((b) => b.header.logId))],
  });
}

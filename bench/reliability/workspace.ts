/** A scenario's temporary data directory and loopback ports, removed when it ends. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { jsonRpc } from "../../test/support/hardhat-node.ts";
import { registryInterface } from "../../services/chain/registry-client.ts";
import { type AckedReceipt, lastSeq } from "./client.ts";
import { sleep } from "./service-process.ts";

export async function withTempDir<T>(label: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), `veritrail-${label}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface AnchoredHeader {
  batchNo: number;
  firstSeq: number;
  count: number;
  txHash: string;
}

/** Every BatchAnchored event of `logId` on the chain at `rpcUrl`, in block order. */
export async function anchoredOnChain(rpcUrl: string, logId: string): Promise<AnchoredHeader[]> {
  const topic = registryInterface.getEvent("BatchAnchored")!.topicHash;
  const logs = await jsonRpc<Array<{ topics: string[]; data: string; transactionHash: string }>>(
    rpcUrl,
    "eth_getLogs",
    [{ fromBlock: "0x0", toBlock: "latest", topics: [topic, logId] }],
  );
  return logs.map((log) => {
    const parsed = registryInterface.parseLog(log)!;
    return {
      batchNo: Number(parsed.args.getValue("batchNo") as bigint),
      firstSeq: Number(parsed.args.getValue("firstSeq") as bigint),
      count: Number(parsed.args.getValue("count") as bigint),
      txHash: log.transactionHash,
    };
  });
}

/** Batches must be 0, 1, 2, … each once, and their seq ranges contiguous from 0. */
export function batchSequenceProblems(headers: readonly AnchoredHeader[]): string[] {
  const problems: string[] = [];
  let nextSeq = 0;
  headers.forEach((h, i) => {
    if (h.batchNo !== i) problems.push(`batch ${h.batchNo} at position ${i}`);
    if (h.firstSeq !== nextSeq) problems.push(`batch ${h.batchNo} starts at ${h.firstSeq}`);
    nextSeq = h.firstSeq + h.count;
  });
  return problems;
}

export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/**
 * Until the new chain's registry holds batches covering every acknowledged seq (the service
 * notices the reset on its next recheck, then re-anchors from batch 0), or the timeout.
 */
export async function waitReanchored(
  rpcUrl: string,
  acked: readonly AckedReceipt[],
  timeoutMs: number,
): Promise<void> {
  const logId = acked[0]?.log;
  if (logId === undefined) return;
  const maxSeq = lastSeq(acked);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const anchored = await anchoredOnChain(rpcUrl, logId).catch(() => []);
    const last = anchored.at(-1);
    if (last && last.firstSeq + last.count > maxSeq) return;
    await sleep(250);
  }
}

/**
 * One log's chain reads shared by the verifier workers that check its bundles in parallel. Each
 * verifier's ChainRpc (services/verifier/chain-reads.ts) forwards its calls to the log's worker,
 * which asks the RPC once per distinct call and hands the answer to every verifier that asks
 * it: one state read per batch for the whole log, however many verifiers check its bundles, and
 * one chain head for all of them (each verifier reads it once per run and judges every bundle
 * at that height, so they must agree).
 */
import type { ChainRpc, TxReceiptLike } from "../../services/verifier/chain-reads.ts";

export type ChainMethod =
  "call" | "getBlockNumber" | "getTransactionReceipt" | "getNetwork" | "getBlock";

export interface ChainCall {
  type: "chain";
  id: number;
  method: ChainMethod;
  params: unknown[];
}

export type ChainAnswer =
  | { type: "chain"; id: number; ok: true; value: unknown }
  | {
      type: "chain";
      id: number;
      ok: false;
      error: { message: string; code?: string; shortMessage?: string };
    };

/** Structured-cloneable copies of what ethers answers (class instances do not cross workers). */
function plain(method: ChainMethod, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (method) {
    case "getTransactionReceipt": {
      const r = value as TxReceiptLike;
      return {
        blockNumber: r.blockNumber,
        status: r.status,
        logs: r.logs.map((l) => ({ address: l.address, topics: [...l.topics], data: l.data })),
      } satisfies TxReceiptLike;
    }
    case "getBlock":
      return { transactions: [...(value as { transactions: ReadonlyArray<string> }).transactions] };
    case "getNetwork":
      return { chainId: (value as { chainId: bigint }).chainId };
    default:
      return value;
  }
}

/** The log worker's side: the real provider behind a cache of answers (failures are retried). */
export class SharedChain {
  private readonly answers = new Map<string, Promise<unknown>>();
  /** Requests actually sent to the RPC. */
  requests = 0;

  constructor(private readonly rpc: ChainRpc) {}

  ask(method: ChainMethod, params: unknown[]): Promise<unknown> {
    const key = `${method}|${JSON.stringify(params)}`;
    let answer = this.answers.get(key);
    if (!answer) {
      this.requests++;
      answer = this.send(method, params).then((v) => plain(method, v));
      this.answers.set(key, answer);
      const stored = answer;
      answer.catch(() => {
        if (this.answers.get(key) === stored) this.answers.delete(key);
      });
    }
    return answer;
  }

  /** Answers a verifier's call; ethers' error code travels along (CALL_EXCEPTION: no registry). */
  async answer(call: ChainCall): Promise<ChainAnswer> {
    try {
      return {
        type: "chain",
        id: call.id,
        ok: true,
        value: await this.ask(call.method, call.params),
      };
    } catch (e) {
      const err = e as { message?: unknown; code?: unknown; shortMessage?: unknown };
      return {
        type: "chain",
        id: call.id,
        ok: false,
        error: {
          message: typeof err.message === "string" ? err.message : String(e),
          ...(typeof err.code === "string" ? { code: err.code } : {}),
          ...(typeof err.shortMessage === "string" ? { shortMessage: err.shortMessage } : {}),
        },
      };
    }
  }

  /** The same provider, through the cache: what the log worker itself verifies with. */
  asRpc(): ChainRpc {
    return {
      call: (tx) => this.ask("call", [tx]) as Promise<string>,
      getBlockNumber: () => this.ask("getBlockNumber", []) as Promise<number>,
      getTransactionReceipt: (h) =>
        this.ask("getTransactionReceipt", [h]) as Promise<TxReceiptLike | null>,
      getNetwork: () => this.ask("getNetwork", []) as Promise<{ chainId: bigint }>,
      getBlock: (n) =>
        this.ask("getBlock", [n]) as Promise<{ transactions: ReadonlyArray<string> } | null>,
    };
  }

  private send(method: ChainMethod, params: unknown[]): Promise<unknown> {
    switch (method) {
      case "call":
        return this.rpc.call(params[0] as Parameters<ChainRpc["call"]>[0]);
      case "getBlockNumber":
        return this.rpc.getBlockNumber();
      case "getTransactionReceipt":
        return this.rpc.getTransactionReceipt(params[0] as string);
      case "getNetwork":
        return this.rpc.getNetwork();
      case "getBlock":
        return this.rpc.getBlock(params[0] as number);
    }
  }
}

/** A verifier worker's ChainRpc: every call goes to the log worker (`post`), answered by id. */
export function proxiedChain(post: (call: ChainCall) => void): {
  rpc: ChainRpc;
  settle(answer: ChainAnswer): void;
} {
  let next = 1;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  const ask = (method: ChainMethod, params: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      post({ type: "chain", id, method, params });
    });
  return {
    rpc: {
      call: (tx) => ask("call", [tx]) as Promise<string>,
      getBlockNumber: () => ask("getBlockNumber", []) as Promise<number>,
      getTransactionReceipt: (h) =>
        ask("getTransactionReceipt", [h]) as Promise<TxReceiptLike | null>,
      getNetwork: () => ask("getNetwork", []) as Promise<{ chainId: bigint }>,
      getBlock: (n) =>
        ask("getBlock", [n]) as Promise<{ transactions: ReadonlyArray<string> } | null>,
    },
    settle(answer) {
      const w = waiting.get(answer.id);
      if (!w) return;
      waiting.delete(answer.id);
      if (answer.ok) w.resolve(answer.value);
      else w.reject(Object.assign(new Error(answer.error.message), answer.error));
    },
  };
}

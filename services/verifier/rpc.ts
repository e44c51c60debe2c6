/**
 * Connecting to an RPC endpoint: the one way the verifier (the CLI's --rpc, the page's RPC
 * field) and the chain client (the service's RPC_URL) reach a node. The chain id is probed once
 * with a plain request and then pinned: an ethers provider that cannot detect its network
 * retries forever, and both must say "RPC unreachable" instead. Lives here, not in chain/,
 * because the verifier may import only core/ and ethers; chain/ builds on it.
 */
import { FetchRequest, JsonRpcProvider, Network } from "ethers";

/**
 * The RPC cannot be used: refused, timed out, an HTTP error, or an answer that is not JSON-RPC.
 * The one name for "RPC down": a verdict that meets it is "error" (try again), never "tampered".
 */
export class RpcUnavailableError extends Error {
  override readonly name = "RpcUnavailableError";
  readonly code = "RPC_UNAVAILABLE";
}

export const DEFAULT_RPC_TIMEOUT_MS = 15_000;

function fetchRequest(url: string, timeoutMs: number): FetchRequest {
  const request = new FetchRequest(url);
  request.timeout = timeoutMs;
  return request;
}

/** eth_chainId, once, without ethers' start-up network detection (which retries forever). */
export async function probeChainId(
  url: string,
  timeoutMs = DEFAULT_RPC_TIMEOUT_MS,
): Promise<number> {
  let body: { result?: unknown; error?: { message?: string } };
  let status: number;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = response.status;
    body = (await response.json()) as typeof body;
  } catch (e) {
    throw new RpcUnavailableError(
      `cannot reach the RPC at ${redactRpcUrl(url)}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  if (typeof body.result !== "string")
    throw new RpcUnavailableError(
      `cannot reach the RPC at ${redactRpcUrl(url)}: ${body.error?.message ?? `HTTP ${status}, no chain id`}`,
    );
  return Number(BigInt(body.result));
}

export interface RpcProviderOptions {
  /** Per-request timeout; an RPC that accepts but never answers counts as down. */
  timeoutMs?: number;
  /** ethers' response cache (ms); -1 turns it off (the anchor loop must see a reorg at once). */
  cacheTimeout?: number;
  /** How often ethers polls for new blocks and transaction receipts (ms). */
  pollingInterval?: number;
}

/** A JsonRpcProvider pinned to `chainId` (staticNetwork: no eth_chainId before each request). */
export function rpcProvider(
  url: string,
  chainId: number | bigint,
  opts: RpcProviderOptions = {},
): JsonRpcProvider {
  const network = Network.from(chainId);
  return new JsonRpcProvider(fetchRequest(url, opts.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS), network, {
    staticNetwork: network,
    ...(opts.cacheTimeout === undefined ? {} : { cacheTimeout: opts.cacheTimeout }),
    ...(opts.pollingInterval === undefined ? {} : { pollingInterval: opts.pollingInterval }),
  });
}

/** Probes the chain id, then returns a provider pinned to it. */
export async function connectRpc(
  url: string,
  opts: RpcProviderOptions = {},
): Promise<JsonRpcProvider> {
  const chainId = await probeChainId(url, opts.timeoutMs);
  return rpcProvider(url, chainId, opts);
}

/** An RPC URL may carry an API key in its path or query: show only scheme, host and port. */
export function redactRpcUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "<invalid URL>";
  }
}

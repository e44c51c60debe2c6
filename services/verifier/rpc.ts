/**
 * Connects to the RPC endpoint the user chose (the CLI's --rpc, the page's RPC field). The
 * chain id is probed once with a plain request and then pinned: an ethers provider that cannot
 * detect its network retries forever, and a verifier must say "RPC unreachable" instead.
 */
import { FetchRequest, JsonRpcProvider, Network } from "ethers";

export class RpcUnavailableError extends Error {
  override readonly name = "RpcUnavailableError";
}

export async function connectRpc(
  url: string,
  opts: { timeoutMs?: number } = {},
): Promise<JsonRpcProvider> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  let chainId: bigint;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json()) as { result?: unknown; error?: { message?: string } };
    if (typeof body.result !== "string")
      throw new Error(body.error?.message ?? `HTTP ${response.status}, no chain id`);
    chainId = BigInt(body.result);
  } catch (e) {
    throw new RpcUnavailableError(
      `cannot reach the RPC at ${redact(url)}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const request = new FetchRequest(url);
  request.timeout = timeoutMs;
  const network = Network.from(chainId);
  return new JsonRpcProvider(request, network, { staticNetwork: network });
}

/** An RPC URL may carry an API key in its path or query: show only scheme, host and port. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "<invalid URL>";
  }
}

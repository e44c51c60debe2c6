/**
 * A `veritrail-trust/1` policy read from a registry's state (DESIGN.md "Trust policy"): its
 * chain, its address, and every log registered in it with the operator name recorded at
 * registration. Used by `veritrail trust init` and by the service, which writes the policy of
 * its own log to DATA_DIR/trust.json. Reading a registry is not a reason to trust it: choosing
 * the registry is the trust decision, and whoever runs this makes it.
 */
import { getAddress } from "ethers";
import { TRUST_POLICY_FORMAT, parseTrustPolicy } from "../core/trust-policy.ts";
import type { RegistryClient } from "./registry-client.ts";

export interface TrustPolicyDocument {
  format: typeof TRUST_POLICY_FORMAT;
  issuer: string;
  registries: Array<{ chainId: number; address: string; confirmations: number; name?: string }>;
  logs: Array<{ chainId: number; registry: string; logId: string; operator: string; api?: string }>;
}

export interface PolicyFromRegistryOptions {
  issuer: string;
  /** Blocks a verifier requires on top of an anchoring block, itself included. */
  confirmations: number;
  /** A label for the registry. */
  name?: string;
  /** Only these logs (0x-hex ids); default every registered log. */
  logs?: readonly string[];
  /** A log's API URL, by log id (informational). */
  api?: Readonly<Record<string, string>>;
}

export class TrustInitError extends Error {
  override readonly name = "TrustInitError";
}

export async function policyFromRegistry(
  client: RegistryClient,
  opts: PolicyFromRegistryOptions,
): Promise<TrustPolicyDocument> {
  const registered = await client.listLogs();
  const wanted = opts.logs?.map((l) => l.toLowerCase());
  if (wanted) {
    const missing = wanted.filter((id) => !registered.some((l) => l.logId.toLowerCase() === id));
    if (missing.length > 0)
      throw new TrustInitError(
        `log ${missing.join(", ")} is not registered in ${client.address} on chain ${client.chainId}`,
      );
  }
  const chosen = registered.filter((l) => !wanted || wanted.includes(l.logId.toLowerCase()));
  const address = getAddress(client.address);
  const document: TrustPolicyDocument = {
    format: TRUST_POLICY_FORMAT,
    issuer: opts.issuer,
    registries: [
      {
        chainId: client.chainId,
        address,
        confirmations: opts.confirmations,
        ...(opts.name ? { name: opts.name } : {}),
      },
    ],
    logs: chosen.map((l) => {
      const logId = l.logId.toLowerCase();
      const api = opts.api?.[logId];
      return {
        chainId: client.chainId,
        registry: address,
        logId,
        operator: l.operator,
        ...(api ? { api } : {}),
      };
    }),
  };
  // Refuses what no verifier would accept (an empty operator name, say) before anyone relies on it.
  parseTrustPolicy(document);
  return document;
}

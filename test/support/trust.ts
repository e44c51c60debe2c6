/**
 * Trust policies for tests: the registry a test deployed (or the fake chain's) and the logs in
 * it, as a regulator would list them (DESIGN.md "Trust policy").
 */
import {
  TRUST_POLICY_FORMAT,
  type TrustPolicy,
  parseTrustPolicy,
} from "../../services/core/trust-policy.ts";

export const TEST_OPERATOR = "St Mary General Hospital (test)";
export const TEST_ISSUER = "Test regulator";

export function policyFor(opts: {
  chainId: number;
  contract: string;
  logIds: string | readonly string[];
  operator?: string;
  confirmations?: number;
  issuer?: string;
}): TrustPolicy {
  const logIds = typeof opts.logIds === "string" ? [opts.logIds] : opts.logIds;
  return parseTrustPolicy(policyDocument({ ...opts, logIds }));
}

export function policyDocument(opts: {
  chainId: number;
  contract: string;
  logIds: readonly string[];
  operator?: string;
  confirmations?: number;
  issuer?: string;
}): Record<string, unknown> {
  return {
    format: TRUST_POLICY_FORMAT,
    issuer: opts.issuer ?? TEST_ISSUER,
    registries: [
      { chainId: opts.chainId, address: opts.contract, confirmations: opts.confirmations ?? 1 },
    ],
    logs: opts.logIds.map((logId) => ({
      chainId: opts.chainId,
      registry: opts.contract,
      logId,
      operator: opts.operator ?? TEST_OPERATOR,
    })),
  };
}

import { z } from "zod";
import { AddressSchema, sameAddress } from "./address.ts";
import { sha256 } from "./hash.ts";
import { type Hex, isHex32, toHex, utf8 } from "./hex.ts";
import { jcs } from "./jcs.ts";

/**
 * The trust policy, `veritrail-trust/1` (DESIGN.md "Trust policy"): which registries and which
 * logs in them a verifier accepts, and who operates each log. Anyone can deploy a registry and
 * register any logId in it, so a bundle's own `anchor.contract` proves nothing; like a CT log
 * list or a sigstore trusted root, the policy comes out of band (a regulator, a consortium)
 * and every verdict is relative to it.
 *
 * Its fingerprint is SHA-256(JCS(policy document)), over the document exactly as published
 * (fields this version does not know included), so two people holding the same file compute the
 * same value and can compare it with the one their regulator publishes.
 */
export const TRUST_POLICY_FORMAT = "veritrail-trust/1";

const hex32 = z
  .string()
  .refine((v): boolean => isHex32(v), "must be 0x-prefixed lowercase hex of 32 bytes");
const chainId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const label = z.string().trim().min(1).max(256);

/** Unknown fields are ignored (extensions), as in a proof bundle; the format is not. */
export const TrustedRegistrySchema = z.object({
  chainId,
  address: AddressSchema,
  /** Blocks the anchoring block must have on top of it, itself included. */
  confirmations: z.number().int().min(0).max(1_000_000),
  name: label.optional(),
});

export const TrustedLogSchema = z.object({
  chainId,
  registry: AddressSchema,
  logId: hex32,
  operator: label,
  api: z.url({ protocol: /^https?$/ }).optional(),
});

export const TrustPolicySchema = z
  .object({
    format: z.string().refine((f) => f === TRUST_POLICY_FORMAT, {
      error: (issue) =>
        `unknown format ${JSON.stringify(issue.input)}: this verifier reads ${TRUST_POLICY_FORMAT}`,
    }),
    issuer: label,
    registries: z.array(TrustedRegistrySchema).min(1).max(10_000),
    logs: z.array(TrustedLogSchema).max(100_000),
  })
  .superRefine((p, ctx) => {
    const registries = new Set<string>();
    p.registries.forEach((r, i) => {
      const key = `${r.chainId}|${r.address.toLowerCase()}`;
      if (registries.has(key))
        ctx.addIssue({
          code: "custom",
          path: ["registries", i],
          message: `registry ${r.address} on chain ${r.chainId} is listed twice`,
        });
      registries.add(key);
    });
    const logs = new Set<string>();
    p.logs.forEach((l, i) => {
      if (!registries.has(`${l.chainId}|${l.registry.toLowerCase()}`))
        ctx.addIssue({
          code: "custom",
          path: ["logs", i, "registry"],
          message: `log ${l.logId} names registry ${l.registry} on chain ${l.chainId}, which is not in registries`,
        });
      const key = `${l.chainId}|${l.registry.toLowerCase()}|${l.logId}`;
      if (logs.has(key))
        ctx.addIssue({
          code: "custom",
          path: ["logs", i],
          message: `log ${l.logId} on registry ${l.registry} is listed twice`,
        });
      logs.add(key);
    });
  });

export type TrustedRegistry = z.infer<typeof TrustedRegistrySchema>;
export type TrustedLog = z.infer<typeof TrustedLogSchema>;
type PolicyFields = z.infer<typeof TrustPolicySchema>;

/** A parsed policy with its fingerprint. */
export interface TrustPolicy extends PolicyFields {
  /** 0x-hex SHA-256(JCS(document)). */
  fingerprint: Hex;
}

export type TrustErrorCode =
  /** The policy is not a `veritrail-trust/1` document. */
  | "POLICY_MALFORMED"
  /** The bundle's (chainId, registry) is not a registry the policy lists. */
  | "UNTRUSTED_REGISTRY"
  /** The registry is trusted, but the log is not listed in it. */
  | "UNKNOWN_LOG";

export class TrustPolicyError extends Error {
  override readonly name = "TrustPolicyError";
  constructor(
    readonly code: "POLICY_MALFORMED",
    message: string,
    /** Where in the document, e.g. `logs.0.registry`. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** SHA-256(JCS(document)) of a policy document (parsed JSON), 0x-hex. */
export function trustPolicyFingerprint(document: unknown): Hex {
  return toHex(sha256(utf8(jcs(document))));
}

/** Parses a policy document (parsed JSON); throws TrustPolicyError naming the bad field. */
export function parseTrustPolicy(document: unknown): TrustPolicy {
  const parsed = TrustPolicySchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : undefined;
    throw new TrustPolicyError(
      "POLICY_MALFORMED",
      `not a ${TRUST_POLICY_FORMAT} policy: ${field ? `${field}: ` : ""}${issue?.message ?? "invalid"}`,
      field,
    );
  }
  return { ...parsed.data, fingerprint: trustPolicyFingerprint(document) };
}

/** What a policy says about one anchor: the registry and log it lists, or why not. */
export type TrustDecision =
  | { ok: true; registry: TrustedRegistry; log: TrustedLog }
  | { ok: false; code: "UNTRUSTED_REGISTRY" | "UNKNOWN_LOG"; message: string };

/**
 * Whether the policy accepts log `logId` anchored in registry `registry` on chain `chainId`.
 * Addresses compare case-insensitively; logIds are lowercase hex and compare exactly.
 */
export function trustDecision(
  policy: Pick<TrustPolicy, "registries" | "logs">,
  anchor: { chainId: number; registry: string; logId: string },
): TrustDecision {
  const where = `registry ${anchor.registry} on chain ${anchor.chainId}`;
  const registry = policy.registries.find(
    (r) => r.chainId === anchor.chainId && sameAddress(r.address, anchor.registry),
  );
  if (!registry)
    return {
      ok: false,
      code: "UNTRUSTED_REGISTRY",
      message: `${where} is not a registry the trust policy lists: anyone can deploy a registry and register any log id in it`,
    };
  const log = policy.logs.find(
    (l) =>
      l.chainId === anchor.chainId &&
      sameAddress(l.registry, anchor.registry) &&
      l.logId === anchor.logId,
  );
  if (!log) {
    const elsewhere = policy.logs.filter((l) => l.logId === anchor.logId);
    const hint =
      elsewhere.length > 0
        ? `; the policy lists it only in ${elsewhere.map((l) => `registry ${l.registry} on chain ${l.chainId}`).join(", ")}`
        : "";
    return {
      ok: false,
      code: "UNKNOWN_LOG",
      message: `log ${anchor.logId} is not listed in ${registryLabel(registry)} by the trust policy${hint}`,
    };
  }
  return { ok: true, registry, log };
}

/** Every (registry, log) pair the policy lists for `logId` (a log may move registries). */
export function placesOfLog(
  policy: Pick<TrustPolicy, "registries" | "logs">,
  logId: string,
): Array<{ registry: TrustedRegistry; log: TrustedLog }> {
  const out: Array<{ registry: TrustedRegistry; log: TrustedLog }> = [];
  for (const log of policy.logs) {
    if (log.logId !== logId) continue;
    const registry = policy.registries.find(
      (r) => r.chainId === log.chainId && sameAddress(r.address, log.registry),
    );
    if (registry) out.push({ registry, log });
  }
  return out;
}

/** "registry St Mary consortium (0x…) on chain 1", for messages. */
export function registryLabel(r: TrustedRegistry): string {
  return `registry ${r.name ? `${r.name} (${r.address})` : r.address} on chain ${r.chainId}`;
}

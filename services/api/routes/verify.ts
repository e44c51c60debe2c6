import type { Express } from "express";
import { type TrustPolicy, TrustPolicyError, parseTrustPolicy } from "../../core/trust-policy.ts";
import type { Verdict } from "../../verifier/verdict.ts";
import type { ApiContext } from "../app.ts";
import { authorize } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { decodeUtf8, parseJson } from "../event-body.ts";
import { rawBody, requireMediaType } from "./events.ts";

/**
 * A proof bundle in, the standalone verifier's verdict out (chain and confirmations bound in),
 * relative to `trust` — the caller's policy — or, without one, this log's own policy.
 */
export type BundleVerifier = (bundle: unknown, trust?: TrustPolicy) => Promise<Verdict>;

/** Largest request accepted: a bundle (an event is at most 32 KiB in JCS) and a policy. */
export const MAX_BUNDLE_BYTES = 256 * 1024;

/**
 * POST /v1/verify runs the same verifier as the CLI and the browser page against the chain the
 * service is configured with. It is a convenience: a bundle's holder can and should verify it
 * against a chain and a trust policy of their own choosing without this server. The body is a
 * bundle (checked against this log's own policy) or `{ "bundle": …, "trust": <policy> }`.
 *
 * GET /.well-known/veritrail-trust.json serves this log's own policy (its registry and log, the
 * operator name recorded on-chain), for convenience only: a verifier never adopts a policy from
 * the server whose proofs it checks; a regulator's policy is the one to rely on.
 */
export function registerVerifyRoutes(app: Express, ctx: ApiContext): void {
  app.post(
    "/v1/verify",
    ctx.authenticate,
    authorize(ctx.access, "bundles:verify"),
    requireMediaType(["application/json"]),
    rawBody(MAX_BUNDLE_BYTES),
    async (req, res) => {
      const body: unknown = req.body;
      const parsed = parseJson(Buffer.isBuffer(body) ? decodeUtf8(body) : "");
      const { bundle, trust } = splitRequest(parsed);
      if (!ctx.verifier)
        throw new ApiError("UNAVAILABLE", "verification needs a chain; none is configured");
      res.json(await ctx.verifier(bundle, trust));
    },
  );

  app.get("/.well-known/veritrail-trust.json", async (_req, res) => {
    const document = await ctx.trustPolicyDocument?.();
    if (document === undefined)
      throw new ApiError(
        "UNAVAILABLE",
        "this log's trust policy is not available yet (the log is not registered on-chain)",
      );
    const policy = parseTrustPolicy(document);
    res.setHeader("Cache-Control", "no-cache");
    res.setHeader("X-Veritrail-Trust-Fingerprint", policy.fingerprint);
    res.json(document);
  });
}

/** `{ bundle, trust? }` (a policy of the caller's) or a bare bundle. */
function splitRequest(body: unknown): { bundle: unknown; trust?: TrustPolicy } {
  if (
    typeof body !== "object" ||
    body === null ||
    Array.isArray(body) ||
    !("bundle" in body) ||
    "format" in body
  )
    return { bundle: body };
  const { bundle, trust } = body as { bundle: unknown; trust?: unknown };
  if (trust === undefined) return { bundle };
  try {
    return { bundle, trust: parseTrustPolicy(trust) };
  } catch (e) {
    if (e instanceof TrustPolicyError)
      throw new ApiError("VALIDATION_FAILED", e.message, e.field ? `trust.${e.field}` : "trust");
    throw e;
  }
}

import type { Express } from "express";
import type { Verdict } from "../../verifier/verdict.ts";
import type { ApiContext } from "../app.ts";
import { authorize } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { decodeUtf8, parseJson } from "../event-body.ts";
import { rawBody, requireMediaType } from "./events.ts";

/** A proof bundle in, the standalone verifier's verdict out (chain and confirmations bound in). */
export type BundleVerifier = (bundle: unknown) => Promise<Verdict>;

/** Largest bundle accepted: an event is at most 32 KiB in JCS, the rest is hashes. */
export const MAX_BUNDLE_BYTES = 256 * 1024;

/**
 * POST /v1/verify runs the same verifier as the CLI and the browser page against the chain the
 * service is configured with. It is a convenience: a bundle's holder can and should verify it
 * against a chain of their own choosing without this server.
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
      const bundle = parseJson(Buffer.isBuffer(body) ? decodeUtf8(body) : "");
      if (!ctx.verifier)
        throw new ApiError("UNAVAILABLE", "verification needs a chain; none is configured");
      res.json(await ctx.verifier(bundle));
    },
  );
}

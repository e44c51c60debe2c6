import type { Request, RequestHandler, Response } from "express";
import { rateLimit } from "express-rate-limit";
import type { AccessPolicy, Operation } from "../ledger/access.ts";
import type { ApiKeys, Principal } from "../ledger/api-keys.ts";
import { ApiError, sendError } from "./errors.ts";

/** The authenticated caller of this request (set by `authenticate`). */
export function principalOf(res: Response): Principal {
  const principal = res.locals["principal"] as Principal | undefined;
  if (!principal) throw new Error("invariant violated: route runs after authenticate");
  return principal;
}

const BEARER_RE = /^Bearer ([\x21-\x7e]{1,512})$/;

/** Bearer API key → principal; 401 (with WWW-Authenticate) when missing, unknown or revoked. */
export function authenticate(keys: ApiKeys): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined || header === "") {
      throw new ApiError("UNAUTHENTICATED", "an API key is required (Authorization: Bearer <key>)");
    }
    const match = BEARER_RE.exec(header);
    const principal = match ? await keys.authenticate(match[1]!) : undefined;
    if (!principal) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="veritrail", error="invalid_token"');
      throw new ApiError("UNAUTHENTICATED", "the API key is not valid or has been revoked");
    }
    res.locals["principal"] = principal;
    next();
  };
}

/** 403 unless the access policy lets the caller's role perform `operation`. */
export function authorize(policy: AccessPolicy, operation: Operation): RequestHandler {
  return (_req, res, next) => {
    policy.permit(principalOf(res), operation);
    next();
  };
}

/** Requests per minute per API key (keyed by key id, never by IP address). */
export function perKeyRateLimit(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    keyGenerator: (_req: Request, res: Response) => principalOf(res).id,
    handler: (_req, res) => {
      sendError(
        res,
        new ApiError("RATE_LIMITED", `rate limit of ${perMinute} requests per minute exceeded`),
      );
    },
    // The checks warn about IP-based keys and proxies; keys here are API key ids.
    validate: false,
  });
}

import type { Request, RequestHandler, Response } from "express";
import type { AccessPolicy, Operation } from "../ledger/access.ts";
import type { ApiKeys, Principal } from "../ledger/api-keys.ts";
import { ApiError } from "./errors.ts";

/** The authenticated caller of this request (set by `authenticate`). */
export function principalOf(res: Response): Principal {
  const principal = res.locals["principal"] as Principal | undefined;
  if (!principal) throw new Error("invariant violated: route runs after authenticate");
  return principal;
}

const BEARER_RE = /^Bearer ([\x21-\x7e]{1,512})$/;

/** The key of an `Authorization: Bearer <key>` header; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  return header === undefined ? undefined : BEARER_RE.exec(header)?.[1];
}

/** res.locals: the outcome of this request's key lookup, once it was made. */
const CALLER = "caller";

/**
 * The principal of the request's live API key (undefined without one, or for a malformed,
 * unknown or revoked key), looked up once per request: the rate limiter, which runs first,
 * and `authenticate` share the answer (the lookup hashes the key each time).
 */
export async function callerOf(
  keys: ApiKeys,
  req: Request,
  res: Response,
): Promise<Principal | undefined> {
  const known = res.locals[CALLER] as { principal: Principal | undefined } | undefined;
  if (known) return known.principal;
  const token = bearerToken(req.headers.authorization);
  const principal = token !== undefined ? await keys.authenticate(token) : undefined;
  res.locals[CALLER] = { principal };
  return principal;
}

/** Bearer API key → principal; 401 (with WWW-Authenticate) when missing, unknown or revoked. */
export function authenticate(keys: ApiKeys): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined || header === "") {
      throw new ApiError("UNAUTHENTICATED", "an API key is required (Authorization: Bearer <key>)");
    }
    const principal = await callerOf(keys, req, res);
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

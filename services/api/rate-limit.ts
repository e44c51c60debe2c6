import type { Request, RequestHandler, Response } from "express";
import { ipKeyGenerator, rateLimit } from "express-rate-limit";
import type { Config } from "../config.ts";
import type { ApiKeys, Principal } from "../ledger/api-keys.ts";
import { callerOf } from "./auth.ts";
import { ApiError, sendError } from "./errors.ts";

export type RateLimitConfig = Pick<
  Config,
  "RATE_LIMIT_PER_MINUTE" | "RATE_LIMIT_PER_IP_PER_MINUTE"
>;

const WINDOW_MS = 60_000;

/** res.locals: the caller's live key, when the request carries one. */
const CALLER = "rateLimitCaller";

/**
 * Rate limits for every request, before any route (pages, health and metrics included):
 *
 * - a request with a live API key counts against that key (RATE_LIMIT_PER_MINUTE), whatever
 *   address it comes from;
 * - every other request — no key, a malformed, unknown or revoked one — counts against the
 *   client's IP address (RATE_LIMIT_PER_IP_PER_MINUTE; IPv6 by /56, as one subscriber usually
 *   holds one), so an unauthenticated flood or key guessing is throttled before it costs more.
 *
 * Past a limit: 429 RATE_LIMITED with Retry-After (seconds to the window's end) and the
 * draft-7 RateLimit headers. Counters are in memory, per process, in fixed one-minute windows.
 * Behind a reverse proxy set TRUST_PROXY, or every client shares the proxy's address.
 */
export function rateLimits(keys: ApiKeys, config: RateLimitConfig): RequestHandler {
  const refuse = (limit: number, per: string) => (_req: Request, res: Response) => {
    sendError(
      res,
      new ApiError("RATE_LIMITED", `rate limit of ${limit} requests per minute ${per} exceeded`),
    );
  };
  const perKey = rateLimit({
    windowMs: WINDOW_MS,
    limit: config.RATE_LIMIT_PER_MINUTE,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    keyGenerator: (_req, res) => `key:${(res.locals[CALLER] as Principal).id}`,
    handler: refuse(config.RATE_LIMIT_PER_MINUTE, "for this API key"),
    validate: false,
  });
  const perIp = rateLimit({
    windowMs: WINDOW_MS,
    limit: config.RATE_LIMIT_PER_IP_PER_MINUTE,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    keyGenerator: (req) => `ip:${ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? "?")}`,
    handler: refuse(config.RATE_LIMIT_PER_IP_PER_MINUTE, "from this address without an API key"),
    validate: false,
  });
  return async (req, res, next) => {
    // The live-key lookup `authenticate` then reuses (in memory after a key's first use).
    const caller = await callerOf(keys, req, res);
    if (caller) {
      res.locals[CALLER] = caller;
      await perKey(req, res, next);
    } else {
      await perIp(req, res, next);
    }
  };
}

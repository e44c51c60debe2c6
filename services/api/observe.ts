import { randomUUID } from "node:crypto";
import type { Request, RequestHandler, Response } from "express";
import type { Logger } from "pino";
import type { Principal } from "../ledger/api-keys.ts";
import type { ApiMetrics } from "./metrics.ts";

/** Client-supplied request ids are echoed only when they are short and plain (no log injection). */
const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The route template of a request (`/v1/events/:seq`), never its URL: URLs carry seqs, query
 * strings and ids. Requests that matched no route are `unmatched`.
 */
export function routeTemplate(req: Request, res: Response): string {
  const fixed = res.locals["routeTemplate"] as string | undefined;
  if (fixed !== undefined) return fixed;
  const route = req.route as { path?: unknown } | undefined;
  return typeof route?.path === "string" ? route.path : "unmatched";
}

/**
 * Request id, metrics and one access-log line per request. The line holds method, route
 * template, status, duration, request id, key id and role — and nothing a caller sent:
 * no headers, bodies, query strings, IP addresses or patient identifiers.
 */
export function observeRequests(logger: Logger, metrics: ApiMetrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && REQUEST_ID_RE.test(given) ? given : randomUUID();
    res.locals["requestId"] = requestId;
    res.setHeader("X-Request-Id", requestId);
    // "close" also fires when the client goes away before the answer is complete.
    res.once("close", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeTemplate(req, res);
      metrics.observeRequest(req.method, route, res.statusCode, seconds);
      const principal = res.locals["principal"] as Principal | undefined;
      logger.info(
        {
          reqId: requestId,
          method: req.method,
          route,
          status: res.statusCode,
          durationMs: Math.round(seconds * 1e6) / 1e3,
          keyId: principal?.id,
          role: principal?.role,
        },
        "request",
      );
    });
    next();
  };
}

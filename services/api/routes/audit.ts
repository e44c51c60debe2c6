import type { RouteConfig } from "@asteasolutions/zod-to-openapi";
import type { Express } from "express";
import { auditOpenLedger } from "../../ledger/audit-targets.ts";
import type { AuditChain } from "../../ledger/audit.ts";
import type { ApiContext } from "../app.ts";
import { authorize } from "../auth.ts";
import type { API_ERROR_STATUS } from "../errors.ts";
import { ApiError } from "../errors.ts";

/**
 * The route replays the whole log inside the request, so it serves small logs only; a real
 * log is audited with `veritrail audit --data <dir> --rpc <url>` (services/cli/audit-command.ts).
 */
export const AUDIT_ROUTE_MAX_EVENTS = 100_000;

export interface AuditRouteOptions {
  /**
   * The registry to compare headers with, resolved per request (the service connects lazily and
   * its dev registry can move after a chain reset); without it only the local replay runs.
   */
  chain?: () => Promise<AuditChain>;
  /** Largest log the route audits (default AUDIT_ROUTE_MAX_EVENTS). */
  maxEvents?: number;
}

/** POST /v1/audit (auditor): the regulator's audit of this log (services/ledger/audit.ts). */
export function registerAuditRoutes(
  app: Express,
  ctx: ApiContext,
  opts: AuditRouteOptions = {},
): void {
  app.post("/v1/audit", ctx.authenticate, authorize(ctx.access, "audit:run"), async (_req, res) => {
    const events = ctx.ledger.nextSeq;
    const max = opts.maxEvents ?? AUDIT_ROUTE_MAX_EVENTS;
    if (events > max)
      throw new ApiError(
        "TOO_MANY_EVENTS",
        `the log has ${events} events; this route audits up to ${max}: run \`veritrail audit\` instead`,
      );
    const report = await auditOpenLedger(
      ctx.ledger,
      opts.chain ? { chain: await opts.chain() } : {},
    );
    res.json(report);
  });
}

const AUDIT_REPORT_SCHEMA = {
  type: "object",
  required: ["ok", "logId", "events", "batches", "findingCount", "findings"],
  properties: {
    ok: { type: "boolean", description: "True when the replay found no discrepancy." },
    logId: { type: ["string", "null"] },
    events: { type: "integer" },
    erased: { type: "integer" },
    batches: { type: "integer" },
    sealedEvents: { type: "integer" },
    chain: {
      description: "The registry compared with, or null when no chain is configured.",
      oneOf: [{ type: "object" }, { type: "null" }],
    },
    findingCount: { type: "integer" },
    findings: {
      type: "array",
      items: {
        type: "object",
        required: ["kind", "message"],
        properties: {
          batchNo: { type: "integer" },
          seq: { type: "integer" },
          kind: { type: "string", description: "e.g. EVENTS_ROOT_MISMATCH, INDEX_ROOT_MISMATCH." },
          message: { type: "string" },
        },
      },
    },
    durationMs: { type: "integer" },
  },
};

/** The OpenAPI description of the route above (buildOpenApiDocument registers it). */
export function auditRouteDocs(): {
  paths: RouteConfig[];
  schemas: Record<string, Record<string, unknown>>;
} {
  const err = (code: keyof typeof API_ERROR_STATUS) => ({
    description: code,
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  });
  return {
    schemas: { AuditReport: AUDIT_REPORT_SCHEMA },
    paths: [
      {
        method: "post",
        path: "/v1/audit",
        summary: "Audit the whole log (auditor; small logs only)",
        description: `Replays the log: every leaf hash, commitment, eventsRoot, the subject index rebuilt from scratch against every indexRoot, seq and batch contiguity, and every header against the registry when the service has a chain. Logs of at most ${AUDIT_ROUTE_MAX_EVENTS} events (413 TOO_MANY_EVENTS beyond; use the CLI \`veritrail audit\`). No request body.`,
        security: [{ bearerAuth: [] }],
        responses: {
          200: {
            description: "The audit report; ok is false when anything was found.",
            content: {
              "application/json": { schema: { $ref: "#/components/schemas/AuditReport" } },
            },
          },
          401: err("UNAUTHENTICATED"),
          403: err("FORBIDDEN"),
          413: err("TOO_MANY_EVENTS"),
          429: err("RATE_LIMITED"),
        },
      },
    ],
  };
}

import type { Express } from "express";
import { logStatus } from "../../ledger/log-status.ts";
import type { ApiContext } from "../app.ts";
import { authorize } from "../auth.ts";

/** The log's status for operators and auditors (counts, backlog, alarms; no event data). */
export function registerStatusRoutes(app: Express, ctx: ApiContext): void {
  app.get(
    "/v1/status",
    ctx.authenticate,
    authorize(ctx.access, "status:read"),
    async (_req, res) => {
      res.json(await logStatus(ctx.ledger, ctx.statusProvider?.(), ctx.trustPolicy?.() ?? null));
    },
  );
}

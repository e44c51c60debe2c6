import type { Express } from "express";
import type { ApiContext } from "../app.ts";
import { authorize } from "../auth.ts";
import { BatchNoParams, ListBatchesQuery, parseRequest } from "../schemas.ts";

/** Batch headers and anchoring state: no event data, readable by admins, auditors, writers. */
export function registerBatchRoutes(app: Express, ctx: ApiContext): void {
  const guard = [ctx.authenticate, authorize(ctx.access, "batches:read")];

  app.get("/v1/batches", ...guard, async (req, res) => {
    const q = parseRequest(ListBatchesQuery, { ...req.query });
    const from = q.from ?? 0;
    const batches = await ctx.ledger.listBatches({ fromBatchNo: from, limit: q.limit + 1 });
    const page = batches.slice(0, q.limit);
    res.json({
      batches: page,
      nextFrom: batches.length > q.limit ? String(batches[q.limit]!.header.batchNo) : null,
    });
  });

  app.get("/v1/batches/:batchNo", ...guard, async (req, res) => {
    const { batchNo } = parseRequest(BatchNoParams, { ...req.params });
    res.json(await ctx.ledger.getBatch(batchNo));
  });
}

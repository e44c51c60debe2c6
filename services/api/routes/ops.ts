import { existsSync } from "node:fs";
import path from "node:path";
import express, { type Express } from "express";
import type { ApiContext } from "../app.ts";
import { lostRangesReport } from "../../ledger/lost-ranges.ts";
import { ApiError } from "../errors.ts";
import { buildOpenApiDocument, renderDocsPage } from "../openapi.ts";

/** Health, readiness, metrics, API docs and the static web pages: no key needed. */
export function registerOpsRoutes(app: Express, ctx: ApiContext): void {
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });

  app.get("/readyz", (_req, res) => {
    const ledgerOpen = ctx.queries.isOpen();
    const anchor = ctx.statusProvider?.();
    const anchoring = anchor
      ? {
          state: anchor.state,
          lagBatches: anchor.lagBatches,
          lagMs: anchor.lagMs,
          ...(anchor.alarm ? { alarm: anchor.alarm } : {}),
          ...(anchor.deepReorg ? { deepReorg: anchor.deepReorg } : {}),
        }
      : null;
    const b = ctx.ledger.backlog();
    const ingest = {
      unsealedEvents: b.unsealedEvents,
      oldestUnsealedMs: b.oldestUnsealedMs,
      unanchoredBatches: b.unanchoredBatches,
      waiting: b.waiting,
      saturated: b.saturated,
      maxUnsealedEvents: b.limits.maxUnsealedEvents,
      maxUnsealedAgeMs: b.limits.maxUnsealedAgeMs,
      maxUnanchoredBatches: b.limits.maxUnanchoredBatches,
    };
    const storage = ctx.ledger.storageHealth();
    const ranges = ctx.ledger.lostRanges();
    const restore = ctx.ledger.restorePending;
    const checks = {
      ledger: ledgerOpen ? "open" : "closed",
      storage,
      ingest,
      anchoring,
      // A restored copy: being compared with the chain, and what the chain holds beyond it.
      restore: restore ? { state: "reconciling", ...restore } : null,
      lost: lostRangesReport(ranges),
    };
    if (restore) {
      const error = new ApiError(
        "RESTORE_PENDING",
        "this ledger was restored from a backup and is being compared with the chain; events are accepted once it is",
      );
      res.status(503).json({ ...error.body(), checks });
      return;
    }
    if (storage.state === "failed") {
      // Writes are refused (503 STORAGE_UNAVAILABLE) until the disk takes them again; reads
      // go on. Say so here too, so a load balancer stops sending writers for the duration.
      const error = new ApiError(
        "STORAGE_UNAVAILABLE",
        `the ledger cannot write to its disk since ${new Date(storage.since).toISOString()} (${storage.reason}); acknowledged events are intact, writes resume by themselves`,
      );
      res.status(503).json({ ...error.body(), checks });
      return;
    }
    if (!ledgerOpen || anchor?.alarm || b.saturated) {
      const why = !ledgerOpen
        ? "the ledger database is not open"
        : anchor?.alarm
          ? `anchoring stopped by alarm ${anchor.alarm.code}`
          : "ingest is at its backlog bound: new events are held back or refused until sealing and anchoring catch up";
      res.status(503).json({ ...new ApiError("UNAVAILABLE", why).body(), checks });
      return;
    }
    res.json({ status: "ready", checks });
  });

  app.get("/metrics", async (_req, res) => {
    res.setHeader("Content-Type", ctx.metrics.registry.contentType);
    res.send(await ctx.metrics.registry.metrics());
  });

  let openApi: ReturnType<typeof buildOpenApiDocument> | undefined;
  let docsPage: string | undefined;
  const spec = () => (openApi ??= buildOpenApiDocument(ctx.config));
  app.get("/openapi.json", (_req, res) => {
    res.json(spec());
  });
  app.get("/docs", (_req, res) => {
    docsPage ??= renderDocsPage(spec());
    res.type("html").send(docsPage);
  });

  // Pages and bundles built by others into web/; absent files answer 404 in the error format.
  const page = (route: string, file: string) => {
    app.get(route, (_req, res, next) => {
      const full = path.join(ctx.webDir, file);
      if (!existsSync(full)) throw new ApiError("NOT_FOUND", `${route} is not available`);
      res.sendFile(full, (err) => {
        if (err) next(err);
      });
    });
  };
  page("/verify", "verify.html");
  page("/patient", "patient.html");
  page("/regulator", "regulator.html");
  app.use(
    "/assets",
    (_req, res, next) => {
      res.locals["routeTemplate"] = "/assets";
      next();
    },
    express.static(path.join(ctx.webDir, "dist"), { index: false, fallthrough: true }),
  );
}

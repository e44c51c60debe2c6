import { once } from "node:events";
import type { Express, Response } from "express";
import type { AccessPolicy, Operation } from "../../ledger/access.ts";
import type { Principal } from "../../ledger/api-keys.ts";
import { eraseEvent } from "../../ledger/erasure.ts";
import { exportBundles } from "../../ledger/export.ts";
import {
  type ReportRange,
  accessCsv,
  accessReport,
  accountingCsv,
  accountingOfDisclosures,
  defaultAccountingRange,
} from "../../ledger/reports.ts";
import type { ApiContext } from "../app.ts";
import { authorize, principalOf } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { decodeUtf8, parseJson } from "../event-body.ts";
import { ErasureBody, ExportQuery, ReportQuery, SeqParams, parseRequest } from "../schemas.ts";
import { rawBody, requireMediaType } from "./events.ts";

/** Erasure (admin), patient reports (patient: own; auditor: any) and the regulator's export. */
export function registerComplianceRoutes(app: Express, ctx: ApiContext): void {
  const { access } = ctx;
  const guard = (operation: Operation) => [ctx.authenticate, authorize(access, operation)];

  app.post(
    "/v1/events/:seq/erasure",
    ...guard("events:erase"),
    requireMediaType(["application/json"]),
    rawBody(16 * 1024),
    async (req, res) => {
      const principal = principalOf(res);
      const { seq } = parseRequest(SeqParams, { ...req.params });
      const raw: unknown = req.body;
      const body = parseRequest(
        ErasureBody,
        parseJson(Buffer.isBuffer(raw) ? decodeUtf8(raw) : ""),
      );
      const result = await eraseEvent(ctx.ledger, {
        seq,
        legalBasis: body.legalBasis,
        reason: body.reason,
        keyId: principal.id,
      });
      res.status(201).json(result);
    },
  );

  app.get("/v1/reports/disclosures", ...guard("reports:read"), async (req, res) => {
    const { subject, range, format } = reportParams(
      access,
      req.query,
      principalOf(res),
      "six-years",
    );
    const report = await accountingOfDisclosures(ctx.queries, subject, range);
    if (format === "csv") sendCsv(res, "accounting-of-disclosures.csv", accountingCsv(report));
    else res.json(report);
  });

  app.get("/v1/reports/accesses", ...guard("reports:read"), async (req, res) => {
    const principal = principalOf(res);
    const { subject, range, format } = reportParams(access, req.query, principal, "everything");
    const report = await accessReport(ctx.queries, subject, range, {
      staffIdentity: access.staffIdentityFor(principal),
    });
    if (format === "csv") sendCsv(res, "access-report.csv", accessCsv(report));
    else res.json(report);
  });

  app.get("/v1/export", ...guard("export:read"), async (req, res) => {
    const q = parseRequest(ExportQuery, { ...req.query });
    if (q.from !== undefined && q.to !== undefined && q.to <= q.from)
      throw new ApiError("VALIDATION_FAILED", "from must be before to", "from");
    const filter: Parameters<typeof exportBundles>[2] = {};
    if (q.organization !== undefined) filter.organization = q.organization;
    if (q.from !== undefined) filter.fromMs = q.from;
    if (q.to !== undefined) filter.toMs = q.to;
    const bundles = exportBundles(ctx.ledger, ctx.queries, filter, {
      staffIdentity: access.staffIdentityFor(principalOf(res)),
    });
    // The first bundle is built before the headers go out, so an early failure is still a
    // proper error answer; after that a failure can only cut the stream (no trailing newline).
    const first = await bundles.next();
    res.status(200).type("application/x-ndjson");
    res.setHeader("Content-Disposition", 'attachment; filename="veritrail-export.ndjson"');
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    try {
      if (!first.done) await writeLine(res, first.value);
      for await (const bundle of bundles) {
        if (closed) break;
        await writeLine(res, bundle);
      }
    } catch {
      res.destroy();
      return;
    } finally {
      await bundles.return(undefined);
    }
    res.end();
  });
}

/** Writes one NDJSON line and waits for 'drain' when the socket's buffer is full (backpressure). */
async function writeLine(res: Response, value: unknown): Promise<void> {
  if (!res.write(`${JSON.stringify(value)}\n`)) {
    await Promise.race([once(res, "drain"), once(res, "close")]);
  }
}

/**
 * The accounting looks back six years by default (§164.528(a)); the access report covers the
 * whole log by default (EHDS: at least three years; the log keeps everything).
 */
function reportParams(
  access: AccessPolicy,
  query: unknown,
  principal: Principal,
  defaultPeriod: "six-years" | "everything",
): { subject: string; range: ReportRange; format: "json" | "csv" } {
  const q = parseRequest(ReportQuery, { ...(query as Record<string, unknown>) });
  const subject = access.subjectFor(principal, q.subject);
  const now = new Date();
  const range =
    defaultPeriod === "six-years"
      ? defaultAccountingRange(now)
      : { fromMs: 0, toMs: now.getTime() + 1 };
  if (q.from !== undefined) range.fromMs = q.from;
  if (q.to !== undefined) range.toMs = q.to;
  return { subject, range, format: q.format ?? "json" };
}

function sendCsv(res: Response, filename: string, csv: string): void {
  res.type("text/csv; charset=utf-8; header=present");
  res.setHeader("Content-Disposition", `attachment; filename="${filename}"`);
  res.send(csv);
}

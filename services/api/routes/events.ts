import express, { type Express, type RequestHandler } from "express";
import type { StoredEvent } from "../../ledger/ledger.ts";
import type { Principal } from "../../ledger/api-keys.ts";
import { type EventFilter, patientEventView } from "../../ledger/queries.ts";
import type { ApiContext } from "../app.ts";
import { allow, principalOf } from "../auth.ts";
import { IdempotencyConflictError } from "../../ledger/errors.ts";
import { ApiError, idempotencyConflict } from "../errors.ts";
import { EVENT_MEDIA_TYPES, type EventMediaType, decodeEvents, decodeUtf8 } from "../event-body.ts";
import { ListEventsQuery, SeqParams, parseRequest } from "../schemas.ts";

/** The media type of a request without parameters; 415 unless it is one of `accepted`. */
export function requireMediaType<T extends string>(accepted: readonly T[]): RequestHandler {
  return (req, res, next) => {
    const header = req.headers["content-type"] ?? "";
    const [type = "", ...params] = header.split(";").map((p) => p.trim().toLowerCase());
    const charset = params.find((p) => p.startsWith("charset="))?.slice("charset=".length);
    if (!(accepted as readonly string[]).includes(type))
      throw new ApiError(
        "UNSUPPORTED_MEDIA_TYPE",
        `Content-Type must be one of ${accepted.join(", ")}`,
      );
    if (charset !== undefined && charset.replace(/"/g, "") !== "utf-8")
      throw new ApiError("UNSUPPORTED_MEDIA_TYPE", "only UTF-8 bodies are accepted");
    res.locals["mediaType"] = type;
    next();
  };
}

/** The raw body as a Buffer, bounded (413 beyond `limit` bytes). */
export function rawBody(limit: number): RequestHandler {
  return express.raw({ type: () => true, limit });
}

/** What a caller is shown of one stored event; patients get the staff-redacted form. */
export function eventView(stored: StoredEvent, principal: Principal, staffNames: boolean) {
  const event =
    stored.event !== null && principal.role === "patient"
      ? patientEventView(stored.event, { staffNames })
      : stored.event;
  return { seq: stored.seq, entry: stored.entry, event, erased: stored.event === null };
}

/** 403 unless the caller may see `seq` (writers: their organization; patients: their tag). */
async function checkReadScope(ctx: ApiContext, principal: Principal, seq: number): Promise<void> {
  if (principal.role === "auditor") return;
  const scope =
    principal.role === "writer"
      ? { organization: principal.scope ?? "" }
      : { subject: principal.scope ?? "" };
  if (!(await ctx.queries.isInScope(seq, scope)))
    throw new ApiError("FORBIDDEN", `event ${seq} is outside this key's scope`, "seq");
}

export function registerEventRoutes(app: Express, ctx: ApiContext): void {
  const { config } = ctx;
  const guard = (...roles: Principal["role"][]) => [
    ctx.authenticate,
    ctx.rateLimit,
    allow(...roles),
  ];

  app.post(
    "/v1/events",
    ...guard("writer"),
    requireMediaType(EVENT_MEDIA_TYPES),
    rawBody(config.MAX_BODY_BYTES),
    async (req, res) => {
      const principal = principalOf(res);
      const organization = principal.scope ?? "";
      const body: unknown = req.body;
      const text = Buffer.isBuffer(body) ? decodeUtf8(body) : "";
      const decoded = decodeEvents(res.locals["mediaType"] as EventMediaType, text, {
        maxEvents: config.MAX_EVENTS_PER_REQUEST,
        organization,
      });
      decoded.events.forEach((e, i) => {
        if (e.source.organization !== organization)
          throw new ApiError(
            "FORBIDDEN",
            `this key writes only for its own organization; ${decoded.organizationFields[i]} names another`,
            decoded.organizationFields[i],
          );
      });
      const results = await ctx.ledger.ingest(decoded.events).catch((error: unknown) => {
        throw error instanceof IdempotencyConflictError
          ? idempotencyConflict(error, decoded.requestIdFields[error.index] ?? "requestId")
          : error;
      });
      const fresh = results.filter((r) => !r.duplicate).length;
      ctx.metrics.eventsIngested.inc(fresh);
      ctx.metrics.duplicateEvents.inc(results.length - fresh);
      res.status(201).json({
        receipts: results.map((r) => ({ duplicate: r.duplicate, receipt: r.receipt })),
      });
    },
  );

  app.get("/v1/events", ...guard("writer", "auditor", "patient"), async (req, res) => {
    const principal = principalOf(res);
    const q = parseRequest(ListEventsQuery, { ...req.query });
    const filter: EventFilter = {};
    if (q.organization !== undefined) filter.organization = q.organization;
    if (q.from !== undefined) filter.fromMs = q.from;
    if (q.to !== undefined) filter.toMs = q.to;
    if (q.purpose !== undefined) filter.purpose = q.purpose;
    if (q.type !== undefined) filter.type = q.type;
    if (principal.role === "writer") {
      if (q.organization !== undefined && q.organization !== principal.scope)
        throw new ApiError(
          "FORBIDDEN",
          "a writer may only list its own organization's events",
          "organization",
        );
      filter.organization = principal.scope ?? "";
    }
    if (principal.role === "patient") filter.subject = principal.scope ?? "";
    const page = await ctx.queries.listEvents(filter, { cursor: q.cursor, limit: q.limit });
    res.json({
      events: page.events.map((e) => eventView(e, principal, config.PATIENT_VIEW_STAFF_NAMES)),
      nextCursor: page.nextCursor,
    });
  });

  app.get("/v1/events/:seq", ...guard("writer", "auditor", "patient"), async (req, res) => {
    const principal = principalOf(res);
    const { seq } = parseRequest(SeqParams, { ...req.params });
    const stored = await ctx.ledger.getEvent(seq);
    await checkReadScope(ctx, principal, seq);
    res.json(eventView(stored, principal, config.PATIENT_VIEW_STAFF_NAMES));
  });

  app.get("/v1/events/:seq/proof", ...guard("writer", "auditor", "patient"), async (req, res) => {
    const principal = principalOf(res);
    const { seq } = parseRequest(SeqParams, { ...req.params });
    await ctx.ledger.getEvent(seq);
    await checkReadScope(ctx, principal, seq);
    res.json(await ctx.ledger.prove(seq));
  });
}

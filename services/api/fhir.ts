import type { Express, Request } from "express";
import { toFhirAuditEvent } from "../core/fhir-audit-event.ts";
import type { EventFilter } from "../ledger/queries.ts";
import { subjectTagOf } from "../ledger/reports.ts";
import type { ApiContext } from "./app.ts";
import { authorize, principalOf } from "./auth.ts";
import { ApiError, FHIR_JSON, answerErrorsAsFhir } from "./errors.ts";
import { FhirAuditEventSearchQuery, SeqParams, parseRequest } from "./schemas.ts";

/**
 * FHIR R4 search on AuditEvent (`GET /fhir/AuditEvent`): the log's events as BALP AuditEvents
 * in a `searchset` Bundle, for EHRs and audit tools that speak FHIR. Parameters: `patient`
 * (token system|value, or a subjectTag), `date` (ge/gt/le/lt/eq, repeatable), `organization`,
 * `_count`; the `next` link carries the paging cursor. Erased events have no body to render
 * and are left out. Every error under /fhir is answered as a FHIR OperationOutcome (errors.ts).
 */

export { FHIR_JSON };
/** `total` is counted up to this many matches; beyond it the Bundle omits `total` (0..1 in R4). */
export const FHIR_TOTAL_CAP = 10_000;

const DATE_RE =
  /^(eq|ge|gt|le|lt)?(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/;

/** The instant range [start, end) a FHIR date value stands for, by its precision (UTC). */
export function fhirDateRange(value: string): { prefix: string; start: number; end: number } {
  const m = DATE_RE.exec(value);
  const bad = () =>
    new ApiError(
      "VALIDATION_FAILED",
      "date must be [ge|gt|le|lt|eq]YYYY[-MM[-DD[Thh:mm[:ss[.sss]](Z|±hh:mm)]]]",
      "date",
    );
  if (!m) throw bad();
  const [, prefix = "eq", y, mo, d, hh, mi, ss, frac, tz] = m;
  const year = Number(y);
  let start: number;
  let end: number;
  if (hh !== undefined) {
    const iso = `${y}-${mo}-${d}T${hh}:${mi}:${ss ?? "00"}${frac ?? ""}${tz}`;
    start = Date.parse(iso);
    const step = ss === undefined ? 60_000 : frac === undefined ? 1_000 : 1;
    end = start + step;
  } else if (d !== undefined) {
    start = Date.UTC(year, Number(mo) - 1, Number(d));
    end = Date.UTC(year, Number(mo) - 1, Number(d) + 1);
    if (new Date(start).getUTCDate() !== Number(d)) throw bad();
  } else if (mo !== undefined) {
    if (Number(mo) < 1 || Number(mo) > 12) throw bad();
    start = Date.UTC(year, Number(mo) - 1, 1);
    end = Date.UTC(year, Number(mo), 1);
  } else {
    start = Date.UTC(year, 0, 1);
    end = Date.UTC(year + 1, 0, 1);
  }
  if (!Number.isFinite(start) || !Number.isFinite(end)) throw bad();
  return { prefix, start, end };
}

/** Narrows `filter` by FHIR date values (all must hold: they are ANDed). */
export function applyDates(filter: EventFilter, dates: string[]): void {
  for (const value of dates) {
    const { prefix, start, end } = fhirDateRange(value);
    const from = prefix === "ge" || prefix === "eq" ? start : prefix === "gt" ? end : undefined;
    const to = prefix === "le" || prefix === "eq" ? end : prefix === "lt" ? start : undefined;
    if (from !== undefined) filter.fromMs = Math.max(filter.fromMs ?? from, from);
    if (to !== undefined) filter.toMs = Math.min(filter.toMs ?? to, to);
  }
}

/** `system|value`, `|value`, `value` (no system) or a subjectTag → subjectTag. */
function patientTag(ctx: ApiContext, token: string): string {
  if (/^0x[0-9a-f]{64}$/.test(token)) return token;
  const bar = token.indexOf("|");
  const system = bar < 0 ? undefined : token.slice(0, bar);
  const value = bar < 0 ? token : token.slice(bar + 1);
  if (value === "") throw new ApiError("VALIDATION_FAILED", "patient needs a value", "patient");
  return subjectTagOf(ctx.ledger, system ? { system, value } : { value });
}

/**
 * The base of absolute URLs: PUBLIC_URL, or (when it is unset because the port was picked at
 * listen time) the local address the connection came to. Never the Host header: a client could
 * make the service hand out links to any host (and a malformed one made `new URL` throw).
 */
function baseUrl(ctx: ApiContext, req: Request): string {
  if (ctx.config.PUBLIC_URL !== undefined) return ctx.config.PUBLIC_URL;
  const { localAddress, localPort } = req.socket;
  const host = localAddress?.includes(":") ? `[${localAddress}]` : (localAddress ?? "localhost");
  return `http://${host}:${localPort ?? 80}`;
}

/** A search's self link: the route and the search parameters as accepted (already validated). */
function searchUrl(base: string, query: Request["query"]): URL {
  const url = new URL(`${base}/fhir/AuditEvent`);
  for (const [name, value] of Object.entries(query)) {
    for (const v of Array.isArray(value) ? value : [value])
      if (typeof v === "string") url.searchParams.append(name, v);
  }
  return url;
}

export function registerFhirRoutes(app: Express, ctx: ApiContext): void {
  // Like every /v1 answer: audit events are health data, no shared or browser cache may keep them.
  // Every error under /fhir (auth, bad or unknown parameters, unknown routes, rate limits) is
  // answered as an OperationOutcome: FHIR clients do not read Veritrail's native error shape.
  app.use("/fhir", (_req, res, next) => {
    res.setHeader("Cache-Control", "no-store");
    answerErrorsAsFhir(res);
    next();
  });
  registerFhirSearch(app, ctx);
  registerFhirRead(app, ctx);
}

function registerFhirSearch(app: Express, ctx: ApiContext): void {
  app.get(
    "/fhir/AuditEvent",
    ctx.authenticate,
    authorize(ctx.access, "fhir:read"),
    async (req, res) => {
      const principal = principalOf(res);
      const q = parseRequest(FhirAuditEventSearchQuery, { ...req.query });
      const requested: EventFilter = {};
      if (q.patient !== undefined) requested.subject = patientTag(ctx, q.patient);
      if (q.organization !== undefined) requested.organization = q.organization;
      const filter = ctx.access.listFilter(principal, {
        filter: requested,
        subjectField: "patient",
        organizationField: "organization",
      });
      if (q.date !== undefined) applyDates(filter, Array.isArray(q.date) ? q.date : [q.date]);
      if (filter.fromMs !== undefined && filter.toMs !== undefined && filter.toMs <= filter.fromMs)
        throw new ApiError("VALIDATION_FAILED", "the date range is empty", "date");

      const page = await ctx.queries.listEvents(
        filter,
        q._cursor === undefined ? { limit: q._count } : { cursor: q._cursor, limit: q._count },
      );
      const total = await countMatches(ctx, filter);
      const base = baseUrl(ctx, req);
      const self = searchUrl(base, req.query);
      const link = [{ relation: "self", url: self.toString() }];
      if (page.nextCursor !== null) {
        const next = new URL(self);
        next.searchParams.set("_cursor", page.nextCursor);
        link.push({ relation: "next", url: next.toString() });
      }
      const entry = page.events.flatMap((stored) => {
        if (stored.event === null) return [];
        const event = ctx.access.eventFor(principal, stored.event);
        return [
          {
            fullUrl: `${base}/fhir/AuditEvent/${stored.seq}`,
            resource: { id: String(stored.seq), ...toFhirAuditEvent(event) },
            search: { mode: "match" as const },
          },
        ];
      });
      res.type(FHIR_JSON).json({
        resourceType: "Bundle",
        type: "searchset",
        timestamp: new Date().toISOString(),
        ...(total !== null ? { total } : {}),
        link,
        // FHIR JSON has no empty arrays: a page of only erased events carries no entry.
        ...(entry.length > 0 ? { entry } : {}),
      });
    },
  );
}

/** `GET /fhir/AuditEvent/{id}`: one event (id = seq), the target of a search entry's fullUrl. */
function registerFhirRead(app: Express, ctx: ApiContext): void {
  app.get(
    "/fhir/AuditEvent/:seq",
    ctx.authenticate,
    authorize(ctx.access, "fhir:read"),
    async (req, res) => {
      const principal = principalOf(res);
      const { seq } = parseRequest(SeqParams, { ...req.params });
      await ctx.access.checkEvent(principal, seq);
      const stored = await ctx.ledger.getEvent(seq);
      if (stored.event === null)
        throw new ApiError("NOT_FOUND", `event ${seq} was erased; only its entry is kept`, "seq");
      const event = ctx.access.eventFor(principal, stored.event);
      res.type(FHIR_JSON).json({ id: String(seq), ...toFhirAuditEvent(event) });
    },
  );
}

/** Matches of the whole search (not only this page); null beyond FHIR_TOTAL_CAP. */
async function countMatches(ctx: ApiContext, filter: EventFilter): Promise<number | null> {
  let total = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = await ctx.queries.listEvents(
      filter,
      cursor === undefined ? { limit: 1_000 } : { cursor, limit: 1_000 },
    );
    total += page.events.filter((e) => e.event !== null).length;
    if (total > FHIR_TOTAL_CAP) return null;
    if (page.nextCursor === null) return total;
    cursor = page.nextCursor;
  }
}

import { type FieldIssue, type NativeEvent, parseNativeEvent } from "../core/event.ts";
import { fromFhirAuditEvent } from "../core/fhir-audit-event.ts";
import { ApiError } from "./errors.ts";
import { FhirBundleEnvelope, parseRequest, prefixIssues } from "./schemas.ts";

/** Media types POST /v1/events accepts. */
export const EVENT_MEDIA_TYPES = [
  "application/json",
  "application/x-ndjson",
  "application/fhir+json",
] as const;
export type EventMediaType = (typeof EVENT_MEDIA_TYPES)[number];

/** Events decoded from one request body, each with the path of its `source.organization`. */
export interface DecodedEvents {
  events: NativeEvent[];
  /** Where each event's organization came from, for a 403 that names the field. */
  organizationFields: string[];
  /** Where each event's requestId came from, for a 409 IDEMPOTENCY_CONFLICT naming the field. */
  requestIdFields: string[];
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Bytes to text; a body that is not UTF-8 cannot be JSON (RFC 8259 §8.1). */
export function decodeUtf8(body: Buffer): string {
  try {
    return utf8Decoder.decode(body);
  } catch {
    throw new ApiError("MALFORMED_JSON", "request body is not valid UTF-8");
  }
}

/** JSON.parse without echoing the input: its error messages quote the body. */
export function parseJson(text: string, where = "request body"): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError("MALFORMED_JSON", `${where} is not valid JSON`);
  }
}

/** Where the organization and the requestId sit in each input format. */
const NATIVE_FIELDS = { org: "source.organization", requestId: "requestId" };
/** FHIR: the organization extension, and the BALP XrequestId entity. */
const FHIR_FIELDS = { org: "source.extension", requestId: "entity" };

function tooMany(count: number, max: number): ApiError {
  return new ApiError(
    "TOO_MANY_EVENTS",
    `${count} events in one request; at most ${max} are accepted`,
    "$",
  );
}

/** Validates every item (and consumes `items`: each is cleared once validated). */
function collect(
  items: unknown[],
  prefix: (i: number) => string,
  parse: (item: unknown) => ReturnType<typeof parseNativeEvent>,
  orgField: string,
  requestIdField: string,
): DecodedEvents {
  const events: NativeEvent[] = [];
  const organizationFields: string[] = [];
  const requestIdFields: string[] = [];
  const issues: FieldIssue[] = [];
  for (let i = 0; i < items.length; i++) {
    const result = parse(items[i]);
    // The parsed input of an event is garbage once validated (its normalised copy is kept):
    // dropped here, it dies young instead of surviving the collections the rest of a large
    // request's validation triggers.
    items[i] = undefined;
    const p = prefix(i);
    if (result.ok) {
      events.push(result.value);
      organizationFields.push(p === "" ? orgField : `${p}.${orgField}`);
      requestIdFields.push(p === "" ? requestIdField : `${p}.${requestIdField}`);
    } else {
      issues.push(...(p === "" ? result.issues : prefixIssues(p, result.issues)));
    }
  }
  if (issues.length > 0) throw ApiError.fromIssues(issues);
  return { events, organizationFields, requestIdFields };
}

/**
 * Native JSON (one event or an array), NDJSON (one event per line) or FHIR (one AuditEvent or a
 * batch/collection Bundle). Every event is validated before any is accepted: a request is
 * stored whole or not at all. Field paths name the event's position: `[3].agents[0].requestor`,
 * `entry[2].resource.agent`.
 */
export function decodeEvents(
  mediaType: EventMediaType,
  text: string,
  opts: { maxEvents: number; organization: string },
): DecodedEvents {
  if (mediaType === "application/x-ndjson") {
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
    if (lines.length === 0)
      throw new ApiError("VALIDATION_FAILED", "at least one event is required", "$");
    if (lines.length > opts.maxEvents) throw tooMany(lines.length, opts.maxEvents);
    const items = lines.map((l, i) => parseJson(l, `line ${i + 1}`));
    return collect(
      items,
      (i) => `[${i}]`,
      parseNativeEvent,
      NATIVE_FIELDS.org,
      NATIVE_FIELDS.requestId,
    );
  }

  const body = parseJson(text);
  if (mediaType === "application/json") {
    if (Array.isArray(body)) {
      if (body.length === 0)
        throw new ApiError("VALIDATION_FAILED", "at least one event is required", "$");
      if (body.length > opts.maxEvents) throw tooMany(body.length, opts.maxEvents);
      return collect(
        body,
        (i) => `[${i}]`,
        parseNativeEvent,
        NATIVE_FIELDS.org,
        NATIVE_FIELDS.requestId,
      );
    }
    if (body === null || typeof body !== "object")
      throw new ApiError(
        "VALIDATION_FAILED",
        "body must be an event object or an array of events",
        "$",
      );
    return collect([body], () => "", parseNativeEvent, NATIVE_FIELDS.org, NATIVE_FIELDS.requestId);
  }

  // FHIR: the writer's organization fills source.organization when the extension is absent.
  const fromFhir = (r: unknown) => fromFhirAuditEvent(r, { organization: opts.organization });
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw new ApiError(
      "VALIDATION_FAILED",
      "body must be a FHIR AuditEvent or Bundle resource",
      "resourceType",
    );
  if ((body as { resourceType?: unknown }).resourceType === "Bundle") {
    const entries = (body as { entry?: unknown }).entry;
    if (Array.isArray(entries) && entries.length > opts.maxEvents)
      throw tooMany(entries.length, opts.maxEvents);
    const bundle = parseRequest(FhirBundleEnvelope, body);
    if (bundle.entry.length === 0)
      throw new ApiError("VALIDATION_FAILED", "at least one entry is required", "entry");
    return collect(
      bundle.entry.map((e) => e.resource),
      (i) => `entry[${i}].resource`,
      fromFhir,
      FHIR_FIELDS.org,
      FHIR_FIELDS.requestId,
    );
  }
  return collect([body], () => "", fromFhir, FHIR_FIELDS.org, FHIR_FIELDS.requestId);
}

import { type FieldIssue, badCharacter, toFieldIssues } from "../core/event.ts";
import { API_KEY_ROLES } from "../ledger/api-keys.ts";
import { MAX_PAGE_LIMIT } from "../ledger/queries.ts";
import { ApiError } from "./errors.ts";
import { z } from "./openapi-zod.ts";

/**
 * The zod schemas that validate requests. The OpenAPI document is generated from these same
 * objects (openapi.ts), so the documentation cannot drift from what is enforced.
 */

const DECIMAL_INTEGER = /^(0|[1-9][0-9]{0,15})$/;

/** A non-negative decimal integer as a path or query string: no signs, exponents or padding. */
function integerString(name: string, description: string) {
  return z
    .string()
    .regex(DECIMAL_INTEGER, { message: `${name} must be a non-negative decimal integer` })
    .refine((v) => Number.isSafeInteger(Number(v)), {
      message: `${name} must be at most ${Number.MAX_SAFE_INTEGER}`,
    })
    .transform(Number)
    .openapi({ type: "string", pattern: DECIMAL_INTEGER.source, description, example: "42" });
}

const text = (max: number) =>
  z
    .string()
    .min(1, { message: "must not be empty" })
    .max(max, { message: `must be at most ${max} characters` })
    .refine((v) => badCharacter(v) === null, {
      message: "must not contain control characters or unpaired surrogates",
    });

export const SeqParams = z.strictObject({
  seq: integerString("seq", "Global sequence number of the event in this log."),
});

export const BatchNoParams = z.strictObject({
  batchNo: integerString("batchNo", "Batch number, from 0."),
});

export const KeyIdParams = z.strictObject({
  id: z
    .string()
    .regex(/^key_[0-9a-f]{16}$/, { message: "id must look like key_0123456789abcdef" })
    .openapi({ description: "API key id as returned when the key was created." }),
});

const instant = (description: string) =>
  z.iso
    .datetime({ offset: true, message: "must be an RFC 3339 date-time, e.g. 2024-05-01T09:30:00Z" })
    .transform((v) => Date.parse(v))
    .openapi({ type: "string", format: "date-time", description });

const limit = (max: number, dflt: number) =>
  z
    .string()
    .regex(/^[1-9][0-9]{0,6}$/, { message: `limit must be an integer from 1 to ${max}` })
    .transform(Number)
    .refine((n) => n <= max, { message: `limit must be at most ${max}` })
    .optional()
    .transform((n) => n ?? dflt)
    .openapi({
      type: "string",
      pattern: "^[1-9][0-9]{0,6}$",
      description: `Page size, 1..${max} (default ${dflt}).`,
    });

export const ListEventsQuery = z.strictObject({
  organization: text(1024)
    .optional()
    .openapi({ description: "Source organization. A writer may only name its own (the default)." }),
  from: instant("Recorded at or after this instant.").optional(),
  to: instant("Recorded before this instant.").optional(),
  purpose: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: "must be a purpose-of-use code such as TREAT" })
    .optional()
    .openapi({ description: "v3 ActReason code on the event or on any agent (e.g. TREAT)." }),
  type: text(256)
    .optional()
    .openapi({ description: "Event type code or subtype code (e.g. rest, read, 110106)." }),
  cursor: z
    .string()
    .max(512, { message: "cursor is not one this API issued" })
    .optional()
    .openapi({ description: "Opaque cursor from the previous page's nextCursor." }),
  limit: limit(MAX_PAGE_LIMIT, 100),
});

export const ListBatchesQuery = z.strictObject({
  from: integerString("from", "First batch number to list (default 0).").optional(),
  limit: limit(MAX_PAGE_LIMIT, 100),
});

export const NewKeyBody = z
  .discriminatedUnion("role", [
    z.strictObject({ role: z.literal("admin") }),
    z.strictObject({ role: z.literal("auditor") }),
    z.strictObject({
      role: z.literal("writer"),
      organization: text(1024).openapi({
        description: "The organization the writer logs for (source.organization of its events).",
      }),
    }),
    z.strictObject({
      role: z.literal("patient"),
      patient: z
        .strictObject({
          system: text(1024).regex(/^\S+$/, { message: "must be a URI" }).optional(),
          value: text(1024),
        })
        .openapi({
          description:
            "The patient identifier; turned into the keyed subjectTag at once and never stored.",
        }),
    }),
  ])
  .openapi("NewApiKey", { description: `One of the roles ${API_KEY_ROLES.join(", ")}.` });

const subjectTagParam = z
  .string()
  .regex(/^0x[0-9a-f]{64}$/, {
    message: "subject must be a subjectTag: 0x and 64 lowercase hex digits",
  })
  .openapi({
    description: "The patient's subjectTag (auditor; a patient key may only name its own).",
  });

export const ErasureBody = z
  .strictObject({
    legalBasis: text(256).openapi({
      description:
        "The legal basis of the erasure, e.g. GDPR Art. 17(1)(a). Kept in the tombstone and in the erasure event.",
    }),
    reason: text(1024).openapi({
      description:
        "Why (free text). Kept in the tombstone only, never in the logged erasure event.",
    }),
  })
  .openapi("ErasureRequest");

export const ReportQuery = z.strictObject({
  subject: subjectTagParam.optional(),
  from: instant(
    "Start of the period (default: six years before now for the accounting, the start of the log for the access report).",
  ).optional(),
  to: instant("End of the period, exclusive (default: now).").optional(),
  format: z
    .enum(["json", "csv"], { message: 'format must be "json" or "csv"' })
    .optional()
    .openapi({ description: "json (default) or csv (RFC 4180, with a header line)." }),
});

export const ExportQuery = z.strictObject({
  organization: text(1024).optional().openapi({ description: "Source organization." }),
  from: instant("Recorded at or after this instant.").optional(),
  to: instant("Recorded before this instant.").optional(),
});

const fhirDate = z.string().max(64, { message: "date is too long" }).openapi({
  description: "FHIR date search value with prefix ge, gt, le, lt or eq, e.g. ge2024-05-01.",
});

export const FhirAuditEventSearchQuery = z.strictObject({
  patient: text(2048).optional().openapi({
    description: "Patient identifier as a FHIR token system|value, or a subjectTag (0x…).",
  }),
  date: z
    .union([fhirDate, z.array(fhirDate).max(4, { message: "at most 4 date parameters" })])
    .optional(),
  organization: text(1024).optional().openapi({ description: "Source organization." }),
  _count: limit(MAX_PAGE_LIMIT, 50),
  _cursor: z
    .string()
    .max(512, { message: "cursor is not one this API issued" })
    .optional()
    .openapi({ description: "Opaque paging cursor from the Bundle's next link." }),
});

/** FHIR Bundle envelope carrying AuditEvents (type batch or collection). */
export const FhirBundleEnvelope = z.strictObject({
  resourceType: z.literal("Bundle"),
  id: z.string().max(64).optional(),
  meta: z.looseObject({}).optional(),
  timestamp: z.string().max(64).optional(),
  type: z.enum(["batch", "collection"], { message: 'must be "batch" or "collection"' }),
  entry: z.array(
    z.strictObject({
      fullUrl: z.string().max(1024).optional(),
      resource: z.unknown(),
      request: z.strictObject({ method: z.literal("POST"), url: z.string().max(1024) }).optional(),
    }),
  ),
});

/** Parses `input` with `schema` or throws a 400 naming the offending field. */
export function parseRequest<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw ApiError.fromIssues(toFieldIssues(result.error, input));
}

/** Prefixes issue paths with the position of the event in a multi-event body. */
export function prefixIssues(prefix: string, issues: FieldIssue[]): FieldIssue[] {
  return issues.map((i) => {
    const field =
      i.field === "$"
        ? prefix
        : i.field.startsWith("[")
          ? prefix + i.field
          : `${prefix}.${i.field}`;
    const message = i.message.startsWith(`${i.field}:`)
      ? `${field}:${i.message.slice(i.field.length + 1)}`
      : i.message.startsWith(`${i.field} `)
        ? `${field}${i.message.slice(i.field.length)}`
        : i.message;
    return { ...i, field, message };
  });
}

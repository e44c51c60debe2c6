import { z } from "zod";
import {
  AGENT_ROLE_VS,
  AGENT_TYPE_VS,
  BREAK_GLASS_PURPOSE,
  DATA_CATEGORY_VS,
  ENTITY_ROLE_VS,
  ENTITY_TYPE_VS,
  EVENT_SUBTYPE_VS,
  EVENT_TYPE_VS,
  SECURITY_LABEL_VS,
  SOURCE_TYPE_VS,
  SYSTEM,
  checkCode,
  isPurposeOfUse,
} from "./codes.ts";
import type { ValueSet } from "./codes.ts";
import { isHex32 } from "./hex.ts";
import { jcsBytes } from "./jcs.ts";
import { EXPORT_TYPE_CODE, IMPORT_TYPE_CODE } from "./transfer.ts";

/**
 * The native event model (DESIGN.md "Data model"): one access to or transfer of health data,
 * mapping 1:1 onto FHIR R4 AuditEvent (see fhir-audit-event.ts). What `parseNativeEvent`
 * returns is exactly what gets committed (`SHA-256(salt || JCS(event))`), so it is normalised
 * (defaults filled, nothing optional left empty) and parsing it again gives a deep-equal value.
 */

/** Longest string accepted anywhere in an event, in UTF-16 code units. */
export const MAX_STRING_CHARS = 1024;
/** `entities[].query`: a raw search request can be long (BALP keeps it whole). */
export const MAX_QUERY_CHARS = 8 * 1024;
/** Longest array accepted anywhere in an event. */
export const MAX_ARRAY_ITEMS = 64;
/** Upper bound of `JCS(event)` in bytes; keeps one event's commitment and storage bounded. */
export const MAX_EVENT_BYTES = 32 * 1024;
/** `requestId`: a client idempotency key. */
export const MAX_REQUEST_ID_CHARS = 128;

export const ACTIONS = ["C", "R", "U", "D", "E"] as const;
export const OUTCOMES = [0, 4, 8, 12] as const;
export const NETWORK_TYPES = ["1", "2", "3", "4", "5"] as const;

export type Action = (typeof ACTIONS)[number];
export type Outcome = (typeof OUTCOMES)[number];

export interface FieldIssue {
  /** Path of the offending field, e.g. `agents[0].requestor`; `$` is the event as a whole. */
  field: string;
  code: string;
  message: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

// ---------------------------------------------------------------------------------------------
// Building blocks (also used by the FHIR schema so both report the same codes).

/**
 * Control characters are refused because events end up in CSV/terminal reports and log
 * viewers (log injection), and lone surrogates because they have no UTF-8 encoding: JCS bytes
 * of such a string would not be well defined, and the commitment depends on them.
 */
export function badCharacter(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return "must not contain control characters";
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return "must not contain unpaired surrogates";
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return "must not contain unpaired surrogates";
    }
  }
  return null;
}

/** A bounded, non-empty string without control characters. */
export function boundedText(max: number = MAX_STRING_CHARS) {
  return z
    .string()
    .min(1, { message: "must not be empty" })
    .max(max, { message: `must be at most ${max} characters` })
    .superRefine((s, ctx) => {
      const bad = badCharacter(s);
      if (bad !== null)
        ctx.addIssue({ code: "custom", message: bad, params: { code: "bad_character" } });
    });
}

/** A code system URI: no whitespace, bounded. */
export const SystemUriSchema = z
  .string()
  .min(1, { message: "must not be empty" })
  .max(MAX_STRING_CHARS, { message: `must be at most ${MAX_STRING_CHARS} characters` })
  .regex(/^\S+$/, { message: "must be a URI without whitespace" });

/** FHIR `code`: no leading/trailing whitespace, single inner spaces. */
export const CodeSchema = z
  .string()
  .max(256, { message: "must be at most 256 characters" })
  .regex(/^[^\s]+( [^\s]+)*$/, {
    message: "must be a code (non-empty, no surrounding whitespace)",
  });

/** A Coding `{ system, code, display? }` checked against `vs` (see codes.ts). */
export function codingSchema(vs: ValueSet) {
  return z
    .strictObject({ system: SystemUriSchema, code: CodeSchema, display: boundedText().optional() })
    .superRefine((c, ctx) => {
      const check = checkCode(vs, c.system, c.code);
      if (!check.ok) {
        ctx.addIssue({
          code: "custom",
          message: check.message,
          path: [check.code === "unknown_system" ? "system" : "code"],
          params: { code: check.code },
        });
      }
    });
}

export function boundedArray<T extends z.ZodType>(item: T, min = 0) {
  const arr = z.array(item).max(MAX_ARRAY_ITEMS, {
    message: `must have at most ${MAX_ARRAY_ITEMS} items`,
  });
  return min > 0 ? arr.min(min, { message: `must have at least ${min} item(s)` }) : arr;
}

/**
 * Optional lists are either absent or non-empty: `[]` and "absent" would otherwise be two
 * encodings of one fact, and FHIR JSON cannot carry an empty array at all (lossless mapping).
 */
function optionalList<T extends z.ZodType>(item: T) {
  return boundedArray(item, 1).optional();
}

const INSTANT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** True for `YYYY-MM-DDTHH:mm:ss.sssZ` naming a real instant (no Feb 30, no 24:00, no :60). */
export function isInstant(value: unknown): value is string {
  if (typeof value !== "string" || !INSTANT_RE.test(value)) return false;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && new Date(ms).toISOString() === value;
}

export const INSTANT_MESSAGE =
  "must be an RFC 3339 UTC instant with milliseconds, YYYY-MM-DDTHH:mm:ss.sssZ (e.g. 2024-05-01T09:30:00.000Z)";

export const InstantSchema = z.string().refine(isInstant, {
  message: INSTANT_MESSAGE,
  params: { code: "bad_instant" },
});

export const PurposeOfUseCodeSchema = z.string().refine(isPurposeOfUse, {
  message: "unknown purpose of use (expected a v3 ActReason code such as TREAT, ETREAT, PATRQT)",
  params: { code: "unknown_code" },
});

// ---------------------------------------------------------------------------------------------
// The event.

const coding = codingSchema;

export const CodingSchema = z.strictObject({
  system: SystemUriSchema,
  code: CodeSchema,
  display: boundedText().optional(),
});
export type Coding = z.output<typeof CodingSchema>;

export const AgentSchema = z.strictObject({
  /** The person, app or device: an identifier (`system` + `value`) or a reference (`value` alone). */
  who: z.strictObject({
    system: SystemUriSchema.optional(),
    value: boundedText(),
    display: boundedText().optional(),
  }),
  role: optionalList(coding(AGENT_ROLE_VS)),
  type: coding(AGENT_TYPE_VS).optional(),
  /** The organization the agent acts for (GDPR C-579/21: owed to the patient even when the name is not). */
  organization: boundedText(),
  requestor: z.boolean(),
  network: z.strictObject({ address: boundedText(), type: z.enum(NETWORK_TYPES) }).optional(),
  /** Human-readable user name (FHIR `agent.name`); hidden from patients where policy says so. */
  userName: boundedText().optional(),
  altId: boundedText().optional(),
  purposeOfUse: optionalList(PurposeOfUseCodeSchema),
});

export const SourceSchema = z.strictObject({
  /** The institution that logs the event; writers are scoped by it. */
  organization: boundedText(),
  /** The system that observed and reported the event (FHIR `source.observer` reference). */
  observer: boundedText(),
  site: boundedText().optional(),
  type: optionalList(coding(SOURCE_TYPE_VS)),
});

export const PatientSchema = z.strictObject({
  system: SystemUriSchema.optional(),
  value: boundedText(),
});

export const EntitySchema = z
  .strictObject({
    /** Reference to the data (e.g. `DocumentReference/123`). Absent only for a query entity (BALP: what 0..0). */
    what: boundedText().optional(),
    type: coding(ENTITY_TYPE_VS).optional(),
    role: coding(ENTITY_ROLE_VS).optional(),
    /** Data category, institution-defined (e.g. a LOINC document class). */
    category: coding(DATA_CATEGORY_VS).optional(),
    securityLabel: optionalList(coding(SECURITY_LABEL_VS)),
    description: boundedText().optional(),
    /** The raw query as text (FHIR carries it base64-encoded). */
    query: boundedText(MAX_QUERY_CHARS).optional(),
    detail: optionalList(z.strictObject({ type: boundedText(), value: boundedText() })),
  })
  .superRefine((e, ctx) => {
    if (e.what === undefined && e.query === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "an entity needs `what` (a data reference) or `query`",
        path: ["what"],
        params: { code: "required" },
      });
    }
    // These two are carried by `patient` and `requestId`; a second encoding would make the
    // FHIR mapping ambiguous and let one event claim two patients.
    if (e.role?.system === SYSTEM.objectRole && e.role.code === "1") {
      ctx.addIssue({
        code: "custom",
        message: "the patient goes in `patient`, not in an entity with role Patient",
        path: ["role"],
        params: { code: "reserved_code" },
      });
    }
    if (e.type?.system === SYSTEM.balpEntityType && e.type.code === "XrequestId") {
      ctx.addIssue({
        code: "custom",
        message: "the request id goes in `requestId`, not in an XrequestId entity",
        path: ["type"],
        params: { code: "reserved_code" },
      });
    }
  });

export const RecipientSchema = z.strictObject({
  /** HIPAA §164.528: the recipient's name and, if known, address are owed in an accounting. */
  organization: boundedText(),
  name: boundedText().optional(),
  address: boundedText().optional(),
});

export const TransferSchema = z.strictObject({
  reference: boundedText(),
  dataHash: z.string().refine(isHex32, {
    message: "must be 0x-prefixed lowercase hex of 32 bytes",
    params: { code: "bad_hex" },
  }),
});

export const PeriodSchema = z
  .strictObject({ start: InstantSchema.optional(), end: InstantSchema.optional() })
  .superRefine((p, ctx) => {
    if (p.start === undefined && p.end === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "period needs start or end",
        params: { code: "required" },
      });
    } else if (p.start !== undefined && p.end !== undefined && p.start > p.end) {
      ctx.addIssue({
        code: "custom",
        message: "period.start is after period.end",
        path: ["end"],
        params: { code: "bad_period" },
      });
    }
  });

const DISCLOSURE_TYPES = new Set([EXPORT_TYPE_CODE, IMPORT_TYPE_CODE]);

export const NativeEventSchema = z
  .strictObject({
    recorded: InstantSchema,
    /** When the activity happened, if it spans time (FHIR `period`). */
    period: PeriodSchema.optional(),
    action: z.enum(ACTIONS, { message: "must be one of C, R, U, D, E" }),
    type: coding(EVENT_TYPE_VS),
    subtype: boundedArray(coding(EVENT_SUBTYPE_VS)).default([]),
    outcome: z.literal(OUTCOMES, { message: "must be one of 0, 4, 8, 12" }),
    outcomeDesc: boundedText().optional(),
    purposeOfUse: boundedArray(PurposeOfUseCodeSchema).default([]),
    /**
     * Access-control override. ETREAT (emergency treatment) does NOT imply it: emergency staff
     * often hold regular access. BTG ("break the glass") in purposeOfUse does imply it.
     */
    breakGlass: z.boolean().default(false),
    agents: boundedArray(AgentSchema, 1),
    source: SourceSchema,
    /** The data subject. Turned into a keyed subject tag by the ledger; never leaves the service in clear. */
    patient: PatientSchema.optional(),
    entities: boundedArray(EntitySchema).default([]),
    recipient: RecipientSchema.optional(),
    consent: boundedText().optional(),
    requestId: z
      .string()
      .regex(new RegExp(`^[\\x21-\\x7e]{1,${MAX_REQUEST_ID_CHARS}}$`), {
        message: `must be 1..${MAX_REQUEST_ID_CHARS} printable ASCII characters without spaces`,
      })
      .optional(),
    /** Shared by the sender's Export (DCM 110106) and the recipient's Import (DCM 110107). */
    transfer: TransferSchema.optional(),
  })
  .superRefine((e, ctx) => {
    if (e.purposeOfUse.includes(BREAK_GLASS_PURPOSE) && !e.breakGlass) {
      ctx.addIssue({
        code: "custom",
        message: "purposeOfUse BTG (break the glass) requires breakGlass: true",
        path: ["breakGlass"],
        params: { code: "break_glass_mismatch" },
      });
    }
    const seen = new Set<string>();
    e.purposeOfUse.forEach((p, i) => {
      if (seen.has(p)) {
        ctx.addIssue({
          code: "custom",
          message: `duplicate purpose of use ${p}`,
          path: ["purposeOfUse", i],
          params: { code: "duplicate" },
        });
      }
      seen.add(p);
    });
    if (
      e.transfer !== undefined &&
      !(e.type.system === SYSTEM.dcm && DISCLOSURE_TYPES.has(e.type.code))
    ) {
      ctx.addIssue({
        code: "custom",
        message: "transfer is only for Export (DCM 110106) and Import (DCM 110107) events",
        path: ["transfer"],
        params: { code: "transfer_not_allowed" },
      });
    }
    // JCS and JSON.stringify emit the same characters (in another member order), and no UTF-16
    // unit takes more than 3 bytes in UTF-8: an event this short is within the limit without
    // building its JCS form, which used to be a third of the cost of parsing an event.
    if (JSON.stringify(e).length * 3 <= MAX_EVENT_BYTES) return;
    // zod runs this refinement even when a field failed a refinement of its own (e.g. an
    // unpaired surrogate, which JCS refuses); that field is reported already, so skip the size.
    let size = 0;
    try {
      size = jcsBytes(e).length;
    } catch {
      return;
    }
    if (size > MAX_EVENT_BYTES) {
      ctx.addIssue({
        code: "custom",
        message: `event is ${size} bytes in JCS; at most ${MAX_EVENT_BYTES} are accepted`,
        path: [],
        params: { code: "event_too_large" },
      });
    }
  });

export type NativeEvent = z.output<typeof NativeEventSchema>;
/** What a client may send: the defaulted fields may be left out. */
export type NativeEventInput = z.input<typeof NativeEventSchema>;
export type Agent = NativeEvent["agents"][number];
export type Entity = NativeEvent["entities"][number];

// ---------------------------------------------------------------------------------------------
// Issues.

/** `["agents", 0, "requestor"]` → `agents[0].requestor`; the empty path is `$`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out === "" ? "$" : out;
}

function isPresent(input: unknown, path: readonly PropertyKey[]): boolean {
  let cur: unknown = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return false;
    if (!Object.hasOwn(cur, seg)) return false;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur !== undefined;
}

/** Turns zod issues into field issues; `input` is consulted to tell "missing" from "wrong type". */
export function toFieldIssues(error: z.ZodError, input: unknown): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const field = formatPath([...issue.path, key]);
        out.push({ field, code: "unknown_field", message: `${field}: unknown field` });
      }
      continue;
    }
    const field = formatPath(issue.path);
    const missingValue =
      issue.code === "invalid_type" ||
      issue.code === "invalid_value" ||
      issue.code === "invalid_union";
    if (missingValue && !isPresent(input, issue.path)) {
      out.push({ field, code: "required", message: `${field} is required` });
      continue;
    }
    let code: string = issue.code;
    if (issue.code === "custom") {
      const custom = issue.params?.["code"];
      code = typeof custom === "string" ? custom : "invalid";
    } else if (issue.code === "too_big") {
      code = issue.origin === "array" ? "too_many_items" : "too_long";
    } else if (issue.code === "too_small") {
      code = issue.origin === "array" ? "too_few_items" : "too_short";
    } else if (issue.code === "invalid_format") {
      code = "bad_format";
    } else if (issue.code === "invalid_value") {
      code = "bad_value";
    }
    out.push({ field, code, message: `${field}: ${issue.message}` });
  }
  return out;
}

/**
 * Validates and normalises a native event. Never throws for bad input; every problem comes
 * back as a field issue the API can return as a 400.
 */
export function parseNativeEvent(input: unknown): ParseResult<NativeEvent> {
  const result = NativeEventSchema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: toFieldIssues(result.error, input) };
}

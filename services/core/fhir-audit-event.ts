import { z } from "zod";
import {
  AGENT_ROLE_VS,
  AGENT_TYPE_VS,
  AUDIT_ENTITY_TYPE_CODES,
  BALP_ENTITY_TYPE_CODES,
  BREAK_GLASS_PURPOSE,
  DATA_CATEGORY_VS,
  ENTITY_ROLE_VS,
  ENTITY_TYPE_VS,
  EVENT_SUBTYPE_VS,
  EVENT_TYPE_VS,
  OBJECT_ROLE_CODES,
  PURPOSE_OF_USE_CODES,
  SECURITY_LABEL_VS,
  SOURCE_TYPE_VS,
  SYSTEM,
  displayOf,
} from "./codes.ts";
import {
  ACTIONS,
  MAX_ARRAY_ITEMS,
  MAX_QUERY_CHARS,
  NETWORK_TYPES,
  PurposeOfUseCodeSchema,
  SystemUriSchema,
  boundedArray,
  boundedText,
  codingSchema,
  parseNativeEvent,
  toFieldIssues,
} from "./event.ts";
import type { Coding, Entity, FieldIssue, NativeEvent, ParseResult } from "./event.ts";
import type { AgentView, EventView } from "./disclosure.ts";
import { utf8 } from "./hex.ts";
import { EXPORT_TYPE_CODE, IMPORT_TYPE_CODE } from "./transfer.ts";

/**
 * FHIR R4 AuditEvent ↔ native event, following the IHE Basic Audit Log Patterns (BALP).
 *
 * The mapping is 1:1 and lossless: `fromFhirAuditEvent(toFhirAuditEvent(e))` deep-equals `e`.
 * Standard elements are used wherever R4/BALP has one:
 *
 * | native                   | FHIR R4 AuditEvent                                                   |
 * |--------------------------|----------------------------------------------------------------------|
 * | recorded, period         | recorded, period (UTC instants with milliseconds)                    |
 * | action, type, subtype    | action, type, subtype                                                |
 * | outcome (number)         | outcome (code "0" / "4" / "8" / "12")                                |
 * | purposeOfUse (codes)     | purposeOfEvent (CodeableConcept, v3-ActReason)                       |
 * | agents[]                 | agent[] (type/role as single-coding CodeableConcepts, name = userName)|
 * | agents[].who             | agent.who: identifier {system,value} when `system` is set, otherwise |
 * |                          | a literal reference {reference: value}; display kept                 |
 * | source.observer, site    | source.observer {reference}, source.site, source.type                |
 * | patient                  | entity with type audit-entity-type#1, role object-role#1 (BALP)       |
 * | entities[]               | entity[] (query base64-encoded as in BALP; detail → valueString)     |
 * | requestId                | entity BALP BasicAuditEntityType#XrequestId, what.identifier.value   |
 *
 * R4 has no element for the rest, so they travel in Veritrail extensions
 * (`https://veritrail.dev/fhir/StructureDefinition/<name>`):
 *
 * - `organization` (valueString) on `source` — the logging institution — and on an `agent`
 *   whose organization differs from the source's (absent ⇒ same as the source);
 * - `data-category` (valueCoding) on an `entity`;
 * - `break-glass` (valueBoolean true) on the resource, only when breakGlass is true and
 *   purposeOfEvent does not already say BTG (BTG implies break-glass);
 * - `consent` (valueReference {reference}), `recipient` (complex: organization, name,
 *   address) and `transfer` (complex: reference, dataHash) on the resource.
 *
 * Not kept: `id` (server-assigned, not part of the event), `meta.profile` (recomputed by
 * `balpProfileOf`; a claimed BALP profile must match, other profiles are ignored), and the
 * display text of codings Veritrail synthesises (patient/transaction entity codes and
 * purposeOfEvent), which `toFhirAuditEvent` fills from codes.ts.
 */

export const VERITRAIL_EXTENSION_BASE = "https://veritrail.dev/fhir/StructureDefinition/";
export const EXT = {
  organization: `${VERITRAIL_EXTENSION_BASE}organization`,
  dataCategory: `${VERITRAIL_EXTENSION_BASE}data-category`,
  breakGlass: `${VERITRAIL_EXTENSION_BASE}break-glass`,
  consent: `${VERITRAIL_EXTENSION_BASE}consent`,
  recipient: `${VERITRAIL_EXTENSION_BASE}recipient`,
  transfer: `${VERITRAIL_EXTENSION_BASE}transfer`,
} as const;

export const BALP_PROFILE_BASE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/";
export const BALP_PROFILES = {
  Create: `${BALP_PROFILE_BASE}IHE.BasicAudit.Create`,
  PatientCreate: `${BALP_PROFILE_BASE}IHE.BasicAudit.PatientCreate`,
  Read: `${BALP_PROFILE_BASE}IHE.BasicAudit.Read`,
  PatientRead: `${BALP_PROFILE_BASE}IHE.BasicAudit.PatientRead`,
  Update: `${BALP_PROFILE_BASE}IHE.BasicAudit.Update`,
  PatientUpdate: `${BALP_PROFILE_BASE}IHE.BasicAudit.PatientUpdate`,
  Delete: `${BALP_PROFILE_BASE}IHE.BasicAudit.Delete`,
  PatientDelete: `${BALP_PROFILE_BASE}IHE.BasicAudit.PatientDelete`,
  Query: `${BALP_PROFILE_BASE}IHE.BasicAudit.Query`,
  PatientQuery: `${BALP_PROFILE_BASE}IHE.BasicAudit.PatientQuery`,
  PrivacyDisclosureSource: `${BALP_PROFILE_BASE}IHE.BasicAudit.PrivacyDisclosure.Source`,
  PrivacyDisclosureRecipient: `${BALP_PROFILE_BASE}IHE.BasicAudit.PrivacyDisclosure.Recipient`,
} as const;

// ---------------------------------------------------------------------------------------------
// Instants. FHIR `instant` allows any offset and any number of fraction digits; we accept any
// that names a whole millisecond and normalise it to the native UTC form.

const FHIR_INSTANT_RE =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** A FHIR instant → `YYYY-MM-DDTHH:mm:ss.sssZ`, or null when it is not one or is finer than 1 ms. */
export function normalizeFhirInstant(value: string): string | null {
  const m = FHIR_INSTANT_RE.exec(value);
  if (m === null) return null;
  const [, y, mo, d, h, mi, s, frac = "", offset = "Z"] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return null;
  if (!/^0*$/.test(frac.slice(3))) return null;
  if (offset !== "Z") {
    const oh = Number(offset.slice(1, 3));
    const om = Number(offset.slice(4, 6));
    if (oh > 14 || om > 59) return null;
  }
  const ms = frac.slice(0, 3).padEnd(3, "0");
  const t = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}${offset}`);
  if (!Number.isFinite(t)) return null;
  const out = new Date(t).toISOString();
  return /^\d{4}-/.test(out) ? out : null;
}

const FhirInstantSchema = z.string().refine((s) => normalizeFhirInstant(s) !== null, {
  message:
    "must be a FHIR instant with a time zone and at most millisecond precision (e.g. 2024-05-01T09:30:00.000Z)",
  params: { code: "bad_instant" },
});

// ---------------------------------------------------------------------------------------------
// Base64 for entity.query (BALP keeps the raw request base64-encoded). core/ has no Buffer.

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function base64Encode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i]!;
    const b1 = bytes[i + 1];
    const b2 = bytes[i + 2];
    out += B64[b0 >> 2]! + B64[((b0 & 3) << 4) | ((b1 ?? 0) >> 4)]!;
    out += b1 === undefined ? "=" : B64[((b1 & 15) << 2) | ((b2 ?? 0) >> 6)]!;
    out += b2 === undefined ? "=" : B64[b2 & 63]!;
  }
  return out;
}

function base64Decode(text: string): Uint8Array | null {
  if (!B64_RE.test(text)) return null;
  const clean = text.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of clean) {
    acc = (acc << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes base64 UTF-8 text; null unless the encoding is canonical (so re-encoding is exact). */
export function decodeBase64Text(text: string): string | null {
  const bytes = base64Decode(text);
  if (bytes === null) return null;
  let decoded: string;
  try {
    decoded = strictUtf8.decode(bytes);
  } catch {
    return null;
  }
  return base64Encode(utf8(decoded)) === text ? decoded : null;
}

export function encodeBase64Text(text: string): string {
  return base64Encode(utf8(text));
}

// ---------------------------------------------------------------------------------------------
// The accepted R4 subset.

const text = boundedText;

export const FhirReferenceSchema = z.strictObject({
  reference: text().optional(),
  identifier: z.strictObject({ system: SystemUriSchema.optional(), value: text() }).optional(),
  display: text().optional(),
});
export type FhirReference = z.output<typeof FhirReferenceSchema>;

const FhirCodingSchema = z.strictObject({
  system: SystemUriSchema,
  code: z.string(),
  display: text().optional(),
});
export type FhirCoding = z.output<typeof FhirCodingSchema>;

function codeableConcept<T extends z.ZodType>(coding: T) {
  return z.strictObject({
    coding: z.array(coding).length(1, {
      message: "Veritrail accepts exactly one coding per CodeableConcept",
    }),
  });
}

const PurposeConceptSchema = codeableConcept(
  z.strictObject({
    system: z.literal(SYSTEM.actReason, {
      message: `purpose of use must use ${SYSTEM.actReason}`,
    }),
    code: PurposeOfUseCodeSchema,
    display: text().optional(),
  }),
);

const SubExtensionSchema = z.strictObject({ url: SystemUriSchema, valueString: z.string() });

export const FhirExtensionSchema = z.strictObject({
  url: SystemUriSchema,
  valueString: z.string().optional(),
  valueBoolean: z.boolean().optional(),
  valueCoding: FhirCodingSchema.optional(),
  valueReference: FhirReferenceSchema.optional(),
  extension: boundedArray(SubExtensionSchema, 1).optional(),
});
export type FhirExtension = z.output<typeof FhirExtensionSchema>;

const extensions = () => boundedArray(FhirExtensionSchema, 1).optional();

export const FhirAgentSchema = z.strictObject({
  extension: extensions(),
  type: codeableConcept(codingSchema(AGENT_TYPE_VS)).optional(),
  role: boundedArray(codeableConcept(codingSchema(AGENT_ROLE_VS)), 1).optional(),
  who: FhirReferenceSchema,
  altId: text().optional(),
  name: text().optional(),
  requestor: z.boolean(),
  network: z.strictObject({ address: text(), type: z.enum(NETWORK_TYPES) }).optional(),
  purposeOfUse: boundedArray(PurposeConceptSchema, 1).optional(),
});

export const FhirEntitySchema = z.strictObject({
  extension: extensions(),
  what: FhirReferenceSchema.optional(),
  type: codingSchema(ENTITY_TYPE_VS).optional(),
  role: codingSchema(ENTITY_ROLE_VS).optional(),
  securityLabel: boundedArray(codingSchema(SECURITY_LABEL_VS), 1).optional(),
  description: text().optional(),
  query: z
    .string()
    .max(Math.ceil((MAX_QUERY_CHARS * 4 * 4) / 3) + 4)
    .refine((q) => decodeBase64Text(q) !== null, {
      message: "must be canonical base64 of UTF-8 text",
      params: { code: "bad_base64" },
    })
    .optional(),
  detail: boundedArray(z.strictObject({ type: text(), valueString: text() }), 1).optional(),
});

export const FhirAuditEventSchema = z.strictObject({
  resourceType: z.literal("AuditEvent", { message: 'must be "AuditEvent"' }),
  id: z
    .string()
    .regex(/^[A-Za-z0-9\-.]{1,64}$/, { message: "must be a FHIR id" })
    .optional(),
  meta: z.strictObject({ profile: boundedArray(SystemUriSchema, 1).optional() }).optional(),
  extension: extensions(),
  type: codingSchema(EVENT_TYPE_VS),
  subtype: boundedArray(codingSchema(EVENT_SUBTYPE_VS), 1).optional(),
  // R4 makes action and outcome optional; the ledger needs both (DESIGN.md "Data model").
  action: z.enum(ACTIONS, { message: "must be one of C, R, U, D, E" }),
  period: z
    .strictObject({ start: FhirInstantSchema.optional(), end: FhirInstantSchema.optional() })
    .optional(),
  recorded: FhirInstantSchema,
  outcome: z.enum(["0", "4", "8", "12"], { message: 'must be one of "0", "4", "8", "12"' }),
  outcomeDesc: text().optional(),
  purposeOfEvent: boundedArray(PurposeConceptSchema, 1).optional(),
  agent: boundedArray(FhirAgentSchema, 1),
  source: z.strictObject({
    extension: extensions(),
    site: text().optional(),
    observer: FhirReferenceSchema,
    type: boundedArray(codingSchema(SOURCE_TYPE_VS), 1).optional(),
  }),
  // patient + requestId entities travel here too, hence two more than the native bound.
  entity: z
    .array(FhirEntitySchema)
    .min(1)
    .max(MAX_ARRAY_ITEMS + 2, { message: `must have at most ${MAX_ARRAY_ITEMS + 2} items` })
    .optional(),
});

/** The R4 AuditEvent subset Veritrail accepts and emits. */
export interface FhirAuditEvent {
  resourceType: "AuditEvent";
  id?: string;
  meta?: { profile?: string[] };
  extension?: FhirExtension[];
  type: FhirCoding;
  subtype?: FhirCoding[];
  action: (typeof ACTIONS)[number];
  period?: { start?: string; end?: string };
  recorded: string;
  outcome: "0" | "4" | "8" | "12";
  outcomeDesc?: string;
  purposeOfEvent?: FhirCodeableConcept[];
  agent: FhirAgent[];
  source: {
    extension?: FhirExtension[];
    site?: string;
    observer: FhirReference;
    type?: FhirCoding[];
  };
  entity?: FhirEntity[];
}
export interface FhirCodeableConcept {
  coding: FhirCoding[];
}
export interface FhirAgent {
  extension?: FhirExtension[];
  type?: FhirCodeableConcept;
  role?: FhirCodeableConcept[];
  who?: FhirReference;
  altId?: string;
  name?: string;
  requestor: boolean;
  network?: { address: string; type: (typeof NETWORK_TYPES)[number] };
  purposeOfUse?: FhirCodeableConcept[];
}
export interface FhirEntity {
  extension?: FhirExtension[];
  what?: FhirReference;
  type?: FhirCoding;
  role?: FhirCoding;
  securityLabel?: FhirCoding[];
  description?: string;
  query?: string;
  detail?: Array<{ type: string; valueString: string }>;
}

// ---------------------------------------------------------------------------------------------
// BALP profile of an event.

function isCode(c: Coding | undefined, system: string, code: string): boolean {
  return c !== undefined && c.system === system && c.code === code;
}

const REST_DATA_ROLES = new Set(["3", "4", "20"]);

/**
 * The BALP profile an event conforms to, by its discriminators (type, subtype, action,
 * outcome, agents 2..*, the data/query entity, and the patient for Patient* and
 * PrivacyDisclosure); null when none fits (e.g. a failed access: BALP records failures
 * differently).
 */
export function balpProfileOf(e: EventView): string | null {
  const hasSubtype = (system: string, ...codes: string[]) =>
    e.subtype.some((s) => s.system === system && codes.includes(s.code));
  if (e.agents.length < 2) return null;

  if (
    isCode(e.type, SYSTEM.dcm, EXPORT_TYPE_CODE) ||
    isCode(e.type, SYSTEM.dcm, IMPORT_TYPE_CODE)
  ) {
    const exportAtSource = e.type.code === EXPORT_TYPE_CODE;
    if (e.action !== (exportAtSource ? "R" : "C")) return null;
    if (!hasSubtype(SYSTEM.iso21089Lifecycle, "disclose")) return null;
    if (e.patient === undefined || e.entities.length === 0) return null;
    return exportAtSource
      ? BALP_PROFILES.PrivacyDisclosureSource
      : BALP_PROFILES.PrivacyDisclosureRecipient;
  }

  if (!isCode(e.type, SYSTEM.auditEventType, "rest") || e.outcome !== 0) return null;
  const R = SYSTEM.restfulInteraction;
  let base: "Create" | "Read" | "Update" | "Delete" | "Query" | null = null;
  if (e.action === "C" && hasSubtype(R, "create")) base = "Create";
  else if (e.action === "R" && hasSubtype(R, "read", "vread")) base = "Read";
  else if (e.action === "U" && hasSubtype(R, "update", "patch")) base = "Update";
  else if (e.action === "D" && hasSubtype(R, "delete")) base = "Delete";
  else if (e.action === "E" && hasSubtype(R, "search", "search-type", "search-system"))
    base = "Query";
  if (base === null) return null;

  const ok =
    base === "Query"
      ? e.entities.some((en) => en.query !== undefined && en.what === undefined)
      : e.entities.some(
          (en) =>
            en.what !== undefined &&
            isCode(en.type, SYSTEM.auditEntityType, "2") &&
            en.role?.system === SYSTEM.objectRole &&
            REST_DATA_ROLES.has(en.role.code),
        );
  if (!ok) return null;
  return e.patient !== undefined ? BALP_PROFILES[`Patient${base}`] : BALP_PROFILES[base];
}

// ---------------------------------------------------------------------------------------------
// native → FHIR

function withDisplay(system: string, code: string, table: Readonly<Record<string, string>>) {
  const display = displayOf(table, code);
  return display === undefined ? { system, code } : { system, code, display };
}

const PATIENT_ENTITY_TYPE = () => withDisplay(SYSTEM.auditEntityType, "1", AUDIT_ENTITY_TYPE_CODES);
const PATIENT_ENTITY_ROLE = () => withDisplay(SYSTEM.objectRole, "1", OBJECT_ROLE_CODES);
const REQUEST_ID_TYPE = () =>
  withDisplay(SYSTEM.balpEntityType, "XrequestId", BALP_ENTITY_TYPE_CODES);

function purposeConcept(code: string): FhirCodeableConcept {
  return { coding: [withDisplay(SYSTEM.actReason, code, PURPOSE_OF_USE_CODES)] };
}

function coding(c: Coding): FhirCoding {
  return { ...c };
}

/** `{system, value}` → identifier; `{value}` alone → literal reference. */
function identityToReference(id: {
  system?: string;
  value: string;
  display?: string;
}): FhirReference {
  const ref: FhirReference =
    id.system !== undefined
      ? { identifier: { system: id.system, value: id.value } }
      : { reference: id.value };
  if (id.display !== undefined) ref.display = id.display;
  return ref;
}

function orgExtension(organization: string): FhirExtension {
  return { url: EXT.organization, valueString: organization };
}

function agentToFhir(a: AgentView, sourceOrg: string): FhirAgent {
  return {
    ...(a.organization !== sourceOrg ? { extension: [orgExtension(a.organization)] } : {}),
    ...(a.type !== undefined ? { type: { coding: [coding(a.type)] } } : {}),
    ...(a.role !== undefined ? { role: a.role.map((r) => ({ coding: [coding(r)] })) } : {}),
    // R4 agent.who is 0..1: an agent shown without staff identity has none.
    ...(a.who !== undefined ? { who: identityToReference(a.who) } : {}),
    ...(a.altId !== undefined ? { altId: a.altId } : {}),
    ...(a.userName !== undefined ? { name: a.userName } : {}),
    requestor: a.requestor,
    ...(a.network !== undefined ? { network: { ...a.network } } : {}),
    ...(a.purposeOfUse !== undefined ? { purposeOfUse: a.purposeOfUse.map(purposeConcept) } : {}),
  };
}

function entityToFhir(en: Entity): FhirEntity {
  const out: FhirEntity = {};
  // Insertion order = R4 element order.
  if (en.category !== undefined) {
    out.extension = [{ url: EXT.dataCategory, valueCoding: coding(en.category) }];
  }
  if (en.what !== undefined) out.what = { reference: en.what };
  if (en.type !== undefined) out.type = coding(en.type);
  if (en.role !== undefined) out.role = coding(en.role);
  if (en.securityLabel !== undefined) out.securityLabel = en.securityLabel.map(coding);
  if (en.description !== undefined) out.description = en.description;
  if (en.query !== undefined) out.query = encodeBase64Text(en.query);
  if (en.detail !== undefined) {
    out.detail = en.detail.map((d) => ({ type: d.type, valueString: d.value }));
  }
  return out;
}

/**
 * Maps a (parsed) native event to a BALP-conformant FHIR R4 AuditEvent; an event whose agents'
 * staff identity was left out (services/ledger/access.ts) maps to agents without it.
 */
export function toFhirAuditEvent(e: EventView): FhirAuditEvent {
  const ext: FhirExtension[] = [];
  if (e.breakGlass && !e.purposeOfUse.includes(BREAK_GLASS_PURPOSE)) {
    ext.push({ url: EXT.breakGlass, valueBoolean: true });
  }
  if (e.consent !== undefined) {
    ext.push({ url: EXT.consent, valueReference: { reference: e.consent } });
  }
  if (e.recipient !== undefined) {
    const parts = [{ url: "organization", valueString: e.recipient.organization }];
    if (e.recipient.name !== undefined) parts.push({ url: "name", valueString: e.recipient.name });
    if (e.recipient.address !== undefined) {
      parts.push({ url: "address", valueString: e.recipient.address });
    }
    ext.push({ url: EXT.recipient, extension: parts });
  }
  if (e.transfer !== undefined) {
    ext.push({
      url: EXT.transfer,
      extension: [
        { url: "reference", valueString: e.transfer.reference },
        { url: "dataHash", valueString: e.transfer.dataHash },
      ],
    });
  }

  const source: FhirAuditEvent["source"] = {
    extension: [orgExtension(e.source.organization)],
    observer: { reference: e.source.observer },
  };
  if (e.source.site !== undefined) source.site = e.source.site;
  if (e.source.type !== undefined) source.type = e.source.type.map(coding);

  const entity: FhirEntity[] = [];
  if (e.patient !== undefined) {
    entity.push({
      what: identityToReference(e.patient),
      type: PATIENT_ENTITY_TYPE(),
      role: PATIENT_ENTITY_ROLE(),
    });
  }
  entity.push(...e.entities.map(entityToFhir));
  if (e.requestId !== undefined) {
    entity.push({ what: { identifier: { value: e.requestId } }, type: REQUEST_ID_TYPE() });
  }

  // Element order follows the R4 AuditEvent definition so emitted resources read naturally.
  const profile = balpProfileOf(e);
  return {
    resourceType: "AuditEvent",
    ...(profile !== null ? { meta: { profile: [profile] } } : {}),
    ...(ext.length > 0 ? { extension: ext } : {}),
    type: coding(e.type),
    ...(e.subtype.length > 0 ? { subtype: e.subtype.map(coding) } : {}),
    action: e.action,
    ...(e.period !== undefined ? { period: { ...e.period } } : {}),
    recorded: e.recorded,
    outcome: String(e.outcome) as FhirAuditEvent["outcome"],
    ...(e.outcomeDesc !== undefined ? { outcomeDesc: e.outcomeDesc } : {}),
    ...(e.purposeOfUse.length > 0 ? { purposeOfEvent: e.purposeOfUse.map(purposeConcept) } : {}),
    agent: e.agents.map((a) => agentToFhir(a, e.source.organization)),
    source,
    ...(entity.length > 0 ? { entity } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// FHIR → native

export interface FromFhirOptions {
  /**
   * The logging institution, used when `source` carries no Veritrail organization extension
   * (the API passes the writer's scope, so plain BALP events need no extension).
   */
  organization?: string;
}

type Draft = Record<string, unknown>;

class IssueList {
  readonly items: FieldIssue[] = [];
  add(field: string, code: string, message: string): void {
    this.items.push({ field, code, message: `${field}: ${message}` });
  }
}

function referenceToIdentity(
  ref: FhirReference,
  field: string,
  issues: IssueList,
  allowDisplay: boolean,
): { system?: string; value: string; display?: string } | undefined {
  if (!allowDisplay && ref.display !== undefined) {
    issues.add(`${field}.display`, "unsupported", "display is not kept here; omit it");
    return undefined;
  }
  if (ref.reference !== undefined && ref.identifier !== undefined) {
    issues.add(field, "ambiguous_reference", "give either reference or identifier, not both");
    return undefined;
  }
  let out: { system?: string; value: string; display?: string };
  if (ref.identifier !== undefined) {
    if (ref.identifier.system === undefined) {
      issues.add(
        `${field}.identifier.system`,
        "required",
        "an identifier needs a system (use reference for a literal reference)",
      );
      return undefined;
    }
    out = { system: ref.identifier.system, value: ref.identifier.value };
  } else if (ref.reference !== undefined) {
    out = { value: ref.reference };
  } else {
    issues.add(field, "required", "needs reference or identifier");
    return undefined;
  }
  if (ref.display !== undefined) out.display = ref.display;
  return out;
}

function referenceToString(
  ref: FhirReference,
  field: string,
  issues: IssueList,
): string | undefined {
  if (ref.reference === undefined || ref.identifier !== undefined || ref.display !== undefined) {
    issues.add(field, "unsupported_reference", "must be a literal reference ({ reference }) only");
    return undefined;
  }
  return ref.reference;
}

/** Pulls Veritrail extensions out of an `extension` list; unknown or repeated URLs are issues. */
function takeExtensions(
  list: FhirExtension[] | undefined,
  field: string,
  allowed: readonly string[],
  issues: IssueList,
): Map<string, { ext: FhirExtension; field: string }> {
  const out = new Map<string, { ext: FhirExtension; field: string }>();
  (list ?? []).forEach((ext, i) => {
    const f = `${field}[${i}]`;
    if (!allowed.includes(ext.url)) {
      issues.add(`${f}.url`, "unknown_extension", `extension ${ext.url} is not accepted here`);
    } else if (out.has(ext.url)) {
      issues.add(`${f}.url`, "duplicate", `extension ${ext.url} appears twice`);
    } else {
      out.set(ext.url, { ext, field: f });
    }
  });
  return out;
}

/** Checks an extension carries exactly the one value[x] it should. */
function valueOf<K extends "valueString" | "valueBoolean" | "valueCoding" | "valueReference">(
  found: { ext: FhirExtension; field: string },
  key: K,
  issues: IssueList,
): FhirExtension[K] | undefined {
  const { ext, field } = found;
  const keys = Object.keys(ext).filter((k) => k !== "url");
  if (keys.length !== 1 || keys[0] !== key || ext[key] === undefined) {
    issues.add(field, "bad_extension", `extension ${ext.url} must carry exactly ${key}`);
    return undefined;
  }
  return ext[key];
}

function complexOf(
  found: { ext: FhirExtension; field: string },
  required: readonly string[],
  optional: readonly string[],
  issues: IssueList,
): Record<string, string> | undefined {
  const { ext, field } = found;
  const keys = Object.keys(ext).filter((k) => k !== "url");
  if (keys.length !== 1 || ext.extension === undefined) {
    issues.add(field, "bad_extension", `extension ${ext.url} must carry nested extensions only`);
    return undefined;
  }
  const out: Record<string, string> = {};
  let ok = true;
  ext.extension.forEach((sub, i) => {
    if (![...required, ...optional].includes(sub.url)) {
      issues.add(`${field}.extension[${i}].url`, "unknown_extension", `unknown part ${sub.url}`);
      ok = false;
    } else if (Object.hasOwn(out, sub.url)) {
      issues.add(`${field}.extension[${i}].url`, "duplicate", `part ${sub.url} appears twice`);
      ok = false;
    } else {
      out[sub.url] = sub.valueString;
    }
  });
  for (const r of required) {
    if (!Object.hasOwn(out, r)) {
      issues.add(`${field}.extension`, "required", `part ${r} is required`);
      ok = false;
    }
  }
  return ok ? out : undefined;
}

const onlyCode = (cc: FhirCodeableConcept) => cc.coding[0]!;

const DataCategorySchema = codingSchema(DATA_CATEGORY_VS);

function agentFromFhir(a: FhirAgent, field: string, sourceOrg: unknown, issues: IssueList): Draft {
  const ext = takeExtensions(a.extension, `${field}.extension`, [EXT.organization], issues);
  const orgExt = ext.get(EXT.organization);
  const organization = orgExt ? valueOf(orgExt, "valueString", issues) : sourceOrg;
  const out: Draft = {
    who: a.who === undefined ? undefined : referenceToIdentity(a.who, `${field}.who`, issues, true),
    organization,
    requestor: a.requestor,
  };
  if (a.role !== undefined) out["role"] = a.role.map(onlyCode);
  if (a.type !== undefined) out["type"] = onlyCode(a.type);
  if (a.network !== undefined) out["network"] = { ...a.network };
  if (a.name !== undefined) out["userName"] = a.name;
  if (a.altId !== undefined) out["altId"] = a.altId;
  if (a.purposeOfUse !== undefined)
    out["purposeOfUse"] = a.purposeOfUse.map((p) => onlyCode(p).code);
  return out;
}

function entityFromFhir(en: FhirEntity, field: string, issues: IssueList): Draft {
  const ext = takeExtensions(en.extension, `${field}.extension`, [EXT.dataCategory], issues);
  const out: Draft = {};
  if (en.what !== undefined) out["what"] = referenceToString(en.what, `${field}.what`, issues);
  if (en.type !== undefined) out["type"] = en.type;
  if (en.role !== undefined) out["role"] = en.role;
  const category = ext.get(EXT.dataCategory);
  if (category !== undefined) {
    const value = valueOf(category, "valueCoding", issues);
    if (value !== undefined) {
      const check = DataCategorySchema.safeParse(value);
      if (check.success) out["category"] = check.data;
      else
        issues.add(`${category.field}.valueCoding`, "bad_coding", check.error.issues[0]!.message);
    }
  }
  if (en.securityLabel !== undefined) out["securityLabel"] = en.securityLabel;
  if (en.description !== undefined) out["description"] = en.description;
  if (en.query !== undefined) out["query"] = decodeBase64Text(en.query);
  if (en.detail !== undefined) {
    out["detail"] = en.detail.map((d) => ({ type: d.type, value: d.valueString }));
  }
  return out;
}

function isPatientEntity(en: FhirEntity): boolean {
  return en.role?.system === SYSTEM.objectRole && en.role.code === "1";
}

function isRequestIdEntity(en: FhirEntity): boolean {
  return en.type?.system === SYSTEM.balpEntityType && en.type.code === "XrequestId";
}

/** Translates a native field path back to the FHIR element it came from. */
function nativeToFhirField(field: string, entityIndex: readonly number[]): string {
  const rules: Array<[RegExp, (m: RegExpExecArray) => string]> = [
    [/^agents\[(\d+)\]\.userName/, (m) => `agent[${m[1]}].name`],
    [/^agents\[(\d+)\]\.organization/, (m) => `agent[${m[1]}].extension`],
    [/^agents/, () => "agent"],
    [/^entities\[(\d+)\]\.category/, (m) => `entity[${entityIndex[Number(m[1])]}].extension`],
    [/^entities\[(\d+)\]/, (m) => `entity[${entityIndex[Number(m[1])]}]`],
    [/^entities/, () => "entity"],
    [/^purposeOfUse/, () => "purposeOfEvent"],
    [/^source\.organization/, () => "source.extension"],
    [/^source\.observer/, () => "source.observer.reference"],
    [/^patient/, () => "entity"],
    [/^requestId/, () => "entity"],
    [/^(breakGlass|consent|recipient|transfer)/, () => "extension"],
  ];
  for (const [re, to] of rules) {
    const m = re.exec(field);
    if (m !== null) return to(m) + field.slice(m[0].length);
  }
  return field;
}

/**
 * Validates a FHIR R4 AuditEvent (BALP) and maps it to a native event. Unknown elements,
 * unknown extensions and codes fail with the FHIR path of the offending element.
 */
export function fromFhirAuditEvent(
  resource: unknown,
  opts: FromFhirOptions = {},
): ParseResult<NativeEvent> {
  const shape = FhirAuditEventSchema.safeParse(resource);
  if (!shape.success) return { ok: false, issues: toFieldIssues(shape.error, resource) };
  const r = shape.data;
  const issues = new IssueList();

  // Resource-level extensions.
  const rootExt = takeExtensions(
    r.extension,
    "extension",
    [EXT.breakGlass, EXT.consent, EXT.recipient, EXT.transfer],
    issues,
  );
  const draft: Draft = {
    recorded: normalizeFhirInstant(r.recorded),
    action: r.action,
    type: r.type,
    subtype: r.subtype ?? [],
    outcome: Number(r.outcome),
    purposeOfUse: (r.purposeOfEvent ?? []).map((p) => onlyCode(p).code),
  };
  if (r.period !== undefined) {
    const period: Draft = {};
    if (r.period.start !== undefined) period["start"] = normalizeFhirInstant(r.period.start);
    if (r.period.end !== undefined) period["end"] = normalizeFhirInstant(r.period.end);
    draft["period"] = period;
  }
  if (r.outcomeDesc !== undefined) draft["outcomeDesc"] = r.outcomeDesc;

  const btgInPurpose = (draft["purposeOfUse"] as string[]).includes(BREAK_GLASS_PURPOSE);
  const bg = rootExt.get(EXT.breakGlass);
  let breakGlass = btgInPurpose;
  if (bg !== undefined) {
    const value = valueOf(bg, "valueBoolean", issues);
    if (value === false) {
      issues.add(`${bg.field}.valueBoolean`, "bad_extension", "omit break-glass instead of false");
    } else if (value === true && btgInPurpose) {
      issues.add(bg.field, "redundant_extension", "purposeOfEvent BTG already records break-glass");
    }
    breakGlass = true;
  }
  draft["breakGlass"] = breakGlass;
  const consent = rootExt.get(EXT.consent);
  if (consent !== undefined) {
    const ref = valueOf(consent, "valueReference", issues);
    if (ref !== undefined)
      draft["consent"] = referenceToString(ref, `${consent.field}.valueReference`, issues);
  }
  const recipient = rootExt.get(EXT.recipient);
  if (recipient !== undefined) {
    const parts = complexOf(recipient, ["organization"], ["name", "address"], issues);
    if (parts !== undefined) draft["recipient"] = parts;
  }
  const transfer = rootExt.get(EXT.transfer);
  if (transfer !== undefined) {
    const parts = complexOf(transfer, ["reference", "dataHash"], [], issues);
    if (parts !== undefined) draft["transfer"] = parts;
  }

  // Source.
  const srcExt = takeExtensions(r.source.extension, "source.extension", [EXT.organization], issues);
  const srcOrgExt = srcExt.get(EXT.organization);
  const sourceOrg = srcOrgExt ? valueOf(srcOrgExt, "valueString", issues) : opts.organization;
  if (sourceOrg === undefined && srcOrgExt === undefined) {
    issues.add(
      "source.extension",
      "required",
      `the logging organization is required (extension ${EXT.organization})`,
    );
  }
  const source: Draft = {
    organization: sourceOrg,
    observer: referenceToString(r.source.observer, "source.observer", issues),
  };
  if (r.source.site !== undefined) source["site"] = r.source.site;
  if (r.source.type !== undefined) source["type"] = r.source.type;
  draft["source"] = source;

  draft["agents"] = r.agent.map((a, i) => agentFromFhir(a, `agent[${i}]`, sourceOrg, issues));

  // Entities: split out the patient and the X-Request-Id transaction entity.
  const entities: Draft[] = [];
  const entityIndex: number[] = [];
  let patientSeen = false;
  let requestSeen = false;
  (r.entity ?? []).forEach((en, i) => {
    const field = `entity[${i}]`;
    if (isPatientEntity(en)) {
      if (patientSeen) {
        issues.add(field, "duplicate_patient", "one AuditEvent records one patient (BALP)");
        return;
      }
      patientSeen = true;
      const extra = Object.keys(en).filter((k) => k !== "what" && k !== "type" && k !== "role");
      if (extra.length > 0) {
        issues.add(
          `${field}.${extra[0]}`,
          "unsupported",
          "the patient entity carries only what, type and role",
        );
      } else if (!(en.type?.system === SYSTEM.auditEntityType && en.type.code === "1")) {
        issues.add(
          `${field}.type`,
          "bad_code",
          "the patient entity must have type audit-entity-type#1 (Person)",
        );
      } else if (en.what === undefined) {
        issues.add(`${field}.what`, "required", `${field}.what is required`);
      } else {
        draft["patient"] = referenceToIdentity(en.what, `${field}.what`, issues, false);
      }
      return;
    }
    if (isRequestIdEntity(en)) {
      if (requestSeen) {
        issues.add(field, "duplicate", "only one XrequestId entity is accepted");
        return;
      }
      requestSeen = true;
      const extra = Object.keys(en).filter((k) => k !== "what" && k !== "type");
      const w = en.what;
      if (extra.length > 0) {
        issues.add(
          `${field}.${extra[0]}`,
          "unsupported",
          "the XrequestId entity carries only what and type",
        );
      } else if (
        w === undefined ||
        w.identifier === undefined ||
        w.reference !== undefined ||
        w.display !== undefined ||
        w.identifier.system !== undefined
      ) {
        issues.add(
          `${field}.what`,
          "bad_request_id",
          "must be { identifier: { value } } (BALP X-Request-Id)",
        );
      } else {
        draft["requestId"] = w.identifier.value;
      }
      return;
    }
    entityIndex.push(i);
    entities.push(entityFromFhir(en, field, issues));
  });
  if (entities.length > MAX_ARRAY_ITEMS) {
    issues.add("entity", "too_many_items", `at most ${MAX_ARRAY_ITEMS} data entities`);
  }
  draft["entities"] = entities;

  if (issues.items.length > 0) return { ok: false, issues: issues.items };

  const parsed = parseNativeEvent(draft);
  if (!parsed.ok) {
    return {
      ok: false,
      issues: parsed.issues.map((i) => {
        const field = nativeToFhirField(i.field, entityIndex);
        const message = i.message.startsWith(i.field)
          ? field + i.message.slice(i.field.length)
          : i.message;
        return { ...i, field, message };
      }),
    };
  }

  // A claimed BALP profile must be the one the content conforms to; other profiles are not ours to check.
  const derived = balpProfileOf(parsed.value);
  const claimed = r.meta?.profile ?? [];
  const mismatch: FieldIssue[] = [];
  claimed.forEach((p, i) => {
    if (p.startsWith(BALP_PROFILE_BASE) && p !== derived) {
      const field = `meta.profile[${i}]`;
      mismatch.push({
        field,
        code: "profile_mismatch",
        message: `${field}: the event does not conform to ${p} (it fits ${derived ?? "no BALP profile"})`,
      });
    }
  });
  if (mismatch.length > 0) return { ok: false, issues: mismatch };
  return parsed;
}

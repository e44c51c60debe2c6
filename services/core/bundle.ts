import { z } from "zod";
import { AddressSchema } from "./address.ts";
import type { BatchHeader } from "./batch-header.ts";
import { EntrySchema } from "./entry.ts";
import { isHex32 } from "./hex.ts";
import { ReceiptSchema } from "./receipt.ts";

/**
 * The proof bundle, `veritrail-proof/1` (DESIGN.md "Proof bundle"): the contract with outside
 * verifiers. The field names of DESIGN.md are fixed. Fields a verifier does not know are
 * ignored (extensions: the top level, `batch` and `anchor` are parsed in zod's strip mode); the
 * `entry` and the `receipt` stay strict, because their bytes are hashed and signed.
 *
 * `status` is the ledger's extension saying how far the event had got when the bundle was made
 * (an event is acknowledged before its batch is sealed or anchored). A verifier never trusts it
 * (DESIGN.md): it is not part of the parsed bundle, and the verifier asks the chain instead.
 * `erasure` (DESIGN.md "Erasure in a bundle"): for an erased event, the bundle of the later event
 * that logged the erasure; the verifier parses and checks it as a bundle of its own.
 */
export const BUNDLE_FORMAT = "veritrail-proof/1";

const hex32 = z
  .string()
  .refine((v): boolean => isHex32(v), "must be 0x-prefixed lowercase hex of 32 bytes");
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const BatchHeaderSchema = z.object({
  logId: hex32,
  batchNo: uint,
  firstSeq: uint,
  count: z.number().int().min(1).max(0xffffffff),
  eventsRoot: hex32,
  indexRoot: hex32,
}) satisfies z.ZodType<BatchHeader>;

export const AnchorSchema = z.object({
  chainId: uint,
  /** Lowercase or EIP-55; compared case-insensitively. */
  contract: AddressSchema,
  txHash: hex32,
  blockNumber: uint,
});

/** `disclosures` (entry v2): field salts of the redactable values shown in clear, by pointer. */
export const DisclosuresSchema = z.record(
  z.string().regex(/^\/agents\/(0|[1-9][0-9]*)\/(who|userName|altId|network)$/, {
    message: "must name a redactable path /agents/<i>/<who|userName|altId|network>",
  }),
  z
    .string()
    .regex(/^0x[0-9a-f]{32}$/, { message: "must be 0x-prefixed lowercase hex of 16 bytes" }),
);

export const BundleStatusSchema = z.enum(["unsealed", "sealed", "submitted", "anchored"]);
export type BundleStatus = z.infer<typeof BundleStatusSchema>;

const jsonObject = z.record(z.string(), z.unknown());

export const BundleSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  // The event's own schema is checked by the verifier through its commitment, not its shape:
  // an outside verifier must be able to check bundles of event versions it does not know.
  event: jsonObject.nullable(),
  salt: hex32.nullable(),
  /** Entry v2 only: field salts of the redactable values shown in clear (DESIGN.md). */
  disclosures: DisclosuresSchema.optional(),
  entry: EntrySchema,
  leafIndex: uint.nullable(),
  batch: BatchHeaderSchema.nullable(),
  inclusion: z.array(hex32).max(64),
  anchor: AnchorSchema.nullable(),
  receipt: ReceiptSchema,
  erasure: jsonObject.optional(),
});

/** A bundle as a verifier reads it. */
export type ParsedBundle = z.infer<typeof BundleSchema>;

/** A bundle as the ledger writes it: the fields above, `status` and, once erased, `erasure`. */
export type Bundle = Omit<ParsedBundle, "erasure"> & {
  status?: BundleStatus;
  erasure?: Bundle;
};
export type AnchorJson = z.infer<typeof AnchorSchema>;

/*
 * A fast path for BundleSchema (the verifier parses every bundle; zod costs more than all the
 * hashing of a bundle's audit path). `parseBundleFast` returns what `BundleSchema.parse` would
 * return — the same nested objects copied level by level, keys in schema order — or undefined,
 * and then the caller asks zod, which has the last word and the error message. So it must
 * never accept what zod rejects; it may decline an odd input zod accepts (an event without
 * Object.prototype, an inherited or non-enumerable field), which only costs time.
 *
 * Each field's check is in a table next to the zod schema it mirrors, and the tests hold every
 * field of the tables against `Schema.shape[field]` and whole bundles against BundleSchema.
 * Strings that only a regex or a zod format decides (timestamps, addresses, the signature) are
 * checked by the field's own zod schema, with the last accepted value remembered: a batch's
 * receipts share issuedAt, anchorDeadline, signer and signature.
 */

/** What a field parser returns for input it declines. */
export const DECLINED: unique symbol = Symbol("declined");
type FieldParser = (value: unknown) => unknown;

const leaf =
  (accepts: (value: unknown) => boolean): FieldParser =>
  (value) =>
    accepts(value) ? value : DECLINED;

const nullable =
  (parse: FieldParser): FieldParser =>
  (value) =>
    value === null ? null : parse(value);

const isUint = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isCount = (v: unknown): boolean =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 1 && v <= 0xffffffff;

const fastHex32 = leaf(isHex32);
const fastUint = leaf(isUint);
const fastCount = leaf(isCount);

/** Any value decided by its zod schema (rare fields: no fast path of their own). */
function byZodValue(schema: z.ZodType): FieldParser {
  return (value) => {
    const r = schema.safeParse(value);
    return r.success ? r.data : DECLINED;
  };
}

/** A string field decided by its own zod schema; the last accepted string is remembered. */
function byZod(schema: z.ZodType): FieldParser {
  let lastAccepted: string | undefined;
  return (value) => {
    if (typeof value !== "string") return DECLINED;
    if (value === lastAccepted) return value;
    const r = schema.safeParse(value);
    if (!r.success || r.data !== value) return DECLINED;
    lastAccepted = value;
    return value;
  };
}

/** A parser for an optional field: an absent field stays absent (zod's `.optional()`). */
type OptionalField = { optional: FieldParser };
type FieldSpec = FieldParser | OptionalField;
type Fields = Readonly<Record<string, FieldSpec>>;

const optional = (parse: FieldParser): OptionalField => ({ optional: parse });

/** A field's check as one function (an optional field accepts undefined), for the tests. */
export function fieldCheck(spec: FieldSpec): FieldParser {
  if (typeof spec === "function") return spec;
  return (value) => (value === undefined ? undefined : spec.optional(value));
}

function strictObject(fields: Fields): FieldParser {
  const keys = Object.keys(fields);
  const specs = keys.map((k) => fields[k]!);
  const required = specs.filter((s) => typeof s === "function").length;
  return (input) => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return DECLINED;
    // zod's strict check walks `for…in`; every key it sees must be a field, and all required
    // ones be there.
    let seenRequired = 0;
    for (const key in input) {
      if (!Object.prototype.hasOwnProperty.call(fields, key)) return DECLINED;
      if (typeof fields[key] === "function") seenRequired++;
    }
    if (seenRequired !== required) return DECLINED;
    const record = input as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const spec = specs[i]!;
      const key = keys[i]!;
      if (typeof spec !== "function") {
        if (!Object.prototype.hasOwnProperty.call(record, key) || record[key] === undefined)
          continue;
        const value = spec.optional(record[key]);
        if (value === DECLINED) return DECLINED;
        out[key] = value;
        continue;
      }
      const value = spec(record[key]);
      if (value === DECLINED) return DECLINED;
      out[key] = value;
    }
    return out;
  };
}

/**
 * zod's strip mode: other keys are ignored; every required field must be `in` the input
 * (inherited keys count, as for zod); an optional one is left out when absent and kept as
 * undefined when present without a value (as zod's `.optional()` does in an object).
 */
function strippedObject(fields: Fields): FieldParser {
  const keys = Object.keys(fields);
  const specs = keys.map((k) => fields[k]!);
  return (input) => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return DECLINED;
    const record = input as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const spec = specs[i]!;
      if (!(key in record)) {
        if (typeof spec !== "function") continue;
        return DECLINED;
      }
      const value = fieldCheck(spec)(record[key]);
      if (value === DECLINED) return DECLINED;
      out[key] = value;
    }
    return out;
  };
}

function arrayOf(element: FieldParser, max: number): FieldParser {
  return (input) => {
    if (!Array.isArray(input) || input.length > max) return DECLINED;
    const out: unknown[] = new Array<unknown>(input.length);
    for (let i = 0; i < input.length; i++) {
      const value = element(input[i]);
      if (value === DECLINED) return DECLINED;
      out[i] = value;
    }
    return out;
  };
}

/** zod's isPlainObject (v4 util), which z.record applies first; it looks at `constructor`. */
function zodPlainObject(o: object): boolean {
  const ctor: unknown = (o as { constructor?: unknown }).constructor;
  if (ctor === undefined || typeof ctor !== "function") return true;
  const proto: unknown = (ctor as { prototype?: unknown }).prototype;
  if (typeof proto !== "object" || proto === null || Array.isArray(proto)) return false;
  return Object.prototype.hasOwnProperty.call(proto, "isPrototypeOf");
}

/**
 * z.record(z.string(), z.unknown()) for the common case only: an object whose prototype is
 * Object.prototype and whose own keys are all enumerable strings. Values are kept as they are,
 * and an own "__proto__" key is left out, as zod does.
 */
const fastEventRecord: FieldParser = (input) => {
  if (typeof input !== "object" || input === null) return DECLINED;
  if (Object.getPrototypeOf(input) !== Object.prototype || !zodPlainObject(input)) return DECLINED;
  const record = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Reflect.ownKeys(record)) {
    if (typeof key !== "string") return DECLINED;
    if (key === "__proto__") continue; // zod leaves it out of the result too

    if (!Object.prototype.propertyIsEnumerable.call(record, key)) return DECLINED;
    out[key] = record[key];
  }
  return out;
};

const receiptShape = ReceiptSchema.shape;
const entryShape = EntrySchema.shape;

/** The fast path's field tables, exported for the tests that hold them against the schemas. */
export const FAST_FIELDS = {
  entry: {
    v: leaf((v) => v === 1 || v === 2),
    log: fastHex32,
    seq: fastUint,
    recorded: byZod(entryShape.recorded),
    commitment: fastHex32,
    subject: nullable(fastHex32),
  },
  batch: {
    logId: fastHex32,
    batchNo: fastUint,
    firstSeq: fastUint,
    count: fastCount,
    eventsRoot: fastHex32,
    indexRoot: fastHex32,
  },
  anchor: {
    chainId: fastUint,
    contract: byZod(AnchorSchema.shape.contract),
    txHash: fastHex32,
    blockNumber: fastUint,
  },
  group: {
    firstSeq: fastUint,
    count: fastCount,
    leavesRoot: fastHex32,
    path: arrayOf(fastHex32, 32),
  },
} satisfies Record<string, Fields>;

const fastReceiptFields = {
  format: byZod(receiptShape.format),
  log: fastHex32,
  seq: fastUint,
  leafHash: fastHex32,
  recorded: byZod(receiptShape.recorded),
  anchorDeadline: byZod(receiptShape.anchorDeadline),
  issuedAt: byZod(receiptShape.issuedAt),
  group: strictObject(FAST_FIELDS.group),
  signer: byZod(receiptShape.signer),
  signature: byZod(receiptShape.signature),
} satisfies Fields;

const fastBundleFields = {
  format: leaf((v) => v === BUNDLE_FORMAT),
  event: nullable(fastEventRecord),
  salt: nullable(fastHex32),
  disclosures: optional(byZodValue(DisclosuresSchema)),
  entry: strictObject(FAST_FIELDS.entry),
  leafIndex: nullable(fastUint),
  batch: nullable(strippedObject(FAST_FIELDS.batch)),
  inclusion: arrayOf(fastHex32, 64),
  anchor: nullable(strippedObject(FAST_FIELDS.anchor)),
  receipt: strictObject(fastReceiptFields),
  // A JSON object; its own bundle is parsed when the erasure step checks it.
  erasure: optional(fastEventRecord),
} satisfies Fields;

/** Every table with the zod object schema it mirrors (for the tests). */
export const FAST_TABLES: ReadonlyArray<{ name: string; fields: Fields; schema: z.ZodObject }> = [
  { name: "entry", fields: FAST_FIELDS.entry, schema: EntrySchema },
  { name: "batch", fields: FAST_FIELDS.batch, schema: BatchHeaderSchema },
  { name: "anchor", fields: FAST_FIELDS.anchor, schema: AnchorSchema },
  { name: "receipt.group", fields: FAST_FIELDS.group, schema: receiptShape.group },
  { name: "receipt", fields: fastReceiptFields, schema: ReceiptSchema },
  { name: "bundle", fields: fastBundleFields, schema: BundleSchema },
];

const parseFast = strippedObject(fastBundleFields);

/** BundleSchema's output for `input`, or undefined when zod must decide (see above). */
export function parseBundleFast(input: unknown): ParsedBundle | undefined {
  const out = parseFast(input);
  return out === DECLINED ? undefined : (out as ParsedBundle);
}

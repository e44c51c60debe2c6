import canonicalize from "canonicalize";
import { utf8 } from "./hex.ts";

/**
 * RFC 8785 JSON Canonicalization Scheme. The one canonical-JSON function of the project:
 * commitments and entries are defined over these bytes, so outside verifiers must agree.
 *
 * Plain JSON data (what ingest hashes for every event) takes a direct recursive path that is
 * about twice as fast as the `canonicalize` package; anything else — toJSON, boxed primitives,
 * class instances, cycles, deep nesting, NaN, lone surrogates — is handed to `canonicalize`,
 * so its output and its errors stay the reference. A property test checks both agree byte for
 * byte on arbitrary JSON values.
 */
export function jcs(value: unknown): string {
  // Data already in canonical member order (an event as the ledger stores and serves it) is
  // its own JCS text through the native JSON.stringify.
  if (alreadyCanonical(value, 0)) return JSON.stringify(value);
  const text = plainJcs(value, 0) ?? canonicalize(value);
  if (text === undefined) throw new TypeError("value has no JSON representation");
  return text;
}

export function jcsBytes(value: unknown): Uint8Array {
  return utf8(jcs(value));
}

/** Beyond this depth the iterative `canonicalize` takes over (it also detects cycles). */
const PLAIN_MAX_DEPTH = 64;

/**
 * Strings that RFC 8785 §3.2.2.2 emits verbatim between quotes: no '"', '\\', control
 * characters or surrogates (so none can be lone). Everything else goes through JSON.stringify,
 * whose escapes are the ones RFC 8785 prescribes.
 */
const VERBATIM = /^[\u0020\u0021\u0023-\u005b\u005d-\ud7ff\ue000-\uffff]*$/;

/** In Unicode mode a paired surrogate is one code point, so this matches only lone halves. */
const LONE_SURROGATE = /\p{Cs}/u;

function quote(text: string): string | undefined {
  if (VERBATIM.test(text)) return `"${text}"`;
  return LONE_SURROGATE.test(text) ? undefined : JSON.stringify(text);
}

/** String.prototype.isWellFormed (ES2024, native) where there is one: no lone surrogates. */
const wellFormed: (text: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
    ? (text) => (text as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (text) => !LONE_SURROGATE.test(text);

/**
 * True when JSON.stringify(value) is the JCS text of `value`: plain JSON data that
 * {@link plainJcs} would take (same depth limit, no toJSON, plain objects, finite numbers, no
 * lone surrogates in strings or member names) whose members are already in RFC 8785 order at
 * every level. JSON.stringify escapes strings exactly as RFC 8785 §3.2.2.2 says, writes numbers
 * as ECMAScript Number-to-String (-0 → 0), writes members in Object.keys order, and leaves out
 * (or, in arrays, nulls) undefined, functions and symbols as plainJcs does.
 */
function alreadyCanonical(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
      return wellFormed(value);
    case "number":
      return Number.isFinite(value);
    case "boolean":
      return true;
    case "object":
      break;
    case "undefined":
    case "function":
    case "symbol":
      // Only reached inside arrays and objects, where both writers agree (null / left out).
      return depth > 0;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= PLAIN_MAX_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === "function")
    return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!alreadyCanonical(value[i], depth + 1)) return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i > 0 && !(keys[i - 1]! < key)) return false;
    if (!wellFormed(key) || !alreadyCanonical(record[key], depth + 1)) return false;
  }
  return true;
}

/** The JCS text of plain JSON data, or undefined when `canonicalize` must decide. */
function plainJcs(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      // RFC 8785 §3.2.2.3 is ECMAScript Number-to-String, which JSON.stringify uses (-0 → 0).
      return Number.isFinite(value) ? JSON.stringify(value) : undefined;
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      return undefined;
  }
  if (value === null) return "null";
  if (depth >= PLAIN_MAX_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === "function")
    return undefined;
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      // As in JSON.stringify: inside arrays, values without a JSON form become null.
      const text =
        element === undefined || typeof element === "function" || typeof element === "symbol"
          ? "null"
          : plainJcs(element, depth + 1);
      if (text === undefined) return undefined;
      out += i === 0 ? text : `,${text}`;
    }
    return `${out}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const record = value as Record<string, unknown>;
  const keys = sortedKeys(record);
  let out = "{";
  for (const key of keys) {
    const member = record[key];
    // As in JSON.stringify: members without a JSON form are left out.
    if (member === undefined || typeof member === "function" || typeof member === "symbol")
      continue;
    const name = quote(key);
    const text = plainJcs(member, depth + 1);
    if (name === undefined || text === undefined) return undefined;
    out += out.length === 1 ? `${name}:${text}` : `,${name}:${text}`;
  }
  return `${out}}`;
}

/**
 * RFC 8785 §3.2.3: member names in UTF-16 code unit order (what `<` on strings compares, and
 * the default sort order). Objects have few members, and an in-place insertion sort of them
 * allocates nothing, where Array.prototype.sort's temporary storage was a quarter of the
 * garbage of ingesting an event.
 */
function sortedKeys(record: object): string[] {
  const keys = Object.keys(record);
  if (keys.length > 32) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}

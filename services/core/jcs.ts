import canonicalize from "canonicalize";
import { utf8 } from "./hex.ts";

/**
 * RFC 8785 JSON Canonicalization Scheme. The one canonical-JSON function of the project:
 * commitments and entries are defined over these bytes, so outside verifiers must agree.
 *
 * Plain JSON data (what ingest hashes for every event) is written by the native JSON.stringify
 * from a copy whose members are inserted in RFC 8785 order (subtrees already in that order are
 * used as they are, so data read back from the ledger is not copied at all): JSON.stringify
 * escapes strings and writes numbers exactly as RFC 8785 §3.2.2 prescribes, and writes members
 * in insertion order. Anything else — toJSON, boxed primitives, class instances, cycles, deep
 * nesting, NaN, lone surrogates, member names that are array indices (an engine lists those
 * first, in numeric order) — is handed to `canonicalize`, so its output and its errors stay the
 * reference. Property tests check both agree byte for byte on arbitrary values.
 */
export function jcs(value: unknown): string {
  const ordered = canonicalOrder(value, 0);
  const text = ordered === NOT_PLAIN ? canonicalize(value) : JSON.stringify(ordered);
  if (text === undefined) throw new TypeError("value has no JSON representation");
  return text;
}

export function jcsBytes(value: unknown): Uint8Array {
  return utf8(jcs(value));
}

/** Beyond this depth `canonicalize` takes over (it also detects cycles). */
const PLAIN_MAX_DEPTH = 64;

/** What {@link canonicalOrder} answers for data JSON.stringify cannot be trusted with. */
const NOT_PLAIN: unique symbol = Symbol("not plain JSON data");

/** String.prototype.isWellFormed (ES2024, native) where there is one: no lone surrogates. */
const LONE_SURROGATE = /\p{Cs}/u;
const wellFormed: (text: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
    ? (text) => (text as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (text) => !LONE_SURROGATE.test(text);

/**
 * `value` with every object's members in RFC 8785 order (UTF-16 code units), so that
 * JSON.stringify of it is its JCS text; the value itself where it is in that order already, a
 * copy of the parts that are not; NOT_PLAIN for anything that is not plain JSON data. Inside
 * objects and arrays, undefined, functions and symbols are left as they are: JSON.stringify
 * leaves them out of objects and writes null for them in arrays, as RFC 8785 implementations do.
 */
function canonicalOrder(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case "string":
      return wellFormed(value) ? value : NOT_PLAIN;
    case "number":
      // RFC 8785 §3.2.2.3 is ECMAScript Number-to-String, which JSON.stringify uses (-0 → 0).
      return Number.isFinite(value) ? value : NOT_PLAIN;
    case "boolean":
      return value;
    case "object":
      break;
    case "undefined":
    case "function":
    case "symbol":
      return depth > 0 ? value : NOT_PLAIN;
    default:
      return NOT_PLAIN;
  }
  if (value === null) return null;
  if (depth >= PLAIN_MAX_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === "function")
    return NOT_PLAIN;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      const ordered = canonicalOrder(element, depth + 1);
      if (ordered === NOT_PLAIN) return NOT_PLAIN;
      if (ordered !== element && copy === undefined) copy = value.slice(0, i);
      if (copy !== undefined) copy.push(ordered);
    }
    return copy ?? value;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  const inOrder = sortKeys(keys);
  let copy: Record<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (!wellFormed(key) || !plainName(key)) return NOT_PLAIN;
    const member = record[key];
    const ordered = canonicalOrder(member, depth + 1);
    if (ordered === NOT_PLAIN) return NOT_PLAIN;
    if (copy === undefined && (!inOrder || ordered !== member)) {
      copy = {};
      for (let j = 0; j < i; j++) copy[keys[j]!] = record[keys[j]!];
    }
    if (copy !== undefined) copy[key] = ordered;
  }
  return copy ?? value;
}

/**
 * Whether a member name can be inserted into a fresh object and come out of JSON.stringify in
 * insertion order, under its own name: not an array index (engines list those first, in
 * numeric order; any name starting with a digit is left to `canonicalize`) and not
 * `__proto__` (assigning it would set the prototype instead).
 */
function plainName(key: string): boolean {
  const c = key.charCodeAt(0);
  return !(c >= 0x30 && c <= 0x39) && key !== "__proto__";
}

/**
 * Sorts member names in place into RFC 8785 §3.2.3 order (UTF-16 code units: what `<` on
 * strings compares, and the default sort order); true when they were in that order already.
 * Objects have few members, and an insertion sort of them allocates nothing, where
 * Array.prototype.sort's temporary storage was a quarter of the garbage of ingesting an event.
 */
function sortKeys(keys: string[]): boolean {
  let sorted = true;
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! < keys[i]!) continue;
    sorted = false;
    break;
  }
  if (sorted) return true;
  if (keys.length > 32) {
    keys.sort();
    return false;
  }
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
  return false;
}

import canonicalize from "canonicalize";
import { utf8 } from "./hex.ts";

/**
 * RFC 8785 JSON Canonicalization Scheme. The one canonical-JSON function of the project:
 * commitments and entries are defined over these bytes, so outside verifiers must agree.
 */
export function jcs(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("value has no JSON representation");
  return text;
}

export function jcsBytes(value: unknown): Uint8Array {
  return utf8(jcs(value));
}

/** The project's one hex codec: 0x-prefixed lowercase at every edge (DESIGN.md "Proof bundle"). */

const HEX_RE = /^0x(?:[0-9a-f]{2})*$/;
const HEX32_RE = /^0x[0-9a-f]{64}$/;

export type Hex = `0x${string}`;

export function isHex(value: unknown): value is Hex {
  return typeof value === "string" && HEX_RE.test(value);
}

export function isHex32(value: unknown): value is Hex {
  return typeof value === "string" && HEX32_RE.test(value);
}

// core/ also runs in the browser verifier, so no Buffer here.
const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function toHex(bytes: Uint8Array): Hex {
  let out = "0x";
  for (let i = 0; i < bytes.length; i++) out += BYTE_HEX[bytes[i]!];
  return out as Hex;
}

/** Value of each lowercase hex digit by char code; 0xff for every other code below 128. */
const NIBBLE = (() => {
  const t = new Uint8Array(128).fill(0xff);
  for (let d = 0; d < 10; d++) t[0x30 + d] = d;
  for (let d = 0; d < 6; d++) t[0x61 + d] = 10 + d;
  return t;
})();

function nibble(code: number): number {
  return code < 128 ? NIBBLE[code]! : 0xff;
}

/**
 * Decodes the hex digits of `hex` from index 2 on (after "0x") into `out` at `offset`; false, with
 * `out` partly written, at the first character that is not a lowercase hex digit. The caller has
 * checked the prefix and that `out` has room for (hex.length - 2) / 2 bytes.
 */
function decodeDigits(hex: string, out: Uint8Array, offset: number): boolean {
  const n = (hex.length - 2) >>> 1;
  for (let i = 0, j = 2; i < n; i++, j += 2) {
    const hi = nibble(hex.charCodeAt(j));
    const lo = nibble(hex.charCodeAt(j + 1));
    if ((hi | lo) > 15) return false;
    out[offset + i] = (hi << 4) | lo;
  }
  return true;
}

function hasPrefix(hex: string): boolean {
  return hex.length >= 2 && hex.charCodeAt(0) === 0x30 && hex.charCodeAt(1) === 0x78;
}

function notHex(hex: unknown): TypeError {
  return new TypeError(`not 0x-prefixed lowercase hex: ${String(hex).slice(0, 20)}`);
}

/**
 * Parses 0x-prefixed lowercase hex; throws on anything else so a malformed proof is never
 * half-read. Accepts exactly what {@link isHex} accepts (one table lookup per digit, no regex).
 */
export function fromHex(hex: string): Uint8Array {
  if (typeof hex !== "string" || (hex.length & 1) !== 0 || !hasPrefix(hex)) throw notHex(hex);
  const out = new Uint8Array((hex.length - 2) >>> 1);
  if (!decodeDigits(hex, out, 0)) throw notHex(hex);
  return out;
}

/**
 * Decodes 0x-prefixed lowercase hex of exactly `length` bytes into `out` at `offset` without
 * allocating; false (out partly written) for anything {@link fromHex} would reject or any other
 * length. For hot loops that decode many 32-byte hashes into one scratch buffer.
 */
export function fromHexInto(
  hex: unknown,
  length: number,
  out: Uint8Array,
  offset: number,
): boolean {
  if (typeof hex !== "string" || hex.length !== 2 + 2 * length || !hasPrefix(hex)) return false;
  if (offset < 0 || offset + length > out.length)
    throw new RangeError("out has no room for the bytes");
  return decodeDigits(hex, out, offset);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const utf8Encoder = new TextEncoder();
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** SHA-256 for the browser bundle (@noble/hashes); Node uses sha256.node.ts. Same bytes. */
export function sha256Impl(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return sha256(parts[0]!);
  const h = sha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/** SHA-256 of one byte array (the hot path: Merkle nodes). */
export function sha256OneImpl(data: Uint8Array): Uint8Array {
  return sha256(data);
}

export function hmacSha256Impl(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmac(sha256, key, message);
}

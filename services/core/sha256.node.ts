import { createHash, createHmac, hash } from "node:crypto";

/**
 * Node's native SHA-256 (OpenSSL), several times faster than a JavaScript implementation on
 * event-sized inputs. Chosen through package.json `imports` ("#sha256"); the browser bundle gets
 * sha256.browser.ts instead. Both produce the same bytes (tested).
 */
export function sha256Impl(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return plain(hash("sha256", parts[0]!, "buffer"));
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return plain(h.digest());
}

export function hmacSha256Impl(key: Uint8Array, message: Uint8Array): Uint8Array {
  return plain(createHmac("sha256", key).update(message).digest());
}

/**
 * A plain Uint8Array over the Buffer's bytes: core code relies on Uint8Array semantics
 * (`slice` copies; Buffer's `slice` would return a view sharing memory).
 */
function plain(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

import { createHash, createHmac, hash } from "node:crypto";

/**
 * Node's native SHA-256 (OpenSSL), several times faster than a JavaScript implementation on
 * event-sized inputs. Chosen through package.json `imports` ("#sha256"); the browser bundle gets
 * sha256.browser.ts instead. Both produce the same bytes (tested).
 */
export function sha256Impl(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return plain(hash("sha256", parts[0]!, "buffer"));
  let length = 0;
  for (const p of parts) length += p.length;
  if (length <= SCRATCH.length) {
    // Copying the parts into one scratch buffer and hashing it in one call is cheaper than a
    // Hash object fed part by part (each update crosses into C++). The digest is a fresh
    // buffer, and nothing here can re-enter, so the scratch is free again on return.
    let offset = 0;
    for (const p of parts) {
      SCRATCH.set(p, offset);
      offset += p.length;
    }
    return plain(hash("sha256", SCRATCH.subarray(0, length), "buffer"));
  }
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return plain(h.digest());
}

/** Inputs up to this size (leaves, nodes, typical events with their salt) take the one-shot path. */
const SCRATCH = new Uint8Array(8192);

/** SHA-256 of one byte array (the hot path: Merkle nodes). */
export function sha256OneImpl(data: Uint8Array): Uint8Array {
  return plain(hash("sha256", data, "buffer"));
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

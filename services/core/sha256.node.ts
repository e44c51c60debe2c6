import { createHash, createHmac, hash } from "node:crypto";

/**
 * Node's native SHA-256 (OpenSSL), several times faster than a JavaScript implementation on
 * event-sized inputs. Chosen through package.json `imports` ("#sha256"); the browser bundle gets
 * sha256.browser.ts instead. Both produce the same bytes (tested).
 */
export function sha256Impl(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return digestOf(hash("sha256", parts[0]!, "binary"));
  let length = 0;
  for (const p of parts) length += p.length;
  if (length <= SCRATCH.length) {
    // Copying the parts into one scratch buffer and hashing it in one call is cheaper than a
    // Hash object fed part by part (each update crosses into C++). The digest is a fresh
    // array, and nothing here can re-enter, so the scratch is free again on return.
    let offset = 0;
    for (const p of parts) {
      SCRATCH.set(p, offset);
      offset += p.length;
    }
    return digestOf(hash("sha256", SCRATCH.subarray(0, length), "binary"));
  }
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return digestOf(h.digest("binary"));
}

/** Inputs up to this size (leaves, nodes, typical events with their salt) take the one-shot path. */
const SCRATCH = new Uint8Array(8192);

/** SHA-256 of one byte array (the hot path: Merkle nodes). */
export function sha256OneImpl(data: Uint8Array): Uint8Array {
  return digestOf(hash("sha256", data, "binary"));
}

export function hmacSha256Impl(key: Uint8Array, message: Uint8Array): Uint8Array {
  return plain(createHmac("sha256", key).update(message).digest());
}

/**
 * The 32-byte digest from its "binary" (latin1) string, one char per byte, in a Uint8Array of
 * its own. A digest as a Buffer would be a separate off-heap allocation per hash, which the garbage
 * collector tracks and sweeps on its helper threads: across the millions of node hashes of a
 * batch or an audit that cost more than the hashing (0.64 against 0.26 µs of CPU per node hash
 * measured). A Uint8Array this small lives on the V8 heap.
 */
function digestOf(binary: string): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/**
 * A plain Uint8Array over the Buffer's bytes: core code relies on Uint8Array semantics
 * (`slice` copies; Buffer's `slice` would return a view sharing memory).
 */
function plain(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

import { hmacSha256Impl, sha256Impl, sha256OneImpl } from "#sha256";

/**
 * SHA-256 over the concatenation of `parts`. The implementation is picked per platform through
 * package.json `imports`: OpenSSL in Node, @noble/hashes in the browser verifier.
 */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  return sha256Impl(parts);
}

/** SHA-256 of one byte array: {@link sha256} without the rest-parameter array (hot loops). */
export function sha256Of(data: Uint8Array): Uint8Array {
  return sha256OneImpl(data);
}

export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmacSha256Impl(key, message);
}

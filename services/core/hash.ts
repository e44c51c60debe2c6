import { hmacSha256Impl, sha256Impl } from "#sha256";

/**
 * SHA-256 over the concatenation of `parts`. The implementation is picked per platform through
 * package.json `imports`: OpenSSL in Node, @noble/hashes in the browser verifier.
 */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  return sha256Impl(parts);
}

export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmacSha256Impl(key, message);
}

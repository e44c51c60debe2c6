import { createRequire } from "node:module";
import { type SigningKey, getBytes } from "ethers";
import { type Hex, toHex } from "./hex.ts";

/**
 * ECDSA over secp256k1 for the receipt key, in libsecp256k1 through the `secp256k1` package's
 * prebuilt binding: ≈ 30 µs of CPU per signature where ethers' pure-JS SigningKey takes
 * ≈ 250 µs, and it runs on the request thread once per group commit. Both sign RFC 6979
 * deterministically with low s, so the 65-byte signatures are byte-identical (tested).
 * Chosen through package.json `imports` ("#ecdsa"); the browser bundle gets ecdsa.browser.ts.
 * Where the binding cannot load (a platform without a prebuilt binary, installed without a
 * compiler) ethers signs, with the same bytes.
 */
interface Binding {
  ecdsaSign(digest: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recid: number };
}

function loadBinding(): Binding | undefined {
  try {
    // The binding itself, not the package's index: that falls back to elliptic (slower than
    // ethers) without saying so.
    return createRequire(import.meta.url)("secp256k1/bindings.js") as Binding;
  } catch {
    return undefined;
  }
}

const binding = loadBinding();

/** What signs here: the native library, or ethers when the binding could not load. */
export const ecdsaBackend: "libsecp256k1" | "ethers" = binding ? "libsecp256k1" : "ethers";

/** Private keys as bytes, per ethers SigningKey (its `privateKey` is a hex string). */
const keyBytes = new WeakMap<SigningKey, Uint8Array>();

/** The order n of secp256k1's group. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/**
 * The digest as ECDSA uses it, reduced mod n. RFC 6979 derives the nonce from the reduced
 * digest (bits2octets), as ethers does; libsecp256k1 feeds the nonce function the bytes it is
 * given, so a digest ≥ n (odds ≈ 2^-128) is reduced here first to keep the bytes identical.
 */
function reducedDigest(digest: Hex): Uint8Array {
  // n starts with 16 bytes of 0xff: a digest below 0xff… is below n.
  if (!digest.startsWith("0xff")) return getBytes(digest);
  const value = BigInt(digest);
  return value < N ? getBytes(digest) : getBytes(`0x${(value - N).toString(16).padStart(64, "0")}`);
}

/** r ‖ s ‖ v (v = 27 or 28) of `key`'s signature of the 32-byte `digest`, as 0x-hex. */
export function signDigestImpl(key: SigningKey, digest: Hex): Hex {
  if (!binding) return key.sign(digest).serialized as Hex;
  let secret = keyBytes.get(key);
  if (!secret) keyBytes.set(key, (secret = getBytes(key.privateKey)));
  const { signature, recid } = binding.ecdsaSign(reducedDigest(digest), secret);
  return `${toHex(signature)}${recid === 0 ? "1b" : "1c"}` as Hex;
}

import type { SigningKey } from "ethers";
import type { Hex } from "./hex.ts";

/** ECDSA for the browser bundle (ethers' pure-JS SigningKey); Node uses ecdsa.node.ts. Same bytes. */
export const ecdsaBackend = "ethers" as const;

export function signDigestImpl(key: SigningKey, digest: Hex): Hex {
  return key.sign(digest).serialized as Hex;
}

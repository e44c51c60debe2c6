import { getAddress } from "ethers";
import { z } from "zod";

/**
 * Ethereum addresses as DESIGN.md "Proof bundle" admits them: 0x and 40 hex digits, all
 * lowercase (or all uppercase) or in EIP-55 mixed case with a valid checksum. A mixed-case
 * address whose checksum is wrong is malformed: its case was changed by hand or by a typo.
 * Addresses are compared case-insensitively (`sameAddress`).
 */
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

// getAddress hashes the address (keccak in JS, ~50 µs); a run sees the same few addresses.
const verdicts = new Map<string, boolean>();

export function isAddress(value: unknown): value is string {
  if (typeof value !== "string" || !ADDRESS_RE.test(value)) return false;
  let ok = verdicts.get(value);
  if (ok === undefined) {
    try {
      getAddress(value);
      ok = true;
    } catch {
      ok = false;
    }
    if (verdicts.size > 10_000) verdicts.clear();
    verdicts.set(value, ok);
  }
  return ok;
}

export const AddressSchema = z
  .string()
  .refine(
    (v): boolean => isAddress(v),
    "must be a 20-byte 0x-hex address, lowercase or EIP-55 checksummed",
  );

export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

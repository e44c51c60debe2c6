import { keccak_256 } from "@noble/hashes/sha3.js";
import { SigningKey, TypedDataEncoder, keccak256, recoverAddress, toUtf8Bytes } from "ethers";
import { z } from "zod";
import { signDigestImpl } from "#ecdsa";
import { AddressSchema } from "./address.ts";
import { type Hex, fromHex, isHex32, toHex } from "./hex.ts";
import { MerkleProofError, rootFromInclusion } from "./merkle.ts";

/**
 * Signed receipts (DESIGN.md "Receipt"), the log's promise — like a Certificate Transparency
 * SCT — that an event was accepted at `seq` with `leafHash` and will be anchored by
 * `anchorDeadline`.
 *
 * Signing is amortised over one group commit: the receipt key signs one EIP-712 `ReceiptGroup`
 * whose `leavesRoot` is the RFC 9162 Merkle root over the group's leaf hashes in seq order, and
 * each receipt carries its leaf's audit path in that group. Every receipt still verifies on its
 * own with nothing but the signer address registered on-chain. One signature per group commit
 * instead of per event is what keeps signing (≈1.7k EIP-712 signatures/s/core) off the ingest
 * critical path.
 *
 * The EIP-712 domain has no chainId/verifyingContract on purpose: a receipt must be issued
 * while the chain is unreachable, and `log` (a random 32-byte id registered on-chain) already
 * names the log; receipts authorise nothing, so cross-chain replay is meaningless.
 */

export const RECEIPT_FORMAT = "veritrail-receipt/1";

export const RECEIPT_DOMAIN = { name: "Veritrail", version: "1" } as const;

export const RECEIPT_TYPES = {
  ReceiptGroup: [
    { name: "log", type: "bytes32" },
    { name: "firstSeq", type: "uint64" },
    { name: "count", type: "uint32" },
    { name: "leavesRoot", type: "bytes32" },
    { name: "issuedAt", type: "uint64" },
    { name: "anchorDeadline", type: "uint64" },
  ],
};

export interface ReceiptGroupMessage {
  log: Hex;
  firstSeq: number;
  count: number;
  leavesRoot: Hex;
  /** Milliseconds since the epoch. */
  issuedAt: number;
  /** Milliseconds since the epoch. */
  anchorDeadline: number;
}

const hex32 = z
  .string()
  .refine((v): boolean => isHex32(v), "must be 0x-prefixed lowercase hex of 32 bytes");
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const instant = z.iso.datetime({ precision: 3 });

export const ReceiptSchema = z
  .object({
    format: z.literal(RECEIPT_FORMAT),
    log: hex32,
    seq: uint,
    leafHash: hex32,
    recorded: instant,
    anchorDeadline: instant,
    issuedAt: instant,
    group: z
      .object({
        firstSeq: uint,
        count: z.number().int().min(1).max(0xffffffff),
        leavesRoot: hex32,
        path: z.array(hex32).max(32),
      })
      .strict(),
    signer: AddressSchema,
    // 65 bytes r‖s‖v with v = 27 or 28 only: ethers would also accept EIP-155 style v values,
    // which gives one signer several signature byte strings for one receipt.
    signature: z
      .string()
      .regex(/^0x[0-9a-f]{128}(?:1b|1c)$/, "must be a 65-byte signature with v = 27 or 28"),
  })
  .strict();

export type Receipt = z.infer<typeof ReceiptSchema>;

/** Anything that signs EIP-712 typed data (an ethers Wallet does). */
export interface TypedDataSigner {
  getAddress(): Promise<string>;
  signTypedData(
    domain: typeof RECEIPT_DOMAIN,
    types: typeof RECEIPT_TYPES,
    value: Record<string, unknown>,
  ): Promise<string>;
}

export function receiptGroupValue(m: ReceiptGroupMessage): Record<string, unknown> {
  return {
    log: m.log,
    firstSeq: BigInt(m.firstSeq),
    count: m.count,
    leavesRoot: m.leavesRoot,
    issuedAt: BigInt(m.issuedAt),
    anchorDeadline: BigInt(m.anchorDeadline),
  };
}

/** EIP-712 `hashStruct`'s type hash of ReceiptGroup, and the domain separator: both constant. */
const GROUP_TYPE_HASH = fromHex(
  keccak256(toUtf8Bytes(TypedDataEncoder.from(RECEIPT_TYPES).encodeType("ReceiptGroup"))),
);
const DOMAIN_SEPARATOR = fromHex(TypedDataEncoder.hashDomain(RECEIPT_DOMAIN));

/** A uint64 (or smaller) field of the message, as its 32-byte big-endian ABI word. */
function writeUint(word: Uint8Array, at: number, value: number, bits: 32 | 64, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || (bits === 32 && value > 0xffffffff))
    throw new RangeError(`receipt group ${name} is not a uint${bits}: ${value}`);
  const view = new DataView(word.buffer, word.byteOffset, word.byteLength);
  view.setUint32(at + 24, Math.floor(value / 2 ** 32));
  view.setUint32(at + 28, value >>> 0);
}

/**
 * The EIP-712 digest of a ReceiptGroup: keccak256(0x1901 ‖ domainSeparator ‖ hashStruct). The
 * encoding is written out here (six 32-byte words after the type hash) rather than through
 * ethers' generic TypedDataEncoder, which re-derives the types and the domain on every call
 * and cost more than the signature itself; a test checks it against TypedDataEncoder.hash.
 * Keccak comes straight from @noble/hashes: ethers' keccak256 wraps an older copy of it with
 * hex conversions, and its two calls cost more than the libsecp256k1 signature.
 */
export function receiptGroupDigest(m: ReceiptGroupMessage): Hex {
  const words = new Uint8Array(7 * 32);
  words.set(GROUP_TYPE_HASH, 0);
  words.set(fromHex(m.log), 32);
  writeUint(words, 64, m.firstSeq, 64, "firstSeq");
  writeUint(words, 96, m.count, 32, "count");
  words.set(fromHex(m.leavesRoot), 128);
  writeUint(words, 160, m.issuedAt, 64, "issuedAt");
  writeUint(words, 192, m.anchorDeadline, 64, "anchorDeadline");
  const signed = new Uint8Array(2 + 32 + 32);
  signed[0] = 0x19;
  signed[1] = 0x01;
  signed.set(DOMAIN_SEPARATOR, 2);
  signed.set(keccak_256(words), 34);
  return toHex(keccak_256(signed));
}

/**
 * Signs one group's receipt message. A local key (an ethers Wallet) signs the digest directly
 * (in Node with libsecp256k1, ecdsa.node.ts), byte-identical to its signTypedData (RFC 6979
 * deterministic ECDSA over the same digest); any other signer (a remote or hardware signer) gets
 * the EIP-712 typed data.
 */
export async function signReceiptGroup(
  signer: TypedDataSigner,
  m: ReceiptGroupMessage,
): Promise<string> {
  const key = (signer as { signingKey?: unknown }).signingKey;
  if (key instanceof SigningKey) return signDigestImpl(key, receiptGroupDigest(m));
  return signer.signTypedData(RECEIPT_DOMAIN, RECEIPT_TYPES, receiptGroupValue(m));
}

export type ReceiptErrorCode =
  | "RECEIPT_MALFORMED"
  | "RECEIPT_PATH_INVALID"
  | "RECEIPT_SIGNATURE_INVALID"
  | "RECEIPT_SIGNER_MISMATCH";

export class ReceiptError extends Error {
  constructor(
    readonly code: ReceiptErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ReceiptError";
  }
}

/**
 * Checks a receipt on its own: its shape, the leaf's path to the signed group root, and the
 * EIP-712 signature. Returns the address that signed; the caller decides whether that address
 * was the log's registered receipt signer at `issuedAt` (the verifier asks the contract).
 */
export function verifyReceipt(receipt: unknown): { signer: string; receipt: Receipt } {
  const parsed = ReceiptSchema.safeParse(receipt);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ReceiptError(
      "RECEIPT_MALFORMED",
      `receipt.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
    );
  }
  const r = parsed.data;
  const index = r.seq - r.group.firstSeq;
  if (index < 0 || index >= r.group.count)
    throw new ReceiptError("RECEIPT_PATH_INVALID", "seq is outside the signed group");
  let root: Uint8Array;
  try {
    root = rootFromInclusion(index, r.group.count, fromHex(r.leafHash), r.group.path.map(fromHex));
  } catch (e) {
    const why = e instanceof MerkleProofError ? e.code : "invalid path";
    throw new ReceiptError("RECEIPT_PATH_INVALID", `group path does not verify: ${why}`);
  }
  if (toHex(root) !== r.group.leavesRoot)
    throw new ReceiptError("RECEIPT_PATH_INVALID", "leaf does not lead to the signed group root");
  const message: ReceiptGroupMessage = {
    log: r.log as Hex,
    firstSeq: r.group.firstSeq,
    count: r.group.count,
    leavesRoot: r.group.leavesRoot as Hex,
    issuedAt: Date.parse(r.issuedAt),
    anchorDeadline: Date.parse(r.anchorDeadline),
  };
  let recovered: string;
  try {
    recovered = recoverAddress(receiptGroupDigest(message), r.signature);
  } catch {
    throw new ReceiptError("RECEIPT_SIGNATURE_INVALID", "signature cannot be recovered");
  }
  if (recovered.toLowerCase() !== r.signer.toLowerCase())
    throw new ReceiptError(
      "RECEIPT_SIGNER_MISMATCH",
      `signature was made by ${recovered}, not the stated signer ${r.signer}`,
    );
  return { signer: recovered, receipt: r };
}

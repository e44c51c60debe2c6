import { z } from "zod";
import { EntrySchema } from "./entry.ts";
import { isHex32 } from "./hex.ts";
import { ReceiptSchema } from "./receipt.ts";

/**
 * The proof bundle, `veritrail-proof/1` (DESIGN.md "Proof bundle"): the contract with outside
 * verifiers. The field names of DESIGN.md are fixed; `status` is an extension that says how far
 * the event has got (an event is acknowledged before its batch is sealed or anchored).
 */
export const BUNDLE_FORMAT = "veritrail-proof/1";

const hex32 = z
  .string()
  .refine((v): boolean => isHex32(v), "must be 0x-prefixed lowercase hex of 32 bytes");
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const BatchHeaderSchema = z
  .object({
    logId: hex32,
    batchNo: uint,
    firstSeq: uint,
    count: z.number().int().min(1).max(0xffffffff),
    eventsRoot: hex32,
    indexRoot: hex32,
  })
  .strict();

export const AnchorSchema = z
  .object({
    chainId: uint,
    contract: z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 20-byte address"),
    txHash: hex32,
    blockNumber: uint,
  })
  .strict();

export const BundleStatusSchema = z.enum(["unsealed", "sealed", "submitted", "anchored"]);
export type BundleStatus = z.infer<typeof BundleStatusSchema>;

export const BundleSchema = z
  .object({
    format: z.literal(BUNDLE_FORMAT),
    // The event's own schema is checked by the verifier through its commitment, not its shape:
    // an outside verifier must be able to check bundles of event versions it does not know.
    event: z.record(z.string(), z.unknown()).nullable(),
    salt: hex32.nullable(),
    entry: EntrySchema,
    leafIndex: uint.nullable(),
    batch: BatchHeaderSchema.nullable(),
    inclusion: z.array(hex32).max(64),
    anchor: AnchorSchema.nullable(),
    receipt: ReceiptSchema,
    status: BundleStatusSchema,
  })
  .strict();

export type Bundle = z.infer<typeof BundleSchema>;
export type BatchHeaderJson = z.infer<typeof BatchHeaderSchema>;
export type AnchorJson = z.infer<typeof AnchorSchema>;

/**
 * The one place stored values become records. Every record the store hands out is decoded here
 * against its schema; a value that does not decode (a flipped byte, a truncated write, an edit
 * by hand) becomes a `StoreCorruptError` naming the key and what is wrong with it, never a raw
 * `SyntaxError` or `TypeError` somewhere down the line. The API answers it with 500
 * `STORE_CORRUPT` and counts it (`veritrail_store_corrupt_total{record}`); the audit reports it
 * as a finding.
 *
 * Batch records also carry a digest, SHA-256 over the JCS of the record without it: a record
 * whose bytes changed in any field — the chain-checked ones and the operational ones (when it
 * was sealed, submitted, the attempts) alike — no longer decodes. The digest catches corruption
 * and careless edits; a deliberate rewrite that recomputes it is caught where the record makes a
 * claim the chain can check (services/ledger/audit.ts compares every anchor field with the
 * chain). Records written before digests have none and are decoded by their schema alone.
 */
import { z } from "zod";
import { BatchHeaderSchema } from "../core/bundle.ts";
import { type Entry, EntrySchema } from "../core/entry.ts";
import { type SmtNode, decodeSmtNode } from "../core/subject-index.ts";
import { sha256 } from "../core/hash.ts";
import { toHex, utf8 } from "../core/hex.ts";
import { jcs } from "../core/jcs.ts";
import type { BatchRecord } from "./batch-record.ts";
import { K } from "./keys.ts";

/** What kind of record a key holds: a bounded label for metrics and messages. */
export type RecordKind =
  | "meta"
  | "entry"
  | "body"
  | "tombstone"
  | "receipt-group"
  | "receipt-group-header"
  | "receipt-path"
  | "batch"
  | "batch-by-seq"
  | "merkle-nodes"
  | "index-node"
  | "subject-head"
  | "request-id"
  | "api-key"
  | "other";

const KINDS: Array<[string, RecordKind]> = [
  [K.logMeta, "meta"],
  [K.entryPrefix, "entry"],
  [K.bodyPrefix, "body"],
  [K.tombstonePrefix, "tombstone"],
  [K.groupPrefix, "receipt-group"],
  ["h:", "receipt-group-header"],
  [K.receiptPathPrefix, "receipt-path"],
  [K.batchPrefix, "batch"],
  [K.batchBySeqPrefix, "batch-by-seq"],
  ["p:", "merkle-nodes"],
  ["n:", "merkle-nodes"],
  [K.indexNodePrefix, "index-node"],
  ["j:", "index-node"],
  ["u:", "index-node"],
  ["s:", "meta"],
  ["v:", "subject-head"],
  ["x:r:", "request-id"],
  [K.apiKeyPrefix, "api-key"],
];

export function recordKind(key: string): RecordKind {
  for (const [prefix, kind] of KINDS) if (key.startsWith(prefix)) return kind;
  return "other";
}

/**
 * The key as it may appear in a message or a log line: a subject's history head is keyed by its
 * subject tag, which stays out of logs (DESIGN.md "Never on-chain, never in logs").
 */
export function shownKey(key: string): string {
  return key.startsWith("v:") ? "v:<subject>" : key;
}

/** A stored value that does not decode as the record its key holds: our fault, not the caller's. */
export class StoreCorruptError extends Error {
  override readonly name = "StoreCorruptError";
  readonly code = "STORE_CORRUPT";
  readonly kind: RecordKind;
  /** The key as messages and logs may show it (see shownKey). */
  readonly shownKey: string;

  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`stored record ${shownKey(key)} is corrupt: ${reason}`);
    this.kind = recordKind(key);
    this.shownKey = shownKey(key);
    for (const listener of listeners) listener(this);
  }
}

type CorruptListener = (error: StoreCorruptError) => void;
const listeners = new Set<CorruptListener>();

/** Calls `listener` for every corrupt record found from now on (the metrics count them). */
export function onStoreCorrupt(listener: CorruptListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
  return `${where}${issue?.message ?? "invalid"}`;
}

/** Parses `raw` as JSON and checks it against `schema`; StoreCorruptError naming `key` if not. */
export function decodeJson<T>(key: string, raw: Buffer | string, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === "string" ? raw : raw.toString("utf8"));
  } catch (e) {
    throw new StoreCorruptError(key, `not JSON (${(e as Error).message})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new StoreCorruptError(key, firstIssue(parsed.error));
  return parsed.data;
}

// ---- entries --------------------------------------------------------------------------------

/**
 * An entry exactly as `encodeEntry` writes it: JCS key order, every field of EntrySchema in its
 * schema form, nothing else. Text that matches is well-formed and canonical by construction, so
 * it is read from the match without JSON.parse or the schema (proofs and histories read
 * thousands of entries).
 */
export const CANONICAL_ENTRY =
  /^\{"commitment":"(0x[0-9a-f]{64})","log":"(0x[0-9a-f]{64})","recorded":"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)","seq":(0|[1-9][0-9]{0,15}),"subject":(?:null|"(0x[0-9a-f]{64})"),"v":([12])\}$/;

/** Entry `seq`'s stored JCS text as the entry, or StoreCorruptError naming its key. */
export function decodeEntryOf(seq: number, text: string): Entry {
  return decodeEntry(K.entry(seq), text);
}

/** An entry's JCS text as the entry, or StoreCorruptError. */
export function decodeEntry(key: string, text: string): Entry {
  const m = CANONICAL_ENTRY.exec(text);
  const seq = m ? Number(m[4]) : NaN;
  if (m && Number.isSafeInteger(seq))
    return {
      commitment: m[1] as Entry["commitment"],
      log: m[2] as Entry["log"],
      recorded: m[3]!,
      seq,
      subject: (m[5] ?? null) as Entry["subject"],
      v: Number(m[6]) as Entry["v"],
    };
  return decodeJson(key, text, EntrySchema) as Entry;
}

// ---- batch records --------------------------------------------------------------------------

const hex32 = z.string().regex(/^0x[0-9a-f]{64}$/, "must be 0x and 64 lowercase hex digits");
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 20-byte 0x address");
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const instant = z.iso.datetime({ offset: false });

/** The header as the registry stores it; nothing else in a record's header. */
export const BatchHeaderRecordSchema = BatchHeaderSchema.strict();

export const AnchorRecordSchema = z
  .object({
    chainId: uint,
    contract: address,
    txHash: hex32,
    blockNumber: uint,
    blockHash: hex32,
    gasUsed: uint,
    anchoredAt: instant,
  })
  .strict();

export const SubmissionRecordSchema = z
  .object({
    chainId: uint,
    contract: address,
    txHash: hex32,
    /** -1 when the transaction was found on-chain rather than sent by this service. */
    nonce: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
    submittedAt: instant,
    attempts: uint,
  })
  .strict();

export const BatchRecordSchema = z
  .object({
    header: BatchHeaderRecordSchema,
    state: z.enum(["sealed", "submitted", "anchored"]),
    sealedAt: instant,
    tileHeight: z.number().int().min(1).max(32).optional(),
    submission: SubmissionRecordSchema.optional(),
    anchor: AnchorRecordSchema.optional(),
    reorgedAnchors: z.array(AnchorRecordSchema).optional(),
  })
  .strict()
  .refine((r) => r.state !== "anchored" || r.anchor !== undefined, {
    message: "an anchored batch record has an anchor",
    path: ["anchor"],
  });

const DigestedSchema = z.looseObject({ digest: hex32.optional() });

function batchDigest(record: unknown): string {
  return toHex(sha256(utf8(jcs(record))));
}

/** A batch record as stored: its JSON with `digest` = SHA-256(JCS(record without digest)). */
export function encodeBatchRecord(record: BatchRecord): Buffer {
  const { digest: _old, ...plain } = record as BatchRecord & { digest?: string };
  return Buffer.from(JSON.stringify({ ...plain, digest: batchDigest(plain) }), "utf8");
}

/** Batch `batchNo`'s stored record (decodeBatchRecord), or StoreCorruptError naming its key. */
export function decodeBatchRecordOf(batchNo: number, raw: Buffer): BatchRecord {
  return decodeBatchRecord(K.batch(batchNo), raw);
}

/** A stored batch record, its digest checked when it has one; StoreCorruptError otherwise. */
export function decodeBatchRecord(key: string, raw: Buffer): BatchRecord {
  const { digest, ...plain } = decodeJson(key, raw, DigestedSchema);
  const parsed = BatchRecordSchema.safeParse(plain);
  if (!parsed.success) throw new StoreCorruptError(key, firstIssue(parsed.error));
  if (digest !== undefined) {
    const actual = batchDigest(plain);
    if (actual !== digest)
      throw new StoreCorruptError(
        key,
        `its digest ${digest} does not match its content (${actual}): a field changed after it was written`,
      );
  }
  return parsed.data as BatchRecord;
}

// ---- other records --------------------------------------------------------------------------

/** An event body as stored (opened): the event's JCS, its salt and, entry v2, field salts. */
export const StoredBodySchema = z.object({
  event: z.record(z.string(), z.unknown()),
  salt: hex32,
  fieldSalts: z.record(z.string(), z.string().regex(/^0x[0-9a-f]{32}$/)).optional(),
});

/** A receipt group's header (`h:`) and, with its leaves, the group record (`g:`). */
export const ReceiptGroupHeaderSchema = z.object({
  log: hex32.optional(),
  firstSeq: uint,
  count: z.number().int().min(1).max(0xffffffff),
  leavesRoot: hex32,
  issuedAt: uint,
  anchorDeadline: uint,
  signer: address,
  signature: z.string().regex(/^0x[0-9a-f]{130}$/, "must be a 65-byte signature"),
});

export const ReceiptGroupRecordSchema = ReceiptGroupHeaderSchema.extend({
  leafHashes: z.base64(),
});

/** An erased body's tombstone (`t:`; ledger/erasure.ts). */
export const TombstoneSchema = z.object({
  seq: uint,
  erasedAt: z.string(),
  legalBasis: z.string(),
  keyId: z.string(),
  reason: z.string(),
  erasureSeq: uint,
});

/** The log's metadata (`m:log`; the secret in clear or sealed). */
export const LogMetaSchema = z.object({
  logId: hex32,
  logSecret: hex32.optional(),
  logSecretSealed: z.unknown().optional(),
  createdAt: z.string(),
  formatVersion: z.literal(1),
  subjectDerivation: z.enum(["jcs", "pipe"]).optional(),
});

/** A subject's history head (`v:`). */
export const SubjectHeadSchema = z.object({ count: uint, chain: hex32 });

/** The seq a (organization, requestId) names (`x:r:`). */
export const RequestSeqSchema = uint;

/** A completeness-index node (`i:`, `j:`): its fixed binary layout (core/subject-index.ts). */
export function decodeIndexNode(key: string, raw: Uint8Array): SmtNode {
  try {
    return decodeSmtNode(raw);
  } catch (e) {
    throw new StoreCorruptError(key, (e as Error).message);
  }
}

/** A batch number, as the `q:` index stores it (decimal text). */
export function decodeBatchNo(key: string, raw: Buffer): number {
  const text = raw.toString("utf8");
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text))
    throw new StoreCorruptError(key, `not a batch number: ${JSON.stringify(text.slice(0, 20))}`);
  return Number(text);
}

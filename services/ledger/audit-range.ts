/**
 * The per-event and per-batch work of the regulator's audit (audit.ts), as pure functions of what
 * the replay read, so it runs on the audit's worker threads (audit-worker.ts) as well as on the
 * calling thread, with the same findings in the same order:
 *
 *   - {@link checkRange}: one batch's seq range (or the unsealed tail): opens each body with a
 *     copy of its epoch's key, checks entries and bodies (form, seq, log, commitment), hashes the
 *     leaves and the batch's Merkle tree (eventsRoot, and the stored node values it implies),
 *     checks each leaf and stored receipt path against its receipt group, and sorts the events
 *     that extend a subject's history into the subject shards they belong to;
 *   - {@link SubjectShard}: the history chains and the completeness index (a sparse Merkle map,
 *     core/subject-index.ts) rebuilt from scratch for the subjects whose keys start with one bit
 *     prefix; the shards' subtrees join into the index root ({@link joinShards}), which depends
 *     on the map's contents only, so any number of shards gives the root one map would.
 *
 * Everything crosses threads as a few buffers per range (values packed back to back), never as
 * one object per event.
 */
import { type FieldSalts, committedForm } from "../core/disclosure.ts";
import { type Entry, EntrySchema, commitmentOfCanonical, encodeEntry } from "../core/entry.ts";
import { type Hex, fromHex, isHex32, toHex } from "../core/hex.ts";
import { jcs } from "../core/jcs.ts";
import { type MerkleTree, buildTree, inclusionProofNodeIds, leafHash } from "../core/merkle.ts";
import {
  EMPTY_ROOT,
  MemoryNodeStore,
  type SmtUpdate,
  extendChain,
  historyValueHash,
  internalNodeHash,
  smtNodeHash,
} from "../core/subject-index.ts";
import { type NodeLayout, nodeValues } from "../store/node-layout.ts";
import { type ReceiptGroupRecord, encodeReceiptPath } from "../store/receipt-group-record.ts";
import { CANONICAL_ENTRY } from "../store/record-codec.ts";
import {
  BodyUnreadable,
  type EpochKeys,
  epochKeyLookup,
  openSealedBody,
} from "../store/sealed-body.ts";
import { wipeKeys } from "../store/body-keys.ts";
import type { AuditFinding } from "./audit.ts";
import { PackedValues } from "./audit-wire.ts";

/** A finding of a range; `group`: about the receipt group stored under this key seq. */
export type RangeFinding = AuditFinding & { group?: number };

/** A receipt-group record as stored (`g:`), under the seq its key names. */
export interface RangeGroup {
  keySeq: number;
  raw: Buffer;
}

/** What the replay read of one seq range; arrays run over the seqs that have an entry. */
export interface RangeInput {
  logId: string | null;
  /** The batch this range is (undefined: the accepted, not yet sealed tail). */
  batchNo?: number;
  from: number;
  to: number;
  /** The seqs in [from, to) that have an entry, increasing. */
  seqs: number[];
  /** Per seq with an entry, packed (audit-wire.ts ValuePacker): the entry. */
  entries: Buffer;
  /** Each entry's body as stored (sealed or plain); absent: none to check. */
  bodies: Buffer;
  /** Whether a body was stored at all (1; erased when 0). */
  stored: Uint8Array;
  /** Bodies that could not be opened on the reading thread, in seq order. */
  openingFailures: Array<{ seq: number; message: string }>;
  /** Each entry's stored receipt path (`r:`), absent where there is none. */
  receiptPaths: Buffer;
  /** The group record under the greatest key ≤ from, then those with keys in (from, to). */
  groups: RangeGroup[];
  /** Stored group headers (`h:`) by the firstSeq they are stored under; null: none stored. */
  groupHeaders: Array<[firstSeq: number, raw: Buffer | null]>;
  /** Copies of the body keys of the range's epochs. */
  bodyKeys: EpochKeys[];
  /** A batch whose record decodes: its count, and how its Merkle nodes are stored. */
  tree?: { count: number; layout: NodeLayout };
  /** Subject shards to sort the history events into (a power of two; 0: a range of the tail). */
  shards: number;
}

/** One shard's events of a range: per event seq (f64), leaf hash, subject key; in seq order. */
export const SHARD_EVENT_BYTES = 8 + 32 + 32;

export interface RangeResult {
  /** Group headers the range needs and was not given: read them and check the range again. */
  needHeaders?: number[];
  findings: RangeFinding[];
  /** Entries present. */
  present: number;
  /** Entries present without a stored body. */
  erased: number;
  /** The Merkle root over the present leaves (batches only). */
  eventsRoot?: Hex;
  /** The stored node values the recomputed tree implies (when every entry is present). */
  nodes?: Array<{ key: string; value: Buffer }>;
  /** Per shard, its events ({@link SHARD_EVENT_BYTES} each), packed. */
  shardEvents: Buffer[];
}

export function shardOf(key: Uint8Array, shards: number): number {
  return shards <= 1 ? 0 : key[0]! >>> (8 - Math.log2(shards));
}

/** Checks one range (see the file comment). Pure: runs on a worker or on the calling thread. */
export function checkRange(input: RangeInput): RangeResult {
  const findings: RangeFinding[] = [];
  const report = (f: RangeFinding) => findings.push(f);
  const keys = epochKeyLookup(input.bodyKeys);
  const headers = new Map(input.groupHeaders);
  const needHeaders: number[] = [];
  const groups = new RangeGroups(input.groups, headers, needHeaders, report);
  const n = input.seqs.length;
  const entries = new PackedValues(input.entries);
  const bodies = new PackedValues(input.bodies);
  const receiptPaths = new PackedValues(input.receiptPaths);
  const leaves = Buffer.allocUnsafe(32 * n);
  const shards = input.shards;
  const shardEvents = Array.from({ length: shards }, () =>
    Buffer.allocUnsafe(SHARD_EVENT_BYTES * n),
  );
  const shardAt = new Array<number>(shards).fill(0);
  let k = 0;
  let o = 0;
  let erased = 0;
  for (let seq = input.from; seq < input.to; seq++) {
    if (input.seqs[k] !== seq) {
      report({
        ...(input.batchNo === undefined ? {} : { batchNo: input.batchNo }),
        seq,
        kind: input.batchNo === undefined ? "ENTRY_MISSING" : "BATCH_ENTRIES_MISSING",
        message: `no entry at seq ${seq}`,
      });
      continue;
    }
    const raw = entries.get(k)!;
    const leaf = leafHash(raw);
    leaves.set(leaf, 32 * k);
    const entry = checkEntry(seq, raw, input.logId, report);
    // A body that cannot be opened has no body findings, only its own, after the entry's.
    let opening: string | undefined;
    let body: Buffer | undefined;
    const stored = bodies.get(k);
    if (stored !== undefined)
      try {
        body = openSealedBody(seq, stored, keys) ?? undefined;
        if (body === undefined) throw new BodyUnreadable(seq, "the key it names does not exist");
      } catch (e) {
        if (!(e instanceof BodyUnreadable)) throw e;
        opening = e.message;
      }
    while (o < input.openingFailures.length && input.openingFailures[o]!.seq === seq)
      opening = input.openingFailures[o++]!.message;
    if (body !== undefined && entry)
      if (entry.v === 2) checkBodyParsed(seq, entry.commitment, body, report, true);
      else checkBody(seq, entry.commitment, body, report);
    if (opening !== undefined) report({ seq, kind: "BODY_MALFORMED", message: opening });
    if (input.stored[k] === 0) erased++;
    const group = groups.containing(seq);
    if (!group)
      report({
        seq,
        kind: "RECEIPT_GROUP_MISSING",
        message: `no receipt group holds seq ${seq}`,
      });
    else {
      const at = (seq - group.firstSeq) * 32;
      if (
        at < 0 ||
        at + 32 > group.leaves.length ||
        group.leaves.compare(leaf, 0, 32, at, at + 32) !== 0
      )
        report({
          seq,
          kind: "RECEIPT_LEAF_MISMATCH",
          message: `entry ${seq} hashes to ${toHex(leaf)}, its receipt acknowledged another leaf`,
        });
      checkReceiptPath(seq, group, receiptPaths.get(k), report);
    }
    if (shards > 0 && entry?.subject) {
      const subject = fromHex(entry.subject);
      const s = shardOf(subject, shards);
      const out = shardEvents[s]!;
      const at = shardAt[s]!;
      out.writeDoubleLE(seq, at);
      out.set(leaf, at + 8);
      out.set(subject, at + 40);
      shardAt[s] = at + SHARD_EVENT_BYTES;
    }
    k++;
  }
  wipeKeys(input.bodyKeys);
  if (needHeaders.length > 0)
    return { needHeaders, findings: [], present: k, erased, shardEvents: [] };
  const result: RangeResult = {
    findings,
    present: k,
    erased,
    // Each shard's events in a buffer of its own (transferable).
    shardEvents: shardEvents.map((b, s) => {
      const own = Buffer.allocUnsafeSlow(shardAt[s]!);
      b.copy(own, 0, 0, shardAt[s]!);
      return own;
    }),
  };
  if (input.batchNo !== undefined) {
    const leafList: Uint8Array[] = new Array<Uint8Array>(k);
    for (let i = 0; i < k; i++) leafList[i] = leaves.subarray(32 * i, 32 * (i + 1));
    const tree = buildTree(leafList);
    result.eventsRoot = toHex(tree.root);
    if (input.tree && k === input.tree.count)
      result.nodes = nodeValues(input.batchNo, tree.levels, input.tree.layout);
  }
  return result;
}

/**
 * The receipt groups of a range, for each seq what `LedgerStore.getGroupContaining` would
 * answer: the record under the greatest key ≤ seq, if its range holds seq. A group is checked
 * (its leaves against its signed leavesRoot, its stored header against the record) when the
 * replay first reaches it; those findings name the group's key, so a group that spans two
 * ranges is reported once.
 */
class RangeGroups {
  private current: AuditedGroup | undefined;
  private next = 0;
  private candidate: RangeGroup | undefined;

  constructor(
    private readonly records: readonly RangeGroup[],
    private readonly headers: Map<number, Buffer | null>,
    private readonly needHeaders: number[],
    private readonly report: (f: RangeFinding) => void,
  ) {}

  containing(seq: number): AuditedGroup | undefined {
    const c = this.current;
    if (c && seq >= c.firstSeq && seq < c.firstSeq + c.count) return c;
    while (this.next < this.records.length && this.records[this.next]!.keySeq <= seq)
      this.candidate = this.records[this.next++];
    const candidate = this.candidate;
    if (candidate === undefined) return undefined;
    let group: ReceiptGroupRecord | undefined;
    try {
      group = JSON.parse(candidate.raw.toString("utf8")) as ReceiptGroupRecord;
      if (!(seq < group.firstSeq + group.count)) group = undefined;
    } catch {
      group = undefined;
    }
    if (!group || typeof group.leafHashes !== "string") return undefined;
    const leaves = Buffer.from(group.leafHashes, "base64");
    const leafList: Uint8Array[] = [];
    for (let at = 0; at + 32 <= leaves.length; at += 32)
      leafList.push(leaves.subarray(at, at + 32));
    const tree = buildTree(leafList);
    if (leafList.length !== group.count || toHex(tree.root) !== group.leavesRoot)
      this.report({
        group: candidate.keySeq,
        seq: group.firstSeq,
        kind: "RECEIPT_GROUP_ROOT_MISMATCH",
        message: `receipt group at seq ${group.firstSeq}: its leaves do not hash to the signed leavesRoot`,
      });
    const rawHeader = this.headers.get(group.firstSeq);
    if (rawHeader === undefined) this.needHeaders.push(group.firstSeq);
    else if (rawHeader !== null && !sameGroupHeader(rawHeader, group))
      this.report({
        group: candidate.keySeq,
        seq: group.firstSeq,
        kind: "RECEIPT_HEADER_MISMATCH",
        message: `receipt group at seq ${group.firstSeq}: the stored header differs from the group record`,
      });
    this.current = {
      firstSeq: group.firstSeq,
      count: group.count,
      leaves,
      tree,
      // Groups written since receipt paths are stored have a header; older ones have neither.
      pathsStored: rawHeader !== null,
    };
    return this.current;
  }
}

/** A subtree of the completeness index, as the shards hand it over to be joined. */
export type Subtree = { kind: "empty" } | { kind: "leaf" | "internal"; hash: Uint8Array };

const EMPTY_SUBTREE: Subtree = { kind: "empty" };

/**
 * The index root from the subtrees at the shards' prefixes (in prefix order), by the map's shape
 * rule (core/subject-index.ts): an empty subtree next to an empty one or a lone leaf collapses
 * (the leaf moves up), anything else is an internal node over both.
 */
export function joinShards(subtrees: readonly Subtree[]): Uint8Array {
  let level = subtrees.slice();
  while (level.length > 1) {
    const up: Subtree[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const l = level[i]!;
      const r = level[i + 1]!;
      if (l.kind === "empty" && r.kind !== "internal") up.push(r);
      else if (r.kind === "empty" && l.kind === "leaf") up.push(l);
      else
        up.push({
          kind: "internal",
          hash: internalNodeHash(
            l.kind === "empty" ? EMPTY_ROOT : l.hash,
            r.kind === "empty" ? EMPTY_ROOT : r.hash,
          ),
        });
    }
    level = up;
  }
  const root = level[0] ?? EMPTY_SUBTREE;
  return root.kind === "empty" ? EMPTY_ROOT : root.hash;
}

/**
 * The history heads and the completeness index of the subjects whose keys start with shard
 * `shard`'s bits (of log2(shards) bits), rebuilt batch by batch in an in-memory map.
 */
export class SubjectShard {
  private readonly heads = new Map<Hex, { count: number; chain: Uint8Array }>();
  private readonly index = new MemoryNodeStore();
  private readonly bits: number;

  constructor(
    private readonly shard: number,
    shards: number,
  ) {
    this.bits = Math.log2(shards);
  }

  /** Folds one batch's events of this shard (checkRange's shardEvents) into the histories. */
  async apply(events: Buffer): Promise<Subtree> {
    const touched = new Map<Hex, { count: number; chain: Uint8Array }>();
    for (let at = 0; at + SHARD_EVENT_BYTES <= events.length; at += SHARD_EVENT_BYTES) {
      const seq = events.readDoubleLE(at);
      const leaf = events.subarray(at + 8, at + 40);
      const subject = toHex(events.subarray(at + 40, at + 72));
      const mine = touched.get(subject);
      if (mine) {
        mine.count++;
        mine.chain = extendChain(mine.chain, seq, leaf);
      } else {
        const head = this.heads.get(subject) ?? { count: 0, chain: EMPTY_ROOT };
        touched.set(subject, { count: head.count + 1, chain: extendChain(head.chain, seq, leaf) });
      }
    }
    // In key order, a slice at a time: a slice covers one part of the key space, so it changes
    // few nodes above its own, and the nodes one update holds (every node it touches, read and
    // decoded) die young instead of outliving the whole batch's update in the old generation.
    const subjects = [...touched.keys()].sort();
    for (let at = 0; at < subjects.length; at += INDEX_SLICE) {
      const updates: SmtUpdate[] = [];
      for (const subject of subjects.slice(at, at + INDEX_SLICE)) {
        const next = touched.get(subject)!;
        this.heads.set(subject, next);
        updates.push({
          key: fromHex(subject),
          valueHash: historyValueHash(next.count, next.chain),
        });
      }
      await this.index.update(updates);
    }
    return this.subtree();
  }

  /**
   * The subtree at this shard's prefix: this map holds only keys under it, so its root is that
   * subtree's single leaf, or an internal node whose path down to the prefix has only empty
   * siblings.
   */
  private async subtree(): Promise<Subtree> {
    let path = "";
    let node = await this.index.reader(path);
    for (let depth = 0; depth < this.bits && node?.kind === "internal"; depth++) {
      const bit = (this.shard >>> (this.bits - 1 - depth)) & 1;
      const child = bit === 0 ? node.left : node.right;
      path += bit === 0 ? "0" : "1";
      node = child.every((b) => b === 0) ? undefined : await this.index.reader(path);
    }
    if (node === undefined) return EMPTY_SUBTREE;
    return { kind: node.kind, hash: smtNodeHash(node) };
  }

  /**
   * Every head, sorted by subject, packed: per subject its key (32), count (f64), chain (32).
   * Shards hold consecutive key ranges, so the shards' lists in order are one sorted list.
   */
  packedHeads(): Buffer {
    const subjects = [...this.heads.keys()].sort();
    const out = Buffer.allocUnsafeSlow(HEAD_BYTES * subjects.length);
    subjects.forEach((subject, i) => {
      const head = this.heads.get(subject)!;
      out.set(fromHex(subject), HEAD_BYTES * i);
      out.writeDoubleLE(head.count, HEAD_BYTES * i + 32);
      out.set(head.chain, HEAD_BYTES * i + 40);
    });
    return out;
  }
}

/** Subjects folded into the index per update (SubjectShard.apply). */
const INDEX_SLICE = 512;

/** One packed history head: subject key, count (f64), chain. */
export const HEAD_BYTES = 32 + 8 + 32;

interface BodyJson {
  event?: unknown;
  salt?: unknown;
}

function checkEntry(
  seq: number,
  raw: Buffer,
  logId: string | null,
  report: (f: AuditFinding) => void,
): Pick<Entry, "commitment" | "subject" | "v"> | undefined {
  // latin1 maps each byte to one char: any non-ASCII byte fails the pattern and takes the
  // general path below, which decodes UTF-8.
  const m = CANONICAL_ENTRY.exec(raw.toString("latin1"));
  const entrySeq = m ? Number(m[4]) : NaN;
  if (m && Number.isSafeInteger(entrySeq)) {
    if (entrySeq !== seq)
      report({
        seq,
        kind: "ENTRY_SEQ_MISMATCH",
        message: `entry stored at seq ${seq} says seq ${entrySeq}`,
      });
    if (logId !== null && m[2] !== logId)
      report({ seq, kind: "ENTRY_LOG_MISMATCH", message: `entry ${seq} names log ${m[2]}` });
    return {
      commitment: m[1] as Hex,
      subject: (m[5] ?? null) as Hex | null,
      v: Number(m[6]) as Entry["v"],
    };
  }
  return checkEntryParsed(seq, raw, logId, report);
}

function checkEntryParsed(
  seq: number,
  raw: Uint8Array,
  logId: string | null,
  report: (f: AuditFinding) => void,
): Entry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw).toString("utf8"));
  } catch {
    report({ seq, kind: "ENTRY_MALFORMED", message: `entry ${seq} is not JSON` });
    return undefined;
  }
  const r = EntrySchema.safeParse(parsed);
  if (!r.success) {
    report({
      seq,
      kind: "ENTRY_MALFORMED",
      message: `entry ${seq}: ${r.error.issues[0]?.message ?? "invalid"}`,
    });
    return undefined;
  }
  const entry = r.data as Entry;
  if (encodeEntry(entry) !== Buffer.from(raw).toString("utf8"))
    report({ seq, kind: "ENTRY_NOT_CANONICAL", message: `entry ${seq} is not in JCS form` });
  if (entry.seq !== seq)
    report({
      seq,
      kind: "ENTRY_SEQ_MISMATCH",
      message: `entry stored at seq ${seq} says seq ${entry.seq}`,
    });
  if (logId !== null && entry.log !== logId)
    report({ seq, kind: "ENTRY_LOG_MISMATCH", message: `entry ${seq} names log ${entry.log}` });
  return entry;
}

/** A body as ingest writes it: `{"event":<JCS of the event>,"salt":"0x<64 hex>"}`. */
const BODY_HEAD = Buffer.from('{"event":');
const BODY_SALT = Buffer.from(',"salt":"');
const BODY_TAIL_BYTES = BODY_SALT.length + 66 + 2;

function checkBody(seq: number, commitment: Hex, raw: Buffer, report: (f: AuditFinding) => void) {
  // Fast path: slice the event's JCS text out of the stored layout and hash it as it is. A
  // match means these are the committed bytes (SHA-256 preimage resistance), so parsing and
  // re-canonicalising could only say the same; anything else is decided by the full check.
  const n = raw.length;
  const saltAt = n - BODY_TAIL_BYTES;
  if (
    saltAt > BODY_HEAD.length &&
    BODY_HEAD.compare(raw, 0, BODY_HEAD.length) === 0 &&
    BODY_SALT.compare(raw, saltAt, saltAt + BODY_SALT.length) === 0 &&
    raw[n - 2] === 0x22 &&
    raw[n - 1] === 0x7d
  ) {
    const saltHex = raw.toString("latin1", saltAt + BODY_SALT.length, n - 2);
    if (
      isHex32(saltHex) &&
      commitmentOfCanonical(fromHex(saltHex), raw.toString("utf8", BODY_HEAD.length, saltAt)) ===
        commitment
    )
      return;
  }
  checkBodyParsed(seq, commitment, raw, report);
}

/**
 * A body checked by parsing it: its event and salt (entry v2: and the field salts, the commitment
 * being over C(event), the event with its field digests; core/disclosure.ts), then the entry's
 * commitment over them.
 */
function checkBodyParsed(
  seq: number,
  commitment: Hex,
  raw: Buffer,
  report: (f: AuditFinding) => void,
  v2 = false,
): void {
  let body: BodyJson & { fieldSalts?: unknown };
  try {
    body = JSON.parse(raw.toString("utf8")) as BodyJson;
  } catch {
    report({ seq, kind: "BODY_MALFORMED", message: `body ${seq} is not JSON` });
    return;
  }
  if (
    typeof body !== "object" ||
    body === null ||
    !isHex32(body.salt) ||
    typeof body.event !== "object" ||
    body.event === null ||
    (v2 && (typeof body.fieldSalts !== "object" || body.fieldSalts === null))
  ) {
    report({
      seq,
      kind: "BODY_MALFORMED",
      message: v2
        ? `body ${seq} lacks an event object, a 32-byte salt or its field salts`
        : `body ${seq} lacks an event object or a 32-byte salt`,
    });
    return;
  }
  let committed: unknown = body.event;
  if (v2)
    try {
      committed = committedForm(body.event, body.fieldSalts as FieldSalts);
    } catch (e) {
      report({ seq, kind: "BODY_MALFORMED", message: `body ${seq}: ${(e as Error).message}` });
      return;
    }
  if (commitmentOfCanonical(fromHex(body.salt), jcs(committed)) !== commitment)
    report({
      seq,
      kind: "COMMITMENT_MISMATCH",
      message: `body ${seq} does not match the entry's commitment`,
    });
}

interface AuditedGroup {
  firstSeq: number;
  count: number;
  leaves: Buffer;
  tree: MerkleTree;
  pathsStored: boolean;
}

/** The `h:` record must be the `g:` record without its leaves, field for field. */
function sameGroupHeader(raw: Buffer, group: ReceiptGroupRecord): boolean {
  try {
    const header = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
    const { leafHashes: _leaves, ...expected } = group;
    return jcs(header) === jcs(expected);
  } catch {
    return false;
  }
}

/** An event's stored receipt path (`r:<seq>`): its group's firstSeq, then its audit path. */
function checkReceiptPath(
  seq: number,
  group: AuditedGroup,
  raw: Buffer | undefined,
  report: (f: AuditFinding) => void,
): void {
  if (raw === undefined) {
    if (group.pathsStored)
      report({
        seq,
        kind: "RECEIPT_PATH_MISSING",
        message: `no stored receipt path for seq ${seq}`,
      });
    return;
  }
  const index = seq - group.firstSeq;
  // The tree is built from the leaves actually stored (a tampered group may hold fewer).
  const ok =
    index < group.tree.size &&
    raw.equals(
      encodeReceiptPath(group.firstSeq, inclusionProofNodeIds(index, group.tree.size), group.tree),
    );
  if (!ok)
    report({
      seq,
      kind: "RECEIPT_PATH_MISMATCH",
      message: `the stored receipt path of seq ${seq} is not its path in the signed group tree`,
    });
}

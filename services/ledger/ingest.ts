import { randomBytes } from "node:crypto";
import {
  FIELD_SALT_BYTES,
  type FieldSalts,
  REDACTABLE_AGENT_FIELDS,
  committedForm,
  redactableValues,
} from "../core/disclosure.ts";
import type { NativeEvent } from "../core/event.ts";
import {
  type Entry,
  ENTRY_VERSION,
  type EntryVersion,
  type SubjectDerivation,
  SALT_BYTES,
  commitmentOfCanonical,
  encodeEntry,
  subjectTag,
} from "../core/entry.ts";
import { jcs } from "../core/jcs.ts";
import { type Hex, toHex } from "../core/hex.ts";
import { type MerkleTree, buildTree, inclusionProofNodeIds, leafHash } from "../core/merkle.ts";
import {
  RECEIPT_FORMAT,
  type Receipt,
  type ReceiptGroupMessage,
  type TypedDataSigner,
  signReceiptGroup,
} from "../core/receipt.ts";
import type { AppendRecord, BatchOp, LedgerStore } from "../store/ledger-store.ts";
import { decodeEntryOf } from "../store/record-codec.ts";
import {
  RECEIPT_PATH_HEADER_BYTES,
  type ReceiptGroupHeader,
  type ReceiptGroupRecord,
  decodeReceiptPath,
  encodeReceiptPath,
} from "../store/receipt-group-record.ts";
import { IdempotencyConflictError, invariant } from "./errors.ts";

/** One durable group commit as the sealer sees it. */
export interface CommittedGroup {
  firstSeq: number;
  leafHashes: readonly Uint8Array[];
  subjects: ReadonlyArray<Hex | null>;
}

export interface IngestResult {
  receipt: Receipt;
  /** True when an earlier request with the same (organization, requestId) was answered instead. */
  duplicate: boolean;
}

interface Pending {
  events: NativeEvent[];
  resolve: (receipts: Receipt[]) => void;
  reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  logId: Hex;
  logSecret: Uint8Array;
  subjectDerivation: SubjectDerivation;
  /** The recorded time of the last v2 entry stored (ms): the log clock never goes below it. */
  lastRecordedMs: number;
  /** The clock entry.recorded is read from (default: `now`). */
  logClock?: () => number;
  /** Entries of this version (default ENTRY_VERSION); 1 only to write old-format logs in tests. */
  entryVersion?: () => EntryVersion;
  signer: TypedDataSigner;
  signerAddress: string;
  anchorDeadlineMs: number;
  maxGroupEvents: number;
  /**
   * Called after each durable group write with the new next seq and what the sealer needs of
   * the group (its leaf hashes and subject tags), so sealing need not read it back.
   */
  onCommitted: (nextSeq: number, group: CommittedGroup) => void;
  now?: () => number;
}

/**
 * Group commit: callers that arrive while a synced write is in flight are queued and written
 * together in the next one. One fsync acknowledges the whole group, so durability costs one
 * disk flush per group rather than per event, and no event is acknowledged before it is on
 * disk (an asynchronous audit sink that drops its queue at shutdown is the classic failure).
 */
export class GroupCommitter {
  private queue: Pending[] = [];
  private draining: Promise<void> | null = null;
  private nextSeq: number;
  /**
   * (org, requestId) keys held by a call between its first look at the store and the durable
   * write of its events; resolves when that call is over, whatever its outcome.
   */
  private inFlightRequests = new Map<string, Promise<void>>();
  /** Events' JCS computed for the idempotency check, reused by the commit (not encoded twice). */
  private readonly canonicalOf = new WeakMap<NativeEvent, string>();
  /** Settles when no group write (or exclusive task) is in flight; see `exclusive`. */
  private writeLock: Promise<void> = Promise.resolve();
  private closed = false;
  private paused = false;
  private readonly headerCache = new Map<number, ReceiptGroupHeader>();

  private lastRecordedMs: number;

  constructor(
    private readonly store: LedgerStore,
    nextSeq: number,
    private readonly opts: GroupCommitOptions,
  ) {
    this.nextSeq = nextSeq;
    this.lastRecordedMs = opts.lastRecordedMs;
  }

  get pendingSeq(): number {
    return this.nextSeq;
  }

  /**
   * Accepts already-validated events and resolves once they are durable, in input order.
   *
   * Idempotency: an event with a `requestId` whose (organization, requestId) already names a
   * stored event is answered with that event's original receipt (`duplicate: true`) when it is
   * the same event — byte-equal JCS (RFC 8785) of the validated event, so key order, whitespace
   * and FHIR-vs-native input do not matter — and refused with IdempotencyConflictError
   * otherwise. The same rule holds between events of one call and between concurrent calls; a
   * call with a conflict stores none of its events.
   */
  async submit(events: NativeEvent[]): Promise<IngestResult[]> {
    if (this.closed) throw new Error("ledger is closed");
    // Without request ids there is nothing to deduplicate: every event is fresh, in order.
    if (!events.some((e) => e.requestId !== undefined)) {
      const written = this.enqueue(events);
      const receipts = await written;
      return receipts.map((receipt) => ({ receipt, duplicate: false }));
    }
    for (;;) {
      const results = await this.submitKeyed(events);
      if (results !== undefined) return results;
    }
  }

  /**
   * One attempt of `submit` for a call with request ids; undefined when another call held one of
   * its (organization, requestId) keys and has since finished: the caller tries again and then
   * finds that call's event stored (or not, if it failed).
   */
  private async submitKeyed(events: NativeEvent[]): Promise<IngestResult[] | undefined> {
    // Synchronous pass (no await until every key is claimed): repeats inside this call, and
    // keys another call holds. A concurrent call with the same key is waited for, not raced.
    const firstAt = new Map<string, number>();
    const canonical: Array<string | undefined> = new Array(events.length);
    const busy: Array<Promise<void>> = [];
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.requestId === undefined) continue;
      const key = requestKey(e.source.organization, e.requestId);
      const text = jcs(e);
      canonical[i] = text;
      this.canonicalOf.set(e, text);
      const earlier = firstAt.get(key);
      if (earlier === undefined) {
        firstAt.set(key, i);
        const held = this.inFlightRequests.get(key);
        if (held) busy.push(held);
      } else if (canonical[earlier] !== text) {
        throw new IdempotencyConflictError(i, e.requestId, undefined, earlier);
      }
    }
    if (busy.length > 0) {
      await Promise.all(busy);
      return undefined;
    }
    const done = latch();
    for (const key of firstAt.keys()) this.inFlightRequests.set(key, done.promise);
    try {
      const claimed = [...firstAt.values()];
      const storedSeqs = await Promise.all(
        claimed.map((i) => {
          const e = events[i]!;
          return this.store.findRequest(e.source.organization, e.requestId!);
        }),
      );
      const found = claimed.flatMap((i, k) => {
        const seq = storedSeqs[k];
        return seq === undefined ? [] : [{ index: i, seq }];
      });
      const bodies = await this.store.getBodies(found.map((f) => f.seq));
      found.forEach((f, k) => {
        const body = bodies[k];
        const requestId = events[f.index]!.requestId!;
        if (body === undefined || body.event === null)
          throw new IdempotencyConflictError(f.index, requestId, f.seq, undefined, true);
        if (jcs(body.event) !== canonical[f.index])
          throw new IdempotencyConflictError(f.index, requestId, f.seq);
      });
      const earlierReceipts = await this.receiptsFor(found.map((f) => f.seq));
      const byKey = new Map<string, { receipt: Receipt; duplicate: boolean }>();
      found.forEach((f, k) => {
        const e = events[f.index]!;
        byKey.set(requestKey(e.source.organization, e.requestId!), {
          receipt: earlierReceipts[k]!,
          duplicate: true,
        });
      });
      // Fresh: events without a request id, and the first use of each key not stored yet.
      const fresh: number[] = [];
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        if (e.requestId === undefined) fresh.push(i);
        else {
          const key = requestKey(e.source.organization, e.requestId);
          if (firstAt.get(key) === i && !byKey.has(key)) fresh.push(i);
        }
      }
      const written = fresh.length > 0 ? await this.enqueue(fresh.map((i) => events[i]!)) : [];
      const results: IngestResult[] = new Array(events.length);
      fresh.forEach((i, j) => {
        results[i] = { receipt: written[j]!, duplicate: false };
        const e = events[i]!;
        if (e.requestId !== undefined)
          byKey.set(requestKey(e.source.organization, e.requestId), {
            receipt: written[j]!,
            duplicate: true,
          });
      });
      for (let i = 0; i < events.length; i++) {
        if (results[i] !== undefined) continue;
        const e = events[i]!;
        results[i] = byKey.get(requestKey(e.source.organization, e.requestId!))!;
      }
      return results;
    } finally {
      // Released only once the write is durable (or failed): a call that waited on these keys
      // then reads the stored request index instead of racing this one.
      for (const key of firstAt.keys()) this.inFlightRequests.delete(key);
      done.resolve();
    }
  }

  /** Queues events for the next group commit; resolves with their receipts, in order. */
  private enqueue(events: NativeEvent[]): Promise<Receipt[]> {
    const written = new Promise<Receipt[]>((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
    });
    this.kick();
    return written;
  }

  /**
   * Runs `task` while no group is being written, holding later groups back until it is done:
   * erasure re-seals an epoch's bodies under a new key and must not race a group sealing
   * bodies of that epoch under the old one.
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.writeLock.then(task);
    this.writeLock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Waits for every queued event to be written. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /**
   * Holds back new group commits (callers queue, unacknowledged) and waits for the one being
   * written: afterwards nothing is written until `resume`. A backup pauses ingest this way
   * while it seals the tail and takes its snapshot.
   */
  async pause(): Promise<void> {
    this.paused = true;
    await this.flush();
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  private kick(): void {
    if (this.draining || this.paused) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.paused) {
      // One turn of the event loop before a group is cut: the callers whose events the last
      // group acknowledged submit their next ones in that turn and share this group's signature
      // and synced write, instead of trickling into groups of a few events each.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.paused) break;
      const group: Pending[] = [];
      let n = 0;
      // A single call larger than the limit still goes whole: splitting it would ack it twice.
      while (
        this.queue.length > 0 &&
        (n === 0 || n + this.queue[0]!.events.length <= this.opts.maxGroupEvents)
      ) {
        const p = this.queue.shift()!;
        group.push(p);
        n += p.events.length;
      }
      try {
        const receipts = await this.exclusive(() => this.commit(group.flatMap((p) => p.events)));
        let offset = 0;
        for (const p of group) {
          p.resolve(
            group.length === 1 ? receipts : receipts.slice(offset, offset + p.events.length),
          );
          offset += p.events.length;
        }
      } catch (error) {
        for (const p of group) p.reject(error);
      }
    }
  }

  private async commit(events: NativeEvent[]): Promise<Receipt[]> {
    const now = this.opts.now ?? Date.now;
    const firstSeq = this.nextSeq;
    // Body keys first: the events' ops are made (their bodies sealed) as the entries are built.
    await this.store.prepareAppend(firstSeq + events.length - 1);
    const ops: BatchOp[] = [];
    let records: AppendRecord[] = [];
    const leafHashes: Uint8Array[] = [];
    const entries: Entry[] = [];
    const salts = randomBytes(SALT_BYTES * events.length);
    // Field salts of the whole group from one draw too (a CSPRNG call per event cost more than
    // the 32 bytes it returned).
    const fieldSaltBytes = randomBytes(
      FIELD_SALT_BYTES * REDACTABLE_AGENT_FIELDS.length * countAgents(events),
    );
    let fieldSaltsTaken = 0;
    const takeFieldSalts = (n: number): Uint8Array => {
      const out = fieldSaltBytes.subarray(fieldSaltsTaken, fieldSaltsTaken + n);
      fieldSaltsTaken += n;
      invariant(out.length === n, "field salts drawn for every redactable value");
      return out;
    };
    // The log's own clock (entry v2): never what the writer sent, never going back in seq order,
    // so a writer cannot move an access out of an accounting period.
    const recordedMs = Math.max((this.opts.logClock ?? now)(), this.lastRecordedMs);
    this.lastRecordedMs = recordedMs;
    const recorded = new Date(recordedMs).toISOString();
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const salt = salts.subarray(i * SALT_BYTES, (i + 1) * SALT_BYTES);
      const eventJcs = this.canonicalOf.get(event) ?? jcs(event);
      const built = buildEntry(event, eventJcs, salt, takeFieldSalts, {
        version: this.opts.entryVersion?.() ?? ENTRY_VERSION,
        log: this.opts.logId,
        seq: firstSeq + i,
        recorded,
        subject: event.patient
          ? subjectTag(this.opts.logSecret, event.patient, this.opts.subjectDerivation)
          : null,
      });
      const { entry } = built;
      const entryBytes = Buffer.from(encodeEntry(entry), "utf8");
      entries.push(entry);
      leafHashes.push(leafHash(entryBytes));
      records.push({
        seq: entry.seq,
        entryBytes,
        bodyJson: built.bodyJson,
        subject: entry.subject,
        organization: event.source.organization,
        recordedMs: entry.v === 2 ? recordedMs : Date.parse(entry.recorded),
        requestId: event.requestId,
      });
      // Sealed into ops a slice at a time rather than all after the loop: a large group's
      // records (body texts) then die young instead of surviving, and being copied by, the
      // collections that building the group triggers.
      if (records.length === APPEND_SLICE) {
        for (const op of this.store.appendOps(records)) ops.push(op);
        records = [];
      }
    }
    for (const op of this.store.appendOps(records)) ops.push(op);
    const tree = buildTree(leafHashes);
    const issuedAt = now();
    const message: ReceiptGroupMessage = {
      log: this.opts.logId,
      firstSeq,
      count: events.length,
      leavesRoot: toHex(tree.root),
      issuedAt,
      anchorDeadline: issuedAt + this.opts.anchorDeadlineMs,
    };
    const signature = await signReceiptGroup(this.opts.signer, message);
    const header: ReceiptGroupHeader = {
      ...message,
      signer: this.opts.signerAddress,
      signature,
    };
    const group: ReceiptGroupRecord = {
      ...header,
      leafHashes: Buffer.concat(leafHashes).toString("base64"),
    };
    // Each event's group audit path, stored with it: re-issuing a receipt (proofs, patient
    // histories) is then one read instead of rebuilding a tree of up to 4,096 leaves.
    for (const op of this.store.receiptGroupOps(
      group,
      header,
      entries.map((_, i) => encodeReceiptPath(firstSeq, inclusionProofNodeIds(i, tree.size), tree)),
    ))
      ops.push(op);
    await this.store.write(ops, true);
    this.nextSeq = firstSeq + events.length;
    this.opts.onCommitted(this.nextSeq, {
      firstSeq,
      leafHashes,
      subjects: entries.map((e) => e.subject),
    });
    return groupReceipts(entries, group, tree);
  }

  /** Re-issues the receipt of an already stored event, byte for byte as first issued. */
  async receiptFor(seq: number): Promise<Receipt> {
    return (await this.receiptsFor([seq]))[0]!;
  }

  /**
   * Re-issues the receipts of stored events, byte for byte as first issued: each from its
   * entry, its stored group audit path and its group's header (a few batched reads in all).
   * Events written before paths were stored fall back to rebuilding their group's tree.
   */
  async receiptsFor(
    seqs: readonly number[],
    /** The events' entries, when the caller is reading them anyway (not read or parsed twice). */
    entriesRead?: Promise<Array<EntryRead | undefined>>,
  ): Promise<Receipt[]> {
    if (seqs.length === 0) return [];
    const [entries, paths] = await Promise.all([
      entriesRead ??
        this.store
          .getEntriesJcs([...seqs])
          .then((list) => list.map((jcs, i) => parseEntryRead(seqs[i]!, jcs))),
      this.store.getReceiptPaths(seqs),
    ]);
    const decoded = paths.map((raw) => (raw === undefined ? undefined : decodeReceiptPath(raw)));
    const headers = await this.groupHeaders(
      decoded.flatMap((d) => (d === undefined ? [] : [d.firstSeq])),
    );
    // Receipts of one group share their times: formatted once per group, not per receipt.
    const times = new Map<number, ReceiptTimes>();
    return Promise.all(
      seqs.map(async (seq, i) => {
        const read = entries[i];
        invariant(read !== undefined, `seq ${seq} has an entry`);
        const { jcs: entryJcs, entry } = read;
        const stored = decoded[i];
        const header = stored && headers.get(stored.firstSeq);
        if (stored === undefined || header === undefined) {
          const group = await this.store.getGroupContaining(seq);
          invariant(group !== undefined, `seq ${seq} has a receipt group`);
          return receiptFromGroup(entry, group);
        }
        let t = times.get(header.firstSeq);
        if (t === undefined) times.set(header.firstSeq, (t = receiptTimes(header)));
        const raw = paths[i]!;
        const path: Hex[] = [];
        for (let at = RECEIPT_PATH_HEADER_BYTES; at < raw.length; at += 32)
          path.push(`0x${raw.toString("hex", at, at + 32)}`);
        return buildReceipt(entry, toHex(leafHash(Buffer.from(entryJcs, "utf8"))), header, path, t);
      }),
    );
  }

  /** Group headers by firstSeq, from a small cache (neighbouring events share a group). */
  private async groupHeaders(firstSeqs: number[]): Promise<Map<number, ReceiptGroupHeader>> {
    const out = new Map<number, ReceiptGroupHeader>();
    const missing: number[] = [];
    for (const f of new Set(firstSeqs)) {
      const cached = this.headerCache.get(f);
      if (cached) out.set(f, cached);
      else missing.push(f);
    }
    const headers = await this.store.getGroupHeaders(missing);
    missing.forEach((f, i) => {
      const header = headers[i];
      if (header === undefined) return;
      out.set(f, header);
      if (this.headerCache.size >= HEADER_CACHE_GROUPS) this.headerCache.clear();
      this.headerCache.set(f, header);
    });
    return out;
  }
}

/**
 * One event's entry and stored body. Version 2 (DESIGN.md "Entry v2"): a 16-byte field salt per
 * redactable value (staff identity in `agents[i]`), the commitment over the committed form
 * C(event) with those values behind their digests, and the field salts stored with the body so
 * bundles can disclose or withhold each value. Version 1: the commitment over the event itself
 * and `recorded` as the writer sent it (old-format logs, written by tests only).
 */
export function buildEntry(
  event: NativeEvent,
  eventJcs: string,
  salt: Uint8Array,
  /** `n` random bytes for the field salts (a slice of one draw for the whole group). */
  random: (n: number) => Uint8Array,
  e: { version: EntryVersion; log: Hex; seq: number; recorded: string; subject: Hex | null },
): { entry: Entry; bodyJson: string } {
  const saltHex = toHex(salt);
  if (e.version === 1) {
    return {
      entry: {
        v: 1,
        log: e.log,
        seq: e.seq,
        recorded: event.recorded,
        commitment: commitmentOfCanonical(salt, eventJcs),
        subject: e.subject,
      },
      bodyJson: `{"event":${eventJcs},"salt":"${saltHex}"}`,
    };
  }
  const values = redactableValues(event);
  const bytes = random(FIELD_SALT_BYTES * values.length);
  const fieldSalts: FieldSalts = {};
  values.forEach(({ pointer }, k) => {
    fieldSalts[pointer] = toHex(bytes.subarray(k * FIELD_SALT_BYTES, (k + 1) * FIELD_SALT_BYTES));
  });
  return {
    entry: {
      v: 2,
      log: e.log,
      seq: e.seq,
      recorded: e.recorded,
      commitment: commitmentOfCanonical(salt, jcs(committedForm(event, fieldSalts))),
      subject: e.subject,
    },
    bodyJson: `{"event":${eventJcs},"salt":"${saltHex}","fieldSalts":${JSON.stringify(fieldSalts)}}`,
  };
}

const HEADER_CACHE_GROUPS = 4_096;

/** Events whose bodies are sealed into ops at a time while a group is built. */
const APPEND_SLICE = 256;

/** Agents in all of `events`: each has at most one value per redactable field. */
function countAgents(events: readonly NativeEvent[]): number {
  let n = 0;
  for (const e of events) n += e.agents.length;
  return n;
}

/** An entry as stored (JCS) and parsed. */
export interface EntryRead {
  jcs: string;
  entry: Entry;
}

/** Entry `seq` as read (JCS text) and decoded; StoreCorruptError when it does not decode. */
export function parseEntryRead(seq: number, jcs: string | undefined): EntryRead | undefined {
  return jcs === undefined ? undefined : { jcs, entry: decodeEntryOf(seq, jcs) };
}

export function receiptFromGroup(entry: Entry, group: ReceiptGroupRecord): Receipt {
  const all = Buffer.from(group.leafHashes, "base64");
  const leafHashes: Uint8Array[] = [];
  for (let i = 0; i < group.count; i++) leafHashes.push(all.subarray(i * 32, (i + 1) * 32));
  const tree = buildTree(leafHashes);
  const index = entry.seq - group.firstSeq;
  return buildReceipt(
    entry,
    toHex(leafHashes[index]!),
    group,
    tree.inclusionProof(index).map(toHex),
    receiptTimes(group),
  );
}

/**
 * Every receipt of a group at once. Audit paths of neighbouring leaves share most of their
 * nodes, so each tree node is hex-encoded once and shared, not once per receipt that cites it
 * (about log2(n) encodings per receipt otherwise: the bulk of a group's garbage).
 */
function groupReceipts(
  entries: readonly Entry[],
  group: ReceiptGroupRecord,
  tree: MerkleTree,
): Receipt[] {
  const hexLevels: Array<Array<Hex | undefined>> = tree.levels.map(
    (level) => new Array<Hex | undefined>(level.length),
  );
  const hexOf = (level: number, index: number): Hex => {
    const row = hexLevels[level]!;
    return (row[index] ??= toHex(tree.levels[level]![index]!));
  };
  const times = receiptTimes(group);
  return entries.map((entry, i) =>
    buildReceipt(
      entry,
      hexOf(0, i),
      group,
      // Recomputed (arithmetic) rather than kept from before the write: ~12 objects an event
      // that would otherwise live through the write.
      inclusionProofNodeIds(i, tree.size).map((id) => hexOf(id.level, id.index)),
      times,
    ),
  );
}

interface ReceiptTimes {
  anchorDeadline: string;
  issuedAt: string;
}

function receiptTimes(group: ReceiptGroupHeader): ReceiptTimes {
  return {
    anchorDeadline: new Date(group.anchorDeadline).toISOString(),
    issuedAt: new Date(group.issuedAt).toISOString(),
  };
}

function buildReceipt(
  entry: Entry,
  leaf: Hex,
  group: ReceiptGroupHeader,
  path: Hex[],
  times: ReceiptTimes,
): Receipt {
  return {
    format: RECEIPT_FORMAT,
    log: entry.log,
    seq: entry.seq,
    leafHash: leaf,
    recorded: entry.recorded,
    anchorDeadline: times.anchorDeadline,
    issuedAt: times.issuedAt,
    group: { firstSeq: group.firstSeq, count: group.count, leavesRoot: group.leavesRoot, path },
    signer: group.signer,
    signature: group.signature,
  };
}

/** A promise and the function that resolves it. */
function latch(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => (resolve = res));
  return { promise, resolve };
}

function requestKey(org: string, requestId: string): string {
  return `${org}\u0000${requestId}`;
}

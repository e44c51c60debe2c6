import { timingSafeEqual } from "node:crypto";
import type { NativeEvent } from "../core/event.ts";
import { hmacSha256 } from "../core/hash.ts";
import { fromHex, utf8 } from "../core/hex.ts";
import { LedgerError } from "./errors.ts";
import type { Ledger, StoredEvent } from "./ledger.ts";

/**
 * Read use cases behind the API's event listing: filters, access checks by index, and opaque
 * cursors. Scope (a writer's organization, a patient's subjectTag) arrives here as a filter,
 * so the store's indexes decide what a caller can see.
 */

export interface EventFilter {
  /** Source organization (the institution that logged the event). */
  organization?: string;
  /** Keyed subject tag of one patient (0x hex). */
  subject?: string;
  /** Recorded at or after, ms since the epoch. */
  fromMs?: number;
  /** Recorded before, ms since the epoch. */
  toMs?: number;
  /** v3 ActReason code, on the event or on any agent. */
  purpose?: string;
  /** Event type code or subtype code (e.g. `rest`, `read`, `110106`). */
  type?: string;
}

export interface EventPage {
  events: StoredEvent[];
  /** Pass back as `cursor` for the next page; null when there is nothing more. */
  nextCursor: string | null;
}

export const MAX_PAGE_LIMIT = 1_000;
/** At most this many indexed events are examined per page, so a sparse filter cannot pin a request. */
export const SCAN_BUDGET = 10_000;
/** Upper bound of the time index range (msPart is 14 digits wide). */
const MAX_INDEX_MS = 99_999_999_999_999;

type Position = { seq: number } | { ms: number; seq: number };

interface CursorPayload {
  v: 1;
  /** Digest of the filter the cursor belongs to: a cursor cannot be replayed under another. */
  f: string;
  p: Position;
}

export class EventQueries {
  private readonly cursorKey: Uint8Array;

  constructor(
    private readonly ledger: Ledger,
    private readonly scanBudget: number = SCAN_BUDGET,
  ) {
    // Derived from the log secret, domain-separated from subject tags (their input always holds
    // a "|", this label does not), so no cursor MAC can equal a patient's tag.
    this.cursorKey = hmacSha256(fromHex(ledger.meta.logSecret), utf8("veritrail/api-cursor/1"));
  }

  /** True while the ledger's database is open (readiness). */
  isOpen(): boolean {
    return this.ledger.store.isOpen;
  }

  /** Whether `seq` is in the organization's / subject's index (works for erased events too). */
  async isInScope(
    seq: number,
    scope: { organization?: string; subject?: string },
  ): Promise<boolean> {
    return this.ledger.store.isIndexed(seq, scope);
  }

  async listEvents(
    filter: EventFilter,
    page: { cursor?: string | undefined; limit: number },
  ): Promise<EventPage> {
    const digest = this.filterDigest(filter);
    let position = page.cursor === undefined ? undefined : this.decodeCursor(page.cursor, digest);
    const limit = Math.min(Math.max(1, page.limit), MAX_PAGE_LIMIT);
    const events: StoredEvent[] = [];
    let examined = 0;
    while (events.length < limit) {
      if (examined >= this.scanBudget) {
        return { events, nextCursor: position ? this.encodeCursor(digest, position) : null };
      }
      const want = Math.min(Math.max(limit * 2, 64), this.scanBudget - examined);
      const positions = await this.nextPositions(filter, position, want);
      if (positions.length === 0) return { events, nextCursor: null };
      examined += positions.length;
      const stored = await this.ledger.getEvents(positions.map((p) => p.seq));
      for (let i = 0; i < stored.length; i++) {
        position = positions[i]!;
        const event = stored[i]!;
        if (matches(event, filter)) {
          events.push(event);
          if (events.length === limit) {
            const exhausted = positions.length < want && i === stored.length - 1;
            return { events, nextCursor: exhausted ? null : this.encodeCursor(digest, position) };
          }
        }
      }
      if (positions.length < want) return { events, nextCursor: null };
    }
    return { events, nextCursor: null };
  }

  /** The next candidate positions from the most selective index the filter allows. */
  private async nextPositions(
    filter: EventFilter,
    after: Position | undefined,
    limit: number,
  ): Promise<Position[]> {
    const store = this.ledger.store;
    const afterSeq = after?.seq;
    const bySeq = (seqs: number[]) => seqs.map((seq) => ({ seq }));
    if (filter.subject !== undefined) {
      return bySeq(await store.seqsBySubject(filter.subject, { ...seqOpt(afterSeq), limit }));
    }
    if (filter.organization !== undefined) {
      return bySeq(await store.seqsByOrg(filter.organization, { ...seqOpt(afterSeq), limit }));
    }
    if (filter.fromMs !== undefined || filter.toMs !== undefined) {
      const fromMs = filter.fromMs ?? 0;
      const toMs = Math.min(filter.toMs ?? MAX_INDEX_MS, MAX_INDEX_MS);
      if (toMs <= fromMs) return [];
      const opts: Parameters<typeof store.seqsByTime>[0] = { fromMs, toMs, limit };
      if (after !== undefined && "ms" in after) opts.after = after;
      return store.seqsByTime(opts);
    }
    const first = afterSeq === undefined ? 0 : afterSeq + 1;
    const out: Position[] = [];
    for (let seq = first; seq < this.ledger.nextSeq && out.length < limit; seq++) {
      // Seqs of a range lost in a restore hold nothing (lost-ranges.ts): step over them.
      const lost = this.ledger.lostRangeAt(seq);
      if (lost) seq = lost.firstSeq + lost.count - 1;
      else out.push({ seq });
    }
    return out;
  }

  private filterDigest(filter: EventFilter): string {
    const canonical = JSON.stringify([
      filter.organization ?? null,
      filter.subject ?? null,
      filter.fromMs ?? null,
      filter.toMs ?? null,
      filter.purpose ?? null,
      filter.type ?? null,
    ]);
    return Buffer.from(hmacSha256(this.cursorKey, utf8(canonical)))
      .toString("base64url")
      .slice(0, 22);
  }

  private encodeCursor(filterDigest: string, position: Position): string {
    const payload: CursorPayload = { v: 1, f: filterDigest, p: position };
    const body = Buffer.from(JSON.stringify(payload), "utf8").toString("base64url");
    return `${body}.${this.mac(body).toString("base64url")}`;
  }

  /** A cursor is ours, unmodified and issued for this very filter, or it is BAD_CURSOR. */
  private decodeCursor(cursor: string, filterDigest: string): Position {
    const bad = (why: string) => new LedgerError("BAD_CURSOR", `invalid cursor: ${why}`, "cursor");
    const parts = cursor.split(".");
    if (cursor.length > 512 || parts.length !== 2) throw bad("malformed");
    const [body, tag] = parts as [string, string];
    const given = Buffer.from(tag, "base64url");
    const expected = this.mac(body);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw bad("not issued by this log or modified");
    let payload: CursorPayload;
    try {
      payload = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as CursorPayload;
    } catch {
      throw bad("malformed");
    }
    if (payload.v !== 1 || payload.f !== filterDigest) throw bad("issued for a different filter");
    return payload.p;
  }

  private mac(body: string): Buffer {
    return Buffer.from(hmacSha256(this.cursorKey, utf8(body)));
  }
}

function seqOpt(afterSeq: number | undefined): { afterSeq?: number } {
  return afterSeq === undefined ? {} : { afterSeq };
}

function matches(stored: StoredEvent, filter: EventFilter): boolean {
  const ms = Date.parse(stored.entry.recorded);
  if (filter.fromMs !== undefined && ms < filter.fromMs) return false;
  if (filter.toMs !== undefined && ms >= filter.toMs) return false;
  const e = stored.event;
  const needsBody =
    filter.purpose !== undefined || filter.type !== undefined || filter.organization !== undefined;
  if (!needsBody) return true;
  // An erased event has no body left to match against; its index keys decide scope elsewhere.
  if (e === null) return filter.purpose === undefined && filter.type === undefined;
  if (filter.organization !== undefined && e.source.organization !== filter.organization)
    return false;
  if (filter.purpose !== undefined && !hasPurpose(e, filter.purpose)) return false;
  if (
    filter.type !== undefined &&
    e.type.code !== filter.type &&
    !e.subtype.some((s) => s.code === filter.type)
  )
    return false;
  return true;
}

function hasPurpose(e: NativeEvent, purpose: string): boolean {
  return (
    e.purposeOfUse.includes(purpose) ||
    e.agents.some((a) => a.purposeOfUse?.includes(purpose) === true)
  );
}

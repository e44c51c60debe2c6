import type { Bundle } from "../core/bundle.ts";
import type { StaffIdentity } from "./access.ts";
import type { Ledger } from "./ledger.ts";
import type { EventFilter, EventQueries } from "./queries.ts";

/**
 * The regulator's export: every event matching the filter as its `veritrail-proof/1` bundle,
 * in log order (or time order for a time-only filter). Pages are read one at a time and each
 * bundle is handed out before the next is built, so memory stays bounded by one page whatever
 * the size of the log; the consumer's pace (HTTP backpressure) sets the pace of the reads.
 */
export const EXPORT_PAGE = 500;

export interface ExportFilter {
  organization?: string;
  fromMs?: number;
  toMs?: number;
}

/**
 * `staffIdentity` is what the access policy says the caller is shown (services/ledger/access.ts):
 * an auditor sees staff identity; withheld values stay as their digests and still verify.
 */
export async function* exportBundles(
  ledger: Pick<Ledger, "prove">,
  queries: Pick<EventQueries, "listEvents">,
  filter: ExportFilter,
  opts: { staffIdentity: StaffIdentity },
): AsyncGenerator<Bundle> {
  const f: EventFilter = {};
  if (filter.organization !== undefined) f.organization = filter.organization;
  if (filter.fromMs !== undefined) f.fromMs = filter.fromMs;
  if (filter.toMs !== undefined) f.toMs = filter.toMs;
  let cursor: string | undefined;
  for (;;) {
    const page = await queries.listEvents(
      f,
      cursor === undefined ? { limit: EXPORT_PAGE } : { cursor, limit: EXPORT_PAGE },
    );
    for (const stored of page.events) yield await ledger.prove(stored.seq, opts);
    if (page.nextCursor === null) return;
    cursor = page.nextCursor;
  }
}

/**
 * The console's figures from the facts of one log's verified bundles (web/regulator/facts.ts),
 * for a period, a set of organizations and working hours; and the merge of several logs'
 * figures into one ("all logs together"). Pure: the worker computes a log's figures next to its
 * facts, the page merges and draws them, and unit tests check the counts.
 */
import type { VerdictStatus } from "../../services/verifier/verdict.ts";
import {
  ACTION_LABELS,
  type BatchFacts,
  type EventFacts,
  NONE,
  type TransferFact,
  purposeLabel,
} from "./facts.ts";
import { type WorkingHours, ZoneClock, isAfterHours } from "./zone-clock.ts";

export interface FigureQuery {
  /** First and last local day (YYYY-MM-DD, inclusive) in the working hours' zone; open when absent. */
  fromDay?: string;
  toDay?: string;
  /** Organizations to count; all when absent or empty. */
  organizations?: string[];
  /** Count only events whose bundle verified (verified or erased). */
  verifiedOnly?: boolean;
  hours: WorkingHours;
  /** Distinct patients at or above which a staff account is flagged. */
  staffThreshold: number;
  /** Rows of each list the answer carries (the totals are always whole); all when absent. */
  listLimit?: number;
}

export interface Count {
  key: string;
  label: string;
  count: number;
}

/** One event in a list (break-glass, after hours), with what a reviewer reads. */
export interface EventRow {
  /** Which log (index of the log in the console), for the link to its proof. */
  log: number;
  seq: number;
  /** ISO time (UTC) and the same in the chosen zone. */
  recorded: string;
  local: string;
  organization: string;
  staff: string;
  action: string;
  purposes: string;
  categories: string;
  status: VerdictStatus;
  code?: string;
}

/**
 * A bundle that did not verify (failed, or could not be checked), or a line that is no bundle.
 * What such a bundle claims (organization, time) is not shown with it: nothing vouches for it.
 */
export interface FailureRow {
  log: number;
  /** Null for a line that is not a bundle. */
  seq: number | null;
  /** The line of the export, for a line that is not a bundle. */
  line: number | null;
  code: string;
  step: string;
  reason: string;
}

export interface StaffRow {
  log: number;
  /** who.value, and who.system: the identity provider. */
  account: string;
  system: string;
  label: string;
  organization: string;
  distinctPatients: number;
  accesses: number;
  overThreshold: boolean;
}

export interface TransferRow extends TransferFact {
  log: number;
  seq: number;
  recorded: string;
  status: VerdictStatus;
  code?: string;
  /** Whether the side falls in the period and organizations asked for. */
  inFilter: boolean;
}

export interface BatchRow extends BatchFacts {
  log: number;
  /** Blocks on top of the anchoring block, itself included, at the head the run read. */
  confirmations: number | null;
  /** Events of the batch counted by the filter. */
  inFilter: number;
  state: "anchored" | "pending" | "discrepancy" | "incomplete";
}

export type VerdictCounts = Record<VerdictStatus, number> & {
  total: number;
  /** Failed and error verdicts by their first code. */
  byCode: Record<string, number>;
};

export interface Figures {
  /** Events counted (after the filter). */
  events: number;
  perDay: { days: string[]; series: Array<{ organization: string; counts: number[] }> };
  purposes: Count[];
  actions: Count[];
  categories: Count[];
  breakGlass: { total: number; rows: EventRow[] };
  afterHours: { total: number; rows: EventRow[] };
  staff: {
    accounts: number;
    overThreshold: number;
    /** Events whose requesting staff identity is withheld: not attributable to an account. */
    withheldEvents: number;
    rows: StaffRow[];
  };
  transfers: TransferRow[];
  batches: BatchRow[];
  /** Seq ranges missing between the first and the last seq of the export. */
  gaps: Array<{ log: number; from: number; to: number }>;
  verdicts: VerdictCounts;
  failures: { total: number; rows: FailureRow[] };
  /** Every organization and the first/last local day in the log, whatever the filter. */
  organizations: string[];
  firstDay: string | null;
  lastDay: string | null;
}

/** The chain head the run read, for confirmations. */
export interface LogFacts {
  log: number;
  facts: readonly EventFacts[];
  batches: ReadonlyMap<number, BatchFacts>;
  head: number | null;
  /** Lines that were not bundles (BUNDLE_MALFORMED): counted in the summary and listed. */
  malformed: ReadonlyArray<{ line: number; reason: string }>;
  /** What each data category code is called. */
  categoryLabels: ReadonlyMap<string, string>;
}

interface StaffTally {
  id: string;
  system: string;
  label: string;
  organization: string;
  /** Subject tags seen: distinct patients, never their identifiers. */
  patients: Set<string>;
  accesses: number;
}

const STATUSES: VerdictStatus[] = ["verified", "erased", "withheld", "pending", "failed", "error"];

export function emptyVerdicts(): VerdictCounts {
  return {
    total: 0,
    verified: 0,
    erased: 0,
    withheld: 0,
    pending: 0,
    failed: 0,
    error: 0,
    byCode: {},
  };
}

function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

function sortedCounts(map: Map<string, number>, label: (key: string) => string): Count[] {
  return [...map]
    .map(([key, count]) => ({ key, label: label(key), count }))
    .sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
}

/** Every local day from `first` to `last`, inclusive (calendar arithmetic in UTC on the labels). */
export function daysBetween(first: string, last: string): string[] {
  const out: string[] = [];
  const end = Date.parse(`${last}T00:00:00Z`);
  for (let t = Date.parse(`${first}T00:00:00Z`); t <= end; t += 86_400_000)
    out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

/** The figures of one log. */
export function logFigures(input: LogFacts, q: FigureQuery): Figures {
  const clock = new ZoneClock(q.hours.zone);
  const orgFilter = q.organizations && q.organizations.length > 0 ? new Set(q.organizations) : null;
  const limit = q.listLimit ?? Number.POSITIVE_INFINITY;
  const organizations = new Set<string>();
  let firstDay: string | null = null;
  let lastDay: string | null = null;

  const perDay = new Map<string, Map<string, number>>();
  const purposes = new Map<string, number>();
  const actions = new Map<string, number>();
  const categories = new Map<string, number>();
  const breakGlass: EventRow[] = [];
  const afterHours: EventRow[] = [];
  let breakGlassTotal = 0;
  let afterHoursTotal = 0;
  const staff = new Map<string, StaffTally>();
  let staffWithheldEvents = 0;
  const verdicts = emptyVerdicts();
  const failures: FailureRow[] = [];
  let failuresTotal = 0;
  const transfers: TransferRow[] = [];
  const inFilterByBatch = new Map<number, number>();
  let events = 0;

  const row = (f: EventFacts, local: string): EventRow => ({
    log: input.log,
    seq: f.seq,
    recorded: new Date(f.t).toISOString(),
    local,
    organization: f.organization,
    staff: f.staff.map((s) => s.label).join(", ") || (f.staffWithheld > 0 ? "(withheld)" : ""),
    action: f.action,
    purposes: f.purposes.join(", "),
    categories: f.categories.map((c) => input.categoryLabels.get(c) ?? c).join(", "),
    status: f.status,
    ...(f.code !== undefined ? { code: f.code } : {}),
  });

  for (const f of input.facts) {
    const local = clock.local(f.t);
    organizations.add(f.organization);
    if (firstDay === null || local.day < firstDay) firstDay = local.day;
    if (lastDay === null || local.day > lastDay) lastDay = local.day;
    const inPeriod =
      (q.fromDay === undefined || local.day >= q.fromDay) &&
      (q.toDay === undefined || local.day <= q.toDay);
    const inOrgs = orgFilter === null || orgFilter.has(f.organization);
    const verifiedEnough = !q.verifiedOnly || f.status === "verified" || f.status === "erased";
    const counted = inPeriod && inOrgs && verifiedEnough;
    if (f.transfer)
      transfers.push({
        ...f.transfer,
        log: input.log,
        seq: f.seq,
        recorded: new Date(f.t).toISOString(),
        status: f.status,
        ...(f.code !== undefined ? { code: f.code } : {}),
        inFilter: counted,
      });
    if (!counted) continue;
    events++;
    verdicts.total++;
    verdicts[f.status]++;
    if (f.code !== undefined && (f.status === "failed" || f.status === "error")) {
      verdicts.byCode[f.code] = (verdicts.byCode[f.code] ?? 0) + 1;
      failuresTotal++;
      if (failures.length < limit)
        failures.push({
          log: input.log,
          seq: f.seq,
          line: null,
          code: f.code,
          step: f.step ?? "",
          reason: f.reason ?? "",
        });
    }
    if (f.batchNo !== null)
      inFilterByBatch.set(f.batchNo, (inFilterByBatch.get(f.batchNo) ?? 0) + 1);

    let day = perDay.get(local.day);
    if (!day) perDay.set(local.day, (day = new Map()));
    bump(day, f.organization);
    if (f.purposes.length === 0) bump(purposes, NONE);
    for (const p of f.purposes) bump(purposes, p);
    bump(actions, f.action);
    if (f.categories.length === 0) bump(categories, NONE);
    for (const c of f.categories) bump(categories, c);

    if (f.breakGlass) {
      breakGlassTotal++;
      if (breakGlass.length < limit) breakGlass.push(row(f, clock.text(f.t)));
    }
    if (isAfterHours(local, q.hours)) {
      afterHoursTotal++;
      if (afterHours.length < limit) afterHours.push(row(f, clock.text(f.t)));
    }
    if (f.staffWithheld > 0) staffWithheldEvents++;
    for (const s of f.staff) {
      let account = staff.get(s.key);
      if (!account) {
        account = {
          id: s.id,
          system: s.system,
          label: s.label,
          organization: s.organization,
          patients: new Set(),
          accesses: 0,
        };
        staff.set(s.key, account);
      }
      account.accesses++;
      if (f.subject !== null) account.patients.add(f.subject);
    }
  }
  // Lines that were not bundles have no time or organization: counted whatever the filter, so
  // the summary never hides them.
  for (const m of input.malformed) {
    verdicts.total++;
    verdicts.failed++;
    verdicts.byCode["BUNDLE_MALFORMED"] = (verdicts.byCode["BUNDLE_MALFORMED"] ?? 0) + 1;
    failuresTotal++;
    if (failures.length < limit)
      failures.push({
        log: input.log,
        seq: null,
        line: m.line,
        code: "BUNDLE_MALFORMED",
        step: "shape",
        reason: m.reason,
      });
  }

  // Every day of the period, those without accesses too: a time axis with gaps would mislead.
  const counted = [...perDay.keys()].sort();
  const days = counted.length > 0 ? daysBetween(counted[0]!, counted[counted.length - 1]!) : [];
  const orgsShown = [...new Set([...perDay.values()].flatMap((m) => [...m.keys()]))].sort();
  const series = orgsShown.map((organization) => ({
    organization,
    counts: days.map((d) => perDay.get(d)?.get(organization) ?? 0),
  }));

  const staffRows: StaffRow[] = [...staff]
    .map(([, a]) => ({
      log: input.log,
      account: a.id,
      system: a.system,
      label: a.label,
      organization: a.organization,
      distinctPatients: a.patients.size,
      accesses: a.accesses,
      overThreshold: a.patients.size >= q.staffThreshold,
    }))
    .sort(byStaffRank);

  return {
    events,
    perDay: { days, series },
    purposes: sortedCounts(purposes, (k) => (k === NONE ? NONE : purposeLabel(k))),
    actions: sortedCounts(actions, (k) => ACTION_LABELS[k] ?? k),
    categories: sortedCounts(categories, (k) => input.categoryLabels.get(k) ?? k),
    breakGlass: { total: breakGlassTotal, rows: breakGlass },
    afterHours: { total: afterHoursTotal, rows: afterHours },
    staff: {
      accounts: staffRows.length,
      overThreshold: staffRows.filter((r) => r.overThreshold).length,
      withheldEvents: staffWithheldEvents,
      rows: staffRows.slice(0, Math.min(limit, staffRows.length)),
    },
    transfers,
    batches: batchRows(input, inFilterByBatch),
    gaps: seqGaps(input),
    verdicts,
    failures: { total: failuresTotal, rows: failures },
    organizations: [...organizations].sort(),
    firstDay,
    lastDay,
  };
}

function byStaffRank(a: StaffRow, b: StaffRow): number {
  return (
    b.distinctPatients - a.distinctPatients ||
    b.accesses - a.accesses ||
    a.label.localeCompare(b.label) ||
    a.account.localeCompare(b.account) ||
    a.system.localeCompare(b.system)
  );
}

function batchRows(input: LogFacts, inFilter: ReadonlyMap<number, number>): BatchRow[] {
  return [...input.batches.values()]
    .sort((a, b) => a.batchNo - b.batchNo)
    .map((b) => {
      const pending = (b.statuses.pending ?? 0) > 0 || b.anchor === null;
      const state: BatchRow["state"] =
        b.chainCodes.length > 0
          ? "discrepancy"
          : pending
            ? "pending"
            : b.seen !== b.count
              ? "incomplete"
              : "anchored";
      return {
        ...b,
        statuses: { ...b.statuses },
        chainCodes: [...b.chainCodes],
        log: input.log,
        confirmations:
          b.anchor !== null && input.head !== null ? input.head - b.anchor.blockNumber + 1 : null,
        inFilter: inFilter.get(b.batchNo) ?? 0,
        state,
      };
    });
}

/** Missing seqs between the lowest and the highest seq seen (an export of a whole log has none). */
function seqGaps(input: LogFacts): Array<{ log: number; from: number; to: number }> {
  const seqs = input.facts.map((f) => f.seq).sort((a, b) => a - b);
  const gaps: Array<{ log: number; from: number; to: number }> = [];
  for (let i = 1; i < seqs.length; i++) {
    const prev = seqs[i - 1]!;
    const cur = seqs[i]!;
    if (cur > prev + 1) gaps.push({ log: input.log, from: prev + 1, to: cur - 1 });
  }
  return gaps;
}

function mergeCounts(lists: Count[][]): Count[] {
  const sum = new Map<string, Count>();
  for (const list of lists)
    for (const c of list) {
      const known = sum.get(c.key);
      if (known) known.count += c.count;
      else sum.set(c.key, { ...c });
    }
  return [...sum.values()].sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
}

function byTime(a: EventRow, b: EventRow): number {
  return a.recorded.localeCompare(b.recorded) || a.log - b.log || a.seq - b.seq;
}

/**
 * Several logs' figures as one: counts add up, lists interleave in time order (each log's list
 * was cut at `listLimit`, so the merged one is cut there again), staff accounts stay per log
 * (subject tags are keyed per log, so the same patient in two logs cannot be recognised).
 */
export function mergeFigures(all: Figures[], listLimit = Number.POSITIVE_INFINITY): Figures {
  if (all.length === 1) return all[0]!;
  const dayList = [...new Set(all.flatMap((f) => f.perDay.days))].sort();
  const days = dayList.length > 0 ? daysBetween(dayList[0]!, dayList[dayList.length - 1]!) : [];
  const perOrg = new Map<string, number[]>();
  for (const f of all) {
    const index = new Map(f.perDay.days.map((d, i) => [d, i]));
    for (const s of f.perDay.series) {
      let counts = perOrg.get(s.organization);
      if (!counts) perOrg.set(s.organization, (counts = days.map(() => 0)));
      days.forEach((d, i) => {
        const at = index.get(d);
        if (at !== undefined) counts![i]! += s.counts[at] ?? 0;
      });
    }
  }
  const verdicts = emptyVerdicts();
  for (const f of all) {
    verdicts.total += f.verdicts.total;
    for (const s of STATUSES) verdicts[s] += f.verdicts[s];
    for (const [code, n] of Object.entries(f.verdicts.byCode))
      verdicts.byCode[code] = (verdicts.byCode[code] ?? 0) + n;
  }
  const staffRows = all.flatMap((f) => f.staff.rows).sort(byStaffRank);
  const firsts = all
    .map((f) => f.firstDay)
    .filter((d): d is string => d !== null)
    .sort();
  const lasts = all
    .map((f) => f.lastDay)
    .filter((d): d is string => d !== null)
    .sort();
  return {
    events: all.reduce((n, f) => n + f.events, 0),
    perDay: {
      days,
      series: [...perOrg]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([organization, counts]) => ({ organization, counts })),
    },
    purposes: mergeCounts(all.map((f) => f.purposes)),
    actions: mergeCounts(all.map((f) => f.actions)),
    categories: mergeCounts(all.map((f) => f.categories)),
    breakGlass: {
      total: all.reduce((n, f) => n + f.breakGlass.total, 0),
      rows: all
        .flatMap((f) => f.breakGlass.rows)
        .sort(byTime)
        .slice(0, listLimit),
    },
    afterHours: {
      total: all.reduce((n, f) => n + f.afterHours.total, 0),
      rows: all
        .flatMap((f) => f.afterHours.rows)
        .sort(byTime)
        .slice(0, listLimit),
    },
    staff: {
      accounts: all.reduce((n, f) => n + f.staff.accounts, 0),
      overThreshold: all.reduce((n, f) => n + f.staff.overThreshold, 0),
      withheldEvents: all.reduce((n, f) => n + f.staff.withheldEvents, 0),
      rows: staffRows.slice(0, listLimit),
    },
    transfers: all.flatMap((f) => f.transfers),
    batches: all.flatMap((f) => f.batches),
    gaps: all.flatMap((f) => f.gaps),
    verdicts,
    failures: {
      total: all.reduce((n, f) => n + f.failures.total, 0),
      rows: all.flatMap((f) => f.failures.rows).slice(0, listLimit),
    },
    organizations: [...new Set(all.flatMap((f) => f.organizations))].sort(),
    firstDay: firsts[0] ?? null,
    lastDay: lasts[lasts.length - 1] ?? null,
  };
}

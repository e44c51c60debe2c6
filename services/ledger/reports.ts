import { DCM_EVENT_ID_CODES, PURPOSE_OF_USE_CODES, SYSTEM, displayOf } from "../core/codes.ts";
import { toCsv } from "../core/csv.ts";
import type { EventView } from "../core/disclosure.ts";
import type { NativeEvent } from "../core/event.ts";
import type { Hex } from "../core/hex.ts";
import { EXPORT_TYPE_CODE, IMPORT_TYPE_CODE } from "../core/transfer.ts";
import { type StaffIdentity, redactEvent } from "./access.ts";
import { LedgerError } from "./errors.ts";
import type { Ledger, StoredEvent } from "./ledger.ts";
import type { EventQueries } from "./queries.ts";

/**
 * Reports a patient (or an auditor on their behalf) is owed:
 *
 * - the HIPAA §164.528 accounting of disclosures: disclosures in the six years before the
 *   request, with date, recipient, a brief description of what was disclosed and the purpose,
 *   minus the disclosures §164.528(a)(1) excludes (mapped to purpose-of-use codes below);
 * - an access report: every logged access to the patient's data (GDPR Art. 15 as read in
 *   CJEU C-579/21 — dates, organizations, purposes; EHDS Reg. (EU) 2025/327 access logs).
 *
 * Every row names its seq and the URL of its proof bundle, so each line can be checked
 * against the chain without trusting this server.
 */

/** §164.528(a): disclosures "in the six years prior to the date on which the accounting is requested". */
export const ACCOUNTING_LOOKBACK_YEARS = 6;
/** A report lists at most this many rows (a patient's six years are "up to thousands"). */
export const MAX_REPORT_ROWS = 100_000;
const PAGE = 1_000;

/**
 * Purposes whose disclosures §164.528(a)(1) excludes from the accounting, with the paragraph
 * that excludes them. An event is left out only when every purpose it records is here; an
 * event without any purpose is listed (nothing shows that an exclusion applies).
 */
export const ACCOUNTING_EXCLUDED_PURPOSES: Readonly<Record<string, string>> = {
  // (a)(1)(i) treatment, payment and health care operations (§164.506, §164.501 definitions).
  TREAT: "(a)(1)(i) treatment",
  ETREAT: "(a)(1)(i) treatment",
  ERTREAT: "(a)(1)(i) treatment",
  COC: "(a)(1)(i) treatment",
  CAREMGT: "(a)(1)(i) treatment",
  HPAYMT: "(a)(1)(i) payment",
  CLMATTCH: "(a)(1)(i) payment",
  COVAUTH: "(a)(1)(i) payment",
  COVERAGE: "(a)(1)(i) payment",
  ELIGDTRM: "(a)(1)(i) payment",
  ELIGVER: "(a)(1)(i) payment",
  ENROLLM: "(a)(1)(i) payment",
  REMITADV: "(a)(1)(i) payment",
  HOPERAT: "(a)(1)(i) health care operations",
  HACCRED: "(a)(1)(i) health care operations",
  HQUALIMP: "(a)(1)(i) health care operations",
  TRAIN: "(a)(1)(i) health care operations",
  PATADMIN: "(a)(1)(i) health care operations",
  // (a)(1)(ii) to the individual; a personal representative is treated as the individual (§164.502(g)).
  PATRQT: "(a)(1)(ii) to the individual",
  PWATRNY: "(a)(1)(ii) to the individual's personal representative",
  // (a)(1)(iv) facility directory and persons involved in the individual's care (§164.510).
  HDIRECT: "(a)(1)(iv) facility directory",
  FAMRQT: "(a)(1)(iv) persons involved in care (§164.510(b))",
  SUPNWK: "(a)(1)(iv) persons involved in care (§164.510(b))",
};

/** The proof reference every report row carries. */
export interface ProofRef {
  seq: number;
  proof: string;
}

export interface DisclosureRow extends ProofRef {
  /** When the log accepted the event (entry.recorded: the log's clock for entry v2). */
  date: string;
  /** When the logging system says it happened (the event's own `recorded`). */
  sourceTime: string;
  recipient: { organization: string; name?: string; address?: string };
  description: string;
  purpose: string[];
  purposeText: string;
}

export interface AccessRow extends ProofRef {
  /** When the log accepted the event (entry.recorded: the log's clock for entry v2). */
  date: string;
  /** When the logging system says it happened; null once erased. */
  sourceTime: string | null;
  erased: boolean;
  action: string | null;
  type: string | null;
  organization: string | null;
  agents: Array<{ organization: string; role?: string; who?: string }>;
  purpose: string[];
  outcome: number | null;
  breakGlass: boolean | null;
}

export interface ReportRange {
  fromMs: number;
  toMs: number;
}

export interface AccountingReport {
  subject: string;
  from: string;
  to: string;
  disclosures: DisclosureRow[];
  /** Events of the subject in the period whose body was erased: they cannot be classified. */
  erasedInPeriod: number;
}

export interface AccessReport {
  subject: string;
  from: string;
  to: string;
  accesses: AccessRow[];
}

/** The keyed subject tag of a patient identifier in this log (the secret stays in the ledger). */
export function subjectTagOf(
  ledger: Ledger,
  patient: { system?: string | undefined; value: string },
): Hex {
  return ledger.subjectTagOf(patient);
}

export function proofUrl(seq: number): string {
  return `/v1/events/${seq}/proof`;
}

/** The default period: the six years up to `now`. */
export function defaultAccountingRange(now: Date): ReportRange {
  const from = new Date(now.getTime());
  from.setUTCFullYear(from.getUTCFullYear() - ACCOUNTING_LOOKBACK_YEARS);
  return { fromMs: from.getTime(), toMs: now.getTime() + 1 };
}

function purposesOf(e: EventView): string[] {
  const all = new Set<string>(e.purposeOfUse);
  for (const a of e.agents) for (const p of a.purposeOfUse ?? []) all.add(p);
  return [...all];
}

/**
 * A disclosure is a release of data outside the logging institution: an Export (DCM 110106,
 * BALP PrivacyDisclosure.Source) or any event that names a recipient, except an Import (DCM
 * 110107, the receiving side of a transfer). Failed attempts (outcome 8/12) disclosed nothing.
 */
export function isDisclosure(e: NativeEvent): boolean {
  if (e.type.system === SYSTEM.dcm && e.type.code === IMPORT_TYPE_CODE) return false;
  if (e.outcome === 8 || e.outcome === 12) return false;
  return (
    (e.type.system === SYSTEM.dcm && e.type.code === EXPORT_TYPE_CODE) || e.recipient !== undefined
  );
}

/** True when §164.528(a)(1) keeps this disclosure out of the accounting. */
export function isExcludedFromAccounting(e: NativeEvent): boolean {
  const purposes = purposesOf(e);
  return purposes.length > 0 && purposes.every((p) => p in ACCOUNTING_EXCLUDED_PURPOSES);
}

function recipientOf(e: NativeEvent): DisclosureRow["recipient"] {
  if (e.recipient !== undefined) return { ...e.recipient };
  const other = e.agents.find(
    (a) => a.organization !== e.source.organization && a.type?.code === "110152",
  );
  return { organization: other?.organization ?? "not recorded" };
}

/** §164.528(b)(2)(iii): "a brief description of the protected health information disclosed". */
function describe(e: NativeEvent): string {
  const parts = e.entities.map(
    (en) => en.description ?? en.category?.display ?? en.category?.code ?? en.what ?? "query",
  );
  return parts.length > 0 ? [...new Set(parts)].join("; ") : "not recorded";
}

function purposeText(codes: string[]): string {
  return codes.length === 0
    ? "not recorded"
    : codes.map((c) => displayOf(PURPOSE_OF_USE_CODES, c) ?? c).join("; ");
}

function typeText(e: EventView): string {
  if (e.type.system === SYSTEM.dcm)
    return e.type.display ?? displayOf(DCM_EVENT_ID_CODES, e.type.code) ?? e.type.code;
  const sub = e.subtype.map((s) => s.display ?? s.code);
  return sub.length > 0 ? sub.join(", ") : (e.type.display ?? e.type.code);
}

/** Every stored event of `subject` recorded in the range, in seq order. */
async function* subjectEvents(
  queries: EventQueries,
  subject: string,
  range: ReportRange,
): AsyncGenerator<StoredEvent> {
  let cursor: string | undefined;
  let count = 0;
  for (;;) {
    const page = await queries.listEvents(
      { subject, fromMs: range.fromMs, toMs: range.toMs },
      cursor === undefined ? { limit: PAGE } : { cursor, limit: PAGE },
    );
    for (const e of page.events) {
      if (++count > MAX_REPORT_ROWS)
        throw new LedgerError(
          "VALIDATION_FAILED",
          `more than ${MAX_REPORT_ROWS} events in the period; ask for a shorter one`,
          "from",
        );
      yield e;
    }
    if (page.nextCursor === null) return;
    cursor = page.nextCursor;
  }
}

function checkRange(range: ReportRange): void {
  if (!(range.fromMs < range.toMs))
    throw new LedgerError("VALIDATION_FAILED", "from must be before to", "from");
}

export async function accountingOfDisclosures(
  queries: EventQueries,
  subject: string,
  range: ReportRange,
): Promise<AccountingReport> {
  checkRange(range);
  const disclosures: DisclosureRow[] = [];
  let erasedInPeriod = 0;
  for await (const stored of subjectEvents(queries, subject, range)) {
    const e = stored.event;
    if (e === null) {
      erasedInPeriod++;
      continue;
    }
    if (!isDisclosure(e) || isExcludedFromAccounting(e)) continue;
    const purpose = purposesOf(e);
    disclosures.push({
      seq: stored.seq,
      date: stored.entry.recorded,
      sourceTime: e.recorded,
      recipient: recipientOf(e),
      description: describe(e),
      purpose,
      purposeText: purposeText(purpose),
      proof: proofUrl(stored.seq),
    });
  }
  return {
    subject,
    from: new Date(range.fromMs).toISOString(),
    to: new Date(range.toMs).toISOString(),
    disclosures,
    erasedInPeriod,
  };
}

/**
 * Every access to the subject's data. With staff identity withheld (the access policy's
 * patient-facing form) who (the person) is left out, as C-579/21 allows; dates, organizations,
 * roles and purposes are always shown.
 */
export async function accessReport(
  queries: EventQueries,
  subject: string,
  range: ReportRange,
  opts: { staffIdentity: StaffIdentity },
): Promise<AccessReport> {
  checkRange(range);
  const accesses: AccessRow[] = [];
  for await (const stored of subjectEvents(queries, subject, range)) {
    const e = stored.event === null ? null : redactEvent(stored.event, opts.staffIdentity);
    if (e === null) {
      accesses.push({
        seq: stored.seq,
        date: stored.entry.recorded,
        sourceTime: null,
        erased: true,
        action: null,
        type: null,
        organization: null,
        agents: [],
        purpose: [],
        outcome: null,
        breakGlass: null,
        proof: proofUrl(stored.seq),
      });
      continue;
    }
    accesses.push({
      seq: stored.seq,
      date: stored.entry.recorded,
      sourceTime: e.recorded,
      erased: false,
      action: e.action,
      type: typeText(e),
      organization: e.source.organization,
      agents: e.agents.map((a) => {
        const out: AccessRow["agents"][number] = { organization: a.organization };
        const role = a.role?.map((r) => r.display ?? r.code).join(", ") ?? a.type?.display;
        if (role !== undefined) out.role = role;
        const who = a.who?.display ?? a.userName ?? a.who?.value;
        if (who !== undefined) out.who = who;
        return out;
      }),
      purpose: purposesOf(e),
      outcome: e.outcome,
      breakGlass: e.breakGlass,
      proof: proofUrl(stored.seq),
    });
  }
  return {
    subject,
    from: new Date(range.fromMs).toISOString(),
    to: new Date(range.toMs).toISOString(),
    accesses,
  };
}

// ---- CSV ------------------------------------------------------------------------------------

export function accountingCsv(report: AccountingReport): string {
  return toCsv(
    [
      "seq",
      "date",
      "source_time",
      "recipient",
      "recipient_name",
      "recipient_address",
      "description",
      "purpose",
      "purpose_codes",
      "proof",
    ],
    report.disclosures.map((d) => [
      d.seq,
      d.date,
      d.sourceTime,
      d.recipient.organization,
      d.recipient.name ?? null,
      d.recipient.address ?? null,
      d.description,
      d.purposeText,
      d.purpose.join(" "),
      d.proof,
    ]),
  );
}

export function accessCsv(report: AccessReport): string {
  return toCsv(
    [
      "seq",
      "date",
      "source_time",
      "erased",
      "action",
      "type",
      "organization",
      "agents",
      "purpose_codes",
      "outcome",
      "break_glass",
      "proof",
    ],
    report.accesses.map((a) => [
      a.seq,
      a.date,
      a.sourceTime,
      a.erased,
      a.action,
      a.type,
      a.organization,
      a.agents
        .map((g) => [g.who, g.role, g.organization].filter((x) => x !== undefined).join(" / "))
        .join("; "),
      a.purpose.join(" "),
      a.outcome,
      a.breakGlass,
      a.proof,
    ]),
  );
}

/**
 * Every figure of the console as a table: the page shows it next to its chart and the CSV button
 * exports exactly it (services/core/csv.ts), so what a regulator attaches to a report is what
 * they saw. Pure, unit-tested.
 */
import { toCsv } from "../../services/core/csv.ts";
import { matchTransfers } from "../../services/core/transfer.ts";
import { transferRecord } from "./facts.ts";
import type {
  BatchRow,
  Count,
  EventRow,
  FailureRow,
  Figures,
  StaffRow,
  TransferRow,
} from "./figures.ts";

export type Cell = string | number | boolean | null;

export interface FigureTable {
  /** File name stem of its CSV. */
  name: string;
  header: string[];
  rows: Cell[][];
  /** Per row, the event whose proof a link in the row opens (log index, seq). */
  proofs?: Array<Array<{ log: number; seq: number }>>;
}

export function csvOf(table: FigureTable): string {
  return toCsv(table.header, table.rows);
}

/** How the page names a log: its operator per the trust policy, else where it came from. */
export type LogNames = (log: number) => string;

export function perDayTable(f: Figures): FigureTable {
  return {
    name: "accesses-per-day",
    header: ["day", ...f.perDay.series.map((s) => s.organization), "total"],
    rows: f.perDay.days.map((day, i) => {
      const counts = f.perDay.series.map((s) => s.counts[i] ?? 0);
      return [day, ...counts, counts.reduce((a, b) => a + b, 0)];
    }),
  };
}

export function countsTable(name: string, what: string, counts: Count[]): FigureTable {
  return {
    name,
    header: [what, "code", "events"],
    rows: counts.map((c) => [c.label, c.key, c.count]),
  };
}

export function eventListTable(name: string, rows: EventRow[], logs: LogNames): FigureTable {
  return {
    name,
    header: [
      "log",
      "seq",
      "recorded (UTC)",
      "local time",
      "organization",
      "staff",
      "action",
      "purpose of use",
      "data category",
      "verification",
    ],
    rows: rows.map((r) => [
      logs(r.log),
      r.seq,
      r.recorded,
      r.local,
      r.organization,
      r.staff,
      r.action,
      r.purposes,
      r.categories,
      r.code ? `${r.status} (${r.code})` : r.status,
    ]),
    proofs: rows.map((r) => [{ log: r.log, seq: r.seq }]),
  };
}

export function staffTable(rows: StaffRow[], logs: LogNames): FigureTable {
  return {
    name: "staff-distinct-patients",
    header: [
      "log",
      "staff account",
      "identity provider",
      "name",
      "organization",
      "distinct patients",
      "accesses",
      "over threshold",
    ],
    rows: rows.map((r) => [
      logs(r.log),
      r.account,
      r.system,
      r.label,
      r.organization,
      r.distinctPatients,
      r.accesses,
      r.overThreshold,
    ]),
  };
}

/** A transfer as the console shows it: matched hops, then what does not match and why. */
export interface TransferLine {
  reference: string;
  dataHash: string;
  match:
    "matched" | "NOT_IMPORTED" | "NO_SUCH_EXPORT" | "DATA_HASH_MISMATCH" | "RECIPIENT_MISMATCH";
  from: TransferRow | null;
  to: TransferRow | null;
  /** An export's intended recipient, when no import answers it. */
  recipient?: string;
}

/**
 * Matches the exports and imports of every loaded log (services/core/transfer.ts, the rule the
 * API's provenance trace uses) and keeps those with a side in the filter.
 */
export function transferLines(rows: TransferRow[]): TransferLine[] {
  const exports = rows.filter((r) => r.kind === "export").map((r) => transferRecord(r, r));
  const imports = rows.filter((r) => r.kind === "import").map((r) => transferRecord(r, r));
  const { matched, unmatched } = matchTransfers(exports, imports);
  const lines: TransferLine[] = [
    ...matched.map((m) => ({
      reference: m.reference,
      dataHash: m.dataHash,
      match: "matched" as const,
      from: m.from,
      to: m.to,
    })),
    ...unmatched.map((u) => ({
      reference: u.reference,
      dataHash: u.dataHash,
      match: u.reason,
      from: u.kind === "export" ? u.side : null,
      to: u.kind === "import" ? u.side : null,
      ...(u.recipient !== undefined ? { recipient: u.recipient } : {}),
    })),
  ];
  return lines
    .filter((l) => l.from?.inFilter === true || l.to?.inFilter === true)
    .sort((a, b) => (a.from ?? a.to)!.recorded.localeCompare((b.from ?? b.to)!.recorded));
}

export function transfersTable(lines: TransferLine[], logs: LogNames): FigureTable {
  const side = (r: TransferRow | null): Cell[] =>
    r
      ? [
          logs(r.log),
          r.organization,
          r.seq,
          r.recorded,
          r.code ? `${r.status} (${r.code})` : r.status,
        ]
      : [null, null, null, null, null];
  return {
    name: "transfers",
    header: [
      "reference",
      "data hash",
      "match",
      "from log",
      "from organization",
      "export seq",
      "exported (UTC)",
      "export verification",
      "to log",
      "to organization",
      "import seq",
      "imported (UTC)",
      "import verification",
    ],
    rows: lines.map((l) => [
      l.reference,
      l.dataHash,
      l.match,
      ...side(l.from),
      ...(l.to ? side(l.to) : [null, l.recipient ?? null, null, null, null]),
    ]),
    proofs: lines.map((l) =>
      [l.from, l.to]
        .filter((s): s is TransferRow => s !== null)
        .map((s) => ({ log: s.log, seq: s.seq })),
    ),
  };
}

export function batchesTable(rows: BatchRow[], logs: LogNames): FigureTable {
  return {
    name: "anchoring",
    header: [
      "log",
      "batch",
      "first seq",
      "events in batch",
      "bundles in export",
      "events in filter",
      "chain",
      "block",
      "confirmations",
      "transaction",
      "state",
      "codes",
    ],
    rows: rows.map((b) => [
      logs(b.log),
      b.batchNo,
      b.firstSeq,
      b.count,
      b.seen,
      b.inFilter,
      b.anchor?.chainId ?? null,
      b.anchor?.blockNumber ?? null,
      b.confirmations,
      b.anchor?.txHash ?? null,
      b.state,
      b.chainCodes.join(" "),
    ]),
    proofs: rows.map((b) =>
      b.firstFailedSeq !== undefined ? [{ log: b.log, seq: b.firstFailedSeq }] : [],
    ),
  };
}

export function verdictsTable(f: Figures): FigureTable {
  const v = f.verdicts;
  return {
    name: "verification-summary",
    header: ["verdict", "code", "bundles"],
    rows: [
      ["verified", null, v.verified],
      ["erased", null, v.erased],
      ["withheld", null, v.withheld],
      ["pending", null, v.pending],
      ...Object.entries(v.byCode)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([code, n]): Cell[] => [code === "RPC_ERROR" ? "error" : "failed", code, n]),
      ["total", null, v.total],
    ],
  };
}

/** Every bundle that did not verify (a line that is no bundle by its line), the step and why. */
export function failuresTable(rows: FailureRow[], logs: LogNames): FigureTable {
  return {
    name: "not-verified",
    header: ["log", "seq", "code", "step", "reason"],
    rows: rows.map((r) => [
      logs(r.log),
      r.seq ?? `line ${r.line ?? "?"}`,
      r.code,
      r.step,
      r.reason,
    ]),
    proofs: rows.map((r) => (r.seq !== null ? [{ log: r.log, seq: r.seq }] : [])),
  };
}

/** The logs side by side (one column each) and together. */
export function compareTable(
  perLog: Array<{ log: number; figures: Figures }>,
  all: Figures,
  logs: LogNames,
): FigureTable {
  const columns = [...perLog.map((p) => p.figures), all];
  const metric = (label: string, of: (f: Figures) => Cell): Cell[] => [label, ...columns.map(of)];
  return {
    name: "logs-side-by-side",
    header: ["", ...perLog.map((p) => logs(p.log)), "all logs"],
    rows: [
      metric("events", (f) => f.events),
      metric("verified", (f) => f.verdicts.verified),
      metric("erased", (f) => f.verdicts.erased),
      metric("withheld", (f) => f.verdicts.withheld),
      metric("pending", (f) => f.verdicts.pending),
      metric("failed", (f) => f.verdicts.failed),
      metric("could not check", (f) => f.verdicts.error),
      metric("break-glass", (f) => f.breakGlass.total),
      metric("after hours", (f) => f.afterHours.total),
      metric("staff over threshold", (f) => f.staff.overThreshold),
      metric("batches", (f) => f.batches.length),
      metric("batches pending", (f) => f.batches.filter((b) => b.state === "pending").length),
      metric(
        "batch discrepancies",
        (f) =>
          f.batches.filter((b) => b.state === "discrepancy" || b.state === "incomplete").length,
      ),
      metric("organizations", (f) => f.organizations.length),
    ],
  };
}

/** One line of the benchmark table: a measurement, its same-run baseline, and its target. */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  baselineName?: string;
  baseline?: number;
  target?: { op: ">=" | "<=" | "<"; value: number };
  note?: string;
}

/**
 * The goal for ingest against the floor measured in the same run (issue 21: the floor, the
 * per-event work DESIGN.md mandates plus one synced put per event, replaced an absolute rate).
 */
export const FLOOR_RATIO_GOAL = 0.5;

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function meetsTarget(row: BenchRow): boolean | undefined {
  if (!row.target) return undefined;
  const { op, value } = row.target;
  if (op === ">=") return row.value >= value;
  if (op === "<=") return row.value <= value;
  return row.value < value;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en");
  return n.toFixed(2);
}

function formatRatio(ratio: number): string {
  if (ratio >= 0.01) return `${ratio.toFixed(2)}×`;
  return `1/${Math.round(1 / ratio).toLocaleString("en")}`;
}

/** The table as markdown (printed, and pasted into the README with the machine it ran on). */
export function renderTable(rows: BenchRow[]): string {
  const lines = [
    "| measurement | value | baseline (same run) | ratio | target | met |",
    "|---|---:|---|---:|---|:-:|",
  ];
  for (const r of rows) {
    const ratio =
      r.baseline !== undefined && r.baseline > 0 ? formatRatio(r.value / r.baseline) : "";
    const baseline =
      r.baseline !== undefined
        ? `${r.baselineName ?? "baseline"}: ${fmt(r.baseline)} ${r.unit}`
        : "";
    const target = r.target ? `${r.target.op} ${fmt(r.target.value)} ${r.unit}` : "";
    const met = meetsTarget(r);
    lines.push(
      `| ${r.name}${r.note ? ` (${r.note})` : ""} | ${fmt(r.value)} ${r.unit} | ${baseline} | ${ratio} | ${target} | ${met === undefined ? "" : met ? "yes" : "**no**"} |`,
    );
  }
  return lines.join("\n");
}

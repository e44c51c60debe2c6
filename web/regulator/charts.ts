/**
 * The console's charts, drawn by Chart.js (canvas; only the bar chart's parts are bundled, see
 * the README's library table for why this library). Each chart is created once and updated in
 * place when the filter changes; animation is off, so a redraw of a year of days by ten
 * organizations is a few milliseconds and a screenshot shows the final picture. Every chart has
 * its figure in a table next to it too: canvas is not read by screen readers.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  Legend,
  LinearScale,
  Tooltip,
} from "chart.js";
import type { Count, Figures } from "./figures.ts";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend);

/** Tableau 10: distinct for most colour-blind readers, and as many as organizations usually are. */
const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

export function colourOf(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

type BarConfig = ChartConfiguration<"bar", number[], string>;

function baseOptions(horizontal: boolean, stacked: boolean): BarConfig["options"] {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    indexAxis: horizontal ? "y" : "x",
    plugins: {
      legend: { display: stacked, position: "bottom" },
      tooltip: { mode: "index", intersect: false },
    },
    scales: {
      x: { stacked, ticks: { precision: 0, autoSkip: true, maxRotation: 0 } },
      y: { stacked, beginAtZero: true, ticks: { precision: 0, autoSkip: false } },
    },
  };
}

export class ConsoleCharts {
  private readonly charts = new Map<string, Chart<"bar", number[], string>>();

  /** Accesses per day, one stacked bar per day, one colour per organization. */
  perDay(canvas: HTMLCanvasElement, figures: Figures): void {
    const organizations = figures.perDay.series.map((s) => s.organization);
    this.draw("perDay", canvas, false, true, figures.perDay.days, (chart) => {
      chart.data.datasets = figures.perDay.series.map((s) => ({
        label: s.organization,
        data: s.counts,
        backgroundColor: colourOf(organizations.indexOf(s.organization)),
        // Thin bars for a year of days, full bars for a week.
        maxBarThickness: 48,
      }));
    });
  }

  /** A count per category (purpose of use, action, data category), as horizontal bars. */
  counts(name: string, canvas: HTMLCanvasElement, counts: Count[], colour: string): void {
    // A tall list would shrink each bar to nothing: the canvas grows with the number of bars.
    canvas.parentElement!.style.height = `${Math.max(120, 28 * counts.length + 40)}px`;
    this.draw(
      name,
      canvas,
      true,
      false,
      counts.map((c) => c.label),
      (chart) => {
        chart.data.datasets = [
          { label: "events", data: counts.map((c) => c.count), backgroundColor: colour },
        ];
      },
    );
  }

  private draw(
    name: string,
    canvas: HTMLCanvasElement,
    horizontal: boolean,
    stacked: boolean,
    labels: string[],
    fill: (chart: Chart<"bar", number[], string>) => void,
  ): void {
    let chart = this.charts.get(name);
    if (!chart || chart.canvas !== canvas) {
      chart?.destroy();
      chart = new Chart(canvas, {
        type: "bar",
        data: { labels: [], datasets: [] },
        options: baseOptions(horizontal, stacked),
      });
      this.charts.set(name, chart);
    }
    chart.data.labels = labels;
    fill(chart);
    chart.update("none");
  }
}

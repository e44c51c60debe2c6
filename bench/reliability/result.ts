/** What a reliability scenario reports: named properties, each held or not, with a detail. */
export interface PropertyResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ScenarioResult {
  scenario: string;
  /** The sizes the scenario ran with (cycles, requests, tamperings, …). */
  size: string;
  seconds: number;
  properties: PropertyResult[];
}

export function scenarioPassed(result: ScenarioResult): boolean {
  return result.properties.length > 0 && result.properties.every((p) => p.ok);
}

/** Collects properties while a scenario runs; `finish` stamps the duration. */
export class ScenarioReport {
  private readonly started = Date.now();
  readonly properties: PropertyResult[] = [];

  constructor(
    readonly scenario: string,
    readonly size: string,
  ) {}

  check(name: string, ok: boolean, detail: string): void {
    this.properties.push({ name, ok, detail });
  }

  finish(): ScenarioResult {
    return {
      scenario: this.scenario,
      size: this.size,
      seconds: (Date.now() - this.started) / 1000,
      properties: this.properties,
    };
  }
}

/** The results as a markdown table, one row per property. */
export function renderResults(results: readonly ScenarioResult[]): string {
  const lines = ["| scenario | size | property | held | detail |", "|---|---|---|:-:|---|"];
  for (const r of results) {
    for (const p of r.properties) {
      lines.push(
        `| ${r.scenario} (${r.seconds.toFixed(0)} s) | ${r.size} | ${p.name} | ${p.ok ? "yes" : "**no**"} | ${p.detail.replaceAll("|", "/").replace(/\s+/g, " ")} |`,
      );
    }
  }
  return lines.join("\n");
}

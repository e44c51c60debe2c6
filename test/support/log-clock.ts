import type { NativeEvent } from "../../services/core/event.ts";
import type { IngestResult } from "../../services/ledger/ingest.ts";

/**
 * A settable log clock for tests that need a log spanning time: entry v2 takes `recorded` from
 * the log's clock, never from the event, so a fixture that wants an event "logged" in 2024 sets
 * the clock to then (Ledger option `logClock`). Unset, it is the real clock.
 */
export class TestLogClock {
  ms: number | undefined;
  readonly now = (): number => this.ms ?? Date.now();
}

/**
 * Ingests each event on its own with the log clock at the event's own `recorded`, so
 * `entry.recorded` (and the time index) equals it, as when the log accepted it right then.
 * Events must come in time order (the log clock never goes back).
 */
export async function ingestAtTheirTimes(
  ledger: { ingest(events: NativeEvent[]): Promise<IngestResult[]> },
  clock: TestLogClock,
  events: NativeEvent[],
): Promise<IngestResult[]> {
  const out: IngestResult[] = [];
  try {
    for (const e of events) {
      clock.ms = Date.parse(e.recorded);
      out.push(...(await ledger.ingest([e])));
    }
  } finally {
    clock.ms = undefined;
  }
  return out;
}

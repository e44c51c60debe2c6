/**
 * Local time in the time zone the regulator chose, for days and working hours. A log's times are
 * UTC (entry.recorded, the log's own clock); "after hours" and "per day" only mean something in
 * the zone where the institution works. Intl does the zone rules (daylight saving included);
 * its answer is cached per 15 minutes, since every zone offset in use is a multiple of 15
 * minutes, so 100,000 events cost a few thousand Intl calls, not 100,000.
 */

export interface LocalTime {
  /** The local calendar day, YYYY-MM-DD. */
  day: string;
  /** Minutes since local midnight, 0–1439. */
  minute: number;
  /** ISO weekday: 1 Monday … 7 Sunday. */
  weekday: number;
}

const QUARTER_MS = 15 * 60_000;
const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

/** Whether `zone` is an IANA time zone this browser knows ("UTC" included). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export class ZoneClock {
  private readonly format: Intl.DateTimeFormat;
  private readonly cache = new Map<number, { day: string; minute: number; weekday: number }>();

  constructor(readonly zone: string) {
    if (!isTimeZone(zone)) throw new RangeError(`unknown time zone ${JSON.stringify(zone)}`);
    this.format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      weekday: "short",
    });
  }

  /** The local day, minute of day and weekday of instant `ms`. */
  local(ms: number): LocalTime {
    const quarter = Math.floor(ms / QUARTER_MS);
    let start = this.cache.get(quarter);
    if (!start) {
      start = this.compute(quarter * QUARTER_MS);
      this.cache.set(quarter, start);
    }
    // Within a quarter hour the offset does not change: add the minutes into it.
    const into = Math.floor((ms - quarter * QUARTER_MS) / 60_000);
    return { day: start.day, minute: start.minute + into, weekday: start.weekday };
  }

  /** "YYYY-MM-DD HH:mm" in the zone. */
  text(ms: number): string {
    const t = this.local(ms);
    const hh = String(Math.floor(t.minute / 60)).padStart(2, "0");
    const mm = String(t.minute % 60).padStart(2, "0");
    return `${t.day} ${hh}:${mm}`;
  }

  private compute(ms: number): { day: string; minute: number; weekday: number } {
    const parts: Record<string, string> = {};
    for (const p of this.format.formatToParts(ms)) parts[p.type] = p.value;
    return {
      day: `${parts["year"]}-${parts["month"]}-${parts["day"]}`,
      minute: Number(parts["hour"]) * 60 + Number(parts["minute"]),
      weekday: WEEKDAYS[parts["weekday"] ?? ""] ?? 0,
    };
  }
}

/** Working hours: a daily window on the working days, in one time zone. */
export interface WorkingHours {
  /** IANA time zone, e.g. Europe/Berlin or UTC. */
  zone: string;
  /** Start of the window, minutes after local midnight (inclusive). */
  startMinute: number;
  /** End of the window, minutes after local midnight (exclusive); before start = over midnight. */
  endMinute: number;
  /** ISO weekdays that are working days (1 Monday … 7 Sunday). */
  days: number[];
}

export const DEFAULT_WORKING_HOURS: Omit<WorkingHours, "zone"> = {
  startMinute: 7 * 60,
  endMinute: 19 * 60,
  days: [1, 2, 3, 4, 5],
};

/**
 * Whether a local time falls outside the working hours: on a day that is not a working day, or
 * outside the daily window. A window whose end is before its start runs over midnight (a night
 * shift from 22:00 to 06:00); the part after midnight belongs to the day it started on.
 */
export function isAfterHours(t: LocalTime, hours: WorkingHours): boolean {
  const { startMinute: s, endMinute: e } = hours;
  if (s === e) return !hours.days.includes(t.weekday);
  if (s < e) return !hours.days.includes(t.weekday) || t.minute < s || t.minute >= e;
  if (t.minute >= s) return !hours.days.includes(t.weekday);
  if (t.minute < e) return !hours.days.includes(t.weekday === 1 ? 7 : t.weekday - 1);
  return true;
}

/** "08:30" → 510; undefined for anything else. */
export function parseClockTime(text: string): number | undefined {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text.trim());
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

/** 510 → "08:30". */
export function clockTimeText(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
}

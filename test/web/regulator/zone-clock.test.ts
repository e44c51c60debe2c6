import { expect } from "chai";
import {
  ZoneClock,
  clockTimeText,
  isAfterHours,
  isTimeZone,
  parseClockTime,
} from "../../../web/regulator/zone-clock.ts";

describe("regulator console: local time and working hours (web/regulator/zone-clock.ts)", () => {
  it("gives the local day, minute and weekday, across daylight saving and odd offsets", () => {
    const berlin = new ZoneClock("Europe/Berlin");
    // 2025-03-30 01:59:59 UTC is 03:59:59 CEST (clocks went forward at 01:00 UTC).
    expect(berlin.local(Date.parse("2025-03-30T00:30:00Z"))).to.deep.equal({
      day: "2025-03-30",
      minute: 90,
      weekday: 7,
    });
    expect(berlin.local(Date.parse("2025-03-30T01:30:00Z"))).to.deep.equal({
      day: "2025-03-30",
      minute: 210,
      weekday: 7,
    });
    expect(berlin.text(Date.parse("2025-12-31T23:10:00Z"))).to.equal("2026-01-01 00:10");
    const kolkata = new ZoneClock("Asia/Kolkata"); // UTC+05:30
    expect(kolkata.text(Date.parse("2025-03-03T18:29:59Z"))).to.equal("2025-03-03 23:59");
    expect(kolkata.text(Date.parse("2025-03-03T18:30:00Z"))).to.equal("2025-03-04 00:00");
    const kathmandu = new ZoneClock("Asia/Kathmandu"); // UTC+05:45
    expect(kathmandu.text(Date.parse("2025-03-03T00:14:00Z"))).to.equal("2025-03-03 05:59");
    // The cache per quarter hour answers like Intl for every minute of a day.
    const intl = new Intl.DateTimeFormat("sv-SE", {
      timeZone: "Asia/Kathmandu",
      dateStyle: "short",
      timeStyle: "short",
    });
    for (let m = 0; m < 24 * 60; m += 7) {
      const t = Date.UTC(2025, 2, 3) + m * 60_000 + 13_000;
      expect(kathmandu.text(t)).to.equal(intl.format(t));
    }
    expect(isTimeZone("Mars/Olympus_Mons")).to.equal(false);
    expect(() => new ZoneClock("nowhere")).to.throw(RangeError);
  });

  it("tells after hours: outside the window, on other days, and windows over midnight", () => {
    const day = { zone: "UTC", startMinute: 8 * 60, endMinute: 17 * 60, days: [1, 2, 3, 4, 5] };
    expect(isAfterHours({ day: "", minute: 8 * 60, weekday: 1 }, day)).to.equal(false);
    expect(isAfterHours({ day: "", minute: 8 * 60 - 1, weekday: 1 }, day)).to.equal(true);
    expect(isAfterHours({ day: "", minute: 17 * 60, weekday: 5 }, day)).to.equal(true);
    expect(isAfterHours({ day: "", minute: 10 * 60, weekday: 6 }, day)).to.equal(true);
    const night = { zone: "UTC", startMinute: 22 * 60, endMinute: 6 * 60, days: [1, 2, 3, 4, 5] };
    expect(isAfterHours({ day: "", minute: 23 * 60, weekday: 5 }, night)).to.equal(false);
    // Saturday 03:00 belongs to Friday's night shift; Monday 03:00 to Sunday's (not worked).
    expect(isAfterHours({ day: "", minute: 3 * 60, weekday: 6 }, night)).to.equal(false);
    expect(isAfterHours({ day: "", minute: 3 * 60, weekday: 1 }, night)).to.equal(true);
    expect(isAfterHours({ day: "", minute: 12 * 60, weekday: 3 }, night)).to.equal(true);
    expect(parseClockTime("08:30")).to.equal(510);
    expect(parseClockTime("24:00")).to.equal(undefined);
    expect(clockTimeText(510)).to.equal("08:30");
  });
});

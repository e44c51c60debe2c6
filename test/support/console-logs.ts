/**
 * Logs for the regulator console's tests and benchmark: accesses by named staff accounts at
 * chosen times, a log of any size built in bulk, and a log's NDJSON export written to a file
 * exactly as GET /v1/export streams it.
 */
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { SYSTEM } from "../../services/core/codes.ts";
import type { Agent, NativeEvent } from "../../services/core/event.ts";
import type { StaffIdentity } from "../../services/ledger/access.ts";
import { exportBundles } from "../../services/ledger/export.ts";
import type { Ledger } from "../../services/ledger/ledger.ts";
import { EventQueries } from "../../services/ledger/queries.ts";
import { PATIENT_MRN_SYSTEM, makeNativeEvent } from "../fixtures/events.ts";
import type { AnchoredLog } from "./anchored-log.ts";

export interface StaffAccount {
  id: string;
  name: string;
  userName: string;
  organization: string;
}

export const LOINC = "http://loinc.org";
export const CATEGORY = {
  labReport: { system: LOINC, code: "11502-2", display: "Laboratory report" },
  discharge: { system: LOINC, code: "18842-5", display: "Discharge summary" },
  imaging: { system: LOINC, code: "18748-4", display: "Diagnostic imaging study" },
} as const;

/** Each organization's identity provider: the `who.system` of its staff accounts. */
const IDP: Record<string, string> = {
  "org:st-mary-general": "https://idp.st-mary.example.org/users",
  "org:northside-lab": "https://idp.northside-lab.example.org/users",
};

export function accountOf(staff: StaffAccount): string {
  return `${IDP[staff.organization] ?? `https://idp.example.org/${staff.organization}`}|${staff.id}`;
}

let counter = 0;

/**
 * One access: `staff` does `action` on a record of patient `mrn` at `at` (the log clock is set
 * to it when ingested with ingestAtTheirTimes), through their organization's EHR.
 */
export function staffAccess(opts: {
  staff: StaffAccount;
  mrn: string;
  at: string;
  action?: NativeEvent["action"];
  purposes?: string[];
  breakGlass?: boolean;
  category?: (typeof CATEGORY)[keyof typeof CATEGORY];
}): NativeEvent {
  counter++;
  const base = makeNativeEvent();
  const org = opts.staff.organization;
  const user: Agent = {
    who: {
      system: accountOf(opts.staff).split("|")[0]!,
      value: opts.staff.id,
      display: opts.staff.name,
    },
    type: { system: SYSTEM.participationType, code: "IRCP", display: "information recipient" },
    role: [{ system: "http://snomed.info/sct", code: "309343006", display: "Physician" }],
    organization: org,
    requestor: true,
    userName: opts.staff.userName,
    purposeOfUse: opts.purposes ?? ["TREAT"],
  };
  return {
    ...base,
    recorded: opts.at,
    action: opts.action ?? "R",
    purposeOfUse: opts.purposes ?? ["TREAT"],
    breakGlass: opts.breakGlass ?? false,
    agents: [
      ...base.agents.filter((a) => a.requestor !== true).map((a) => ({ ...a, organization: org })),
      user,
    ],
    source: { ...base.source, organization: org },
    patient: { system: PATIENT_MRN_SYSTEM, value: opts.mrn },
    entities: [{ ...base.entities[0]!, category: { ...(opts.category ?? CATEGORY.labReport) } }],
    requestId: `console-${process.pid}-${counter}`,
  };
}

/** Writes the log's export (every event, in log order) as NDJSON, as GET /v1/export does. */
export async function writeExport(
  ledger: Ledger,
  file: string,
  staffIdentity: StaffIdentity = "disclose",
  transform: (bundle: Record<string, unknown>) => Record<string, unknown> = (b) => b,
): Promise<number> {
  const out = createWriteStream(file);
  let n = 0;
  for await (const bundle of exportBundles(
    ledger,
    new EventQueries(ledger),
    {},
    { staffIdentity },
  )) {
    if (!out.write(`${JSON.stringify(transform(bundle as unknown as Record<string, unknown>))}\n`))
      await once(out, "drain");
    n++;
  }
  out.end();
  await once(out, "finish");
  return n;
}

/**
 * Fills a log with `events` accesses in bulk: `staffCount` accounts of two organizations over
 * `patients` patients and 28 days from 2025-02-03 (a Monday), each day's events at one hour of
 * the log clock, sealed into batches of `batchSize` and anchored.
 */
export async function fillBulk(
  log: AnchoredLog,
  opts: { events: number; batchSize: number; patients?: number; staffCount?: number },
): Promise<void> {
  const patients = opts.patients ?? Math.max(1, Math.floor(opts.events / 20));
  const staffCount = opts.staffCount ?? 200;
  const staff: StaffAccount[] = Array.from({ length: staffCount }, (_, i) => ({
    id: `u-${10_000 + i}`,
    name: `Staff ${i}`,
    userName: `staff${i}`,
    organization: i % 4 === 0 ? "org:northside-lab" : "org:st-mary-general",
  }));
  const purposes = [["TREAT"], ["TREAT"], ["TREAT"], ["HPAYMT"], ["PATRQT"]];
  const categories = Object.values(CATEGORY);
  const start = Date.UTC(2025, 1, 3, 6, 0, 0);
  const perDay = Math.ceil(opts.events / 28);
  for (let done = 0; done < opts.events;) {
    const n = Math.min(opts.batchSize, opts.events - done);
    const events: NativeEvent[] = [];
    for (let i = done; i < done + n; i++) {
      const day = Math.floor(i / perDay);
      const at = new Date(start + day * 86_400_000 + (i % 16) * 3_600_000).toISOString();
      events.push(
        staffAccess({
          staff: staff[i % staffCount]!,
          mrn: `MRN-BULK-${i % patients}`,
          at,
          action: i % 10 === 0 ? "U" : "R",
          purposes: purposes[i % purposes.length]!,
          breakGlass: i % 997 === 0,
          category: categories[i % categories.length]!,
        }),
      );
    }
    // One log-clock value per batch (the log clock never goes back): the batch's last time.
    log.clock.ms = Date.parse(events[events.length - 1]!.recorded);
    try {
      for (let at = 0; at < events.length; at += 4_096)
        await log.ledger.ingest(events.slice(at, at + 4_096));
    } finally {
      log.clock.ms = undefined;
    }
    await log.ledger.sealPending();
    done += n;
  }
  await log.anchorAll();
}

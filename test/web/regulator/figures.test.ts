import { expect } from "chai";
import type { Verdict } from "../../../services/verifier/verdict.ts";
import {
  type BatchFacts,
  type EventFacts,
  Strings,
  addToBatch,
  batchSighting,
  factsOf,
} from "../../../web/regulator/facts.ts";
import {
  type FigureQuery,
  daysBetween,
  logFigures,
  mergeFigures,
} from "../../../web/regulator/figures.ts";
import { csvOf, staffTable, transferLines, verdictsTable } from "../../../web/regulator/tables.ts";

const DCM = "http://dicom.nema.org/resources/ontology/DCM";
const verified: Verdict = { ok: true, status: "verified", checks: [] };

let seq = 0;
function bundle(opts: {
  at: string;
  org?: string;
  staff?: string | null;
  withheld?: boolean;
  subject?: string | null;
  action?: string;
  purposes?: string[];
  breakGlass?: boolean;
  category?: { code: string; display?: string };
  transfer?: { kind: "110106" | "110107"; reference: string; recipient?: string };
  batchNo?: number;
  erased?: boolean;
}): Record<string, unknown> {
  const org = opts.org ?? "org:a";
  const who = opts.withheld
    ? { _sd: `0x${"ab".repeat(32)}` }
    : { system: "idp", value: opts.staff ?? "u-1", display: `Name ${opts.staff ?? "u-1"}` };
  const event = {
    action: opts.action ?? "R",
    type: opts.transfer ? { system: DCM, code: opts.transfer.kind } : { system: "x", code: "rest" },
    purposeOfUse: opts.purposes ?? ["TREAT"],
    breakGlass: opts.breakGlass ?? false,
    agents: [
      { who: { value: "Device/x" }, organization: org, requestor: false },
      ...(opts.staff === null ? [] : [{ who, organization: org, requestor: true }]),
    ],
    source: { organization: org },
    entities: opts.category ? [{ category: opts.category }] : [],
    ...(opts.transfer
      ? {
          transfer: { reference: opts.transfer.reference, dataHash: `0x${"11".repeat(32)}` },
          ...(opts.transfer.recipient
            ? { recipient: { organization: opts.transfer.recipient } }
            : {}),
        }
      : {}),
  };
  return {
    format: "veritrail-proof/1",
    event: opts.erased ? null : event,
    entry: {
      seq: seq++,
      recorded: opts.at,
      subject: opts.subject === undefined ? `0x${"01".repeat(32)}` : opts.subject,
    },
    batch: { batchNo: opts.batchNo ?? 0, firstSeq: 0, count: 100 },
    anchor: {
      chainId: 1,
      contract: "0x" + "22".repeat(20),
      txHash: "0x" + "33".repeat(32),
      blockNumber: 10,
    },
  };
}

function logOf(
  bundles: Array<Record<string, unknown>>,
  log = 0,
  verdict: (b: Record<string, unknown>) => Verdict = () => verified,
) {
  const strings = new Strings();
  const facts: EventFacts[] = [];
  const batches = new Map<number, BatchFacts>();
  for (const b of bundles) {
    const v = verdict(b);
    facts.push(factsOf(b, v, strings)!);
    addToBatch(batches, batchSighting(b, v)!);
  }
  return {
    log,
    facts,
    batches,
    head: 12,
    malformed: [] as Array<{ line: number; reason: string }>,
    categoryLabels: strings.categoryLabels,
  };
}

const UTC_HOURS: FigureQuery["hours"] = {
  zone: "UTC",
  startMinute: 8 * 60,
  endMinute: 18 * 60,
  days: [1, 2, 3, 4, 5],
};
const query = (extra: Partial<FigureQuery> = {}): FigureQuery => ({
  hours: UTC_HOURS,
  staffThreshold: 3,
  ...extra,
});

describe("regulator console figures (web/regulator/figures.ts)", () => {
  it("counts per day and organization, purpose, action and category, with empty days filled", () => {
    const f = logFigures(
      logOf([
        bundle({
          at: "2025-03-03T09:00:00.000Z",
          org: "org:a",
          category: { code: "11502-2", display: "Lab" },
        }),
        bundle({
          at: "2025-03-03T10:00:00.000Z",
          org: "org:b",
          action: "U",
          purposes: ["HPAYMT", "TREAT"],
        }),
        bundle({ at: "2025-03-05T10:00:00.000Z", org: "org:a", category: { code: "11502-2" } }),
      ]),
      query(),
    );
    expect(f.events).to.equal(3);
    expect(f.perDay).to.deep.equal({
      days: ["2025-03-03", "2025-03-04", "2025-03-05"],
      series: [
        { organization: "org:a", counts: [1, 0, 1] },
        { organization: "org:b", counts: [1, 0, 0] },
      ],
    });
    expect(f.purposes.map((c) => [c.key, c.count])).to.deep.equal([
      ["TREAT", 3],
      ["HPAYMT", 1],
    ]);
    expect(f.actions.map((c) => [c.key, c.count])).to.deep.equal([
      ["R", 2],
      ["U", 1],
    ]);
    expect(f.categories.map((c) => [c.key, c.label, c.count])).to.deep.equal([
      ["11502-2", "Lab", 2],
      ["(none)", "(none)", 1],
    ]);
  });

  it("lists break-glass and after-hours events; working hours follow the zone and the weekdays", () => {
    const data = logOf([
      bundle({ at: "2025-03-03T07:59:00.000Z" }), // Mon 07:59 UTC: before hours
      bundle({ at: "2025-03-03T08:00:00.000Z" }), // Mon 08:00: in
      bundle({ at: "2025-03-03T17:59:00.000Z", breakGlass: true }), // in, break-glass
      bundle({ at: "2025-03-03T18:00:00.000Z" }), // out
      bundle({ at: "2025-03-08T12:00:00.000Z", purposes: ["BTG"] }), // Saturday; BTG implies break-glass
    ]);
    const utc = logFigures(data, query());
    expect(utc.afterHours.rows.map((r) => r.local)).to.deep.equal([
      "2025-03-03 07:59",
      "2025-03-03 18:00",
      "2025-03-08 12:00",
    ]);
    expect(utc.breakGlass.rows.map((r) => r.local)).to.deep.equal([
      "2025-03-03 17:59",
      "2025-03-08 12:00",
    ]);
    // Berlin is UTC+1 in March: 07:59 UTC is 08:59 there (in hours), 17:59 UTC is 18:59 (out).
    const berlin = logFigures(data, query({ hours: { ...UTC_HOURS, zone: "Europe/Berlin" } }));
    expect(berlin.afterHours.rows.map((r) => r.local)).to.deep.equal([
      "2025-03-03 18:59",
      "2025-03-03 19:00",
      "2025-03-08 13:00",
    ]);
    // A list is cut at listLimit; its total is not.
    const cut = logFigures(data, query({ listLimit: 1 }));
    expect(cut.afterHours.total).to.equal(3);
    expect(cut.afterHours.rows).to.have.length(1);
  });

  it("ranks staff accounts by distinct patients (subject tags), flags the threshold, counts withheld identities apart", () => {
    const tag = (n: number) => `0x${String(n).padStart(64, "0")}`;
    const f = logFigures(
      logOf([
        ...[1, 2, 3, 3].map((n) =>
          bundle({ at: "2025-03-03T09:00:00.000Z", staff: "u-1", subject: tag(n) }),
        ),
        ...[1, 1].map((n) =>
          bundle({ at: "2025-03-03T09:00:00.000Z", staff: "u-2", subject: tag(n) }),
        ),
        bundle({ at: "2025-03-03T09:00:00.000Z", withheld: true }),
        bundle({ at: "2025-03-03T09:00:00.000Z", staff: "u-3", subject: null }),
      ]),
      query(),
    );
    expect(
      f.staff.rows.map((r) => [r.account, r.distinctPatients, r.accesses, r.overThreshold]),
    ).to.deep.equal([
      ["u-1", 3, 4, true],
      ["u-2", 1, 2, false],
      ["u-3", 0, 1, false],
    ]);
    expect([f.staff.accounts, f.staff.overThreshold, f.staff.withheldEvents]).to.deep.equal([
      3, 1, 1,
    ]);
    const csv = csvOf(staffTable(f.staff.rows, () => "St Mary"));
    expect(csv.split("\r\n")[1]).to.equal("St Mary,u-1,idp,Name u-1,org:a,3,4,true");
  });

  it("filters by period (local days), organization and verification; malformed lines stay in the summary", () => {
    const failed: Verdict = {
      ok: false,
      status: "failed",
      code: "COMMITMENT_MISMATCH",
      checks: [],
    };
    const data = logOf(
      [
        bundle({ at: "2025-03-02T23:30:00.000Z", org: "org:a" }),
        bundle({ at: "2025-03-03T12:00:00.000Z", org: "org:b", action: "D" }),
        bundle({ at: "2025-03-04T12:00:00.000Z", org: "org:a" }),
      ],
      0,
      (b) => ((b["event"] as { action: string }).action === "D" ? failed : verified),
    );
    data.malformed = [
      { line: 7, reason: "line 7 is not JSON" },
      { line: 9, reason: "line 9 is not JSON" },
    ];
    expect(logFigures(data, query({ fromDay: "2025-03-03", toDay: "2025-03-03" })).events).to.equal(
      1,
    );
    // In Tokyo (UTC+9) the first event is on the 3rd.
    expect(
      logFigures(
        data,
        query({
          fromDay: "2025-03-03",
          toDay: "2025-03-03",
          hours: { ...UTC_HOURS, zone: "Asia/Tokyo" },
        }),
      ).events,
    ).to.equal(2);
    expect(logFigures(data, query({ organizations: ["org:a"] })).events).to.equal(2);
    const all = logFigures(data, query());
    expect(all.verdicts).to.deep.include({ total: 5, verified: 2, failed: 3 });
    expect(all.verdicts.byCode).to.deep.equal({ COMMITMENT_MISMATCH: 1, BUNDLE_MALFORMED: 2 });
    expect(verdictsTable(all).rows).to.deep.include(["failed", "BUNDLE_MALFORMED", 2]);
    expect(all.failures.total).to.equal(3);
    expect(all.failures.rows.map((r) => [r.seq !== null, r.line, r.code])).to.deep.equal([
      [true, null, "COMMITMENT_MISMATCH"],
      [false, 7, "BUNDLE_MALFORMED"],
      [false, 9, "BUNDLE_MALFORMED"],
    ]);
    const only = logFigures(data, query({ verifiedOnly: true }));
    expect(only.actions.map((c) => c.key)).to.deep.equal(["R"]);
    // The organizations and days of the whole log stay, for the filter's choices.
    expect(only.organizations).to.deep.equal(["org:a", "org:b"]);
    expect([all.firstDay, all.lastDay]).to.deep.equal(["2025-03-02", "2025-03-04"]);
  });

  it("merges logs: counts add up, days line up, lists interleave by time, transfers match across logs", () => {
    const a = logFigures(
      logOf([
        bundle({
          at: "2025-03-03T09:00:00.000Z",
          org: "org:a",
          transfer: { kind: "110106", reference: "x-1", recipient: "org:b" },
        }),
        bundle({ at: "2025-03-03T20:00:00.000Z", org: "org:a" }),
        bundle({
          at: "2025-03-04T09:00:00.000Z",
          org: "org:a",
          transfer: { kind: "110106", reference: "x-2", recipient: "org:b" },
        }),
      ]),
      query(),
    );
    const b = logFigures(
      logOf(
        [
          bundle({
            at: "2025-03-03T19:00:00.000Z",
            org: "org:b",
            staff: null,
            transfer: { kind: "110107", reference: "x-1" },
          }),
          bundle({ at: "2025-03-06T09:00:00.000Z", org: "org:b" }),
        ],
        1,
      ),
      query(),
    );
    const m = mergeFigures([a, b]);
    expect(m.events).to.equal(5);
    expect(m.perDay.days).to.deep.equal(daysBetween("2025-03-03", "2025-03-06"));
    expect(m.perDay.series).to.deep.equal([
      { organization: "org:a", counts: [2, 1, 0, 0] },
      { organization: "org:b", counts: [1, 0, 0, 1] },
    ]);
    expect(m.afterHours.rows.map((r) => [r.log, r.local])).to.deep.equal([
      [1, "2025-03-03 19:00"],
      [0, "2025-03-03 20:00"],
    ]);
    const lines = transferLines(m.transfers);
    expect(lines.map((l) => [l.reference, l.match, l.from?.log, l.to?.log])).to.deep.equal([
      ["x-1", "matched", 0, 1],
      ["x-2", "NOT_IMPORTED", 0, undefined],
    ]);
    expect(
      m.batches.map((x) => [x.log, x.batchNo, x.seen, x.confirmations, x.state]),
    ).to.deep.equal([
      [0, 0, 3, 3, "incomplete"],
      [1, 0, 2, 3, "incomplete"],
    ]);
  });

  it("reads odd or hostile bundles without trusting them into a figure", () => {
    const strings = new Strings();
    expect(factsOf(null, verified, strings)).to.equal(undefined);
    expect(
      factsOf({ entry: { seq: "1", recorded: "2025-03-03T09:00:00.000Z" } }, verified, strings),
    ).to.equal(undefined);
    const odd = factsOf(
      {
        entry: { seq: 4, recorded: "2025-03-03T09:00:00.000Z", subject: 7 },
        event: {
          action: "DROP TABLE",
          agents: "no",
          entities: [{ category: 5 }],
          breakGlass: "yes",
        },
      },
      verified,
      strings,
    )!;
    expect(odd).to.deep.include({
      seq: 4,
      action: "?",
      organization: "(unknown)",
      breakGlass: false,
      subject: null,
    });
    expect(odd.categories).to.deep.equal([]);
    const erased = factsOf(
      bundle({ at: "2025-03-03T09:00:00.000Z", erased: true }),
      verified,
      strings,
    )!;
    expect(erased).to.deep.include({ content: false, action: "?" });
  });
});

import { TestLogClock, ingestAtTheirTimes } from "../../support/log-clock.ts";
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PURPOSE_OF_USE_CODES } from "../../../services/core/codes.ts";
import type { NativeEvent } from "../../../services/core/event.ts";
import { eraseEvent } from "../../../services/ledger/erasure.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { EventQueries } from "../../../services/ledger/queries.ts";
import {
  ACCOUNTING_EXCLUDED_PURPOSES,
  accessCsv,
  accessReport,
  accountingCsv,
  accountingOfDisclosures,
  defaultAccountingRange,
  subjectTagOf,
} from "../../../services/ledger/reports.ts";
import { LAB_ORG, PATIENT_MRN_SYSTEM, makeBalpNativeEvent } from "../../fixtures/events.ts";
import { parseCsv } from "./rfc4180.ts";

const PATIENT = { system: PATIENT_MRN_SYSTEM, value: "MRN-REPORTS-1" };
const OTHER = { system: PATIENT_MRN_SYSTEM, value: "MRN-REPORTS-2" };

let n = 0;
/** A PrivacyDisclosure.Source (Export to the lab) with the given purposes on event and agents. */
function disclosure(purposes: string[], extra: Partial<NativeEvent> = {}): NativeEvent {
  const base = makeBalpNativeEvent("PrivacyDisclosureSource");
  return {
    ...base,
    purposeOfUse: purposes,
    agents: base.agents.map((a) => {
      const copy = { ...a };
      delete copy.purposeOfUse;
      return copy;
    }),
    patient: PATIENT,
    requestId: `reports-${++n}`,
    recorded: `2024-06-01T10:00:00.${String(n).padStart(3, "0")}Z`,
    ...extra,
  };
}

describe("ledger/reports", () => {
  let dir: string;
  let ledger: Ledger;
  let queries: EventQueries;
  const seqOf: Record<string, number> = {};
  const clock = new TestLogClock();

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-reports-"));
    ledger = await Ledger.open({
      location: path.join(dir, "ledger"),
      receiptSigner: new Wallet("0x" + "33".repeat(32)),
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 3_600_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 1_000,
      logClock: clock.now,
    });
    queries = new EventQueries(ledger);
    const named: Array<[string, NativeEvent]> = [
      ["pubhlth", disclosure(["PUBHLTH"])],
      ["treat", disclosure(["TREAT"])],
      ["hpaymt", disclosure(["HPAYMT"])],
      ["hoperat", disclosure(["HOPERAT"])],
      ["patrqt", disclosure(["PATRQT"])],
      ["hresch", disclosure(["HRESCH"])],
      ["none", disclosure([])],
      ["treat+pubhlth", disclosure(["TREAT", "PUBHLTH"])],
      ["read", { ...makeBalpNativeEvent("Read"), patient: PATIENT, requestId: "reports-read-1" }],
      [
        "import",
        {
          ...makeBalpNativeEvent("PrivacyDisclosureRecipient"),
          purposeOfUse: ["PUBHLTH"],
          patient: PATIENT,
          requestId: "reports-import-1",
        },
      ],
      ["old", disclosure(["PUBHLTH"], { recorded: "2019-01-01T00:00:00.000Z" })],
      ["failed", disclosure(["PUBHLTH"], { outcome: 8 })],
      ["other-patient", disclosure(["PUBHLTH"], { patient: OTHER })],
      [
        "quoted",
        disclosure(["LEGAL"], {
          entities: [
            {
              what: "DocumentReference/court-1",
              description: 'Discharge summary, "cardiology"; =cmd',
            },
          ],
          recipient: { organization: "org:court", name: "County Court, Civil Division" },
        }),
      ],
      ["to-erase", disclosure(["PUBHLTH"])],
    ];
    // Each logged at its own time (the log clock, which never goes back: the old one first).
    const order = [...named.filter(([k]) => k === "old"), ...named.filter(([k]) => k !== "old")];
    const results = await ingestAtTheirTimes(
      ledger,
      clock,
      order.map(([, e]) => e),
    );
    order.forEach(([name], i) => (seqOf[name] = results[i]!.receipt.seq));
    await eraseEvent(ledger, {
      seq: seqOf["to-erase"]!,
      legalBasis: "GDPR Art. 17",
      reason: "test",
      keyId: "key_00000000000000ee",
    });
  });

  after(async () => {
    await ledger?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("accounting of disclosures: lists PUBHLTH, HRESCH, LEGAL and unknown purposes; leaves out TPO, PATRQT, imports, reads, failures, other patients and older than six years", async () => {
    const report = await accountingOfDisclosures(
      queries,
      subjectTagOf(ledger, PATIENT),
      defaultAccountingRange(new Date("2026-11-23T00:00:00.000Z")),
    );
    const listed = report.disclosures.map((d) => d.seq);
    expect(listed).to.deep.equal(
      ["pubhlth", "hresch", "none", "treat+pubhlth", "quoted"].map((k) => seqOf[k]),
    );
    expect(report.erasedInPeriod).to.equal(1);
    const first = report.disclosures[0]!;
    expect(first).to.deep.include({
      date: "2024-06-01T10:00:00.001Z",
      purpose: ["PUBHLTH"],
      purposeText: "public health",
      proof: `/v1/events/${first.seq}/proof`,
    });
    expect(first.recipient).to.deep.equal({
      organization: LAB_ORG,
      name: "Northside Clinical Laboratory",
      address: "12 Harbour Road, Springfield",
    });
    expect(first.description).to.equal("Laboratory report");
    expect(report.disclosures[2]!.purposeText).to.equal("not recorded");
  });

  it("the look-back is six years by default and can be set", async () => {
    const range = defaultAccountingRange(new Date("2026-11-23T00:00:00.000Z"));
    expect(new Date(range.fromMs).toISOString()).to.equal("2020-11-23T00:00:00.000Z");
    const wide = await accountingOfDisclosures(queries, subjectTagOf(ledger, PATIENT), {
      fromMs: Date.parse("2010-01-01T00:00:00Z"),
      toMs: Date.parse("2030-01-01T00:00:00Z"),
    });
    expect(wide.disclosures.map((d) => d.seq)).to.include(seqOf["old"]);
  });

  it("every excluded purpose is a known v3 ActReason code tied to a paragraph of §164.528(a)(1)", () => {
    for (const [code, why] of Object.entries(ACCOUNTING_EXCLUDED_PURPOSES)) {
      expect(PURPOSE_OF_USE_CODES).to.have.property(code);
      expect(why).to.match(/^\(a\)\(1\)\((i|ii|iv)\)/);
    }
    for (const owed of ["PUBHLTH", "HRESCH", "LEGAL", "HLEGAL", "BTG", "GOV", "MILCDM"])
      expect(ACCOUNTING_EXCLUDED_PURPOSES).to.not.have.property(owed);
  });

  it("access report: every event of the patient, erased ones as such, staff names only when allowed", async () => {
    const tag = subjectTagOf(ledger, PATIENT);
    const range = { fromMs: 0, toMs: Date.parse("2030-01-01T00:00:00Z") };
    const hidden = await accessReport(queries, tag, range, { staffIdentity: "withhold" });
    const expected = Object.entries(seqOf)
      .filter(([k]) => k !== "other-patient")
      .map(([, s]) => s)
      .sort((a, b) => a - b);
    expect(hidden.accesses.map((a) => a.seq)).to.deep.equal(expected);
    const erased = hidden.accesses.find((a) => a.seq === seqOf["to-erase"])!;
    expect(erased).to.deep.include({ erased: true, action: null, organization: null });
    const read = hidden.accesses.find((a) => a.seq === seqOf["read"])!;
    expect(read.agents.every((a) => a.who === undefined)).to.equal(true);
    expect(read.purpose).to.deep.equal(["TREAT"]);
    const shown = await accessReport(queries, tag, range, { staffIdentity: "disclose" });
    const readShown = shown.accesses.find((a) => a.seq === seqOf["read"])!;
    expect(readShown.agents.map((a) => a.who)).to.include("Dr. Anna Weber");
  });

  it("CSV is RFC 4180: parses back into the same table, quotes commas and quotes, defuses formulas", async () => {
    const tag = subjectTagOf(ledger, PATIENT);
    const report = await accountingOfDisclosures(queries, tag, {
      fromMs: 0,
      toMs: Date.parse("2030-01-01T00:00:00Z"),
    });
    const csv = accountingCsv(report);
    expect(csv.endsWith("\r\n")).to.equal(true);
    const table = parseCsv(csv);
    expect(table[0]).to.deep.equal([
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
    ]);
    expect(table).to.have.length(report.disclosures.length + 1);
    for (const row of table) expect(row).to.have.length(10);
    const quoted = table.find((r) => r[0] === String(seqOf["quoted"]))!;
    expect(quoted[4]).to.equal("County Court, Civil Division");
    expect(quoted[6]).to.equal('Discharge summary, "cardiology"; =cmd');
    expect(quoted[9]).to.equal(`/v1/events/${seqOf["quoted"]}/proof`);

    const access = parseCsv(
      accessCsv(
        await accessReport(queries, tag, { fromMs: 0, toMs: 2e12 }, { staffIdentity: "withhold" }),
      ),
    );
    expect(access[0]![0]).to.equal("seq");
    expect(access.slice(1).map((r) => Number(r[0]))).to.include(seqOf["to-erase"]);
    expect(access.every((r) => r.length === 12)).to.equal(true);
  });

  it("a writer's recorded far in the past or future does not move entry.recorded: the event lands in the period the log accepted it", async () => {
    const patient = { system: "urn:oid:2.16.840.1.113883.4.1", value: "PAT-BACKDATED" };
    const acceptedAt = Date.parse("2030-03-01T12:00:00.000Z");
    clock.ms = acceptedAt;
    const [past, future] = await ledger.ingest([
      disclosure(["PUBHLTH"], { patient, recorded: "0000-01-01T00:00:00.000Z" }),
      disclosure(["PUBHLTH"], { patient, recorded: "9999-12-31T23:59:59.999Z" }),
    ]);
    clock.ms = undefined;
    for (const r of [past!, future!]) {
      expect(r.receipt.recorded).to.equal("2030-03-01T12:00:00.000Z");
      expect((await ledger.getEvent(r.receipt.seq)).entry.recorded).to.equal(
        "2030-03-01T12:00:00.000Z",
      );
    }
    const tag = subjectTagOf(ledger, patient);
    const march = { fromMs: Date.parse("2030-03-01T00:00:00.000Z"), toMs: acceptedAt + 1 };
    const report = await accountingOfDisclosures(queries, tag, march);
    expect(report.disclosures.map((d) => [d.seq, d.date, d.sourceTime])).to.deep.equal([
      [past!.receipt.seq, "2030-03-01T12:00:00.000Z", "0000-01-01T00:00:00.000Z"],
      [future!.receipt.seq, "2030-03-01T12:00:00.000Z", "9999-12-31T23:59:59.999Z"],
    ]);
    // Not in the periods the writer's times would have put them in.
    for (const range of [
      {
        fromMs: Date.parse("0000-01-01T00:00:00.000Z"),
        toMs: Date.parse("0001-01-01T00:00:00.000Z"),
      },
      {
        fromMs: Date.parse("9999-01-01T00:00:00.000Z"),
        toMs: Date.parse("9999-12-31T23:59:59.999Z") + 1,
      },
    ])
      expect((await accountingOfDisclosures(queries, tag, range)).disclosures).to.deep.equal([]);
    const accesses = await accessReport(queries, tag, march, { staffIdentity: "withhold" });
    expect(accesses.accesses.map((a) => a.sourceTime)).to.deep.equal([
      "0000-01-01T00:00:00.000Z",
      "9999-12-31T23:59:59.999Z",
    ]);
  });

  it("the log clock never goes back: entry.recorded is non-decreasing in seq", async () => {
    const before = ledger.nextSeq;
    clock.ms = Date.parse("2020-01-01T00:00:00.000Z");
    await ledger.ingest([disclosure(["PUBHLTH"])]);
    clock.ms = undefined;
    let last = "";
    for (let seq = 0; seq < ledger.nextSeq; seq++) {
      const { entry } = await ledger.getEvent(seq);
      expect(entry.recorded >= last, `seq ${seq}: ${entry.recorded} < ${last}`).to.equal(true);
      last = entry.recorded;
    }
    expect((await ledger.getEvent(before)).entry.recorded > "2020-01-01").to.equal(true);
  });

  it("refuses an empty period", async () => {
    const err = await accessReport(
      queries,
      subjectTagOf(ledger, PATIENT),
      { fromMs: 10, toMs: 10 },
      { staffIdentity: "withhold" },
    ).catch((e: unknown) => e);
    expect(err).to.have.property("code", "VALIDATION_FAILED");
  });
});

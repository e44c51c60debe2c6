import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NativeEvent } from "../../../services/core/event.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { EventQueries } from "../../../services/ledger/queries.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

function event(org: string, patient: string | null, purpose = "TREAT"): NativeEvent {
  const base = makeNativeEvent({ purposeOfUse: [purpose] });
  delete base.requestId;
  delete base.patient;
  return {
    ...base,
    ...(patient ? { patient: { value: patient } } : {}),
    // Agents' own purposes would match every purpose filter; keep only the event's.
    agents: base.agents.map(({ purposeOfUse: _own, ...agent }) => agent),
    source: { ...base.source, organization: org },
  };
}

describe("ledger queries (real LevelDB)", () => {
  let dir: string;
  let ledger: Ledger;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-queries-"));
    ledger = await Ledger.open({
      location: path.join(dir, "db"),
      receiptSigner: new Wallet("0x" + "44".repeat(32)),
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 1_000,
    });
    // 200 events; only seqs 150 and 199 are for PUBHLTH.
    await ledger.ingest(
      Array.from({ length: 200 }, (_, i) =>
        event(
          i % 2 === 0 ? "org:a" : "org:b",
          i % 10 === 0 ? "p-1" : null,
          i === 150 || i === 199 ? "PUBHLTH" : "TREAT",
        ),
      ),
    );
  });
  after(async () => {
    await ledger.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("a sparse filter stops at the scan budget with a cursor that resumes where it stopped", async () => {
    const queries = new EventQueries(ledger, 64);
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await queries.listEvents({ purpose: "PUBHLTH" }, { cursor, limit: 10 });
      pages++;
      seen.push(...page.events.map((e) => e.seq));
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    expect(seen).to.deep.equal([150, 199]);
    expect(pages).to.be.greaterThan(2);
  });

  it("scope checks use the indexes: organization and subject", async () => {
    const queries = new EventQueries(ledger);
    const tag = ledger.subjectTagOf({ value: "p-1" });
    expect(await queries.isInScope(0, { organization: "org:a" })).to.equal(true);
    expect(await queries.isInScope(1, { organization: "org:a" })).to.equal(false);
    expect(await queries.isInScope(10, { subject: tag })).to.equal(true);
    expect(await queries.isInScope(11, { subject: tag })).to.equal(false);
    expect(await queries.isInScope(10_000, { organization: "org:a" })).to.equal(false);
    const page = await queries.listEvents({ subject: tag }, { limit: 1_000 });
    expect(page.events.map((e) => e.seq)).to.deep.equal(
      Array.from({ length: 20 }, (_, i) => i * 10),
    );
    expect(page.nextCursor).to.equal(null);
  });

  it("a cursor is bound to its log: another log's queries refuse it", async () => {
    const queries = new EventQueries(ledger);
    const page = await queries.listEvents({}, { limit: 5 });
    const otherDir = await mkdtemp(path.join(tmpdir(), "veritrail-queries-other-"));
    const other = await Ledger.open({
      location: path.join(otherDir, "db"),
      receiptSigner: new Wallet("0x" + "45".repeat(32)),
      batchMaxEvents: 10,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 10,
    });
    try {
      await new EventQueries(other).listEvents({}, { cursor: page.nextCursor!, limit: 5 });
      expect.fail("a foreign cursor must be refused");
    } catch (error) {
      expect(error).to.include({ code: "BAD_CURSOR", field: "cursor" });
    } finally {
      await other.close();
      await rm(otherDir, { recursive: true, force: true });
    }
  });
});

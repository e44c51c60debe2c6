import { TestLogClock, ingestAtTheirTimes } from "../../support/log-clock.ts";
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Bundle } from "../../../services/core/bundle.ts";
import { EXPORT_PAGE, exportBundles } from "../../../services/ledger/export.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { EventQueries } from "../../../services/ledger/queries.ts";
import { HOSPITAL_ORG, LAB_ORG, makeNativeEvent } from "../../fixtures/events.ts";

const DISCLOSE = { staffIdentity: "disclose" } as const;

describe("ledger/export: exportBundles", () => {
  let dir: string;
  let ledger: Ledger;
  let queries: EventQueries;
  const TOTAL = EXPORT_PAGE * 2 + 37;
  const clock = new TestLogClock();

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-export-"));
    ledger = await Ledger.open({
      location: path.join(dir, "ledger"),
      receiptSigner: new Wallet("0x" + "44".repeat(32)),
      batchMaxEvents: 400,
      batchMaxWaitMs: 3_600_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
      logClock: clock.now,
    });
    queries = new EventQueries(ledger);
    const events = Array.from({ length: TOTAL }, (_, i) => {
      const e = makeNativeEvent({
        recorded: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString(),
      });
      delete e.requestId;
      return i % 3 === 0 ? { ...e, source: { ...e.source, organization: LAB_ORG } } : e;
    });
    // Logged when they say they happened (the log clock; the time filter is the log's time).
    await ingestAtTheirTimes(ledger, clock, events);
    await ledger.sealPending();
  });

  after(async () => {
    await ledger?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("yields every bundle in log order across pages, each equal to prove(seq)", async () => {
    const seqs: number[] = [];
    for await (const b of exportBundles(ledger, queries, {}, DISCLOSE)) {
      seqs.push(b.entry.seq);
      if (b.entry.seq % 400 === 7) expect(b).to.deep.equal(await ledger.prove(b.entry.seq));
    }
    expect(seqs).to.deep.equal(Array.from({ length: TOTAL }, (_, i) => i));
  });

  it("is pulled, not pushed: a consumer that takes 3 bundles causes 3 proofs and one page read", async () => {
    let proofs = 0;
    let pages = 0;
    const counting = { prove: (seq: number) => (proofs++, ledger.prove(seq)) };
    const countingQueries = {
      listEvents: (...args: Parameters<EventQueries["listEvents"]>) => (
        pages++,
        queries.listEvents(...args)
      ),
    };
    const it = exportBundles(counting, countingQueries, {}, DISCLOSE);
    for (let i = 0; i < 3; i++) expect((await it.next()).done).to.equal(false);
    expect(proofs).to.equal(3);
    expect(pages).to.equal(1);
    await it.return(undefined);
  });

  it("shows staff identity as the access policy says: disclosed, or withheld and still a bundle", async () => {
    const [disclosed, withheld] = await Promise.all(
      (["disclose", "withhold"] as const).map(async (staffIdentity) => {
        const it = exportBundles(ledger, queries, {}, { staffIdentity });
        const first = (await it.next()).value as Bundle;
        await it.return(undefined);
        return first;
      }),
    );
    expect(disclosed).to.deep.equal(await ledger.prove(0, { staffIdentity: "disclose" }));
    expect(withheld).to.deep.equal(await ledger.prove(0, { staffIdentity: "withhold" }));
    expect(JSON.stringify(disclosed)).to.include("Dr. Anna Weber");
    expect(JSON.stringify(withheld)).to.not.include("Dr. Anna Weber");
    expect(JSON.stringify(withheld)).to.include('"_sd":"0x');
  });

  it("filters by organization and by time", async () => {
    const lab: number[] = [];
    for await (const b of exportBundles(ledger, queries, { organization: LAB_ORG }, DISCLOSE))
      lab.push(b.entry.seq);
    expect(lab).to.deep.equal(
      Array.from({ length: TOTAL }, (_, i) => i).filter((i) => i % 3 === 0),
    );
    const hospital: number[] = [];
    for await (const b of exportBundles(
      ledger,
      queries,
      {
        organization: HOSPITAL_ORG,
        fromMs: Date.UTC(2024, 0, 1) + 10 * 60_000,
        toMs: Date.UTC(2024, 0, 1) + 20 * 60_000,
      },
      DISCLOSE,
    ))
      hospital.push(b.entry.seq);
    expect(hospital).to.deep.equal([10, 11, 13, 14, 16, 17, 19]);
  });
});

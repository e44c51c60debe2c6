import { expect } from "chai";
import {
  type Trace,
  type TraceSide,
  checkHopMatch,
  custodyOf,
  mergeTraces,
  parseTrace,
} from "../../../services/core/provenance-trace.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../fixtures/events.ts";

const LOG_A = `0x${"a1".repeat(32)}`;
const LOG_B = `0x${"b2".repeat(32)}`;
const DATA: `0x${string}` = `0x${"d4".repeat(32)}`;

function side(logId: string, seq: number, organization: string, recorded: string): TraceSide {
  return { log: "l", logId, seq, organization, recorded, bundle: {} };
}

const exportSide = side(LOG_A, 1, HOSPITAL_ORG, "2026-01-01T00:00:01.000Z");
const importSide = side(LOG_B, 4, LAB_ORG, "2026-01-01T00:00:02.000Z");

describe("core/provenance-trace", () => {
  it("parseTrace names the first bad field", () => {
    expect(parseTrace({ hops: [], unmatched: [] })).to.deep.include({ ok: true });
    const bad = parseTrace({ hops: [{ reference: 1 }], unmatched: [] });
    expect(bad.ok).to.equal(false);
    if (!bad.ok) expect(bad.message).to.match(/^hops\.0\.reference: /);
  });

  it("mergeTraces: a hop seen whole replaces the same hop withheld from another key", () => {
    const writerView: Trace = {
      dataHash: null,
      hops: [{ reference: "x", dataHash: DATA, from: exportSide, to: { withheld: true } }],
      unmatched: [],
    };
    const auditorView: Trace = {
      dataHash: DATA,
      reference: "x",
      hops: [{ reference: "x", dataHash: DATA, from: exportSide, to: importSide }],
      unmatched: [],
      complete: true,
    };
    const merged = mergeTraces([writerView, auditorView]);
    expect(merged.hops).to.deep.equal(auditorView.hops);
    expect(merged.dataHash).to.equal(DATA);
    expect(merged.complete).to.equal(true);
  });

  it("mergeTraces: unmatched in one answer but matched in another counts as matched", () => {
    const senderOnly: Trace = {
      hops: [],
      unmatched: [
        {
          kind: "export",
          reason: "NOT_IMPORTED",
          reference: "x",
          dataHash: DATA,
          side: exportSide,
        },
      ],
      complete: false,
    };
    const both: Trace = {
      hops: [{ reference: "x", dataHash: DATA, from: exportSide, to: importSide }],
      unmatched: [],
    };
    const merged = mergeTraces([senderOnly, both]);
    expect(merged.unmatched).to.deep.equal([]);
    expect(merged.hops).to.have.length(1);
    expect(merged.complete, "one answer was incomplete").to.equal(false);
  });

  it("custodyOf lists each organization once per handover and skips withheld sides", () => {
    const third = side(LOG_A, 9, "org:third", "2026-01-01T00:00:03.000Z");
    expect(
      custodyOf([
        { from: exportSide, to: importSide },
        { from: importSide, to: third },
      ]),
    ).to.deep.equal([HOSPITAL_ORG, LAB_ORG, "org:third"]);
    expect(custodyOf([{ from: { withheld: true }, to: importSide }])).to.deep.equal([LAB_ORG]);
  });

  it("checkHopMatch re-derives the match from the bundles' events", () => {
    const transfer = { reference: "x", dataHash: DATA };
    const exported = makeBalpNativeEvent("PrivacyDisclosureSource", {
      overrides: { transfer, recipient: { organization: LAB_ORG } },
    });
    const base = makeBalpNativeEvent("PrivacyDisclosureRecipient");
    const imported = makeBalpNativeEvent("PrivacyDisclosureRecipient", {
      overrides: { transfer, source: { ...base.source, organization: LAB_ORG } },
    });
    const withEvent = (s: TraceSide, event: unknown): TraceSide => ({
      ...s,
      organization: (event as { source: { organization: string } }).source.organization,
      bundle: { entry: { log: s.logId, seq: s.seq }, event },
    });
    const hop = {
      reference: "x",
      dataHash: DATA,
      from: withEvent(exportSide, exported),
      to: withEvent(importSide, imported),
    };
    expect(checkHopMatch(hop, DATA)).to.equal(null);
    expect(checkHopMatch({ ...hop, reference: "y" }, DATA)).to.match(/references differ/);
    expect(checkHopMatch(hop, `0x${"00".repeat(32)}`)).to.match(/not the item traced/);
    expect(checkHopMatch({ ...hop, from: hop.to }, DATA)).to.match(/^export: .*is not an Export/);
    expect(checkHopMatch({ ...hop, to: { withheld: true } }, DATA)).to.match(
      /import side was withheld/,
    );
  });
});

import { expect } from "chai";
import { SYSTEM } from "../../../services/core/codes.ts";
import { matchTransfers, transferOf } from "../../../services/core/transfer.ts";

const HASH_A = `0x${"a".repeat(64)}`;
const HASH_B = `0x${"b".repeat(64)}`;

function event(
  code: "110106" | "110107" | "110110",
  organization: string,
  transfer: { reference: string; dataHash: string } | undefined,
  recipient?: string,
): Record<string, unknown> {
  return {
    type: { system: SYSTEM.dcm, code },
    source: { organization },
    ...(transfer ? { transfer } : {}),
    ...(recipient ? { recipient: { organization: recipient } } : {}),
  };
}

describe("core/transfer: which events are transfers, and how exports match imports", () => {
  it("reads only DCM Export/Import events that carry transfer", () => {
    const t = { reference: "x-1", dataHash: HASH_A };
    expect(transferOf(event("110106", "org:a", t, "org:b"), 1)).to.deep.equal({
      kind: "export",
      reference: "x-1",
      dataHash: HASH_A,
      organization: "org:a",
      recipient: "org:b",
      side: 1,
    });
    expect(transferOf(event("110107", "org:b", t), 2)?.kind).to.equal("import");
    expect(transferOf(event("110110", "org:a", t), 3)).to.equal(undefined);
    expect(transferOf(event("110106", "org:a", undefined), 4)).to.equal(undefined);
    expect(transferOf({ ...event("110106", "org:a", t), type: { code: "110106" } }, 5)).to.equal(
      undefined,
    );
    expect(transferOf(null, 6)).to.equal(undefined);
    expect(transferOf({ type: { system: SYSTEM.dcm, code: "110106" }, transfer: 7 }, 7)).to.equal(
      undefined,
    );
  });

  it("matches by reference, data hash and recipient; names why the rest does not match", () => {
    const rec = (e: Record<string, unknown>, side: string) => transferOf(e, side)!;
    const exports = [
      rec(event("110106", "org:a", { reference: "r1", dataHash: HASH_A }, "org:b"), "e1"),
      rec(event("110106", "org:a", { reference: "r2", dataHash: HASH_A }, "org:b"), "e2"),
      rec(event("110106", "org:a", { reference: "r3", dataHash: HASH_A }, "org:b"), "e3"),
      rec(event("110106", "org:a", { reference: "r4", dataHash: HASH_A }), "e4"),
    ];
    const imports = [
      rec(event("110107", "org:b", { reference: "r1", dataHash: HASH_A }), "i1"),
      rec(event("110107", "org:b", { reference: "r2", dataHash: HASH_B }), "i2"),
      rec(event("110107", "org:c", { reference: "r3", dataHash: HASH_A }), "i3"),
      rec(event("110107", "org:b", { reference: "r9", dataHash: HASH_A }), "i4"),
      rec(event("110107", "org:z", { reference: "r4", dataHash: HASH_A }), "i5"),
    ];
    const { matched, unmatched } = matchTransfers(exports, imports);
    expect(matched.map((m) => [m.from, m.to])).to.deep.equal([
      ["e1", "i1"],
      ["e4", "i5"],
    ]);
    expect(unmatched.map((u) => [u.side, u.reason])).to.deep.equal([
      ["i2", "DATA_HASH_MISMATCH"],
      ["i3", "RECIPIENT_MISMATCH"],
      ["i4", "NO_SUCH_EXPORT"],
      ["e2", "NOT_IMPORTED"],
      ["e3", "NOT_IMPORTED"],
    ]);
    expect(unmatched.find((u) => u.side === "e2")?.recipient).to.equal("org:b");
  });
});

import { expect } from "chai";
import fc from "fast-check";
import { fromHex, fromHexInto, isHex, isHex32, toHex } from "../../../services/core/hex.ts";

/** The previous fromHex (regex + parseInt), kept as the reference for what is accepted. */
function referenceFromHex(hex: string): Uint8Array {
  if (!/^0x(?:[0-9a-f]{2})*$/.test(hex)) throw new TypeError("not hex");
  const out = new Uint8Array((hex.length - 2) / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 + i * 2, 2), 16);
  return out;
}

function outcome(f: () => Uint8Array): string {
  try {
    return `ok:${Array.from(f()).join(",")}`;
  } catch (e) {
    expect(e).to.be.instanceOf(TypeError);
    return "throws";
  }
}

/** Valid hex with one character replaced, inserted or removed, so near misses are common. */
const nearHex = fc
  .tuple(
    fc.uint8Array({ maxLength: 40 }),
    fc.nat(),
    fc.constantFrom("", "A", "F", "g", "x", "0", " ", "\n", "é", "\u0660", "\ud800", "0x", "ab"),
    fc.constantFrom("replace", "insert", "delete", "none"),
  )
  .map(([bytes, at, ch, how]) => {
    const hex: string = toHex(bytes);
    const i = at % (hex.length + 1);
    if (how === "replace") return hex.slice(0, i) + ch + hex.slice(i + 1);
    if (how === "insert") return hex.slice(0, i) + ch + hex.slice(i);
    if (how === "delete") return hex.slice(0, i) + hex.slice(i + 1);
    return hex;
  });

const anyText = fc.oneof(
  nearHex,
  fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEFxX g") }).map((s) => `0x${s}`),
  fc.string({ unit: "binary" }),
);

describe("core/hex", () => {
  it("fromHex accepts and rejects exactly what the regex + parseInt version did", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(outcome(() => fromHex(text))).to.equal(outcome(() => referenceFromHex(text)));
        expect(outcome(() => fromHex(text)) !== "throws").to.equal(isHex(text));
      }),
      { numRuns: 3000 },
    );
  });

  it("fromHex: empty, odd length, uppercase, missing prefix, non-hex characters", () => {
    expect(fromHex("0x")).to.deep.equal(new Uint8Array(0));
    expect(Array.from(fromHex("0x00ff10a9"))).to.deep.equal([0, 255, 16, 169]);
    for (const bad of [
      "",
      "0",
      "0x0",
      "0xabc",
      "0xAB",
      "0Xab",
      "ab",
      "0xag",
      "0x 1",
      "0x٠٠",
      "x0ab",
    ])
      expect(() => fromHex(bad), bad).to.throw(TypeError, "not 0x-prefixed lowercase hex");
    expect(() => fromHex(12 as unknown as string)).to.throw(TypeError);
  });

  it("round-trips with toHex", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromHex(toHex(bytes))).to.deep.equal(bytes);
      }),
    );
  });

  it("fromHexInto decodes exactly the fromHex-valid strings of the given length, in place", () => {
    fc.assert(
      fc.property(anyText, fc.integer({ min: 0, max: 8 }), (text, offset) => {
        const out = new Uint8Array(offset + 40).fill(0xee);
        const length = Math.max(0, (text.length - 2) >> 1);
        const ok = fromHexInto(text, length, out, offset);
        const valid = isHex(text) && text.length === 2 + 2 * length;
        expect(ok).to.equal(valid);
        if (valid) {
          expect(out.subarray(offset, offset + length)).to.deep.equal(fromHex(text));
          expect(out.subarray(0, offset).every((b) => b === 0xee)).to.equal(true);
          expect(out.subarray(offset + length).every((b) => b === 0xee)).to.equal(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("fromHexInto: wrong length, non-strings and no room", () => {
    const out = new Uint8Array(32);
    const h = `0x${"ab".repeat(32)}`;
    expect(fromHexInto(h, 32, out, 0)).to.equal(true);
    expect(isHex32(h)).to.equal(true);
    expect(fromHexInto(h, 31, out, 0)).to.equal(false);
    expect(fromHexInto(`0x${"AB".repeat(32)}`, 32, out, 0)).to.equal(false);
    expect(fromHexInto(null, 0, out, 0)).to.equal(false);
    expect(fromHexInto(h.slice(2), 31, out, 0)).to.equal(false);
    expect(() => fromHexInto(h, 32, out, 1)).to.throw(RangeError);
  });
});

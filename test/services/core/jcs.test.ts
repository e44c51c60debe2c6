import { expect } from "chai";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { jcs } from "../../../services/core/jcs.ts";

/** What the reference package says: its text, or that it throws (jcs must throw then too). */
function reference(value: unknown): { text: string } | { throws: true } {
  try {
    const text = canonicalize(value);
    return text === undefined ? { throws: true } : { text };
  } catch {
    return { throws: true };
  }
}

function expectSameAsReference(value: unknown): void {
  const want = reference(value);
  if ("text" in want) expect(jcs(value)).to.equal(want.text);
  else expect(() => jcs(value)).to.throw();
}

/** Any UTF-16 code unit, so lone surrogates and control characters show up often. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const awkwardNumbers = fc.constantFrom(
  0,
  -0,
  1e21,
  1e-7,
  -1e21,
  1e20,
  123456789012345680000,
  5e-324,
  Number.MAX_VALUE,
  Number.MAX_SAFE_INTEGER,
  0.1 + 0.2,
  -1.5e-300,
);

describe("jcs (RFC 8785)", () => {
  it("matches the canonicalize package byte for byte on arbitrary JSON values", () => {
    for (const stringUnit of ["grapheme", "binary", "binary-ascii"] as const) {
      fc.assert(
        fc.property(fc.jsonValue({ stringUnit, maxDepth: 6 }), (value) => {
          expectSameAsReference(value);
        }),
        { numRuns: 400 },
      );
    }
  });

  it("matches it with lone surrogates, control characters and awkward numbers", () => {
    const leaf = fc.oneof(
      fc.string({ unit: codeUnit, maxLength: 12 }),
      fc.double(),
      awkwardNumbers,
      fc.boolean(),
      fc.constant(null),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
      array: fc.array(tie("tree"), { maxLength: 5 }),
      object: fc.dictionary(fc.string({ unit: codeUnit, maxLength: 6 }), tie("tree"), {
        maxKeys: 5,
      }),
    }));
    fc.assert(fc.property(tree, expectSameAsReference), { numRuns: 1000 });
  });

  it("matches it (or throws when it throws) on arbitrary JavaScript values", () => {
    fc.assert(
      fc.property(
        fc.anything({
          withBoxedValues: true,
          withDate: true,
          withNullPrototype: true,
          withSparseArray: true,
          withBigInt: true,
          withObjectString: true,
          stringUnit: "binary",
        }),
        expectSameAsReference,
      ),
      { numRuns: 1000 },
    );
  });

  it("matches it on deep nesting, toJSON, undefined members and array holes", () => {
    let deep: unknown = [1];
    for (let i = 0; i < 300; i++) deep = i % 2 === 0 ? [deep] : { k: deep };
    const cases: unknown[] = [
      deep,
      { when: new Date(0), b: { toJSON: () => ({ z: 1, a: [2] }) } },
      { a: undefined, b: () => 1, c: [undefined, () => 1, Symbol("s")] },
      // eslint-disable-next-line no-sparse-arrays
      [1, , 3],
      ["\u2028\u2029", "\u007f\u0080", "\u001f\b\t\n\f\r", '"\\/', "\ud7ff\ue000\uffff"],
      { "\u00e9": 1, e: 2, "\ud83d\ude00": 3, "\uffff": 4, "10": 5, "9": 6 },
      Object.assign(Object.create(null) as object, { b: 1, a: 2 }),
      [new Number(1), new String("s"), new Boolean(false)],
    ];
    for (const value of cases) expectSameAsReference(value);
  });

  it("matches it on objects with many members (both sorting paths)", () => {
    const names = fc.uniqueArray(fc.string({ unit: codeUnit, maxLength: 4 }), {
      minLength: 20,
      maxLength: 60,
    });
    fc.assert(
      fc.property(names, (keys) => {
        expectSameAsReference(Object.fromEntries(keys.map((k, i) => [k, i])));
      }),
      { numRuns: 300 },
    );
  });

  it("rejects what has no RFC 8785 form, as canonicalize does", () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = { back: cycle };
    for (const bad of [undefined, NaN, Infinity, { x: -Infinity }, ["\ud800"], cycle, 1n]) {
      expect(() => jcs(bad)).to.throw();
    }
  });
});

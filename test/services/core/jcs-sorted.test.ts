import { expect } from "chai";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { jcs } from "../../../services/core/jcs.ts";

/**
 * jcs() hands data whose members are already in RFC 8785 order to JSON.stringify. These tests
 * feed it exactly such data — values rebuilt with sorted members, and the parsed JCS text of
 * arbitrary JSON, as a verifier gets an event from the ledger — and hold it to `canonicalize`.
 */

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

/** The same data with every object's members inserted in UTF-16 order. */
function sortedCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedCopy);
  if (value === null || typeof value !== "object") return value;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
  for (const key of Object.keys(value).sort())
    out[key] = sortedCopy((value as Record<string, unknown>)[key]);
  return out;
}

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

describe("jcs on data already in canonical order", () => {
  it("parsed JCS text of arbitrary JSON is written back unchanged", () => {
    for (const stringUnit of ["grapheme", "binary", "binary-ascii"] as const) {
      fc.assert(
        fc.property(fc.jsonValue({ stringUnit, maxDepth: 6 }), (value) => {
          const want = reference(value);
          if (!("text" in want)) return;
          const parsed: unknown = JSON.parse(want.text);
          expect(jcs(parsed)).to.equal(want.text);
          expectSameAsReference(parsed);
        }),
        { numRuns: 400 },
      );
    }
  });

  it("sorted members with lone surrogates, control characters, awkward numbers, holes", () => {
    const leaf = fc.oneof(
      fc.string({ unit: codeUnit, maxLength: 8 }),
      fc.double(),
      fc.constantFrom(0, -0, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, 0.1 + 0.2, NaN, Infinity),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.constant(() => 1),
      fc.constant(Symbol("s")),
      fc.constant(new Date(0)),
      fc.constant(1n),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
      array: fc.array(tie("tree"), { maxLength: 5 }),
      object: fc.dictionary(fc.string({ unit: codeUnit, maxLength: 4 }), tie("tree"), {
        maxKeys: 6,
      }),
    }));
    fc.assert(
      fc.property(tree, (value) => expectSameAsReference(sortedCopy(value))),
      { numRuns: 3000 },
    );
  });

  it("integer-like member names, null prototypes, toJSON, boxed values, deep nesting", () => {
    let deep: unknown = [1];
    for (let i = 0; i < 300; i++) deep = i % 2 === 0 ? [deep] : { k: deep };
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.b = cycle;
    const cases: unknown[] = [
      { "10": 1, "9": 2 },
      { "1": 1, "2": 2, a: 3 },
      { a: 1, b: 2 },
      // Out of order around names a fresh object cannot take as they are.
      { b: { "10": 1, "9": 2 }, a: 1 },
      JSON.parse('{"b": 1, "__proto__": {"y": 1, "x": 2}, "a": [3]}'),
      JSON.parse('{"__proto__": 1}'),
      Object.assign(Object.create(null) as object, { a: 2, b: 1 }),
      { a: { toJSON: () => ({ z: 1, a: 2 }) } },
      [new Number(1), new String("s")],
      { a: undefined, b: () => 1, c: [undefined, Symbol("s")] },
      // eslint-disable-next-line no-sparse-arrays
      [1, , 3],
      { "\ud800": 1 },
      { a: "\udc00" },
      deep,
      undefined,
      () => 1,
    ];
    for (const value of cases) expectSameAsReference(value);
    expect(() => jcs(cycle)).to.throw();
  });
});

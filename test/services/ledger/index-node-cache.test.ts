import { expect } from "chai";
import fc from "fast-check";
import { IndexNodeCache } from "../../../services/ledger/index-node-cache.ts";

const node = (fill: number) => Buffer.alloc(65, fill);

describe("ledger/index-node-cache", () => {
  it("property: answers only what was last set at a path, within its bounds, whatever the order of sets", () => {
    const path = fc
      .array(fc.constantFrom("0", "1"), { maxLength: 34 })
      .map((bits) => bits.join(""));
    const op = fc.record({
      path,
      value: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 300 }),
        fc.integer({ min: 1, max: 20 }),
        (ops, deepMax) => {
          const cache = new IndexNodeCache(3, deepMax);
          const latest = new Map<string, number | undefined>();
          for (const { path: p, value } of ops) {
            cache.set(p, value === undefined ? undefined : node(value));
            latest.set(p, value);
            const { upper, deep } = cache.size;
            expect(upper).to.be.at.most(2 ** 4 - 1);
            expect(deep).to.be.at.most(deepMax);
          }
          for (const [p, value] of latest) {
            const got = cache.get(p);
            if (p.length > 29) expect(got, p).to.equal(null);
            if (p.length <= 3) expect(got, `upper ${p} is kept`).to.not.equal(null);
            if (got === null) continue;
            if (value === undefined) expect(got, p).to.equal(undefined);
            else expect(got!.equals(node(value)), p).to.equal(true);
          }
          for (const p of ["0000", "1111", "010101"])
            if (!latest.has(p)) expect(cache.get(p)).to.equal(null);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("hands out copies: a value read stays intact when its slot is reused", () => {
    const cache = new IndexNodeCache(0, 2);
    cache.set("01", node(1));
    const held = cache.get("01")!;
    cache.set("10", node(2));
    cache.set("11", node(3)); // evicts "01"; its slot is reused
    cache.set("001", node(4));
    expect(cache.get("01")).to.equal(null);
    expect(held.equals(node(1))).to.equal(true);
  });

  it("does not cache a value that is not a 65-byte node", () => {
    const cache = new IndexNodeCache(16, 10);
    cache.set("0", node(1));
    cache.set("0", Buffer.alloc(10));
    expect(cache.get("0")).to.equal(null);
  });
});

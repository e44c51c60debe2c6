import { expect } from "chai";
import fc from "fast-check";
import {
  BundleSchema,
  DECLINED,
  fieldCheck,
  FAST_TABLES,
  type Bundle,
  parseBundleFast,
} from "../../../services/core/bundle.ts";
import { parseBundle } from "../../../services/verifier/offline-checks.ts";
import { makeBatch } from "./fake-chain.ts";

/**
 * core/bundle.ts's structural fast path must never accept what BundleSchema rejects, and must
 * return what BundleSchema returns. On ordinary inputs (plain objects, as JSON.parse makes them)
 * it must also accept everything BundleSchema accepts, or it would not be a fast path.
 */

const HEX32 = `0x${"ab".repeat(32)}`;
const PROBES: unknown[] = [
  null,
  undefined,
  true,
  0,
  -0,
  1,
  2,
  -1,
  1.5,
  2 ** 32 - 1,
  2 ** 32,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  NaN,
  Infinity,
  -Infinity,
  "",
  "0x",
  "1",
  HEX32,
  HEX32.toUpperCase(),
  `0x${"AB".repeat(32)}`,
  HEX32.slice(0, -2),
  `${HEX32}00`,
  `${HEX32}\n`,
  `0x${"5fbdb2315678afecb367f032d93f642f64180aa3"}`,
  "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  "0x5FbDB2315678afecb367f032d93F642f64180aa",
  `0x${"11".repeat(64)}1b`,
  `0x${"11".repeat(64)}1c`,
  `0x${"11".repeat(64)}1d`,
  `0x${"11".repeat(64)}1B`,
  "2025-03-01T10:00:00.000Z",
  "2025-03-01T10:00:00Z",
  "2025-03-01T10:00:00.0000Z",
  "2025-02-29T10:00:00.000Z",
  "2024-02-29T10:00:00.000Z",
  "2025-13-01T10:00:00.000Z",
  "2025-03-01T10:00:00.000+01:00",
  "2025-03-01 10:00:00.000Z",
  "veritrail-proof/1",
  "veritrail-receipt/1",
  "anchored",
  "unsealed",
  "Anchored",
  {},
  [],
  [HEX32],
  Array.from({ length: 32 }, () => HEX32),
  Array.from({ length: 33 }, () => HEX32),
  Array.from({ length: 64 }, () => HEX32),
  Array.from({ length: 65 }, () => HEX32),
  [HEX32, 1],
  { a: 1 },
  Object.create(null) as unknown,
  new Number(1),
  new String(HEX32),
  new Date(0),
];

let good: Bundle[] = [];

before(async () => {
  good = (await makeBatch(9, { erase: [3] })).bundles;
});

/** Every leaf and object of a good bundle, so each field also sees valid values of every kind. */
function valuesOf(value: unknown, out: unknown[] = [], seen = new Set<unknown>()): unknown[] {
  out.push(value);
  if (value !== null && typeof value === "object" && !seen.has(value)) {
    seen.add(value);
    for (const v of Object.values(value as object)) valuesOf(v, out, seen);
  }
  return out;
}

describe("core/bundle: BundleSchema's fast path", () => {
  it("every table names exactly its schema's fields, in order", () => {
    for (const t of FAST_TABLES)
      expect(Object.keys(t.fields), t.name).to.deep.equal(Object.keys(t.schema.shape));
  });

  it("every field's check agrees with the field's zod schema on probes and on real values", () => {
    const candidates = [...PROBES, ...good.flatMap((b) => valuesOf(b))];
    let accepted = 0;
    for (const t of FAST_TABLES) {
      for (const [field, spec] of Object.entries(t.fields)) {
        const parse = fieldCheck(spec);
        const schema = (t.schema.shape as Record<string, { safeParse(v: unknown): unknown }>)[
          field
        ]!;
        for (const value of candidates) {
          const fast = parse(value);
          const z = schema.safeParse(value) as { success: boolean; data?: unknown };
          const where = `${t.name}.${field} on ${String(JSON.stringify(value)).slice(0, 60)}`;
          if (fast === DECLINED) {
            // Declining is allowed only for inputs JSON.parse cannot produce.
            const ordinary =
              value === null ||
              typeof value !== "object" ||
              Array.isArray(value) ||
              Object.getPrototypeOf(value) === Object.prototype;
            if (ordinary) expect(z.success, `declined but zod accepts: ${where}`).to.equal(false);
          } else {
            accepted++;
            expect(z.success, `accepted but zod rejects: ${where}`).to.equal(true);
            expect(fast, where).to.deep.equal(z.data);
          }
        }
      }
    }
    expect(accepted).to.be.greaterThan(100);
  });

  it("good bundles (anchored, erased): the same objects as BundleSchema.parse, copied", () => {
    for (const b of good) {
      const fast = parseBundleFast(b);
      expect(fast).to.deep.equal(BundleSchema.parse(b));
      expect(fast).to.not.equal(b);
      expect(fast!.entry).to.not.equal(b.entry);
      expect(fast!.receipt.group.path).to.not.equal(b.receipt.group.path);
    }
  });

  it("random mutations of good bundles: accepted exactly when zod accepts, same result", () => {
    // A mutation: at a random object of the bundle, set a key to a probe, delete it, or add one.
    const mutation = fc.record({
      bundle: fc.nat(),
      at: fc.nat(),
      key: fc.nat(),
      how: fc.constantFrom("set", "delete", "add", "set-null", "copy-other"),
      probe: fc.constantFrom(...PROBES.filter((p) => !(p instanceof Object) || Array.isArray(p))),
      extra: fc.constantFrom("x", "__proto__", "constructor", "toString", "format", "0"),
    });
    let zodAccepted = 0;
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        const bundle = structuredClone(good[mutations[0]!.bundle % good.length]!) as unknown;
        for (const m of mutations) {
          const objects = valuesOf(bundle).filter(
            (v): v is Record<string, unknown> => v !== null && typeof v === "object",
          );
          const target = objects[m.at % objects.length]!;
          const keys = Object.keys(target);
          const key = keys.length > 0 ? keys[m.key % keys.length]! : "x";
          // A copy: the probes are shared between runs and must never be mutated.
          if (m.how === "set") target[key] = structuredClone(m.probe);
          else if (m.how === "set-null") target[key] = null;
          else if (m.how === "delete") delete target[key];
          else if (m.how === "add")
            Object.defineProperty(target, m.extra, {
              value: structuredClone(m.probe),
              enumerable: true,
              writable: true,
              configurable: true,
            });
          else target[key] = structuredClone(objects[m.key % objects.length]);
        }
        const fast = parseBundleFast(bundle);
        const z = BundleSchema.safeParse(bundle);
        if (z.success) zodAccepted++;
        expect(fast !== undefined, JSON.stringify(mutations)).to.equal(z.success);
        if (fast !== undefined) expect(fast).to.deep.equal(z.data);
        const both = parseBundle(bundle);
        expect(both.ok).to.equal(z.success);
      }),
      { numRuns: 3000 },
    );
    expect(zodAccepted).to.be.greaterThan(50);
  });

  it("flipped characters of the JSON text: accepted exactly when zod accepts", () => {
    const texts = good.map((b) => JSON.stringify(b));
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 127 }), (which, at, xor) => {
        const text = texts[which % texts.length]!;
        const i = at % text.length;
        const flipped =
          text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ xor) + text.slice(i + 1);
        let value: unknown;
        try {
          value = JSON.parse(flipped);
        } catch {
          return;
        }
        const fast = parseBundleFast(value);
        const z = BundleSchema.safeParse(value);
        expect(fast !== undefined).to.equal(z.success);
        if (fast !== undefined) expect(fast).to.deep.equal(z.data);
      }),
      { numRuns: 3000 },
    );
  });

  it("inputs JSON cannot make are left to zod, which decides as before", () => {
    const b = good[0]!;
    const nullProto = Object.assign(Object.create(null) as object, b.event);
    const cases: unknown[] = [
      { ...b, event: nullProto },
      Object.assign(Object.create({ status: "anchored" }) as object, { ...b, status: undefined }),
      { ...b, event: { ...b.event, [Symbol("s")]: 1 } },
      Object.defineProperty({ ...b }, "extra", { value: 1, enumerable: false }),
      { ...b, event: { ...b.event, constructor: 1 } },
      { ...b, event: { ...b.event, constructor: () => 1 } },
      JSON.parse(
        JSON.stringify({ ...b, event: { ...b.event } }).replace(
          '"event":{',
          '"event":{"__proto__":1,',
        ),
      ) as unknown,
    ];
    for (const input of cases) {
      const z = BundleSchema.safeParse(input);
      const fast = parseBundleFast(input);
      if (fast !== undefined) {
        expect(z.success).to.equal(true);
        expect(fast).to.deep.equal(z.data);
      }
      expect(parseBundle(input).ok).to.equal(z.success);
    }
  });
});

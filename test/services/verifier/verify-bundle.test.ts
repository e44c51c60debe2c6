import { expect } from "chai";
import fc from "fast-check";
import type { Bundle } from "../../../services/core/bundle.ts";
import { VERIFIER_STEPS, type Verdict } from "../../../services/verifier/verdict.ts";
import {
  newSession,
  verifyBundle,
  verifyInSession,
} from "../../../services/verifier/verify-bundle.ts";
import {
  parseBundleLines,
  verifyBundleLines,
  verifyBundles,
} from "../../../services/verifier/verify-bundles.ts";
import { ANCHOR_BLOCK, type FakeBatch, HEAD, fakeChain, makeBatch } from "./fake-chain.ts";

function explain(v: Verdict): string {
  return v.checks.map((c) => `${c.step}: ${String(c.ok)} ${c.code ?? ""} ${c.reason}`).join("\n");
}

type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };
type Path = Array<string | number>;

/** Every primitive in a JSON value, with its path. */
function leafPaths(value: JsonValue, path: Path = []): Path[] {
  if (value === null || typeof value !== "object") return [path];
  const keys: Array<string | number> = Array.isArray(value)
    ? value.map((_, i) => i)
    : Object.keys(value);
  return keys.flatMap((k) =>
    leafPaths((value as Record<string | number, JsonValue>)[k] as JsonValue, [...path, k]),
  );
}

/** Flips one byte-sized piece of the primitive at `path`: a char code, a number, a boolean. */
function flipLeaf(root: JsonValue, path: Path, position: number, mask: number): JsonValue {
  const copy = structuredClone(root);
  let parent = copy as Record<string | number, JsonValue>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, JsonValue>;
  const key = path[path.length - 1]!;
  const v = parent[key]!;
  if (typeof v === "string") {
    if (v.length === 0) parent[key] = String.fromCharCode(mask);
    else {
      const i = position % v.length;
      parent[key] = v.slice(0, i) + String.fromCharCode(v.charCodeAt(i) ^ mask) + v.slice(i + 1);
    }
  } else if (typeof v === "number") {
    parent[key] = v < 2 ** 31 ? v ^ mask : v + mask;
  } else if (typeof v === "boolean") {
    parent[key] = !v;
  } else {
    parent[key] = mask;
  }
  return copy;
}

describe("verifyBundle (in-memory chain)", () => {
  let batch: FakeBatch;
  let good: Bundle;

  before(async () => {
    batch = await makeBatch(16, { erase: [3] });
    good = batch.bundles[5]!;
  });

  it("verifies a good bundle: every step passes, in DESIGN.md's order", async () => {
    const { rpc } = fakeChain([batch]);
    const verdict = await verifyBundle(good, rpc, { confirmations: 1 });
    expect(verdict.ok, explain(verdict)).to.equal(true);
    expect(verdict.status).to.equal("verified");
    expect(verdict.checks.map((c) => c.step)).to.deep.equal(VERIFIER_STEPS);
    expect(verdict.checks.every((c) => c.ok === true)).to.equal(true);
    expect(verdict).to.include({ seq: 5, log: batch.header.logId });
  });

  it("verifies an erased bundle with the commitment step skipped as 'erased'", async () => {
    const { rpc } = fakeChain([batch]);
    const verdict = await verifyBundle(batch.bundles[3], rpc, { confirmations: 1 });
    expect(verdict.ok, explain(verdict)).to.equal(true);
    expect(verdict.checks[1]).to.deep.include({ step: "commitment", ok: "skipped" });
    expect(verdict.checks[1]?.reason).to.match(/^erased/);
  });

  it("needs the commitment `confirmations` blocks deep: head − anchor + 1 passes, one more fails", async () => {
    const { rpc } = fakeChain([batch]);
    const depth = HEAD - ANCHOR_BLOCK + 1;
    expect((await verifyBundle(good, rpc, { confirmations: depth })).ok).to.equal(true);
    const tooFew = await verifyBundle(good, rpc, { confirmations: depth + 1 });
    expect(tooFew).to.include({ ok: false, status: "failed", code: "TOO_FEW_CONFIRMATIONS" });
    const beyondGenesis = await verifyBundle(good, rpc, { confirmations: HEAD + 5 });
    expect(beyondGenesis.code).to.equal("TOO_FEW_CONFIRMATIONS");
    expect(beyondGenesis.checks[5]?.reason).to.match(/only 111 blocks/);
  });

  it("refuses a negative or fractional confirmations option (caller's bug)", async () => {
    const { rpc } = fakeChain([batch]);
    for (const confirmations of [-1, 1.5, Number.NaN]) {
      let error: unknown;
      await verifyBundle(good, rpc, { confirmations }).catch((e: unknown) => (error = e));
      expect(error, String(confirmations)).to.be.instanceOf(TypeError);
    }
  });

  it("an unreachable chain gives status 'error' (RPC_ERROR), not 'failed'; offline checks still run", async () => {
    const { rpc } = fakeChain([batch], { failCalls: true });
    const verdict = await verifyBundle(good, rpc, { confirmations: 1 });
    expect(verdict).to.include({ ok: false, status: "error", code: "RPC_ERROR" });
    const byStep = Object.fromEntries(verdict.checks.map((c) => [c.step, c.ok]));
    expect(byStep).to.include({ shape: true, commitment: true, entry: true, inclusion: true });
    expect(byStep).to.include({ receipt: true, anchor: false, signer: false });
  });

  it("a failed RPC request is not remembered: the next bundle of the batch asks again", async () => {
    for (const failures of [1, 2, 3]) {
      const { rpc } = fakeChain([batch], { failFirstRequests: failures });
      const verdicts = await verifyBundles(batch.bundles.slice(0, 4), rpc, {
        confirmations: 1,
        concurrency: 1,
      });
      expect(verdicts[0]?.status, `${failures} failures`).to.equal("error");
      expect(verdicts.slice(-1)[0]?.status, `${failures} failures`).to.equal("verified");
    }
  });

  it("a tampered bundle on an unreachable chain is still 'failed'", async () => {
    const { rpc } = fakeChain([batch], { failCalls: true });
    const tampered = structuredClone(good);
    tampered.event!.requestId = "req-other";
    const verdict = await verifyBundle(tampered, rpc, { confirmations: 1 });
    expect(verdict).to.include({ status: "failed", code: "COMMITMENT_MISMATCH" });
  });

  it("rejects what is not a bundle with BUNDLE_MALFORMED naming the field, every other step skipped", async () => {
    const { rpc, counts } = fakeChain([batch]);
    for (const input of [null, "bundle", [], {}, { ...good, format: "veritrail-proof/2" }]) {
      const verdict = await verifyBundle(input, rpc, { confirmations: 1 });
      expect(verdict.code).to.equal("BUNDLE_MALFORMED");
      expect(verdict.checks.slice(1).every((c) => c.ok === "skipped")).to.equal(true);
    }
    const noSalt = await verifyBundle({ ...good, salt: undefined }, rpc, { confirmations: 1 });
    expect(noSalt.checks[0]?.reason).to.match(/^salt:/);
    expect(counts.batchCommitment).to.equal(0);
  });

  it("a pending bundle is 'pending', not ok; it says when the anchor deadline has passed", async () => {
    const { rpc, counts } = fakeChain([batch]);
    const pending = { ...structuredClone(good), anchor: null, status: "sealed" };
    const before = await verifyBundle(pending, rpc, {
      confirmations: 1,
      now: new Date("2025-03-01T10:30:00.000Z"),
    });
    expect(before).to.include({ ok: false, status: "pending" });
    expect(before.code).to.equal(undefined);
    expect(before.checks[4]?.reason).to.match(/not reached yet/);
    const after = await verifyBundle(pending, rpc, {
      confirmations: 1,
      now: new Date("2025-03-01T12:00:00.000Z"),
    });
    expect(after.checks[4]?.reason).to.match(/PASSED/);
    expect(counts.batchCommitment + counts.signerPeriod).to.equal(0);
  });

  it("10,000 bundles of one batch: one commitment call, one signer lookup, one signature recovery", async function () {
    this.timeout(120_000);
    const big = await makeBatch(10_000);
    const { rpc, counts } = fakeChain([big]);
    const started = performance.now();
    let progress = 0;
    const verdicts = await verifyBundles(big.bundles, rpc, {
      confirmations: 1,
      onProgress: (done) => (progress = done),
    });
    const seconds = (performance.now() - started) / 1000;
    expect(verdicts.every((v) => v.ok)).to.equal(true);
    expect(progress).to.equal(10_000);
    expect(counts).to.include({ batchCommitment: 1, signerPeriod: 1, receipts: 1, network: 1 });
    expect(counts.head).to.equal(1);
    console.log(`      10,000 bundles of one batch verified in ${seconds.toFixed(2)} s`);
  });

  it("verdicts come back in input order; a line that is not JSON gets BUNDLE_MALFORMED", async () => {
    const { rpc } = fakeChain([batch]);
    const text = [
      JSON.stringify(batch.bundles[0]),
      "",
      "{not json",
      JSON.stringify(batch.bundles[7]),
      "",
    ].join("\n");
    const lines = parseBundleLines(text);
    expect(lines.map((l) => l.line)).to.deep.equal([1, 3, 4]);
    const verdicts = await verifyBundleLines(lines, rpc, { confirmations: 1 });
    expect(verdicts.map((v) => [v.line, v.status, v.seq])).to.deep.equal([
      [1, "verified", 0],
      [3, "failed", undefined],
      [4, "verified", 7],
    ]);
    expect(verdicts[1]?.code).to.equal("BUNDLE_MALFORMED");
  });

  describe("property: no change to a good bundle ever passes", () => {
    const bases = (): Bundle[] => [good, batch.bundles[3]!];

    it("flipping any byte-sized piece of any field", async () => {
      const { rpc } = fakeChain([batch]);
      const session = newSession(rpc);
      const paths = bases().map((b) => leafPaths(b as unknown as JsonValue));
      expect(paths[0]!.length).to.be.greaterThan(80);
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 1 }),
          fc.nat(),
          fc.nat(),
          fc.integer({ min: 1, max: 255 }),
          async (which, pathPick, position, mask) => {
            const base = bases()[which]!;
            const candidates = paths[which]!;
            const path = candidates[pathPick % candidates.length]!;
            const mutated = flipLeaf(base as unknown as JsonValue, path, position, mask);
            const verdict = await verifyInSession(mutated, session, { confirmations: 1 });
            if (verdict.ok) throw new Error(`passed after flipping ${path.join(".")}`);
          },
        ),
        { numRuns: 1_500 },
      );
    });

    it("flipping any byte of the JSON text (when it still parses to something else)", async () => {
      const { rpc } = fakeChain([batch]);
      const session = newSession(rpc);
      const texts = bases().map((b) => new TextEncoder().encode(JSON.stringify(b)));
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 1 }),
          fc.nat(),
          fc.integer({ min: 1, max: 255 }),
          async (which, position, mask) => {
            const bytes = texts[which]!.slice();
            const i = position % bytes.length;
            bytes[i] = bytes[i]! ^ mask;
            let parsed: unknown;
            try {
              parsed = JSON.parse(new TextDecoder().decode(bytes));
            } catch {
              return; // not JSON: the CLI and the page report it as malformed
            }
            fc.pre(JSON.stringify(parsed) !== JSON.stringify(bases()[which]));
            const verdict = await verifyInSession(parsed, session, { confirmations: 1 });
            if (verdict.ok) throw new Error(`passed after flipping byte ${i} with ${mask}`);
          },
        ),
        { numRuns: 1_500 },
      );
    });
  });
});

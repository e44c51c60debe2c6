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
import { BundleSchema } from "../../../services/core/bundle.ts";
import type { TrustPolicy } from "../../../services/core/trust-policy.ts";
import {
  ANCHOR_BLOCK,
  type FakeBatch,
  HEAD,
  fakeChain,
  fakePolicy,
  makeBatch,
} from "./fake-chain.ts";

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
  let trust: TrustPolicy;

  before(async () => {
    batch = await makeBatch(16, { erase: [3] });
    good = batch.bundles[5]!;
    trust = fakePolicy(batch);
  });

  it("verifies a good bundle: every step passes, in DESIGN.md's order", async () => {
    const { rpc } = fakeChain([batch]);
    const verdict = await verifyBundle(good, rpc, { trust, confirmations: 1 });
    expect(verdict.ok, explain(verdict)).to.equal(true);
    expect(verdict.status).to.equal("verified");
    expect(verdict.checks.map((c) => c.step)).to.deep.equal(VERIFIER_STEPS);
    expect(verdict.checks.filter((c) => c.ok !== true).map((c) => c.step)).to.deep.equal([
      "erasure",
    ]);
    expect(verdict).to.include({ seq: 5, log: batch.header.logId });
  });

  it("an erased bundle with its erasure record is 'erased': the record is verified in full", async () => {
    const { rpc } = fakeChain([batch]);
    const verdict = await verifyBundle(batch.bundles[3], rpc, { trust, confirmations: 1 });
    expect(verdict, explain(verdict)).to.include({ ok: true, status: "erased", erasedBy: 15 });
    expect(verdict.checks[2]).to.deep.include({ step: "commitment", ok: "skipped" });
    expect(verdict.checks[2]?.reason).to.match(/erased/);
    expect(verdict.checks[9]).to.deep.include({ step: "erasure", ok: true });
  });

  it("content nulled without an erasure record is 'withheld', never verified or erased", async () => {
    const { rpc } = fakeChain([batch]);
    const withheld = { ...structuredClone(good), event: null, salt: null };
    const verdict = await verifyBundle(withheld, rpc, { trust, confirmations: 1 });
    expect(verdict, explain(verdict)).to.include({ ok: false, status: "withheld" });
    expect(verdict.code).to.equal(undefined);
    const erasedWithout = { ...structuredClone(batch.bundles[3]!), erasure: undefined };
    delete erasedWithout.erasure;
    expect((await verifyBundle(erasedWithout, rpc, { trust })).status).to.equal("withheld");
  });

  it("an erasure record that verifies but records another seq, or is tampered, fails", async () => {
    const other = await makeBatch(8, { erase: [1, 2] });
    const { rpc } = fakeChain([other]);
    const policy = fakePolicy(other);
    const swapped = { ...structuredClone(other.bundles[1]!), erasure: other.bundles[2]!.erasure };
    const mismatch = await verifyBundle(swapped, rpc, { trust: policy });
    expect(mismatch, explain(mismatch)).to.include({ status: "failed", code: "ERASURE_MISMATCH" });
    expect(mismatch.checks[9]?.reason).to.match(/erasure of seq 2, not of seq 1/);
    const notDelete = { ...structuredClone(other.bundles[1]!), erasure: other.bundles[0] };
    expect((await verifyBundle(notDelete, rpc, { trust: policy })).code).to.equal(
      "ERASURE_MISMATCH",
    );
    const tampered = structuredClone(other.bundles[1]!);
    tampered.erasure!.salt = `0x${"00".repeat(32)}`;
    const invalid = await verifyBundle(tampered, rpc, { trust: policy });
    expect(invalid).to.include({ status: "failed", code: "ERASURE_INVALID" });
    expect(invalid.checks[9]?.reason).to.match(/COMMITMENT_MISMATCH/);
    const withEvent = { ...structuredClone(good), erasure: batch.bundles[15] };
    expect((await verifyBundle(withEvent, rpc, { trust })).code).to.equal("BUNDLE_MALFORMED");
  });

  it("UNTRUSTED_REGISTRY / UNKNOWN_LOG: chain steps are not asked, the verdict is failed", async () => {
    const { rpc, counts } = fakeChain([batch]);
    const elsewhere = fakePolicy(await makeBatch(2));
    const unknown = await verifyBundle(good, rpc, { trust: elsewhere });
    expect(unknown).to.include({ ok: false, status: "failed", code: "UNKNOWN_LOG" });
    const moved = structuredClone(good);
    moved.anchor!.contract = "0x000000000000000000000000000000000000dEaD";
    const untrusted = await verifyBundle(moved, rpc, { trust });
    expect(untrusted).to.include({ status: "failed", code: "UNTRUSTED_REGISTRY" });
    expect(untrusted.checks[5]).to.deep.include({ step: "anchor", ok: "skipped" });
    expect(counts.batchCommitment).to.equal(0);
    const ok = await verifyBundle(good, rpc, { trust });
    expect(ok.trust).to.deep.include({
      fingerprint: trust.fingerprint,
      operator: trust.logs[0]!.operator,
    });
  });

  it("accepts lowercase addresses and ignores unknown fields; rejects a bad EIP-55 case and an unknown format", async () => {
    const { rpc } = fakeChain([batch]);
    const lower = structuredClone(good);
    lower.anchor!.contract = lower.anchor!.contract.toLowerCase();
    lower.receipt.signer = lower.receipt.signer.toLowerCase();
    expect((await verifyBundle(lower, rpc, { trust })).status).to.equal("verified");
    const extended = { ...structuredClone(good), extension: { any: "thing" }, status: "bogus" };
    expect((await verifyBundle(extended, rpc, { trust })).status).to.equal("verified");
    const badCase = structuredClone(good);
    const c = badCase.anchor!.contract;
    const i = [...c].findIndex((ch, k) => k > 1 && /[a-fA-F]/.test(ch));
    badCase.anchor!.contract =
      c.slice(0, i) +
      (c[i] === c[i]!.toLowerCase() ? c[i]!.toUpperCase() : c[i]!.toLowerCase()) +
      c.slice(i + 1);
    expect((await verifyBundle(badCase, rpc, { trust })).code).to.equal("BUNDLE_MALFORMED");
    const v2 = await verifyBundle({ ...good, format: "veritrail-proof/9" }, rpc, { trust });
    expect(v2.code).to.equal("BUNDLE_MALFORMED");
  });

  it("needs the commitment `confirmations` blocks deep: head − anchor + 1 passes, one more fails", async () => {
    const { rpc } = fakeChain([batch]);
    const depth = HEAD - ANCHOR_BLOCK + 1;
    expect((await verifyBundle(good, rpc, { trust, confirmations: depth })).ok).to.equal(true);
    const tooFew = await verifyBundle(good, rpc, { trust, confirmations: depth + 1 });
    expect(tooFew).to.include({ ok: false, status: "failed", code: "TOO_FEW_CONFIRMATIONS" });
    const beyondGenesis = await verifyBundle(good, rpc, { trust, confirmations: HEAD + 5 });
    expect(beyondGenesis.code).to.equal("TOO_FEW_CONFIRMATIONS");
    expect(beyondGenesis.checks[6]?.reason).to.match(/only 111 blocks/);
  });

  it("refuses a negative or fractional confirmations option (caller's bug)", async () => {
    const { rpc } = fakeChain([batch]);
    for (const confirmations of [-1, 1.5, Number.NaN]) {
      let error: unknown;
      await verifyBundle(good, rpc, { trust, confirmations }).catch((e: unknown) => (error = e));
      expect(error, String(confirmations)).to.be.instanceOf(TypeError);
    }
  });

  it("an unreachable chain gives status 'error' (RPC_ERROR), not 'failed'; offline checks still run", async () => {
    const { rpc } = fakeChain([batch], { failCalls: true });
    const verdict = await verifyBundle(good, rpc, { trust, confirmations: 1 });
    expect(verdict).to.include({ ok: false, status: "error", code: "RPC_ERROR" });
    const byStep = Object.fromEntries(verdict.checks.map((c) => [c.step, c.ok]));
    expect(byStep).to.include({ shape: true, commitment: true, entry: true, inclusion: true });
    expect(byStep).to.include({ receipt: true, anchor: false, signer: false });
  });

  it("a failed RPC request is not remembered: the next bundle of the batch asks again", async () => {
    for (const failures of [1, 2, 3]) {
      const { rpc } = fakeChain([batch], { failFirstRequests: failures });
      const verdicts = await verifyBundles(batch.bundles.slice(0, 4), rpc, {
        trust,
        confirmations: 1,
        concurrency: 1,
      });
      expect(verdicts[0]?.status, `${failures} failures`).to.equal("error");
      expect(verdicts.slice(-1)[0]?.ok, `${failures} failures`).to.equal(true);
    }
  });

  it("a tampered bundle on an unreachable chain is still 'failed'", async () => {
    const { rpc } = fakeChain([batch], { failCalls: true });
    const tampered = structuredClone(good);
    tampered.event!.requestId = "req-other";
    const verdict = await verifyBundle(tampered, rpc, { trust, confirmations: 1 });
    expect(verdict).to.include({ status: "failed", code: "COMMITMENT_MISMATCH" });
  });

  it("rejects what is not a bundle with BUNDLE_MALFORMED naming the field, every other step skipped", async () => {
    const { rpc, counts } = fakeChain([batch]);
    for (const input of [null, "bundle", [], {}, { ...good, format: "veritrail-proof/2" }]) {
      const verdict = await verifyBundle(input, rpc, { trust, confirmations: 1 });
      expect(verdict.code).to.equal("BUNDLE_MALFORMED");
      expect(verdict.checks.slice(1).every((c) => c.ok === "skipped")).to.equal(true);
    }
    const noSalt = await verifyBundle({ ...good, salt: undefined }, rpc, {
      trust,
      confirmations: 1,
    });
    expect(noSalt.checks[0]?.reason).to.match(/^salt:/);
    expect(counts.batchCommitment).to.equal(0);
  });

  it("a bundle saved as pending whose batch is anchored now verifies: status is never trusted", async () => {
    const { rpc } = fakeChain([batch]);
    const saved = { ...structuredClone(good), anchor: null, status: "sealed" };
    const verdict = await verifyBundle(saved, rpc, { trust, confirmations: 1 });
    expect(verdict, explain(verdict)).to.include({ ok: true, status: "verified" });
    expect(verdict.checks[5]?.reason).to.match(/names no anchor; the trusted registry state holds/);
    const claimsAnchored = { ...structuredClone(good), status: "unsealed" };
    expect((await verifyBundle(claimsAnchored, rpc, { trust })).status).to.equal("verified");
  });

  it("a pending bundle is 'pending', not ok; it says when the anchor deadline has passed", async () => {
    const waiting = await makeBatch(4);
    const { rpc } = fakeChain([batch]);
    const policy = fakePolicy(batch, waiting);
    const pending = { ...structuredClone(waiting.bundles[1]!), anchor: null, status: "anchored" };
    const before = await verifyBundle(pending, rpc, {
      trust: policy,
      confirmations: 1,
      now: new Date("2025-03-01T10:30:00.000Z"),
    });
    expect(before, explain(before)).to.include({ ok: false, status: "pending" });
    expect(before.code).to.equal(undefined);
    expect(before.checks[5]?.reason).to.match(/not anchored yet.*not reached yet/);
    const after = await verifyBundle(pending, rpc, {
      trust: policy,
      confirmations: 1,
      now: new Date("2025-03-01T12:00:00.000Z"),
    });
    expect(after.checks[5]?.reason).to.match(/PASSED/);
  });

  it("10,000 bundles of one batch: one commitment call, one signer lookup, one signature recovery", async function () {
    this.timeout(120_000);
    const big = await makeBatch(10_000);
    const { rpc, counts } = fakeChain([big]);
    const started = performance.now();
    let progress = 0;
    const verdicts = await verifyBundles(big.bundles, rpc, {
      trust: fakePolicy(big),
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
    const verdicts = await verifyBundleLines(lines, rpc, { trust, confirmations: 1 });
    expect(verdicts.map((v) => [v.line, v.status, v.seq])).to.deep.equal([
      [1, "verified", 0],
      [3, "failed", undefined],
      [4, "verified", 7],
    ]);
    expect(verdicts[1]?.code).to.equal("BUNDLE_MALFORMED");
  });

  /**
   * What a verifier reads of a bundle, addresses in one case: a change that leaves it equal is
   * no change at all (an extension field, the untrusted status, an address's letter case).
   */
  function readable(b: unknown): string {
    const parsed = BundleSchema.safeParse(b);
    if (!parsed.success) return "malformed";
    const { erasure, ...rest } = parsed.data;
    const normal = erasure === undefined ? rest : { ...rest, erasure: readable(erasure) };
    return JSON.stringify(normal, (_k, v: unknown) =>
      typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v) ? v.toLowerCase() : v,
    );
  }

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
            const verdict = await verifyInSession(mutated, session, { trust, confirmations: 1 });
            if (verdict.ok && readable(mutated) !== readable(base))
              throw new Error(`passed after flipping ${path.join(".")}`);
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
            const verdict = await verifyInSession(parsed, session, { trust, confirmations: 1 });
            if (verdict.ok && readable(parsed) !== readable(bases()[which]))
              throw new Error(`passed after flipping byte ${i} with ${mask}`);
          },
        ),
        { numRuns: 1_500 },
      );
    });
  });
});

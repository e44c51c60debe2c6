import { expect } from "chai";
import fc from "fast-check";
import { createHash } from "node:crypto";
import * as browser from "../../../services/core/sha256.browser.ts";
import * as node from "../../../services/core/sha256.node.ts";
import { sha256, sha256Of } from "../../../services/core/hash.ts";
import { toHex } from "../../../services/core/hex.ts";
import { leafHash, nodeHash } from "../../../services/core/merkle.ts";

function reference(...parts: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return `0x${h.digest("hex")}`;
}

/** The one-shot and scratch-buffer paths of the hash functions against a plain Hash object. */
describe("core/hash fast paths", () => {
  it("sha256 of several parts, below and above the scratch buffer's size, as one Hash object", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 5000 })), {
          minLength: 0,
          maxLength: 4,
        }),
        (parts) => {
          expect(toHex(sha256(...parts))).to.equal(reference(...parts));
          expect(toHex(node.sha256Impl(parts))).to.equal(reference(...parts));
          expect(toHex(browser.sha256Impl(parts))).to.equal(reference(...parts));
        },
      ),
      { numRuns: 200 },
    );
    const big = [new Uint8Array(9000).fill(7), new Uint8Array(1).fill(1)];
    expect(toHex(sha256(...big))).to.equal(reference(...big));
  });

  it("sha256Of, node and browser, equals sha256 of one part", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        expect(toHex(sha256Of(data))).to.equal(reference(data));
        expect(toHex(node.sha256OneImpl(data))).to.equal(reference(data));
        expect(toHex(browser.sha256OneImpl(data))).to.equal(reference(data));
      }),
    );
  });

  it("results are independent arrays: the scratch buffers are never handed out", () => {
    const a = sha256(new Uint8Array([1]), new Uint8Array([2]));
    const b = sha256(new Uint8Array([3]), new Uint8Array([4]));
    expect(toHex(a)).to.equal(reference(new Uint8Array([1, 2])));
    expect(toHex(b)).to.equal(reference(new Uint8Array([3, 4])));
    const l = new Uint8Array(32).fill(1);
    const r = new Uint8Array(32).fill(2);
    const n1 = nodeHash(l, r);
    const n2 = nodeHash(r, l);
    expect(toHex(n1)).to.equal(reference(Uint8Array.of(1), l, r));
    expect(toHex(n2)).to.equal(reference(Uint8Array.of(1), r, l));
  });

  it("nodeHash = SHA-256(0x01 || left || right) and leafHash = SHA-256(0x00 || d), any lengths", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 })),
        fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 })),
        (left, right) => {
          expect(toHex(nodeHash(left, right))).to.equal(reference(Uint8Array.of(1), left, right));
          expect(toHex(leafHash(left))).to.equal(reference(Uint8Array.of(0), left));
        },
      ),
    );
  });
});

import { expect } from "chai";
import { SigningKey, recoverAddress, computeAddress } from "ethers";
import fc from "fast-check";
import * as browser from "../../../services/core/ecdsa.browser.ts";
import * as node from "../../../services/core/ecdsa.node.ts";
import { toHex } from "../../../services/core/hex.ts";

/** The curve order n: private keys are 1 … n − 1. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

describe("core/ecdsa", () => {
  it("signs with libsecp256k1 in Node (the prebuilt binding loads on this platform)", () => {
    expect(node.ecdsaBackend).to.equal("libsecp256k1");
    expect(browser.ecdsaBackend).to.equal("ethers");
  });

  it("the native and the ethers signer give the same 65 bytes for any key and digest", () => {
    const privateKey = fc
      .bigInt({ min: 1n, max: N - 1n })
      .map((k) => `0x${k.toString(16).padStart(64, "0")}`);
    const digest = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => toHex(b));
    fc.assert(
      fc.property(privateKey, digest, (secret, d) => {
        const key = new SigningKey(secret);
        const signature = node.signDigestImpl(key, d);
        expect(signature).to.equal(browser.signDigestImpl(key, d));
        expect(signature).to.match(/^0x[0-9a-f]{128}(?:1b|1c)$/);
        expect(recoverAddress(d, signature)).to.equal(computeAddress(key.publicKey));
      }),
      { numRuns: 100 },
    );
  });

  it("the same bytes at the edges: the smallest and largest keys, digests around n", () => {
    for (const secret of [1n, 2n, N - 1n, N / 2n])
      for (const d of [
        `0x${"00".repeat(32)}`,
        `0x${"01".repeat(32)}`,
        // At and above the group order n: RFC 6979 derives the nonce from the digest mod n.
        `0x${(N - 1n).toString(16)}`,
        `0x${N.toString(16)}`,
        `0x${(N + 1n).toString(16)}`,
        `0x${"ff".repeat(32)}`,
      ]) {
        const key = new SigningKey(`0x${secret.toString(16).padStart(64, "0")}`);
        expect(node.signDigestImpl(key, d as `0x${string}`)).to.equal(
          key.sign(d).serialized,
          `key ${secret}, digest ${d}`,
        );
      }
  });
});

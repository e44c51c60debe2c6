import { expect } from "chai";
import fc from "fast-check";
import * as browser from "../../../services/core/sha256.browser.ts";
import * as node from "../../../services/core/sha256.node.ts";
import { hmacSha256, sha256 } from "../../../services/core/hash.ts";
import { toHex, utf8 } from "../../../services/core/hex.ts";

describe("core/hash", () => {
  it("matches the FIPS 180-2 and RFC 4231 test vectors", () => {
    expect(toHex(sha256(utf8("abc")))).to.equal(
      "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(toHex(sha256(new Uint8Array(0)))).to.equal(
      "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    // RFC 4231 test case 2.
    expect(toHex(hmacSha256(utf8("Jefe"), utf8("what do ya want for nothing?")))).to.equal(
      "0x5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });

  it("the Node (OpenSSL) and browser (noble) implementations give the same bytes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }),
        fc.uint8Array({ maxLength: 80 }),
        (parts, key) => {
          expect(toHex(node.sha256Impl(parts))).to.equal(toHex(browser.sha256Impl(parts)));
          const message = parts[0]!;
          expect(toHex(node.hmacSha256Impl(key, message))).to.equal(
            toHex(browser.hmacSha256Impl(key, message)),
          );
        },
      ),
    );
  });

  it("returns plain Uint8Arrays whose slice() copies", () => {
    const h = sha256(utf8("x"));
    expect(Buffer.isBuffer(h)).to.equal(false);
    const copy = h.slice();
    copy[0] = copy[0]! ^ 0xff;
    expect(copy[0]).to.not.equal(h[0]);
  });
});

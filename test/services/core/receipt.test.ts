import { expect } from "chai";
import { TypedDataEncoder, Wallet } from "ethers";
import fc from "fast-check";
import { toHex } from "../../../services/core/hex.ts";
import { buildTree } from "../../../services/core/merkle.ts";
import {
  RECEIPT_DOMAIN,
  RECEIPT_FORMAT,
  RECEIPT_TYPES,
  type Receipt,
  ReceiptError,
  type ReceiptGroupMessage,
  receiptGroupDigest,
  receiptGroupValue,
  signReceiptGroup,
  verifyReceipt,
} from "../../../services/core/receipt.ts";

const signer = new Wallet("0x" + "21".repeat(32));
const log = `0x${"ab".repeat(32)}` as const;

async function groupReceipts(count: number): Promise<Receipt[]> {
  const leaves = Array.from({ length: count }, (_, i) => new Uint8Array(32).fill(i + 1));
  const tree = buildTree(leaves);
  const message = {
    log,
    firstSeq: 10,
    count,
    leavesRoot: toHex(tree.root),
    issuedAt: Date.UTC(2026, 10, 23, 10),
    anchorDeadline: Date.UTC(2026, 10, 23, 11),
  };
  const signature = await signer.signTypedData(
    RECEIPT_DOMAIN,
    RECEIPT_TYPES,
    receiptGroupValue(message),
  );
  return leaves.map((leaf, i) => ({
    format: RECEIPT_FORMAT,
    log,
    seq: 10 + i,
    leafHash: toHex(leaf),
    recorded: "2026-11-23T09:59:00.000Z",
    anchorDeadline: new Date(message.anchorDeadline).toISOString(),
    issuedAt: new Date(message.issuedAt).toISOString(),
    group: {
      firstSeq: 10,
      count,
      leavesRoot: message.leavesRoot,
      path: tree.inclusionProof(i).map(toHex),
    },
    signer: signer.address,
    signature,
  }));
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof ReceiptError ? e.code : `not a ReceiptError: ${String(e)}`;
  }
  return undefined;
}

describe("core/receipt", () => {
  const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => toHex(b));
  const message: fc.Arbitrary<ReceiptGroupMessage> = fc.record({
    log: hex32,
    firstSeq: fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER)),
    count: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.constant(0xffffffff)),
    leavesRoot: hex32,
    issuedAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    anchorDeadline: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  });

  it("the hand-written EIP-712 digest equals ethers' TypedDataEncoder for any message", () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(receiptGroupDigest(m)).to.equal(
          TypedDataEncoder.hash(RECEIPT_DOMAIN, RECEIPT_TYPES, receiptGroupValue(m)),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("signs a group byte-identically to signTypedData, for a wallet and for any other signer", async () => {
    // Any signer that is not a local key goes through signTypedData (a remote signer, say).
    const remote = {
      getAddress: () => signer.getAddress(),
      signTypedData: signer.signTypedData.bind(signer),
    };
    await fc.assert(
      fc.asyncProperty(message, async (m) => {
        const expected = await signer.signTypedData(
          RECEIPT_DOMAIN,
          RECEIPT_TYPES,
          receiptGroupValue(m),
        );
        expect(await signReceiptGroup(signer, m)).to.equal(expected);
        expect(await signReceiptGroup(remote, m)).to.equal(expected);
      }),
      { numRuns: 50 },
    );
  });

  it("refuses a message field that does not fit its EIP-712 type", () => {
    const m: ReceiptGroupMessage = {
      log,
      firstSeq: 0,
      count: 1,
      leavesRoot: log,
      issuedAt: 0,
      anchorDeadline: 0,
    };
    expect(() => receiptGroupDigest({ ...m, count: 2 ** 32 })).to.throw(RangeError, /count/);
    expect(() => receiptGroupDigest({ ...m, firstSeq: -1 })).to.throw(RangeError, /firstSeq/);
    expect(() => receiptGroupDigest({ ...m, issuedAt: 1.5 })).to.throw(RangeError, /issuedAt/);
  });

  it("every receipt of a group verifies on its own and recovers the signer", async () => {
    for (const r of await groupReceipts(7))
      expect(verifyReceipt(r).signer).to.equal(signer.address);
  });

  it("rejects a changed leaf, seq, deadline, path or signer", async () => {
    const [r] = await groupReceipts(5);
    expect(code(() => verifyReceipt({ ...r!, leafHash: `0x${"77".repeat(32)}` }))).to.equal(
      "RECEIPT_PATH_INVALID",
    );
    expect(code(() => verifyReceipt({ ...r!, seq: 11 }))).to.equal("RECEIPT_PATH_INVALID");
    expect(code(() => verifyReceipt({ ...r!, seq: 99 }))).to.equal("RECEIPT_PATH_INVALID");
    expect(
      code(() => verifyReceipt({ ...r!, group: { ...r!.group, path: r!.group.path.slice(1) } })),
    ).to.equal("RECEIPT_PATH_INVALID");
    expect(
      code(() => verifyReceipt({ ...r!, anchorDeadline: "2026-11-24T11:00:00.000Z" })),
    ).to.equal("RECEIPT_SIGNER_MISMATCH");
    expect(
      code(() => verifyReceipt({ ...r!, signer: new Wallet("0x" + "22".repeat(32)).address })),
    ).to.equal("RECEIPT_SIGNER_MISMATCH");
  });

  it("accepts only v = 27 or 28, so one receipt has one signature encoding", async () => {
    const [r] = await groupReceipts(1);
    const v = r!.signature.slice(-2);
    expect(["1b", "1c"]).to.include(v);
    const eip155 = r!.signature.slice(0, -2) + (v === "1b" ? "3b" : "3c");
    expect(code(() => verifyReceipt({ ...r!, signature: eip155 }))).to.equal("RECEIPT_MALFORMED");
    expect(code(() => verifyReceipt({ ...r!, extra: 1 }))).to.equal("RECEIPT_MALFORMED");
  });
});

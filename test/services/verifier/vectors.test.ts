import { expect } from "chai";
import { JsonRpcProvider, Network, Wallet } from "ethers";
import { RegistryClient } from "../../../services/chain/registry-client.ts";
import {
  ChainReads,
  type ChainRpc,
  batchHeaderHash,
} from "../../../services/verifier/chain-reads.ts";
import { connectRpc } from "../../../services/verifier/rpc.ts";
import type { Verdict } from "../../../services/verifier/verdict.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";
import {
  ADMIN,
  type GeneratedBundles,
  RECEIPT_SIGNER,
  type VectorCase,
  buildCase,
  confirmationsFor,
  generateBundles,
  loadCases,
  policyForCase,
  resignReceipt,
  verdictMismatch,
} from "../../vectors/bundles/generate.ts";

function describeVerdict(v: Verdict): string {
  return v.checks.map((c) => `${c.step}: ${String(c.ok)} ${c.code ?? ""} ${c.reason}`).join("\n");
}

describe("verifier vectors (real ledger anchored on a Hardhat node)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let g: GeneratedBundles;
  let provider: JsonRpcProvider;
  let cases: VectorCase[];

  before(async () => {
    cases = await loadCases();
    node = await HardhatNode.start();
    g = await generateBundles(node);
    provider = await connectRpc(node.url);
  });
  after(async () => {
    provider?.destroy();
    await g?.close();
    await node?.stop();
  });

  it("has a vector for every failure code and for every status", async () => {
    const codes = new Set(cases.map((c) => c.wantCode).filter((c) => c !== undefined));
    expect([...codes].sort()).to.deep.equal(
      [
        "ANCHOR_TX_MISMATCH",
        "BUNDLE_MALFORMED",
        "COMMITMENT_MISMATCH",
        "DISCLOSURE_MISSING",
        "ERASURE_INVALID",
        "ERASURE_MISMATCH",
        "ENTRY_BATCH_MISMATCH",
        "HEADER_MISMATCH",
        "NOT_ANCHORED",
        "PATH_INVALID",
        "RECEIPT_ENTRY_MISMATCH",
        "RECEIPT_INVALID",
        "ROOT_MISMATCH",
        "RPC_ERROR",
        "SIGNER_NOT_REGISTERED",
        // SIGNER_NOT_VALID_AT_ISSUE needs a rotated signer: the rotation test below covers it.
        "TOO_FEW_CONFIRMATIONS",
        "UNKNOWN_LOG",
        "UNTRUSTED_REGISTRY",
        "WRONG_CHAIN",
      ].sort(),
    );
    expect(new Set(cases.map((c) => c.wantStatus))).to.have.all.keys(
      "verified",
      "erased",
      "withheld",
      "pending",
      "failed",
      "error",
    );
  });

  it("computes the registry's own header hash", async () => {
    const header = g.bases.fresh.batch!;
    const reads = new ChainReads(provider);
    const latest = await provider.getBlockNumber();
    expect(await reads.batchCommitment(g.contract, header.logId, header.batchNo, latest)).to.equal(
      batchHeaderHash(header),
    );
    await reads.batchCommitment(g.contract, header.logId, header.batchNo, latest);
    expect(reads.calls, "a repeated read is served from the run's cache").to.equal(1);
  });

  it("every vector gets its expected verdict from the library", async () => {
    const latest = await provider.getBlockNumber();
    const dead = new JsonRpcProvider(g.deadRpcUrl, Network.from(g.chainId), {
      staticNetwork: Network.from(g.chainId),
    });
    try {
      for (const c of cases) {
        const bundle = await buildCase(c, g);
        const verdict = await verifyBundle(bundle, c.rpc === "dead" ? dead : provider, {
          trust: policyForCase(c, g),
          confirmations: confirmationsFor(c, latest, g.anchorBlock),
        });
        expect(verdictMismatch(c, verdict)).to.equal(undefined);
        expect(verdict.ok, c.desc).to.equal(
          c.wantStatus === "verified" || c.wantStatus === "erased",
        );
      }
    } finally {
      dead.destroy();
    }
  });

  it("a pending bundle says so: receipt and signer checked in the trusted registry, anchor skipped", async () => {
    const verdict = await verifyBundle(g.bases.pending, provider, {
      trust: g.trust,
      confirmations: 1,
    });
    const byStep = Object.fromEntries(verdict.checks.map((c) => [c.step, c.ok]));
    expect(byStep).to.deep.equal({
      shape: true,
      trust: true,
      commitment: true,
      entry: true,
      inclusion: true,
      anchor: "skipped",
      confirmations: "skipped",
      receipt: true,
      signer: true,
      erasure: "skipped",
    });
    expect(verdict).to.include({ ok: false, status: "pending" });
  });

  it("an erased bundle skips only the commitment step; the erasure step names the Delete", async () => {
    const verdict = await verifyBundle(g.bases.erased, provider, { trust: g.trust });
    const commitment = verdict.checks.find((c) => c.step === "commitment");
    expect(commitment?.ok).to.equal("skipped");
    expect(commitment?.reason).to.match(/erased/);
    expect(verdict.checks.filter((c) => c.ok === "skipped")).to.have.length(1);
    expect(verdict).to.include({ ok: true, status: "erased", erasedBy: 10 });
    expect(verdict.checks.find((c) => c.step === "erasure")?.reason).to.match(
      /seq 10 of this log .* records the erasure of seq 3/,
    );
  });

  it("a missing receipt with the claimed block still served: the tx must be in that block", async () => {
    const noReceipts: ChainRpc = {
      call: (tx) => provider.call(tx),
      getBlockNumber: () => provider.getBlockNumber(),
      getNetwork: () => provider.getNetwork(),
      getTransactionReceipt: async () => null,
      getBlock: (n) => provider.getBlock(n),
    };
    const good = await verifyBundle(g.bases.fresh, noReceipts, {
      trust: g.trust,
      confirmations: 1,
    });
    expect(good.ok, describeVerdict(good)).to.equal(true);
    const forged = structuredClone(g.bases.fresh);
    forged.anchor!.blockNumber -= 1;
    const bad = await verifyBundle(forged, noReceipts, { trust: g.trust, confirmations: 1 });
    expect(bad.code).to.equal("ANCHOR_TX_MISMATCH");
  });

  it("passes on state alone when the anchoring tx receipt is gone (EIP-4444)", async () => {
    const pruned: ChainRpc = {
      call: (tx) => provider.call(tx),
      getBlockNumber: () => provider.getBlockNumber(),
      getNetwork: () => provider.getNetwork(),
      getTransactionReceipt: async () => null,
      getBlock: async () => {
        throw new Error("pruned history unavailable");
      },
    };
    const verdict = await verifyBundle(g.bases.fresh, pruned, { trust: g.trust, confirmations: 1 });
    expect(verdict.ok).to.equal(true);
    expect(verdict.checks.find((c) => c.step === "anchor")?.reason).to.match(
      /not available, state check suffices/,
    );
  });

  // Last: it rotates the log's receipt signer on the shared chain.
  it("after a signer rotation: old receipts still verify, the old key's later ones do not", async () => {
    const next = new Wallet(HARDHAT_ACCOUNTS[4].privateKey);
    const client = await RegistryClient.connect({ rpcUrl: node.url, address: g.contract });
    let rotatedAt: bigint;
    try {
      const rotation = await client.rotateReceiptSigner(
        ADMIN,
        g.bases.fresh.entry.log,
        next.address,
      );
      rotatedAt = BigInt(rotation.period.validFrom);
    } finally {
      client.provider.destroy();
    }
    const after = Number(rotatedAt) * 1000 + 5_000;
    // A new provider: ethers caches the head for a moment, and the rotation just mined a block.
    const fresh = await connectRpc(node.url);
    try {
      const check = async (bundle: unknown) =>
        verifyBundle(bundle, fresh, { trust: g.trust, confirmations: 1 });

      const old = await check(g.bases.fresh);
      expect(old.ok, describeVerdict(old)).to.equal(true);

      const lateOld = structuredClone(g.bases.fresh);
      lateOld.receipt = await resignReceipt(lateOld, RECEIPT_SIGNER, after);
      const lateVerdict = await check(lateOld);
      expect(lateVerdict.code, describeVerdict(lateVerdict)).to.equal("SIGNER_NOT_VALID_AT_ISSUE");

      const fromNew = structuredClone(g.bases.fresh);
      fromNew.receipt = await resignReceipt(fromNew, next, after);
      const newVerdict = await check(fromNew);
      expect(newVerdict.ok, describeVerdict(newVerdict)).to.equal(true);

      const newTooEarly = structuredClone(g.bases.fresh);
      newTooEarly.receipt = await resignReceipt(newTooEarly, next, after - 60_000);
      expect((await check(newTooEarly)).code).to.equal("SIGNER_NOT_VALID_AT_ISSUE");
    } finally {
      fresh.destroy();
    }
  });
});

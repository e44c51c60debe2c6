import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  AnchorTransactions,
  replacementFees,
} from "../../../services/anchoring/anchor-transactions.ts";
import type { AnchorLoopEvent } from "../../../services/anchoring/anchor-events.ts";
import { ChainSession } from "../../../services/anchoring/chain-session.ts";
import { RegistryClient, makeProvider } from "../../../services/chain/registry-client.ts";
import { loadConfig } from "../../../services/config.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
const RECEIPT_SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);
const DEFAULTS = loadConfig({});
const gwei = (n: number) => BigInt(Math.round(n * 1e9));

describe("anchor transactions", () => {
  describe("replacementFees: what a stuck transaction is replaced with", () => {
    const cases = [
      {
        desc: "both fees +25% (+1 wei) when the node asks for less",
        sent: { maxFeePerGas: gwei(4), maxPriorityFeePerGas: gwei(1) },
        current: { maxFeePerGas: gwei(2), maxPriorityFeePerGas: gwei(0.5) },
        want: { maxFeePerGas: gwei(5) + 1n, maxPriorityFeePerGas: gwei(1.25) + 1n },
      },
      {
        desc: "what the node asks for now, when that is more than the bump",
        sent: { maxFeePerGas: gwei(4), maxPriorityFeePerGas: gwei(1) },
        current: { maxFeePerGas: gwei(20), maxPriorityFeePerGas: gwei(3) },
        want: { maxFeePerGas: gwei(20), maxPriorityFeePerGas: gwei(3) },
      },
      {
        desc: "the cap raised to the tip when the tip would exceed it",
        sent: { maxFeePerGas: gwei(4), maxPriorityFeePerGas: gwei(1) },
        current: { maxFeePerGas: gwei(2), maxPriorityFeePerGas: gwei(9) },
        want: { maxFeePerGas: gwei(9), maxPriorityFeePerGas: gwei(9) },
      },
      {
        desc: "zero fees (a dev chain) still rise, so the node takes the replacement",
        sent: { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n },
        current: { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n },
        want: { maxFeePerGas: 1n, maxPriorityFeePerGas: 1n },
      },
    ];
    for (const c of cases)
      it(c.desc, () => {
        const got = replacementFees(c.sent, c.current);
        expect(got).to.deep.equal(c.want);
        // geth takes a replacement only with both fees at least 10% higher.
        expect(got.maxFeePerGas * 10n).to.be.greaterThanOrEqual(c.sent.maxFeePerGas * 11n);
        expect(got.maxPriorityFeePerGas * 10n).to.be.greaterThanOrEqual(
          c.sent.maxPriorityFeePerGas * 11n,
        );
      });
  });

  describe("in flight on a real Hardhat node", function () {
    this.timeout(60_000);
    let node: HardhatNode;
    let dir: string;
    let ledger: Ledger;
    let session: ChainSession;
    before(async () => {
      node = await HardhatNode.start();
      dir = await mkdtemp(path.join(tmpdir(), "veritrail-anchor-tx-"));
      ledger = await Ledger.open({
        location: dir,
        receiptSigner: RECEIPT_SIGNER,
        batchMaxEvents: DEFAULTS.BATCH_MAX_EVENTS,
        batchMaxWaitMs: 60_000,
        anchorDeadlineMs: DEFAULTS.ANCHOR_DEADLINE_MS,
        groupCommitMaxEvents: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
      });
      const provider = makeProvider(node.url, 31337);
      const { client } = await RegistryClient.deploy({ provider, admin: ADMIN });
      await client.registerLog(ADMIN, {
        logId: ledger.logId,
        anchorer: ANCHORER.address,
        receiptSigner: RECEIPT_SIGNER.address,
        operator: "Test log",
      });
      provider.destroy();
      session = new ChainSession({
        rpcUrl: node.url,
        chainMode: "production",
        contractAddress: client.address,
        anchorer: ANCHORER,
      });
    });
    after(async () => {
      session?.close();
      await ledger?.close();
      await node?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("a pipelined transaction that reverted after its predecessor's nonce went elsewhere: both sent again, in order, with fresh nonces", async () => {
      for (let b = 0; b < 2; b++) {
        await ledger.ingest([0, 1].map((i) => makeNativeEvent({ requestId: `tx-${b}-${i}` })));
        await ledger.sealPending();
      }
      expect(await ledger.lastBatchNo()).to.equal(1);
      const events: AnchorLoopEvent[] = [];
      const transactions = new AnchorTransactions({
        session,
        ledger,
        maxInFlight: 8,
        gasLimit: 150_000n,
        txTimeoutMs: 60_000,
        dropCheckMs: 0,
        emit: (e) => events.push(e),
      });
      const { client } = await session.connect();
      const submitted = () =>
        events.filter(
          (e): e is Extract<AnchorLoopEvent, { type: "submitted" }> => e.type === "submitted",
        );
      await node.setAutomine(false);
      try {
        expect(await transactions.sendNext(client, 0, 1, () => false)).to.equal(true);
        const [first0, first1] = submitted();
        expect([first0?.batchNo, first1?.batchNo]).to.deep.equal([0, 1]);
        expect(first1!.nonce).to.equal(first0!.nonce + 1);
        expect(transactions.size).to.equal(2);
        // Each submission is in its batch record before anything is mined.
        for (const e of [first0!, first1!])
          expect((await ledger.getBatch(e.batchNo)).submission).to.deep.include({
            txHash: e.txHash,
            nonce: e.nonce,
            attempts: 1,
          });

        // Batch 0's transaction leaves the pool and its nonce goes to another transaction:
        // batch 1's is mined on top of it and reverts (the registry expects batch 0 first).
        expect(await node.dropTransaction(first0!.txHash)).to.equal(true);
        await ANCHORER.connect(client.provider).sendTransaction({
          to: ANCHORER.address,
          value: 0n,
          nonce: first0!.nonce,
        });
        await node.mine();
        expect((await client.minedTransaction(first1!.txHash))?.status).to.equal("reverted");
        expect(await client.minedTransaction(first0!.txHash)).to.equal(null);

        expect(await transactions.watch(client, 0), "did something").to.equal(true);
        expect(transactions.size, "both forgotten").to.equal(0);
        expect(events.filter((e) => e.type === "rebroadcast")).to.have.length(0);

        expect(await transactions.sendNext(client, 0, 1, () => false)).to.equal(true);
        const [again0, again1] = submitted().slice(2);
        expect([again0?.batchNo, again1?.batchNo]).to.deep.equal([0, 1]);
        expect(again0!.nonce, "the next free nonce").to.equal(first1!.nonce + 1);
        expect(again1!.nonce).to.equal(again0!.nonce + 1);
        await node.mine();
        expect((await client.logHead(ledger.logId)).nextBatchNo).to.equal(2);
        for (const e of [again0!, again1!]) {
          expect((await client.minedTransaction(e.txHash))?.status).to.equal("success");
          expect((await ledger.getBatch(e.batchNo)).submission?.txHash).to.equal(e.txHash);
        }
        // Mined and in state: nothing left to watch below the chain's head.
        expect(await transactions.watch(client, 2)).to.equal(false);
      } finally {
        await node.setAutomine(true);
      }
    });
  });
});

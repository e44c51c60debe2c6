import { expect } from "chai";
import { Transaction, type TransactionResponse, Wallet, hexlify, randomBytes } from "ethers";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DevDeployment } from "../../../services/chain/dev-deployment.ts";
import {
  NonceTracker,
  RegistryClient,
  headerHash,
  makeProvider,
} from "../../../services/chain/registry-client.ts";
import { type Entry, entryLeafHash } from "../../../services/core/entry.ts";
import { fromHex, toHex } from "../../../services/core/hex.ts";
import { rootFromInclusion } from "../../../services/core/merkle.ts";
import { loadConfig } from "../../../services/config.ts";
import {
  AnchorLoop,
  type AnchorLoopEvent,
  type AnchorLoopOptions,
} from "../../../services/anchoring/anchor-loop.ts";
import {
  ChainSession,
  type ChainSessionOptions,
} from "../../../services/anchoring/chain-session.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, HardhatNode, TcpProxy } from "../../support/hardhat-node.ts";
import { policyFor } from "../../support/trust.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
const RECEIPT_SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);
const ANCHORER_B = new Wallet(HARDHAT_ACCOUNTS[3].privateKey);
const ANCHORER_SHARED = new Wallet(HARDHAT_ACCOUNTS[4].privateKey);
/** Sends unrelated transactions so that a block mined after a revert differs from the old one. */
const BYSTANDER = new Wallet(HARDHAT_ACCOUNTS[5].privateKey);
const DEFAULTS = loadConfig({});

let requestCounter = 0;
function event() {
  requestCounter++;
  return makeNativeEvent({ requestId: `req-anchor-loop-${process.pid}-${requestCounter}` });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Harness {
  ledger: Ledger;
  loop: AnchorLoop;
  events: AnchorLoopEvent[];
  dir: string;
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];

async function openLedger(dir: string, batchMaxWaitMs = 150): Promise<Ledger> {
  const ledger = await Ledger.open({
    location: dir,
    receiptSigner: RECEIPT_SIGNER,
    batchMaxEvents: DEFAULTS.BATCH_MAX_EVENTS,
    batchMaxWaitMs,
    anchorDeadlineMs: DEFAULTS.ANCHOR_DEADLINE_MS,
    groupCommitMaxEvents: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
  });
  cleanups.push(async () => {
    if (ledger.store.isOpen) await ledger.close();
  });
  return ledger;
}

async function openHarness(opts: {
  rpcUrl: string;
  dir?: string;
  batchMaxWaitMs?: number;
  loop?: Partial<Omit<AnchorLoopOptions, "ledger" | "session">>;
  session?: Partial<ChainSessionOptions>;
  start?: boolean;
}): Promise<Harness> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), "veritrail-anchor-")));
  const ledger = await openLedger(dir, opts.batchMaxWaitMs);
  const events: AnchorLoopEvent[] = [];
  const loop = new AnchorLoop({
    ledger,
    session: new ChainSession({
      rpcUrl: opts.rpcUrl,
      chainMode: "development",
      anchorer: ANCHORER,
      admin: ADMIN,
      ...opts.session,
    }),
    confirmations: 1,
    retryMinMs: 50,
    retryMaxMs: 500,
    pollMs: 50,
    ...opts.loop,
    onEvent: (e) => events.push(e),
  });
  if (opts.start !== false) loop.start();
  const close = async () => {
    await loop.stop();
    if (ledger.store.isOpen) await ledger.close();
  };
  cleanups.push(close);
  return { ledger, loop, events, dir, close };
}

async function ingest(ledger: Ledger, n: number): Promise<number[]> {
  const results = await ledger.ingest(Array.from({ length: n }, () => event()));
  return results.map((r) => r.receipt.seq);
}

/** Ingests `n` events and seals them into one batch of their own; returns its batchNo. */
async function sealedBatch(ledger: Ledger, n: number): Promise<number> {
  await ingest(ledger, n);
  await ledger.sealPending();
  return ledger.lastBatchNo();
}

async function allBatches(ledger: Ledger): Promise<BatchRecord[]> {
  return ledger.listBatches({ fromBatchNo: 0, limit: 10_000 });
}

/** Every batch anchored on `client`'s registry, the stored commitment equal to LevelDB's. */
async function expectAllAnchored(ledger: Ledger, client: RegistryClient): Promise<void> {
  const records = await allBatches(ledger);
  const head = await client.logHead(ledger.logId);
  expect(head.nextBatchNo).to.equal(records.length);
  expect(head.nextSeq).to.equal(ledger.nextSeq);
  for (const record of records) {
    expect(record.state, `batch ${record.header.batchNo}`).to.equal("anchored");
    expect(record.anchor?.contract).to.equal(client.address);
    expect(await client.batchCommitment(ledger.logId, record.header.batchNo)).to.equal(
      headerHash(record.header),
    );
    expect(await client.blockHashAt(record.anchor?.blockNumber ?? -1)).to.equal(
      record.anchor?.blockHash,
    );
  }
}

async function clientFor(rpcUrl: string, address: string): Promise<RegistryClient> {
  const client = await RegistryClient.connect({ rpcUrl, address });
  cleanups.push(async () => client.destroy());
  return client;
}

function anchoredEvents(events: AnchorLoopEvent[]) {
  return events.filter(
    (e): e is Extract<AnchorLoopEvent, { type: "anchored" }> => e.type === "anchored",
  );
}

function submittedEvents(events: AnchorLoopEvent[]) {
  return events.filter(
    (e): e is Extract<AnchorLoopEvent, { type: "submitted" }> => e.type === "submitted",
  );
}

describe("anchor loop (real Hardhat node)", function () {
  this.timeout(120_000);
  let node: HardhatNode;

  before(async () => {
    node = await HardhatNode.start();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  after(async () => {
    await node?.stop();
  });

  it("anchors every accepted event; on-chain commitments match LevelDB; bundles carry the anchor", async () => {
    const h = await openHarness({ rpcUrl: node.url });
    const seqs: number[] = [];
    for (let round = 0; round < 5; round++) {
      seqs.push(...(await ingest(h.ledger, 20)));
      await sleep(200);
    }
    await h.ledger.sealPending();
    const last = await h.ledger.lastBatchNo();
    expect(last).to.be.greaterThan(0);
    await h.loop.waitForAnchored(last, 30_000);
    const status = h.loop.status();
    expect(status).to.include({ state: "running", lagBatches: 0, lagMs: 0, chainId: 31337 });
    const client = await clientFor(node.url, status.contract as string);
    await expectAllAnchored(h.ledger, client);
    for (const seq of seqs) {
      const bundle = await h.ledger.prove(seq);
      expect(bundle.status).to.equal("anchored");
      expect(bundle.anchor?.contract).to.equal(status.contract);
      expect(bundle.anchor?.chainId).to.equal(31337);
    }
    // One transaction per batch, each batch sent once.
    const sent = submittedEvents(h.events).map((e) => e.batchNo);
    expect(sent).to.deep.equal(Array.from({ length: last + 1 }, (_, i) => i));
  });

  it("measures acknowledgement → confirmed anchor with default settings (≤ 10 s) and gas per anchor", async () => {
    const h = await openHarness({
      rpcUrl: node.url,
      batchMaxWaitMs: DEFAULTS.BATCH_MAX_WAIT_MS,
      loop: {
        pollMs: undefined,
        retryMinMs: undefined,
        retryMaxMs: undefined,
        confirmations: DEFAULTS.CONFIRMATIONS,
      },
    });
    const latencies: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [seq] = await ingest(h.ledger, 1);
      const acknowledged = performance.now();
      await waitFor(
        "anchored bundle",
        async () => (await h.ledger.prove(seq as number)).status === "anchored",
        15_000,
      );
      latencies.push(performance.now() - acknowledged);
    }
    const gas = anchoredEvents(h.events).map((e) => e.gasUsed);
    const ms = latencies.map((l) => Math.round(l));
    console.log(
      `      ack → anchored (BATCH_MAX_WAIT_MS=${DEFAULTS.BATCH_MAX_WAIT_MS}, CONFIRMATIONS=${DEFAULTS.CONFIRMATIONS}): ` +
        `${ms.join(", ")} ms (max ${Math.max(...ms)} ms); gas per anchor: ${[...new Set(gas)].join(", ")}`,
    );
    for (const l of latencies) expect(l).to.be.lessThan(10_000);
    for (const g of gas) expect(g).to.be.within(21_000, 100_000);
  });

  it("reports the lag of a service started with its RPC down (cursor never known), then drains it", async () => {
    const proxy = await TcpProxy.start({ host: node.host, port: node.port });
    cleanups.push(() => proxy.close());
    proxy.cut();
    const h = await openHarness({ rpcUrl: proxy.url, batchMaxWaitMs: 50 });
    await ingest(h.ledger, 3);
    await h.ledger.sealPending();
    await waitFor("backoff", async () => h.loop.status().state === "backoff", 10_000);
    await sleep(300);
    const down = h.loop.status();
    expect(down.lagBatches).to.be.greaterThan(0);
    expect(down.lagMs, "lag runs from the first seal this process saw").to.be.greaterThanOrEqual(
      300,
    );
    proxy.restore();
    await h.loop.waitForAnchored(await h.ledger.lastBatchNo(), 30_000);
    expect(h.loop.status().lagBatches).to.equal(0);
    expect(h.loop.status().lagMs).to.equal(0);
  });

  it("survives an RPC outage under load: ingest goes on, the backlog drains in order, nothing lost or duplicated", async () => {
    const proxy = await TcpProxy.start({ host: node.host, port: node.port });
    cleanups.push(() => proxy.close());
    const h = await openHarness({ rpcUrl: proxy.url, batchMaxWaitMs: 100 });
    const acknowledged: number[] = [];
    let loading = true;
    const load = (async () => {
      while (loading) {
        acknowledged.push(...(await ingest(h.ledger, 5)));
        await sleep(30);
      }
    })();
    // The outage comes after normal operation: the loop has reached the chain and anchored (on a
    // loaded machine its first connect and deploy can take longer than any fixed sleep).
    await waitFor(
      "a first anchor",
      async () => h.events.some((e) => e.type === "anchored"),
      30_000,
    );
    await sleep(300);
    proxy.cut();
    const ackedAtCut = acknowledged.length;
    await waitFor("backoff", async () => h.loop.status().state === "backoff", 10_000);
    await sleep(1_500);
    const during = h.loop.status();
    expect(during.state).to.equal("backoff");
    expect(during.lastError).to.be.a("string").and.not.include(`${proxy.port}/`);
    expect(during.lagBatches).to.be.greaterThan(0);
    expect(during.lagMs).to.be.greaterThan(0);
    expect(
      acknowledged.length,
      "ingest kept acknowledging while the RPC was down",
    ).to.be.greaterThan(ackedAtCut + 20);
    const backlog = h.loop.status().lagBatches;
    const restored = performance.now();
    proxy.restore();
    await h.loop.waitForAnchored(backlog - 1 + (h.loop.status().anchoredThrough ?? 0), 30_000);
    const drainMs = performance.now() - restored;
    console.log(
      `      backlog of ${backlog} batches after the outage anchored in ${Math.round(drainMs)} ms`,
    );
    // The operator's log says when the chain came back, with the backlog, and when it drained.
    const recovered = h.events.find((e) => e.type === "recovered");
    expect(recovered, "a recovered event").to.not.equal(undefined);
    if (recovered?.type !== "recovered") return;
    expect(recovered.failures).to.be.greaterThan(0);
    expect(recovered.downMs).to.be.greaterThan(1_000);
    expect(recovered.lagBatches).to.be.greaterThanOrEqual(backlog);
    const caughtUp = await waitFor(
      "caught-up event",
      async () => h.events.find((e) => e.type === "caught-up"),
      30_000,
    );
    expect(caughtUp).to.include({ reason: "outage" });
    if (caughtUp.type === "caught-up")
      expect(caughtUp.batches).to.be.greaterThanOrEqual(recovered.lagBatches);
    loading = false;
    await load;
    await h.ledger.sealPending();
    await h.loop.waitForAnchored(await h.ledger.lastBatchNo(), 30_000);

    const client = await clientFor(node.url, h.loop.status().contract as string);
    await expectAllAnchored(h.ledger, client);
    expect(new Set(acknowledged).size).to.equal(acknowledged.length);
    for (const seq of [0, ...acknowledged.slice(-3)]) {
      expect((await h.ledger.prove(seq)).status).to.equal("anchored");
    }
    // Exactly one BatchAnchored per batch, in order.
    const logs = await client.provider.getLogs({
      address: client.address,
      topics: [
        client.contract.interface.getEvent("BatchAnchored")?.topicHash ?? "",
        h.ledger.logId,
      ],
      fromBlock: 0,
    });
    const batchNos = logs.map((l) => Number(BigInt(l.topics[2] ?? "0x0")));
    expect(batchNos).to.deep.equal(Array.from({ length: batchNos.length }, (_, i) => i));
    expect(batchNos.length).to.equal((await allBatches(h.ledger)).length);
  });

  it("resumes after a restart: sealed batches are anchored, already anchored or sent ones are not re-sent", async () => {
    const first = await openHarness({ rpcUrl: node.url });
    for (let i = 0; i < 3; i++) await sealedBatch(first.ledger, 4);
    await first.loop.waitForAnchored(2, 20_000);
    const contract = first.loop.status().contract as string;
    await first.loop.stop();
    // While the service is "down": three more batches are sealed; the previous run had sent
    // batch 3 and crashed before recording more than `submitted`.
    for (let i = 0; i < 3; i++) await sealedBatch(first.ledger, 3);
    const client = await clientFor(node.url, contract);
    const anchorer = ANCHORER.connect(client.provider);
    const batch3 = await first.ledger.getBatch(3);
    const sent = await client.sendAnchor(anchorer, batch3.header);
    await first.ledger.saveBatchState({
      ...batch3,
      state: "submitted",
      submission: {
        chainId: 31337,
        contract,
        txHash: sent.txHash,
        nonce: sent.nonce,
        submittedAt: new Date().toISOString(),
        attempts: 1,
      },
    });
    await first.ledger.close();
    const nonceBefore = await client.provider.getTransactionCount(ANCHORER.address, "latest");

    const second = await openHarness({
      rpcUrl: node.url,
      dir: first.dir,
      session: { contractAddress: contract },
    });
    await second.loop.waitForAnchored(5, 20_000);
    const nonceAfter = await client.provider.getTransactionCount(ANCHORER.address, "latest");
    expect(nonceAfter - nonceBefore, "only batches 4 and 5 were sent").to.equal(2);
    expect(submittedEvents(second.events).map((e) => e.batchNo)).to.deep.equal([4, 5]);
    const recognised = anchoredEvents(second.events).find((e) => e.batchNo === 3);
    expect(recognised).to.include({ txHash: sent.txHash, sentByThisRun: false });
    expect(anchoredEvents(second.events).map((e) => e.batchNo)).to.deep.equal([3, 4, 5]);
    // Logged: three sealed batches waiting at the start, then caught up.
    expect(second.events.filter((e) => e.type === "backlog")).to.deep.equal([
      { type: "backlog", reason: "restart", batches: 3 },
    ]);
    expect(second.events.find((e) => e.type === "caught-up")).to.include({
      reason: "restart",
      batches: 3,
    });
    await expectAllAnchored(second.ledger, client);
  });

  it("re-anchors a batch whose transaction was reorged out before reaching the confirmation depth", async () => {
    const h = await openHarness({
      rpcUrl: node.url,
      loop: { confirmations: 3, dropCheckMs: 300, txTimeoutMs: 5_000 },
    });
    await sealedBatch(h.ledger, 2);
    // Automine makes blocks only for transactions: confirm batch 0 by mining two more.
    await waitFor("batch 0 mined", async () => (await h.ledger.getBatch(0)).state === "submitted");
    await node.mine(2);
    await h.loop.waitForAnchored(0, 20_000);
    const client = await clientFor(node.url, h.loop.status().contract as string);
    // Batch 1's transaction is mined (1 confirmation of 3) ...
    const snapshot = await node.snapshot();
    const batchNo = await sealedBatch(h.ledger, 2);
    const original = await waitFor("batch 1 mined, not yet confirmed", async () => {
      const r = await h.ledger.getBatch(batchNo);
      return r.state === "submitted" &&
        (await client.batchCommitment(h.ledger.logId, batchNo)) === headerHash(r.header)
        ? r
        : undefined;
    });
    const mined = await client.minedTransaction(original.submission?.txHash ?? "");
    expect(mined?.confirmations).to.equal(1);
    // ... then a reorg removes its block; the replacing chain has other transactions.
    await node.revert(snapshot);
    expect(await client.batchCommitment(h.ledger.logId, batchNo)).to.equal("0x" + "00".repeat(32));
    const bystander = BYSTANDER.connect(client.provider);
    await (await bystander.sendTransaction({ to: BYSTANDER.address, value: 1n })).wait();
    const final = await waitFor(
      "batch 1 anchored with 3 confirmations",
      async () => {
        await node.mine();
        const r = await h.ledger.getBatch(batchNo);
        return r.state === "anchored" ? r : undefined;
      },
      30_000,
    );
    expect(final.anchor?.blockHash).to.not.equal(mined?.blockHash);
    const canonical = await client.blockHashAt(final.anchor?.blockNumber ?? -1);
    expect(final.anchor?.blockHash).to.equal(canonical);
    expect((await client.blockNumber()) - (final.anchor?.blockNumber ?? 0) + 1).to.be.at.least(3);
    expect(await client.isAnchored(final.header)).to.equal(true);
  });

  it("re-anchors an anchored batch (and every later one) whose block left the canonical chain", async () => {
    const h = await openHarness({ rpcUrl: node.url, loop: { recheckIntervalMs: 200 } });
    await sealedBatch(h.ledger, 3);
    await h.loop.waitForAnchored(0, 20_000);
    const client = await clientFor(node.url, h.loop.status().contract as string);
    const snapshot = await node.snapshot();
    await sealedBatch(h.ledger, 3);
    await sealedBatch(h.ledger, 3);
    await h.loop.waitForAnchored(2, 20_000);
    const before = await Promise.all([1, 2].map((n) => h.ledger.getBatch(n)));
    const batch0 = await h.ledger.getBatch(0);
    await node.revert(snapshot);
    const bystander = BYSTANDER.connect(client.provider);
    await (await bystander.sendTransaction({ to: BYSTANDER.address, value: 2n })).wait();
    await waitFor("reorg detected", async () => h.events.some((e) => e.type === "reorg"), 20_000);
    expect(h.events.find((e) => e.type === "reorg")).to.include({ fromBatchNo: 1 });
    await h.loop.waitForAnchored(2, 20_000);
    const after = await Promise.all([1, 2].map((n) => h.ledger.getBatch(n)));
    for (const [i, r] of after.entries()) {
      expect(r.anchor?.blockHash).to.not.equal(before[i]?.anchor?.blockHash);
    }
    expect(await h.ledger.getBatch(0)).to.deep.equal(batch0);
    await expectAllAnchored(h.ledger, client);
  });

  it("a reorg deeper than CONFIRMATIONS, below the recheck window: alarm, re-anchors, keeps the lost anchors; bundles handed out before name a block that is gone", async () => {
    const h = await openHarness({
      rpcUrl: node.url,
      loop: { confirmations: 2, recheckDepth: 1, recheckIntervalMs: 200 },
    });
    const confirm = async (batchNo: number) => {
      await waitFor(`batch ${batchNo} mined`, async () => {
        const r = await h.ledger.getBatch(batchNo);
        return r.state !== "sealed";
      });
      await node.mine(2);
      await h.loop.waitForAnchored(batchNo, 20_000);
    };
    await sealedBatch(h.ledger, 2);
    await confirm(0);
    const client = await clientFor(node.url, h.loop.status().contract as string);
    const snapshot = await node.snapshot();
    for (let n = 1; n <= 4; n++) {
      await sealedBatch(h.ledger, 2);
      await confirm(n);
    }
    const before = await Promise.all([1, 2, 3, 4].map((n) => h.ledger.getBatch(n)));
    const handedOut = await h.ledger.prove(before[1]!.header.firstSeq);
    expect(handedOut.anchor).to.include({
      txHash: before[1]!.anchor?.txHash,
      blockNumber: before[1]!.anchor?.blockNumber,
    });
    expect(h.loop.status().deepReorgs).to.equal(0);

    // Every anchor after the snapshot goes, each 2+ blocks deep; other blocks take their place.
    await node.revert(snapshot);
    const bystander = BYSTANDER.connect(client.provider);
    await (await bystander.sendTransaction({ to: BYSTANDER.address, value: 4n })).wait();
    const alarm = await waitFor(
      "the deep-reorg alarm",
      async () => h.loop.status().deepReorg,
      20_000,
    );
    expect(alarm).to.include({ fromBatchNo: 1, batches: 4, confirmations: 2 });
    expect(alarm.reanchoredAt).to.equal(undefined);
    const event = h.events.find(
      (e): e is Extract<AnchorLoopEvent, { type: "deep-reorg" }> => e.type === "deep-reorg",
    );
    expect(event?.lostAnchors.map((a) => a.txHash)).to.deep.equal(
      before.map((r) => r.anchor?.txHash),
    );

    await waitFor(
      "re-anchored",
      async () => {
        await node.mine();
        return h.loop.status().deepReorg?.reanchoredAt !== undefined;
      },
      60_000,
    );
    expect(h.loop.status().deepReorgs).to.equal(1);
    expect(h.events.filter((e) => e.type === "reanchored")).to.have.length(1);
    await expectAllAnchored(h.ledger, client);
    const after = await Promise.all([1, 2, 3, 4].map((n) => h.ledger.getBatch(n)));
    after.forEach((r, i) => {
      expect(r.reorgedAnchors, `batch ${i + 1}`).to.deep.equal([before[i]!.anchor]);
      expect(r.anchor?.blockHash).to.not.equal(before[i]!.anchor?.blockHash);
    });
    // The bundle handed out before names its anchor: in the batch's reorgedAnchors, and (unless
    // the re-sent transaction is byte-identical and at the same height) no longer verifiable.
    const fresh = await h.ledger.prove(before[1]!.header.firstSeq);
    const trust = policyFor({
      chainId: Number((await client.provider.getNetwork()).chainId),
      contract: client.address,
      logIds: h.ledger.logId,
      confirmations: 2,
    });
    const verify = (b: typeof fresh) =>
      verifyBundle(b, client.provider, { trust, confirmations: 2 });
    expect((await verify(fresh)).ok).to.equal(true);
    const old = await verify(handedOut);
    const sameAnchor =
      fresh.anchor?.txHash === handedOut.anchor?.txHash &&
      fresh.anchor?.blockNumber === handedOut.anchor?.blockNumber;
    if (!sameAnchor) expect(old).to.include({ ok: false, code: "ANCHOR_TX_MISMATCH" });
  });

  it("after a restart, a batch whose transaction was re-included in another block keeps its anchor, updated to the new block", async () => {
    const first = await openHarness({ rpcUrl: node.url });
    await sealedBatch(first.ledger, 2);
    await first.loop.waitForAnchored(0, 20_000);
    const contract = first.loop.status().contract as string;
    const client = await clientFor(node.url, contract);
    const snapshot = await node.snapshot();
    const batchNo = await sealedBatch(first.ledger, 2);
    await first.loop.waitForAnchored(batchNo, 20_000);
    const before = await first.ledger.getBatch(batchNo);
    const sentTx = await client.provider.getTransaction(before.anchor?.txHash ?? "");
    expect(sentTx).to.not.equal(null);
    const raw = Transaction.from(sentTx as TransactionResponse).serialized;
    await first.close();
    // While the service is down: a reorg drops the block, and the same transaction lands in a
    // later block of the new chain.
    await node.revert(snapshot);
    const bystander = BYSTANDER.connect(client.provider);
    await (await bystander.sendTransaction({ to: BYSTANDER.address, value: 3n })).wait();
    await client.provider.broadcastTransaction(raw);

    const second = await openHarness({
      rpcUrl: node.url,
      dir: first.dir,
      session: { contractAddress: contract },
    });
    const after = await waitFor("anchor moved to the new block", async () => {
      const r = await second.ledger.getBatch(batchNo);
      return r.anchor?.blockHash !== before.anchor?.blockHash ? r : undefined;
    });
    expect(after.state).to.equal("anchored");
    expect(after.anchor?.txHash).to.equal(before.anchor?.txHash);
    expect(after.anchor?.blockNumber).to.equal((before.anchor?.blockNumber ?? 0) + 1);
    expect(await client.blockHashAt(after.anchor?.blockNumber ?? -1)).to.equal(
      after.anchor?.blockHash,
    );
    expect(submittedEvents(second.events)).to.have.length(0);
    expect(second.events.filter((e) => e.type === "reorg")).to.have.length(0);
    await expectAllAnchored(second.ledger, client);
  });

  it("rebroadcasts a dropped transaction; sends again with a fresh nonce if another transaction took it", async () => {
    const h = await openHarness({
      rpcUrl: node.url,
      loop: { dropCheckMs: 500, txTimeoutMs: 60_000 },
    });
    await sealedBatch(h.ledger, 2);
    await h.loop.waitForAnchored(0, 20_000);
    const client = await clientFor(node.url, h.loop.status().contract as string);
    await node.setAutomine(false);
    try {
      const batchNo = await sealedBatch(h.ledger, 2);
      const first = await waitFor("first submission", async () =>
        submittedEvents(h.events).find((e) => e.batchNo === batchNo),
      );
      await sleep(700); // past dropCheckMs: a known pending transaction is left alone
      expect(h.events.filter((e) => e.type === "rebroadcast")).to.have.length(0);
      expect(await node.dropTransaction(first.txHash)).to.equal(true);
      expect(await client.provider.getTransaction(first.txHash)).to.equal(null);
      const again = await waitFor("rebroadcast", async () =>
        h.events.find((e) => e.type === "rebroadcast" && e.batchNo === batchNo),
      );
      expect(again).to.include({ txHash: first.txHash, nonce: first.nonce });
      expect(await client.provider.getTransaction(first.txHash)).to.not.equal(null);
      await node.mine();
      await h.loop.waitForAnchored(batchNo, 20_000);
      expect((await h.ledger.getBatch(batchNo)).anchor?.txHash).to.equal(first.txHash);

      // The anchorer key spends the nonce elsewhere while the anchor transaction is gone.
      const next = await sealedBatch(h.ledger, 2);
      const lost = await waitFor("submission", async () =>
        submittedEvents(h.events).find((e) => e.batchNo === next),
      );
      expect(await node.dropTransaction(lost.txHash)).to.equal(true);
      await ANCHORER.connect(client.provider).sendTransaction({
        to: ANCHORER.address,
        value: 0n,
        nonce: lost.nonce,
      });
      await node.mine();
      const resent = await waitFor("sent again", async () =>
        submittedEvents(h.events).find((e) => e.batchNo === next && e.txHash !== lost.txHash),
      );
      expect(resent.nonce).to.equal(lost.nonce + 1);
      await node.mine();
      await h.loop.waitForAnchored(next, 20_000);
      expect((await h.ledger.getBatch(next)).anchor?.txHash).to.equal(resent.txHash);
      expect(await client.provider.getTransactionReceipt(lost.txHash)).to.equal(null);
    } finally {
      await node.setAutomine(true);
    }
  });

  it("replaces a transaction that is not mined within ANCHOR_TX_TIMEOUT_MS with a fee bump", async () => {
    const h = await openHarness({ rpcUrl: node.url, loop: { dropCheckMs: 200, txTimeoutMs: 800 } });
    await sealedBatch(h.ledger, 2);
    await h.loop.waitForAnchored(0, 20_000);
    const client = await clientFor(node.url, h.loop.status().contract as string);
    await node.setAutomine(false);
    try {
      const batchNo = await sealedBatch(h.ledger, 2);
      const second = await waitFor("replacement", async () =>
        submittedEvents(h.events).find((e) => e.batchNo === batchNo && e.attempt === 2),
      );
      const first = submittedEvents(h.events).find((e) => e.batchNo === batchNo && e.attempt === 1);
      const [tx1, tx2] = await Promise.all([
        client.provider.getTransaction(first?.txHash ?? ""),
        client.provider.getTransaction(second.txHash),
      ]);
      expect(tx2?.nonce).to.equal(first?.nonce);
      // The replacement pays more (the original may already be gone from the pool).
      if (tx1) expect(tx2?.maxPriorityFeePerGas).to.be.greaterThan(tx1.maxPriorityFeePerGas ?? 0n);
      await node.mine();
      await h.loop.waitForAnchored(batchNo, 20_000);
      const record = await h.ledger.getBatch(batchNo);
      expect(
        submittedEvents(h.events)
          .filter((e) => e.batchNo === batchNo)
          .map((e) => e.txHash),
      ).to.include(record.anchor?.txHash);
      expect(await client.isAnchored(record.header)).to.equal(true);
    } finally {
      await node.setAutomine(true);
    }
  });

  it("recognises a batch anchored by a transaction it never saw (via BatchAnchored), or from state alone when logs are pruned", async () => {
    const provider = makeProvider(node.url, 31337);
    cleanups.push(async () => provider.destroy());
    const { client } = await RegistryClient.deploy({ provider, admin: ADMIN });
    const results: Array<{ direct: string; record: BatchRecord; head: number; h: Harness }> = [];
    for (const logLookbackBlocks of [100_000, 0]) {
      const h = await openHarness({
        rpcUrl: node.url,
        start: false,
        session: { contractAddress: client.address, logLookbackBlocks },
      });
      await client.registerLog(ADMIN, {
        logId: h.ledger.logId,
        anchorer: ANCHORER.address,
        receiptSigner: RECEIPT_SIGNER.address,
        operator: "Test log",
      });
      await sealedBatch(h.ledger, 2);
      await sealedBatch(h.ledger, 2);
      // A previous run anchored batch 0 and crashed before writing anything down.
      const direct = await client.anchorBatch(
        ANCHORER.connect(provider),
        (await h.ledger.getBatch(0)).header,
      );
      await node.mine(2);
      h.loop.start();
      await h.loop.waitForAnchored(1, 20_000);
      results.push({
        direct: direct.txHash,
        record: await h.ledger.getBatch(0),
        head: direct.blockNumber + 2,
        h,
      });
      expect(submittedEvents(h.events).map((e) => e.batchNo)).to.deep.equal([1]);
      expect(anchoredEvents(h.events)[0]).to.include({ batchNo: 0, sentByThisRun: false });
      await expectAllAnchored(h.ledger, client);
    }
    const [found, pruned] = results;
    expect(found?.record.anchor?.txHash).to.equal(found?.direct);
    expect(found?.record.anchor?.gasUsed).to.be.greaterThan(21_000);
    // Pruned: the commitment is in state; the block it was observed in stands for the anchor.
    expect(pruned?.record.anchor?.txHash).to.equal("0x" + "00".repeat(32));
    expect(pruned?.record.anchor?.blockNumber).to.be.at.least(pruned?.head ?? Infinity);
    expect((await pruned?.h.ledger.prove(0))?.status).to.equal("anchored");
  });

  it("production: an unregistered log is a recoverable alarm; once the admin registers it, anchoring starts", async () => {
    const provider = makeProvider(node.url, 31337);
    cleanups.push(async () => provider.destroy());
    const { client } = await RegistryClient.deploy({ provider, admin: ADMIN });
    const h = await openHarness({
      rpcUrl: node.url,
      session: { chainMode: "production", contractAddress: client.address, admin: undefined },
    });
    await sealedBatch(h.ledger, 2);
    await waitFor("alarm", async () => h.loop.status().alarm);
    expect(h.loop.status()).to.deep.include({
      state: "alarm",
      alarm: {
        code: "LOG_NOT_REGISTERED",
        message: `log ${h.ledger.logId} is not registered at ${client.address}; production mode never redeploys or re-registers`,
        recoverable: true,
      },
    });
    const waiting = h.loop.waitForAnchored(0, 20_000);
    await client.registerLog(ADMIN, {
      logId: h.ledger.logId,
      anchorer: ANCHORER.address,
      receiptSigner: RECEIPT_SIGNER.address,
      operator: "Test log",
    });
    await waiting;
    expect(h.loop.status().state).to.equal("running");
    expect(h.loop.status().alarm).to.equal(undefined);
    expect(h.loop.status().receiptSignerRegistered).to.equal(true);
    await expectAllAnchored(h.ledger, client);
  });

  for (const chainMode of ["development", "production"] as const) {
    it(`raises a fork alarm and stops when the chain holds a different header (${chainMode})`, async () => {
      const provider = makeProvider(node.url, 31337);
      cleanups.push(async () => provider.destroy());
      const { client } = await RegistryClient.deploy({ provider, admin: ADMIN });
      const h = await openHarness({
        rpcUrl: node.url,
        start: false,
        session: { chainMode, contractAddress: client.address },
      });
      await client.registerLog(ADMIN, {
        logId: h.ledger.logId,
        anchorer: ANCHORER.address,
        receiptSigner: RECEIPT_SIGNER.address,
        operator: "Test log",
      });
      await sealedBatch(h.ledger, 3);
      const real = await h.ledger.getBatch(0);
      // Someone with the anchorer key anchors a forged batch 0 before the loop does.
      const forged = { ...real.header, eventsRoot: hexlify(randomBytes(32)) };
      await client.anchorBatch(ANCHORER.connect(provider), forged);
      const nonce = await provider.getTransactionCount(ANCHORER.address);
      h.loop.start();
      await waitFor("alarm", async () => h.loop.status().state === "alarm", 15_000);
      const status = h.loop.status();
      expect(status.alarm?.code).to.equal("FORK_DETECTED");
      expect(status.alarm?.recoverable).to.equal(false);
      expect(status.alarm?.message).to.include("batch 0");
      expect(h.events.some((e) => e.type === "alarm")).to.equal(true);
      // Stopped: nothing more is sent, and the ledger keeps accepting events.
      await sealedBatch(h.ledger, 2);
      await sleep(300);
      expect(await provider.getTransactionCount(ANCHORER.address)).to.equal(nonce);
      expect((await h.ledger.getBatch(0)).state).to.equal("sealed");
      await h.loop.waitForAnchored(0, 1_000).then(
        () => expect.fail("must not resolve under an alarm"),
        (e: Error) => expect(e.message).to.include("alarm"),
      );
    });
  }

  it("raises a fork alarm when the chain holds batches this ledger never sealed", async () => {
    const provider = makeProvider(node.url, 31337);
    cleanups.push(async () => provider.destroy());
    const { client } = await RegistryClient.deploy({ provider, admin: ADMIN });
    const h = await openHarness({
      rpcUrl: node.url,
      start: false,
      session: { chainMode: "production", contractAddress: client.address, admin: undefined },
    });
    await client.registerLog(ADMIN, {
      logId: h.ledger.logId,
      anchorer: ANCHORER.address,
      receiptSigner: RECEIPT_SIGNER.address,
      operator: "Test log",
    });
    await sealedBatch(h.ledger, 2);
    const real = await h.ledger.getBatch(0);
    const anchorer = ANCHORER.connect(provider);
    await client.anchorBatch(anchorer, real.header);
    await client.anchorBatch(anchorer, {
      ...real.header,
      batchNo: 1,
      firstSeq: 2,
      eventsRoot: hexlify(randomBytes(32)),
    });
    h.loop.start();
    await waitFor("alarm", async () => h.loop.status().state === "alarm", 15_000);
    expect(h.loop.status().alarm).to.include({ code: "FORK_DETECTED", recoverable: false });
    expect(h.loop.status().alarm?.message).to.include("sealed only 1");
  });

  it("anchors two logs into one registry concurrently (own anchorers, and two logs sharing one anchorer and one nonce tracker)", async () => {
    const provider = makeProvider(node.url, 31337);
    cleanups.push(async () => provider.destroy());
    const deployment = new DevDeployment(ADMIN);
    const shared = NonceTracker.forAccount(provider, ANCHORER_SHARED.address);
    const sharedNonceBefore = await provider.getTransactionCount(ANCHORER_SHARED.address);
    const harnesses = await Promise.all(
      [
        { anchorer: ANCHORER },
        { anchorer: ANCHORER_B },
        { anchorer: ANCHORER_SHARED, nonceTracker: shared },
        { anchorer: ANCHORER_SHARED, nonceTracker: shared },
      ].map((session) =>
        openHarness({ rpcUrl: node.url, batchMaxWaitMs: 100, session: { ...session, deployment } }),
      ),
    );
    await Promise.all(
      harnesses.map(async (h) => {
        for (let i = 0; i < 6; i++) {
          await ingest(h.ledger, 7);
          await sleep(60);
        }
        await h.ledger.sealPending();
        await h.loop.waitForAnchored(await h.ledger.lastBatchNo(), 30_000);
      }),
    );
    const contracts = new Set(harnesses.map((h) => h.loop.status().contract));
    expect(contracts.size).to.equal(1);
    const client = await clientFor(node.url, [...contracts][0] as string);
    for (const h of harnesses) await expectAllAnchored(h.ledger, client);
    // The two logs on one account never fought over a nonce: one transaction per batch.
    const sharedBatches =
      (await allBatches(harnesses[2]!.ledger)).length +
      (await allBatches(harnesses[3]!.ledger)).length;
    expect(
      (await provider.getTransactionCount(ANCHORER_SHARED.address)) - sharedNonceBefore,
    ).to.equal(sharedBatches);
  });

  describe("development chain reset (the Hardhat node restarts with an empty chain)", () => {
    let devNode: HardhatNode;
    before(async () => {
      devNode = await HardhatNode.start();
    });
    after(async () => {
      await devNode?.stop();
    });

    it("redeploys, re-registers and re-anchors every batch; old bundles verify against the new anchors; production refuses", async () => {
      const h = await openHarness({ rpcUrl: devNode.url, loop: { retryMaxMs: 300 } });
      const seqs: number[] = [];
      for (let i = 0; i < 4; i++) {
        seqs.push(...(await ingest(h.ledger, 5)));
        await h.ledger.sealPending();
      }
      const last = await h.ledger.lastBatchNo();
      await h.loop.waitForAnchored(last, 20_000);
      const oldBundles = await Promise.all(seqs.map((s) => h.ledger.prove(s)));
      expect(h.events.filter((e) => e.type === "deployed")).to.have.length(1);
      expect(h.events.filter((e) => e.type === "registered")).to.have.length(1);
      expect(h.events.filter((e) => e.type === "chain-reset")).to.have.length(0);
      const oldContract = h.loop.status().contract as string;

      // A production log on the same chain, in its own registry (deployed by another admin).
      const provider = makeProvider(devNode.url, 31337);
      const { client: prodClient } = await RegistryClient.deploy({
        provider,
        admin: new Wallet(HARDHAT_ACCOUNTS[3].privateKey),
      });
      provider.destroy();
      const prod = await openHarness({
        rpcUrl: devNode.url,
        start: false,
        session: {
          chainMode: "production",
          contractAddress: prodClient.address,
          admin: undefined,
          anchorer: ANCHORER_B,
        },
      });
      const prodAdmin = new Wallet(HARDHAT_ACCOUNTS[3].privateKey);
      const prodClientLive = await clientFor(devNode.url, prodClient.address);
      await prodClientLive.registerLog(prodAdmin, {
        logId: prod.ledger.logId,
        anchorer: ANCHORER_B.address,
        receiptSigner: RECEIPT_SIGNER.address,
        operator: "Test log",
      });
      prod.loop.start();
      await sealedBatch(prod.ledger, 2);
      await prod.loop.waitForAnchored(0, 20_000);

      await devNode.restart();
      // Events keep coming while the chain is gone and being rebuilt.
      seqs.push(...(await ingest(h.ledger, 5)));
      const reset = await waitFor(
        "chain reset handled",
        async () => h.events.find((e) => e.type === "chain-reset"),
        30_000,
      );
      expect(reset).to.include({
        batchesReset: last + 1,
        redeployed: true,
        previousContract: oldContract,
      });
      if (reset?.type === "chain-reset") expect(reset.backlog).to.be.greaterThanOrEqual(last + 1);
      await h.ledger.sealPending();
      await h.loop.waitForAnchored(await h.ledger.lastBatchNo(), 30_000);
      const caughtUp = h.events.find((e) => e.type === "caught-up");
      expect(caughtUp).to.include({ reason: "chain-reset" });
      if (caughtUp?.type === "caught-up" && reset?.type === "chain-reset")
        expect(caughtUp.batches).to.equal(reset.backlog);

      const status = h.loop.status();
      expect(status.state).to.equal("running");
      const client = await clientFor(devNode.url, status.contract as string);
      expect(await client.hasCode()).to.equal(true);
      if (status.contract !== oldContract)
        expect(await client.at(oldContract).hasCode()).to.equal(false);
      await expectAllAnchored(h.ledger, client);
      for (const bundle of oldBundles) {
        const batch = bundle.batch;
        expect(batch).to.not.equal(null);
        if (!batch || bundle.leafIndex === null) continue;
        expect(await client.isAnchored(batch)).to.equal(true);
        const leaf = entryLeafHash(bundle.entry as Entry);
        const root = rootFromInclusion(
          bundle.leafIndex,
          batch.count,
          leaf,
          bundle.inclusion.map(fromHex),
        );
        expect(toHex(root)).to.equal(batch.eventsRoot);
        expect(
          await client.verifyInclusion(batch, bundle.leafIndex, toHex(leaf), bundle.inclusion),
        ).to.equal(true);
        const fresh = await h.ledger.prove(bundle.entry.seq);
        expect(fresh.status).to.equal("anchored");
        expect(fresh.batch).to.deep.equal(batch);
      }

      // The production loop refuses to redeploy: alarm, nothing re-anchored.
      await waitFor("production alarm", async () => prod.loop.status().state === "alarm", 30_000);
      expect(prod.loop.status().alarm?.code).to.be.oneOf([
        "CONTRACT_MISSING",
        "LOG_NOT_REGISTERED",
      ]);
      expect((await prod.ledger.getBatch(0)).state).to.equal("anchored");
    });
  });
});

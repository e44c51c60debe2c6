import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { RegistryClient, headerHash } from "../../../services/chain/registry-client.ts";
import { loadConfig } from "../../../services/config.ts";
import {
  AnchorLoop,
  type AnchorLoopEvent,
  type AnchorLoopOptions,
} from "../../../services/ledger/anchor-loop.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
const RECEIPT_SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);
const DEFAULTS = loadConfig({});

let requestCounter = 0;
function event() {
  requestCounter++;
  return makeNativeEvent({ requestId: `req-anchor-loop-${process.pid}-${requestCounter}` });
}

interface Harness {
  ledger: Ledger;
  loop: AnchorLoop;
  events: AnchorLoopEvent[];
  dir: string;
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];

async function openHarness(opts: {
  rpcUrl: string;
  dir?: string;
  batchMaxWaitMs?: number;
  loop?: Partial<AnchorLoopOptions>;
  start?: boolean;
}): Promise<Harness> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), "veritrail-anchor-")));
  const ledger = await Ledger.open({
    location: dir,
    receiptSigner: RECEIPT_SIGNER,
    batchMaxEvents: DEFAULTS.BATCH_MAX_EVENTS,
    batchMaxWaitMs: opts.batchMaxWaitMs ?? 200,
    anchorDeadlineMs: DEFAULTS.ANCHOR_DEADLINE_MS,
    groupCommitMaxEvents: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
  });
  const events: AnchorLoopEvent[] = [];
  const loop = new AnchorLoop({
    ledger,
    rpcUrl: opts.rpcUrl,
    chainMode: "development",
    anchorer: ANCHORER,
    admin: ADMIN,
    confirmations: 1,
    retryMinMs: 50,
    retryMaxMs: 500,
    ...opts.loop,
    onEvent: (e) => events.push(e),
  });
  if (opts.start !== false) loop.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await loop.stop();
    await ledger.close();
  };
  cleanups.push(close);
  return { ledger, loop, events, dir, close };
}

describe("anchor loop (real Hardhat node)", function () {
  this.timeout(120_000);
  let node: HardhatNode;

  before(async () => {
    node = await HardhatNode.start();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c().catch(() => undefined);
  });
  after(async () => {
    await node?.stop();
  });

  it("anchors every accepted event; on-chain commitments match LevelDB; bundles carry the anchor", async () => {
    const h = await openHarness({ rpcUrl: node.url });
    const seqs: number[] = [];
    for (let round = 0; round < 5; round++) {
      const results = await h.ledger.ingest(Array.from({ length: 20 }, () => event()));
      seqs.push(...results.map((r) => r.receipt.seq));
      await new Promise((r) => setTimeout(r, 250));
    }
    await h.ledger.sealPending();
    const last = await h.ledger.lastBatchNo();
    await h.loop.waitForAnchored(last, 30_000);
    const status = h.loop.status();
    expect(status.state).to.equal("running");
    expect(status.lagBatches).to.equal(0);
    const client = await RegistryClient.connect({
      rpcUrl: node.url,
      address: status.contract as string,
    });
    try {
      const head = await client.logHead(h.ledger.logId);
      expect(head.nextBatchNo).to.equal(last + 1);
      expect(head.nextSeq).to.equal(100);
      for (const record of await h.ledger.listBatches({ fromBatchNo: 0, limit: 1000 })) {
        expect(record.state).to.equal("anchored");
        expect(await client.batchCommitment(h.ledger.logId, record.header.batchNo)).to.equal(
          headerHash(record.header),
        );
        expect(record.anchor?.gasUsed).to.be.greaterThan(21_000);
      }
      for (const seq of seqs) {
        const bundle = await h.ledger.prove(seq);
        expect(bundle.status).to.equal("anchored");
        expect(bundle.anchor?.contract).to.equal(status.contract);
        expect(bundle.anchor?.chainId).to.equal(31337);
      }
    } finally {
      client.destroy();
    }
  });
});

import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NativeEvent } from "../../../services/core/event.ts";
import { AnchorLoop } from "../../../services/anchoring/anchor-loop.ts";
import { ChainSession } from "../../../services/anchoring/chain-session.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { SealWorkerLostError } from "../../../services/ledger/subject-index-store.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
const RECEIPT_SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `n` events, each about a patient of its own (one completeness-index leaf each). */
function events(from: number, n: number): NativeEvent[] {
  return Array.from({ length: n }, (_, i) =>
    makeNativeEvent({
      requestId: `req-seal-worker-${from + i}`,
      patient: { system: "urn:oid:2.16.840.1.113883.2.4.6.3", value: `patient-${from + i}` },
    }),
  );
}

/**
 * The sealing worker runs with a V8 heap limit: a worker lost to it (or to a crash) must not stop
 * sealing, or ingest would answer 503 until a restart while acknowledged events wait for their
 * anchor deadline.
 */
describe("ledger: a lost sealing worker is replaced and sealing resumes (real worker, LevelDB, Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  const dirs: string[] = [];
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    node = await HardhatNode.start();
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  });
  after(async () => {
    await node?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function open(opts: { batchMaxEvents: number; workerHeapMb?: number; sliceOps?: number }) {
    const dir = await mkdtemp(path.join(tmpdir(), "veritrail-seal-worker-"));
    dirs.push(dir);
    const errors: unknown[] = [];
    const ledger = await Ledger.open({
      location: dir,
      receiptSigner: RECEIPT_SIGNER,
      batchMaxEvents: opts.batchMaxEvents,
      batchMaxWaitMs: 100,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
      sealWorker: true,
      ...(opts.workerHeapMb !== undefined ? { sealWorkerHeapMb: opts.workerHeapMb } : {}),
      ...(opts.sliceOps !== undefined ? { indexWriteSliceOps: opts.sliceOps } : {}),
      onBackgroundError: (error) => errors.push(error),
    });
    const loop = new AnchorLoop({
      ledger,
      session: new ChainSession({
        rpcUrl: node.url,
        chainMode: "development",
        anchorer: ANCHORER,
        admin: ADMIN,
      }),
      confirmations: 1,
      retryMinMs: 50,
      retryMaxMs: 500,
      pollMs: 50,
    });
    ledger.expectAnchoring();
    loop.start();
    closers.push(async () => {
      await loop.stop();
      await ledger.close();
    });
    return { ledger, loop, errors };
  }

  /** Every acknowledged seq is in a sealed, then anchored, batch (its bundle says so). */
  async function expectAllSealedAndAnchored(ledger: Ledger, loop: AnchorLoop, seqs: number[]) {
    const deadline = Date.now() + 60_000;
    while (ledger.sealedThrough < ledger.nextSeq) {
      if (Date.now() > deadline) throw new Error("sealing did not resume");
      await sleep(50);
    }
    expect(ledger.sealedThrough).to.equal(seqs.length);
    await loop.waitForAnchored(await ledger.lastBatchNo(), 60_000);
    for (const seq of [seqs[0]!, seqs[Math.floor(seqs.length / 2)]!, seqs.at(-1)!]) {
      const bundle = await ledger.prove(seq);
      expect(bundle.status, `seq ${seq}`).to.equal("anchored");
    }
    for (const batch of await ledger.listBatches({ fromBatchNo: 0, limit: 1_000 }))
      expect(batch.state, `batch ${batch.header.batchNo}`).to.equal("anchored");
  }

  it("seals every acknowledged event after the worker is killed in the middle of batches", async () => {
    // Small write slices: a batch's update is written in many slices, so kills land inside
    // them as well as inside prepares.
    const { ledger, loop, errors } = await open({ batchMaxEvents: 1_000, sliceOps: 256 });
    const seqs: number[] = [];
    for (let round = 0; round < 4; round++) {
      const results = await ledger.ingest(events(round * 1_000, 1_000));
      seqs.push(...results.map((r) => r.receipt.seq));
      // Kill the worker while the batch just completed is being sealed.
      for (let i = 0; i < 100 && !errors.some((e) => e instanceof SealWorkerLostError); i++) {
        await ledger.subjectIndex.terminateWorker();
        await sleep(10);
      }
    }
    const lost = errors.filter((e) => e instanceof SealWorkerLostError);
    expect(lost.length, "seals cut short by the kills").to.be.greaterThan(0);
    expect(errors.length, String(errors.find((e) => !(e instanceof SealWorkerLostError)))).to.equal(
      lost.length,
    );
    await expectAllSealedAndAnchored(ledger, loop, seqs);
    const status = ledger.subjectIndex.workerStatus!;
    expect(status.restarts).to.be.greaterThan(0);
    expect(status.localBatches, "every batch sealed by a worker").to.equal(0);
  });

  it("seals a batch too large for the worker's heap limit on the request thread, then goes back to a worker", async () => {
    // One batch of 10,000 subjects needs ≈ 30 MB of worker heap; a worker starts in ≈ 20 MB.
    const { ledger, loop, errors } = await open({ batchMaxEvents: 10_000, workerHeapMb: 24 });
    const results = await ledger.ingest(events(0, 10_000));
    const small = await ledger.ingest(events(10_000, 10));
    const seqs = [...results, ...small].map((r) => r.receipt.seq);
    await expectAllSealedAndAnchored(ledger, loop, seqs);
    const lost = errors.filter((e) => e instanceof SealWorkerLostError);
    expect(lost.length, "the worker ran out of heap on the large batch, twice").to.be.at.least(2);
    for (const e of lost) expect((e as Error).message).to.contain("ERR_WORKER_OUT_OF_MEMORY");
    expect(errors.length).to.equal(lost.length);
    const status = ledger.subjectIndex.workerStatus!;
    expect(status.localBatches, "the large batch").to.be.at.least(1);
    // The batch after it went to a new worker.
    expect(status.restarts).to.be.at.least(2);
    expect(await ledger.lastBatchNo()).to.equal(1);
  });
});

import { Wallet, randomBytes as ethersRandom } from "ethers";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { EmbeddedDevChain } from "../services/chain/dev-node.ts";
import { DevDeployment } from "../services/chain/dev-deployment.ts";
import { RegistryClient, makeProvider } from "../services/chain/registry-client.ts";
import type { BatchHeader } from "../services/core/batch-header.ts";
import { toHex } from "../services/core/hex.ts";
import { AnchorLoop } from "../services/anchoring/anchor-loop.ts";
import { ChainSession } from "../services/anchoring/chain-session.ts";
import { HARDHAT_DEV_ACCOUNTS } from "../services/ledger/keystore.ts";
import { Ledger } from "../services/ledger/ledger.ts";
import { benchEvent } from "./ledger-bench.ts";
import { type BenchRow, percentile } from "./table.ts";

const admin = new Wallet(HARDHAT_DEV_ACCOUNTS.admin.privateKey);
const anchorer = new Wallet(HARDHAT_DEV_ACCOUNTS.anchorer.privateKey);
const receiptSigner = new Wallet(HARDHAT_DEV_ACCOUNTS.receiptSigner.privateKey);

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

async function withChain<T>(fn: (chain: EmbeddedDevChain) => Promise<T>): Promise<T> {
  const chain = await EmbeddedDevChain.start({ port: await freeLoopbackPort() });
  try {
    return await fn(chain);
  } finally {
    await chain.stop();
  }
}

function root(): string {
  return toHex(ethersRandom(32));
}

/**
 * Gas of `anchorBatch` on a real Hardhat node for batches of several sizes, next to the
 * one-transaction-per-event design (N anchors of count 1, measured per transaction).
 */
export async function benchGas(counts: number[]): Promise<BenchRow[]> {
  return withChain(async (chain) => {
    const provider = makeProvider(chain.url, 31337);
    const { client } = await RegistryClient.deploy({ provider, admin });
    const logId = root();
    await client.registerLog(admin, {
      logId,
      anchorer: anchorer.address,
      receiptSigner: receiptSigner.address,
      operator: "Benchmark log",
    });
    let batchNo = 0;
    let firstSeq = 0;
    const anchor = async (count: number) => {
      const header: BatchHeader = {
        logId,
        batchNo,
        firstSeq,
        count,
        eventsRoot: root(),
        indexRoot: root(),
      };
      const mined = await client.anchorBatch(anchorer, header);
      batchNo++;
      firstSeq += count;
      return mined.gasUsed;
    };
    const rows: BenchRow[] = [];
    const first = await anchor(counts[0] ?? 1);
    rows.push({
      name: "gas per anchor, a log's first batch",
      value: first,
      unit: "gas",
      target: { op: "<=", value: 60_000 },
    });
    // One transaction per event: 100 events as 100 count-1 anchors, per event.
    let perEventTotal = 0;
    const perEventN = 100;
    for (let i = 0; i < perEventN; i++) perEventTotal += await anchor(1);
    const perEventTx = perEventTotal / perEventN;
    for (const count of counts) {
      const gas = await anchor(count);
      rows.push({
        name: `gas per anchor, batch of ${count.toLocaleString("en")} events`,
        value: gas,
        unit: "gas",
        baselineName: `one tx per event (${count.toLocaleString("en")} × ${Math.round(perEventTx).toLocaleString("en")})`,
        baseline: perEventTx * count,
        target: { op: "<=", value: 60_000 },
      });
    }
    provider.destroy();
    return rows;
  });
}

/** Acknowledgement → confirmed anchor with the default settings (BATCH_MAX_WAIT_MS 2 s, 1 confirmation). */
export async function benchAckToAnchor(samples: number): Promise<BenchRow[]> {
  return withChain(async (chain) => {
    const dir = await mkdtemp(path.join(tmpdir(), "veritrail-bench-anchor-"));
    const ledger = await Ledger.open({
      location: dir,
      receiptSigner,
      batchMaxEvents: 10_000,
      batchMaxWaitMs: 2_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
    });
    const loop = new AnchorLoop({
      ledger,
      session: new ChainSession({
        rpcUrl: chain.url,
        chainMode: "development",
        anchorer,
        admin,
        deployment: new DevDeployment(admin),
      }),
      confirmations: 1,
    });
    loop.start();
    const latencies: number[] = [];
    try {
      for (let i = 0; i < samples; i++) {
        const [result] = await ledger.ingest([benchEvent(i, 100)]);
        const acked = performance.now();
        const seq = result!.receipt.seq;
        const deadline = Date.now() + 60_000;
        for (;;) {
          const record = await ledger.batchForSeq(seq);
          if (record && record.state === "anchored") break;
          if (Date.now() > deadline) throw new Error(`seq ${seq} not anchored within 60 s`);
          await new Promise((r) => setTimeout(r, 20));
        }
        latencies.push((performance.now() - acked) / 1000);
      }
    } finally {
      await loop.stop();
      await ledger.close();
      await rm(dir, { recursive: true, force: true });
    }
    return [
      {
        name: "acknowledgement → confirmed anchor, p50 (defaults, dev chain)",
        value: percentile(latencies, 50),
        unit: "s",
      },
      {
        name: "acknowledgement → confirmed anchor, max (defaults, dev chain)",
        value: percentile(latencies, 100),
        unit: "s",
        target: { op: "<=", value: 10 },
      },
    ];
  });
}

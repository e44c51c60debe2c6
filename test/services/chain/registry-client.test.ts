import { expect } from "chai";
import fc from "fast-check";
import { type JsonRpcProvider, Wallet, ZeroHash, hexlify, randomBytes } from "ethers";
import type { BatchHeader } from "../../../services/core/batch-header.ts";
import {
  NonceTracker,
  RegistryClient,
  RegistryError,
  headerHash,
  makeProvider,
  probeChainId,
} from "../../../services/chain/registry-client.ts";
import { HARDHAT_ACCOUNTS, HardhatNode, TcpProxy, freePort } from "../../support/hardhat-node.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
const SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);
const STRANGER = new Wallet(HARDHAT_ACCOUNTS[5].privateKey);

const random32 = (): string => hexlify(randomBytes(32));

function header(fields: Partial<BatchHeader> & { logId: string }): BatchHeader {
  return {
    batchNo: 0,
    firstSeq: 0,
    count: 1,
    eventsRoot: random32(),
    indexRoot: ZeroHash,
    ...fields,
  };
}

async function expectRegistryError(
  promise: Promise<unknown>,
  code: string,
  args: Record<string, unknown> = {},
): Promise<RegistryError> {
  try {
    await promise;
  } catch (error) {
    expect(error, String(error)).to.be.instanceOf(RegistryError);
    const e = error as RegistryError;
    expect(e.code, e.message).to.equal(code);
    expect(e.args).to.include(args);
    return e;
  }
  expect.fail(`expected RegistryError ${code}`);
}

function processGroupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("registry client (real Hardhat node)", function () {
  this.timeout(90_000);
  let node: HardhatNode;
  let provider: JsonRpcProvider;
  let client: RegistryClient;
  let anchorer: Wallet;

  before(async () => {
    node = await HardhatNode.start();
    provider = makeProvider(node.url, 31337);
    client = (await RegistryClient.deploy({ provider, admin: ADMIN })).client;
    anchorer = ANCHORER.connect(provider);
  });
  after(async () => {
    provider?.destroy();
    await node?.stop();
  });

  async function newLog(): Promise<string> {
    const logId = random32();
    await client.registerLog(ADMIN, {
      logId,
      anchorer: ANCHORER.address,
      receiptSigner: SIGNER.address,
      operator: "Test log",
    });
    return logId;
  }

  it("connects with a pinned network: no eth_chainId per request", async () => {
    const connected = await RegistryClient.connect({ rpcUrl: node.url, address: client.address });
    const methods: string[] = [];
    await connected.provider.on(
      "debug",
      (e: { action: string; payload?: { method: string } | Array<{ method: string }> }) => {
        if (e.action !== "sendRpcPayload" || !e.payload) return;
        for (const p of Array.isArray(e.payload) ? e.payload : [e.payload]) methods.push(p.method);
      },
    );
    expect(connected.chainId).to.equal(31337);
    for (let i = 0; i < 5; i++) await connected.logHead(random32());
    await connected.blockNumber();
    expect(methods.filter((m) => m === "eth_call")).to.have.length(5);
    expect(methods).to.not.include("eth_chainId");
    connected.destroy();
  });

  it("computes headerHash locally exactly as the contract does (random headers, field limits)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          logId: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hexlify(b)),
          batchNo: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          firstSeq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          count: fc.integer({ min: 0, max: 0xffffffff }),
          eventsRoot: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hexlify(b)),
          indexRoot: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hexlify(b)),
        }),
        async (h) => {
          expect(headerHash(h)).to.equal(await client.headerHashOnChain(h));
        },
      ),
      { numRuns: 25 },
    );
    const h = header({ logId: random32() });
    expect(headerHash({ ...h, count: 2 })).to.not.equal(headerHash(h));
  });

  it("registers a log idempotently and reads it back", async () => {
    const logId = random32();
    const args = {
      logId,
      anchorer: ANCHORER.address,
      receiptSigner: SIGNER.address,
      operator: "St Mary General Hospital",
    };
    const first = await client.registerLog(ADMIN, args);
    expect(first.created).to.equal(true);
    expect(first.txHash).to.match(/^0x[0-9a-f]{64}$/);
    const nonce = await provider.getTransactionCount(ADMIN.address);
    const again = await client.registerLog(ADMIN, args);
    expect(again.created).to.equal(false);
    expect(await provider.getTransactionCount(ADMIN.address), "no second transaction").to.equal(
      nonce,
    );
    expect(again.log).to.include({
      registered: true,
      anchorer: ANCHORER.address,
      receiptSigner: SIGNER.address,
      nextBatchNo: 0,
      nextSeq: 0,
    });
    const period = await client.signerPeriod(logId, SIGNER.address);
    expect(period).to.deep.equal({ validFrom: again.log.registeredAt, validUntil: 0 });
    expect(await client.signerPeriod(logId, STRANGER.address)).to.deep.equal({
      validFrom: 0,
      validUntil: 0,
    });
    expect((await client.getLog(random32())).registered).to.equal(false);
  });

  it("lists the registry's logs with their operator names and renames one", async () => {
    const logId = await newLog();
    const logs = await client.listLogs();
    expect(logs.at(-1)).to.deep.equal({ logId, operator: "Test log" });
    expect(new Set(logs.map((l) => l.logId)).size, "each log once").to.equal(logs.length);
    await client.renameLogOperator(ADMIN, logId, "Northside Lab");
    expect(await client.logOperator(logId)).to.equal("Northside Lab");
    const error = await client.renameLogOperator(ADMIN, logId, "").catch((e: unknown) => e);
    expect(error).to.be.instanceOf(RegistryError);
    expect((error as RegistryError).code).to.equal("INVALID_OPERATOR_NAME");
  });

  it("anchors a batch and returns tx hash, block number, block hash and gas after the confirmations", async () => {
    const logId = await newLog();
    const h = header({ logId, count: 10 });
    const mined = await client.anchorBatch(anchorer, h);
    expect(mined.status).to.equal("success");
    expect(mined.txHash).to.match(/^0x[0-9a-f]{64}$/);
    expect(mined.blockHash).to.equal(await client.blockHashAt(mined.blockNumber));
    expect(mined.gasUsed).to.be.within(21_000, 100_000);
    expect(await client.batchCommitment(logId, 0)).to.equal(headerHash(h));
    expect(await client.isAnchored(h)).to.equal(true);
    expect(await client.isAnchored({ ...h, count: 11 })).to.equal(false);
    expect(await client.logHead(logId)).to.deep.equal({ nextBatchNo: 1, nextSeq: 10 });
    expect(await client.findBatchAnchored(logId, 0)).to.deep.equal({
      txHash: mined.txHash,
      blockNumber: mined.blockNumber,
      blockHash: mined.blockHash,
    });
    expect(await client.findBatchAnchored(logId, 1)).to.equal(undefined);

    // CONFIRMATIONS = 3: resolves only once two more blocks are on top.
    const h1 = header({ logId, batchNo: 1, firstSeq: 10, count: 5 });
    const sent = await client.sendAnchor(anchorer, h1);
    const early = await client.waitMined(sent.txHash, { confirmations: 3, timeoutMs: 300 });
    expect(early, "not confirmed without new blocks").to.equal(null);
    const waiting = client.waitMined(sent.txHash, {
      confirmations: 3,
      timeoutMs: 10_000,
      pollMs: 20,
    });
    await node.mine(2);
    const confirmed = await waiting;
    expect(confirmed?.confirmations).to.equal(3);
  });

  it("decodes the registry's custom errors into typed errors with their arguments", async () => {
    const logId = await newLog();
    await client.anchorBatch(anchorer, header({ logId, count: 4 }));
    await expectRegistryError(
      client.preflightAnchor(ANCHORER.address, header({ logId, batchNo: 0 })),
      "UNEXPECTED_BATCH",
      {
        errorName: "VeritrailUnexpectedBatch",
        expected: 1,
        got: 0,
      },
    );
    await expectRegistryError(
      client.preflightAnchor(ANCHORER.address, header({ logId, batchNo: 1, firstSeq: 3 })),
      "UNEXPECTED_FIRST_SEQ",
      { expected: 4, got: 3 },
    );
    await expectRegistryError(
      client.preflightAnchor(
        ANCHORER.address,
        header({ logId, batchNo: 1, firstSeq: 4, count: 0 }),
      ),
      "EMPTY_BATCH",
      { batchNo: 1 },
    );
    await expectRegistryError(
      client.preflightAnchor(
        ANCHORER.address,
        header({ logId, batchNo: 1, firstSeq: 4, eventsRoot: ZeroHash }),
      ),
      "ZERO_EVENTS_ROOT",
    );
    await expectRegistryError(
      client.preflightAnchor(ANCHORER.address, header({ logId: random32() })),
      "UNKNOWN_LOG",
    );
    await expectRegistryError(
      client.preflightAnchor(STRANGER.address, header({ logId, batchNo: 1, firstSeq: 4 })),
      "UNAUTHORIZED_ANCHORER",
      { caller: STRANGER.address },
    );
    await expectRegistryError(
      client.rotateReceiptSigner(ADMIN, logId, SIGNER.address),
      "INVALID_RECEIPT_SIGNER",
    );
    await expectRegistryError(client.pause(STRANGER), "UNAUTHORIZED_ACCOUNT", {
      account: STRANGER.address,
    });
    await client.pause(ADMIN);
    try {
      await expectRegistryError(
        client.anchorBatch(anchorer, header({ logId, batchNo: 1, firstSeq: 4 })),
        "PAUSED",
      );
    } finally {
      await client.unpause(ADMIN);
    }
    await expectRegistryError(
      client.at("0x000000000000000000000000000000000000dEaD").logHead(logId),
      "NO_CONTRACT",
    );
  });

  it("pipelines anchors with consecutive nonces from the tracker; all mine in one block", async () => {
    const logId = await newLog();
    const tracker = NonceTracker.forAccount(provider, ANCHORER.address);
    const start = await provider.getTransactionCount(ANCHORER.address, "pending");
    await node.setAutomine(false);
    let sent;
    try {
      sent = [];
      for (let i = 0; i < 5; i++) {
        sent.push(
          await client.sendAnchor(
            anchorer,
            header({ logId, batchNo: i, firstSeq: i * 2, count: 2 }),
            { nonceTracker: tracker },
          ),
        );
      }
      expect(sent.map((s) => s.nonce)).to.deep.equal([0, 1, 2, 3, 4].map((i) => start + i));
      expect(tracker.peek).to.equal(start + 5);
      await node.mine();
    } finally {
      await node.setAutomine(true);
    }
    const mined = await Promise.all(sent.map((s) => client.minedTransaction(s.txHash)));
    expect(new Set(mined.map((m) => m?.blockNumber)).size).to.equal(1);
    expect(mined.every((m) => m?.status === "success")).to.equal(true);
    expect(await client.logHead(logId)).to.deep.equal({ nextBatchNo: 5, nextSeq: 10 });
  });

  it("serialises one tracker shared by concurrent senders; a used nonce is a NONCE_CONFLICT and re-seeds", async () => {
    const logA = await newLog();
    const logB = await newLog();
    const tracker = NonceTracker.forAccount(provider, ANCHORER.address);
    const other = await RegistryClient.connect({ rpcUrl: node.url, address: client.address });
    try {
      const results = await Promise.all([
        ...[0, 1, 2].map((i) =>
          client.sendAnchor(anchorer, header({ logId: logA, batchNo: i, firstSeq: i }), {
            nonceTracker: tracker,
          }),
        ),
        ...[0, 1, 2].map((i) =>
          other.sendAnchor(
            ANCHORER.connect(other.provider),
            header({ logId: logB, batchNo: i, firstSeq: i }),
            { nonceTracker: tracker },
          ),
        ),
      ]);
      expect(new Set(results.map((r) => r.nonce)).size).to.equal(6);
      const used = results[0]?.nonce ?? 0;
      await expectRegistryError(
        client.sendAnchor(anchorer, header({ logId: logA, batchNo: 3, firstSeq: 3 }), {
          nonce: used,
        }),
        "NONCE_CONFLICT",
      );
      // A failed broadcast re-seeds the tracker from the node.
      tracker.reset();
      const next = await client.sendAnchor(
        anchorer,
        header({ logId: logA, batchNo: 3, firstSeq: 3 }),
        { nonceTracker: tracker },
      );
      expect(next.nonce).to.equal(Math.max(...results.map((r) => r.nonce)) + 1);
      expect(await client.logHead(logA)).to.deep.equal({ nextBatchNo: 4, nextSeq: 4 });
      expect(await client.logHead(logB)).to.deep.equal({ nextBatchNo: 3, nextSeq: 3 });
    } finally {
      other.destroy();
    }
  });

  it("a broadcast whose connection breaks is 'uncertain' (hash and raw kept), and can be rebroadcast verbatim", async () => {
    const logId = await newLog();
    const proxy = await TcpProxy.start({ host: node.host, port: node.port });
    const viaProxy = await RegistryClient.connect({
      rpcUrl: proxy.url,
      address: client.address,
      requestTimeoutMs: 2_000,
    });
    try {
      const nonce = await provider.getTransactionCount(ANCHORER.address, "pending");
      const fees = await client.feeData();
      proxy.cut();
      const sent = await viaProxy.sendAnchor(anchorer, header({ logId }), { nonce, fees });
      expect(sent.uncertain).to.equal(true);
      expect(sent.nonce).to.equal(nonce);
      expect(await client.hasTransaction(sent.txHash), "the node never got it").to.equal(false);
      proxy.restore();
      expect(await viaProxy.rebroadcast(sent.raw)).to.equal("accepted");
      expect(await viaProxy.rebroadcast(sent.raw), "already known is fine").to.equal("accepted");
      const mined = await client.waitMined(sent.txHash, { confirmations: 1, timeoutMs: 5_000 });
      expect(mined?.status).to.equal("success");
      expect(await client.logHead(logId)).to.deep.equal({ nextBatchNo: 1, nextSeq: 1 });
    } finally {
      viaProxy.destroy();
      await proxy.close();
    }
  });

  it("reports an unreachable RPC as RPC_UNAVAILABLE", async () => {
    const port = await freePort();
    await expectRegistryError(probeChainId(`http://127.0.0.1:${port}`, 2_000), "RPC_UNAVAILABLE");
  });

  it("test helper: restart gives a fresh chain on the same port; stop leaves no process behind", async () => {
    const extra = await HardhatNode.start();
    const pid = extra.pid as number;
    try {
      await extra.mine(3);
      expect(await extra.blockNumber()).to.equal(3);
      const port = extra.port;
      await extra.restart();
      expect(extra.port).to.equal(port);
      expect(await extra.blockNumber()).to.equal(0);
      expect(processGroupAlive(pid), "the first node's process group is gone").to.equal(false);
    } finally {
      await extra.stop();
    }
    expect(extra.isRunning).to.equal(false);
    expect(processGroupAlive(extra.pid ?? pid)).to.equal(false);
  });
});

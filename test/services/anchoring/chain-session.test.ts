import { expect } from "chai";
import { Wallet } from "ethers";
import { AlarmRaised } from "../../../services/anchoring/alarms.ts";
import { ChainSession } from "../../../services/anchoring/chain-session.ts";
import { DevDeployment } from "../../../services/chain/dev-deployment.ts";
import { RegistryError } from "../../../services/chain/registry-client.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
const SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);
const LOG = { logId: "0x" + "5e".repeat(32), signerAddress: SIGNER.address };

describe("chain session (real Hardhat node)", function () {
  this.timeout(60_000);
  let node: HardhatNode;
  const sessions: ChainSession[] = [];
  const open = (opts: Partial<ConstructorParameters<typeof ChainSession>[0]>) => {
    const session = new ChainSession({
      rpcUrl: node.url,
      chainMode: "development",
      anchorer: ANCHORER,
      ...opts,
    });
    sessions.push(session);
    return session;
  };
  before(async () => {
    node = await HardhatNode.start();
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
  });
  after(async () => {
    await node?.stop();
  });

  it("production needs the registry's address; it is never deployed", () => {
    expect(
      () => new ChainSession({ rpcUrl: node.url, chainMode: "production", anchorer: ANCHORER }),
    ).to.throw(/CONTRACT_ADDRESS is required/);
  });

  it("a first start on a dev chain deploys the registry once, reports it, and keeps one client", async () => {
    const changed: string[] = [];
    const session = open({ admin: ADMIN, onContractChanged: (a) => changed.push(a) });
    expect(session.client).to.equal(undefined);
    const first = await session.connect();
    expect(first.deployed).to.be.a("string");
    expect(first.client.address).to.equal(first.deployed);
    expect(changed).to.deep.equal([first.deployed]);
    expect(await first.client.hasCode()).to.equal(true);
    expect(session.tracker, "a nonce tracker for the anchorer").to.not.equal(undefined);
    const again = await session.connect();
    expect(again.client).to.equal(first.client);
    expect(again.deployed).to.equal(undefined);
    expect(await session.readLog(first.client, LOG.logId)).to.deep.include({ registered: false });
  });

  it("no registry and no admin key: the NO_ADMIN_KEY alarm", async () => {
    const session = open({});
    const error = await session.connect().catch((e: unknown) => e);
    expect(error).to.be.instanceOf(AlarmRaised);
    expect((error as AlarmRaised).alarm).to.include({ code: "NO_ADMIN_KEY", recoverable: false });
  });

  it("no code at the address: readLog says so (undefined) instead of throwing", async () => {
    const session = open({ contractAddress: Wallet.createRandom().address });
    const { client, deployed } = await session.connect();
    expect(deployed).to.equal(undefined);
    expect(await session.readLog(client, LOG.logId)).to.equal(undefined);
  });

  it("registers the log again on a dev chain, deploying the registry first if its code is gone", async () => {
    const deployment = new DevDeployment(ADMIN);
    const changed: string[] = [];
    const session = open({ admin: ADMIN, deployment, onContractChanged: (a) => changed.push(a) });
    const { client } = await session.connect();
    const registered = await session.registerAgain("LOG_NOT_REGISTERED", "test", LOG);
    expect(registered).to.deep.equal({
      address: client.address,
      previousContract: client.address,
      deployed: false,
    });
    expect(await session.readLog(client, LOG.logId)).to.deep.include({
      registered: true,
      anchorer: ANCHORER.address,
      receiptSigner: SIGNER.address,
    });
    const gone = open({
      admin: ADMIN,
      deployment: new DevDeployment(ADMIN, Wallet.createRandom().address),
      onContractChanged: (a) => changed.push(a),
    });
    const before = await gone.connect();
    const moved = await gone.registerAgain("CONTRACT_MISSING", "no code", LOG);
    expect(moved?.deployed).to.equal(true);
    expect(moved?.previousContract).to.equal(before.client.address);
    expect(moved?.address).to.not.equal(before.client.address);
    expect(gone.client?.address, "the session now uses the new registry").to.equal(moved?.address);
    expect(changed.at(-1)).to.equal(moved?.address);
    expect(await gone.readLog(gone.client!, LOG.logId)).to.deep.include({ registered: true });
  });

  it("production never deploys or registers: the alarm the caller named", async () => {
    const session = new ChainSession({
      rpcUrl: node.url,
      chainMode: "production",
      contractAddress: Wallet.createRandom().address,
      anchorer: ANCHORER,
      admin: ADMIN,
    });
    sessions.push(session);
    await session.connect();
    const error = await session.registerAgain("CONTRACT_MISSING", "gone", LOG).catch((e) => e);
    expect((error as AlarmRaised).alarm).to.include({
      code: "CONTRACT_MISSING",
      recoverable: true,
    });
    expect((error as AlarmRaised).alarm.message).to.match(/production mode never redeploys/);
  });

  it("error summaries never carry the RPC URL's credentials", () => {
    const secret = "https://user:s3cret@rpc.example/v3/key-123";
    const session = new ChainSession({
      rpcUrl: secret,
      chainMode: "production",
      contractAddress: ADMIN.address,
      anchorer: ANCHORER,
    });
    const text = session.describeError(new Error(`cannot reach ${secret}: timeout`));
    expect(text).to.not.include("s3cret");
    expect(text).to.not.include("key-123");
    expect(text).to.include("https://rpc.example");
    expect(session.describeError(new RegistryError("PAUSED", "paused"))).to.equal("PAUSED: paused");
  });
});

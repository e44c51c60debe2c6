import { expect } from "chai";
import { network } from "hardhat";
import VeritrailLogModule from "../../ignition/modules/VeritrailLog.ts";
import VeritrailRegistryModule from "../../ignition/modules/VeritrailRegistry.ts";
import {
  RegisterLogError,
  registerLog,
  registerLogTransaction,
} from "../../scripts/register-log.ts";

const { ethers, ignition, networkHelpers } = await network.create();

const DEFAULT_ADMIN_ROLE = ethers.ZeroHash;
const LOG_ID = ethers.id("veritrail/test/deployment");
const OPERATOR = "St Mary General Hospital";

async function deployedFixture() {
  const signers = await ethers.getSigners();
  const at = (i: number) => {
    const s = signers[i];
    if (!s) throw new Error(`hardhat network has no signer #${i}`);
    return s;
  };
  const { registry } = await ignition.deploy(VeritrailRegistryModule);
  const address = await registry.getAddress();
  return {
    deployer: at(0),
    anchorer: at(1),
    receiptSigner: at(2),
    outsider: at(3),
    registry: await ethers.getContractAt("VeritrailRegistry", address, at(0)),
  };
}

async function expectRegisterLogError(
  promise: Promise<unknown>,
  code: RegisterLogError["code"],
  message: RegExp,
) {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).to.be.instanceOf(RegisterLogError);
  expect((err as RegisterLogError).code).to.equal(code);
  expect((err as RegisterLogError).message).to.match(message);
}

describe("Ignition module VeritrailRegistryModule", function () {
  it("deploys with the deployer as admin by default", async function () {
    const { registry, deployer, outsider } = await networkHelpers.loadFixture(deployedFixture);
    expect(await registry.hasRole(DEFAULT_ADMIN_ROLE, deployer.address)).to.equal(true);
    expect(await registry.hasRole(DEFAULT_ADMIN_ROLE, outsider.address)).to.equal(false);
    expect(await registry.paused()).to.equal(false);
  });

  it("makes the `admin` parameter the only admin", async function () {
    const [deployer, , , , admin] = await ethers.getSigners();
    const deployed = await ignition.deploy(VeritrailRegistryModule, {
      parameters: { VeritrailRegistryModule: { admin: admin!.address } },
    });
    const registry = await ethers.getContractAt(
      "VeritrailRegistry",
      await deployed.registry.getAddress(),
    );
    expect(await registry.hasRole(DEFAULT_ADMIN_ROLE, admin!.address)).to.equal(true);
    expect(await registry.hasRole(DEFAULT_ADMIN_ROLE, deployer!.address)).to.equal(false);
  });

  it("delays admin transfers by 3 days unless `adminTransferDelay` says otherwise", async function () {
    const { registry } = await networkHelpers.loadFixture(deployedFixture);
    expect(await registry.defaultAdminDelay()).to.equal(3n * 24n * 3600n);
    const deployed = await ignition.deploy(VeritrailRegistryModule, {
      parameters: { VeritrailRegistryModule: { adminTransferDelay: 7 * 24 * 3600 } },
    });
    const slower = await ethers.getContractAt(
      "VeritrailRegistry",
      await deployed.registry.getAddress(),
    );
    expect(await slower.defaultAdminDelay()).to.equal(7n * 24n * 3600n);
  });
});

describe("Ignition module VeritrailLogModule", function () {
  it("deploys the registry and registers one log with its operator name", async function () {
    const [, anchorer, receiptSigner] = await ethers.getSigners();
    const deployed = await ignition.deploy(VeritrailLogModule, {
      parameters: {
        VeritrailLogModule: {
          logId: LOG_ID,
          anchorer: anchorer!.address,
          receiptSigner: receiptSigner!.address,
          operator: OPERATOR,
        },
      },
    });
    const registry = await ethers.getContractAt(
      "VeritrailRegistry",
      await deployed.registry.getAddress(),
    );
    expect(await registry.logCount()).to.equal(1n);
    expect(await registry.logIdAt(0n)).to.equal(LOG_ID);
    expect(await registry.logOperator(LOG_ID)).to.equal(OPERATOR);
    expect((await registry.getLog(LOG_ID)).anchorer).to.equal(anchorer!.address);
  });
});

describe("scripts/register-log registerLog()", function () {
  it("records the operator name; a different name is refused unless renaming", async function () {
    const { registry, anchorer, receiptSigner } = await networkHelpers.loadFixture(deployedFixture);
    const args = {
      registry,
      logId: LOG_ID,
      anchorer: anchorer.address,
      receiptSigner: receiptSigner.address,
    };
    await registerLog({ ...args, operator: `  ${OPERATOR} ` });
    expect(await registry.logOperator(LOG_ID)).to.equal(OPERATOR);
    await expectRegisterLogError(
      registerLog({ ...args, operator: "St Mary Hospital Trust" }),
      "REGISTERED_WITH_OTHER_OPERATOR",
      /registered for operator "St Mary General Hospital".*--rename/,
    );
    const renamed = await registerLog({
      ...args,
      operator: "St Mary Hospital Trust",
      rename: true,
    });
    expect(renamed.status).to.equal("renamed");
    if (renamed.status === "renamed") expect(renamed.previousOperator).to.equal(OPERATOR);
    expect(await registry.logOperator(LOG_ID)).to.equal("St Mary Hospital Trust");
    await expectRegisterLogError(
      registerLog({ ...args, operator: " " }),
      "INVALID_ARGUMENT",
      /operator must be 1 to 128 bytes/,
    );
  });

  it("registers a new log and returns its transaction", async function () {
    const { registry, anchorer, receiptSigner } = await networkHelpers.loadFixture(deployedFixture);
    const result = await registerLog({
      registry,
      logId: LOG_ID,
      anchorer: anchorer.address,
      receiptSigner: receiptSigner.address,
      operator: OPERATOR,
    });
    expect(result.status).to.equal("registered");
    if (result.status !== "registered") return;
    const receipt = await ethers.provider.getTransactionReceipt(result.txHash);
    expect(receipt?.blockNumber).to.equal(result.blockNumber);
    const log = await registry.getLog(LOG_ID);
    expect([log.anchorer, log.receiptSigner]).to.deep.equal([
      anchorer.address,
      receiptSigner.address,
    ]);
  });

  it("is a no-op when the log is already registered with the same addresses (any case)", async function () {
    const { registry, anchorer, receiptSigner } = await networkHelpers.loadFixture(deployedFixture);
    await registry.registerLog(LOG_ID, anchorer.address, receiptSigner.address, OPERATOR);
    const registeredAt = (await registry.getLog(LOG_ID)).registeredAt;
    const blockBefore = await ethers.provider.getBlockNumber();
    const result = await registerLog({
      registry,
      logId: LOG_ID,
      anchorer: anchorer.address.toLowerCase(),
      receiptSigner: receiptSigner.address,
      operator: OPERATOR,
    });
    expect(result).to.deep.equal({ status: "already-registered", registeredAt });
    expect(await ethers.provider.getBlockNumber()).to.equal(blockBefore); // no transaction
  });

  it("fails clearly when the log is registered with other addresses", async function () {
    const { registry, anchorer, receiptSigner, outsider } =
      await networkHelpers.loadFixture(deployedFixture);
    await registry.registerLog(LOG_ID, anchorer.address, receiptSigner.address, OPERATOR);
    await expectRegisterLogError(
      registerLog({
        registry,
        logId: LOG_ID,
        anchorer: anchorer.address,
        receiptSigner: outsider.address,
        operator: OPERATOR,
      }),
      "REGISTERED_WITH_OTHER_ADDRESSES",
      /already registered with anchorer 0x.*rotateAnchorer \/ rotateReceiptSigner/,
    );
  });

  it("prints, without signing, the transaction a multisig admin must send, and nothing once done", async function () {
    const [deployer, anchorer, receiptSigner, , multisig] = await ethers.getSigners();
    // A registry whose admin is an account this script holds no key for.
    const deployed = await ignition.deploy(VeritrailRegistryModule, {
      parameters: { VeritrailRegistryModule: { admin: multisig!.address } },
    });
    const address = await deployed.registry.getAddress();
    const readOnly = await ethers.getContractAt("VeritrailRegistry", address, deployer!);
    const params = {
      registry: readOnly,
      logId: LOG_ID,
      anchorer: anchorer!.address,
      receiptSigner: receiptSigner!.address,
      operator: OPERATOR,
    };
    const blockBefore = await ethers.provider.getBlockNumber();
    const planned = await registerLogTransaction(params);
    expect(await ethers.provider.getBlockNumber()).to.equal(blockBefore); // nothing sent
    if ("status" in planned) throw new Error("expected a transaction to propose");
    expect(planned).to.include({ to: address, value: "0", chainId: 31337 });
    expect(planned.description).to.match(/^registerLog: log 0x.*St Mary General Hospital/);
    // The deployer cannot send it; the admin (the multisig, once its owners signed) can.
    await expect(
      deployer!.sendTransaction({ to: planned.to, data: planned.data }),
    ).to.be.revertedWithCustomError(readOnly, "AccessControlUnauthorizedAccount");
    await (await multisig!.sendTransaction({ to: planned.to, data: planned.data })).wait();
    expect(await readOnly.logOperator(LOG_ID)).to.equal(OPERATOR);
    const again = await registerLogTransaction(params);
    expect(again).to.have.property("status", "already-registered");
    const renaming = await registerLogTransaction({
      ...params,
      operator: "St Mary Hospital Trust",
      rename: true,
    });
    if ("status" in renaming) throw new Error("expected a rename to propose");
    expect(renaming.description).to.match(/^renameLogOperator: .*"St Mary Hospital Trust"/);
  });

  it("refuses a signer that is not admin, before sending anything", async function () {
    const { registry, anchorer, receiptSigner, outsider } =
      await networkHelpers.loadFixture(deployedFixture);
    await expectRegisterLogError(
      registerLog({
        registry: registry.connect(outsider),
        logId: LOG_ID,
        anchorer: anchorer.address,
        receiptSigner: receiptSigner.address,
        operator: OPERATOR,
      }),
      "NOT_ADMIN",
      new RegExp(`${outsider.address} does not hold DEFAULT_ADMIN_ROLE`),
    );
    expect(await registry.isLogRegistered(LOG_ID)).to.equal(false);
  });

  it("rejects a malformed or zero log id and zero or malformed addresses", async function () {
    const { registry, anchorer, receiptSigner } = await networkHelpers.loadFixture(deployedFixture);
    const ok = { registry, logId: LOG_ID, anchorer: anchorer.address };
    const good = { ...ok, receiptSigner: receiptSigner.address, operator: OPERATOR };
    for (const logId of ["0x12", ethers.ZeroHash, "not hex"]) {
      await expectRegisterLogError(
        registerLog({ ...good, logId }),
        "INVALID_ARGUMENT",
        /logId is not a non-zero bytes32/,
      );
    }
    await expectRegisterLogError(
      registerLog({ ...good, anchorer: ethers.ZeroAddress }),
      "INVALID_ARGUMENT",
      /anchorer is not a non-zero address/,
    );
    await expectRegisterLogError(
      registerLog({ ...ok, receiptSigner: "0x1234", operator: OPERATOR }),
      "INVALID_ARGUMENT",
      /receiptSigner is not a non-zero address/,
    );
  });
});

import { expect } from "chai";
import { Wallet, encryptKeystoreJson } from "ethers";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { RegistryClient, makeProvider } from "../../../services/chain/registry-client.ts";
import { type Config, loadConfig } from "../../../services/config.ts";
import { ReceiptError, verifyReceipt } from "../../../services/core/receipt.ts";
import {
  HARDHAT_DEV_ACCOUNTS,
  KeyError,
  loadKeys,
  rotateReceiptSigner,
  signerPeriodCovers,
} from "../../../services/ledger/keystore.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";

const ANCHORER_KEY = "0x" + "a1".repeat(32);
const RECEIPT_KEY = "0x" + "b2".repeat(32);

function config(env: Record<string, string>): Config {
  return loadConfig(env);
}

async function expectKeyError(
  promise: Promise<unknown>,
  code: string,
  variable: string,
): Promise<KeyError> {
  try {
    await promise;
  } catch (error) {
    expect(error, String(error)).to.be.instanceOf(KeyError);
    const e = error as KeyError;
    expect(e.code, e.message).to.equal(code);
    expect(e.variable).to.equal(variable);
    expect(e.message.startsWith(`${variable}:`)).to.equal(true);
    return e;
  }
  expect.fail(`expected KeyError ${code}`);
}

describe("keys", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-keys-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function keystore(privateKey: string, password: string): Promise<string> {
    const wallet = new Wallet(privateKey);
    // A low scrypt cost keeps the test fast; real keystores use the default (N = 2^17).
    const json = await encryptKeystoreJson({ address: wallet.address, privateKey }, password, {
      scrypt: { N: 1 << 10 },
    });
    const file = path.join(dir, `${wallet.address}.json`);
    await writeFile(file, json);
    return file;
  }

  it("development with the embedded node: Hardhat accounts #0 admin, #1 anchorer, #2 receipt signer", async () => {
    const keys = await loadKeys(config({}));
    expect(keys.admin?.wallet.address).to.equal(HARDHAT_DEV_ACCOUNTS.admin.address);
    expect(keys.anchorer.wallet.address).to.equal(HARDHAT_DEV_ACCOUNTS.anchorer.address);
    expect(keys.receiptSigner.wallet.address).to.equal(HARDHAT_DEV_ACCOUNTS.receiptSigner.address);
    expect(keys.anchorer.source).to.equal("hardhat-default");
    // They are the node's printed accounts.
    expect([0, 1, 2].map((i) => HARDHAT_ACCOUNTS[i]?.address)).to.deep.equal([
      HARDHAT_DEV_ACCOUNTS.admin.address,
      HARDHAT_DEV_ACCOUNTS.anchorer.address,
      HARDHAT_DEV_ACCOUNTS.receiptSigner.address,
    ]);
  });

  it("loads keys from the environment and from encrypted keystores", async () => {
    const fromEnv = await loadKeys(
      config({ ANCHORER_PRIVATE_KEY: ANCHORER_KEY, RECEIPT_PRIVATE_KEY: RECEIPT_KEY }),
    );
    expect(fromEnv.anchorer).to.include({ source: "env", origin: "ANCHORER_PRIVATE_KEY" });
    expect(fromEnv.anchorer.wallet.address).to.equal(new Wallet(ANCHORER_KEY).address);
    const file = await keystore(RECEIPT_KEY, "correct horse");
    const fromFile = await loadKeys(
      config({
        ANCHORER_PRIVATE_KEY: ANCHORER_KEY,
        RECEIPT_KEYSTORE: file,
        RECEIPT_KEYSTORE_PASSWORD: "correct horse",
      }),
    );
    expect(fromFile.receiptSigner).to.include({ source: "keystore", origin: "RECEIPT_KEYSTORE" });
    expect(fromFile.receiptSigner.wallet.address).to.equal(new Wallet(RECEIPT_KEY).address);
    // Only the embedded dev chain gets an admin key.
    expect(fromFile.admin?.wallet.address).to.equal(HARDHAT_DEV_ACCOUNTS.admin.address);
    const external = await loadKeys(
      config({
        RPC_URL: "http://127.0.0.1:1",
        ANCHORER_PRIVATE_KEY: ANCHORER_KEY,
        RECEIPT_PRIVATE_KEY: RECEIPT_KEY,
      }),
    );
    expect(external.admin).to.equal(undefined);
  });

  it("names the variable to fix for every bad key setting", async () => {
    const prod = {
      CHAIN_MODE: "production",
      RPC_URL: "http://127.0.0.1:1",
      CONTRACT_ADDRESS: "0x" + "11".repeat(20),
      LOG_SECRET_KEY: "0x" + "44".repeat(32),
    };
    const file = await keystore(ANCHORER_KEY, "pw");
    await expectKeyError(
      loadKeys({ ...config({ RPC_URL: "http://127.0.0.1:1", RECEIPT_PRIVATE_KEY: RECEIPT_KEY }) }),
      "KEY_MISSING",
      "ANCHORER_KEYSTORE",
    );
    await expectKeyError(
      loadKeys({
        ...config({
          ...prod,
          ANCHORER_PRIVATE_KEY: ANCHORER_KEY,
          RECEIPT_PRIVATE_KEY: RECEIPT_KEY,
        }),
        RECEIPT_PRIVATE_KEY: undefined,
      }),
      "KEY_MISSING",
      "RECEIPT_KEYSTORE",
    );
    await expectKeyError(
      loadKeys(
        config({
          ANCHORER_KEYSTORE: file,
          ANCHORER_KEYSTORE_PASSWORD: "wrong",
          RECEIPT_PRIVATE_KEY: RECEIPT_KEY,
        }),
      ),
      "KEYSTORE_PASSWORD",
      "ANCHORER_KEYSTORE_PASSWORD",
    );
    await expectKeyError(
      loadKeys(
        config({
          ANCHORER_KEYSTORE: path.join(dir, "missing.json"),
          ANCHORER_KEYSTORE_PASSWORD: "pw",
        }),
      ),
      "KEYSTORE_UNREADABLE",
      "ANCHORER_KEYSTORE",
    );
    const notJson = path.join(dir, "not.json");
    await writeFile(notJson, "hello");
    await expectKeyError(
      loadKeys(config({ RECEIPT_KEYSTORE: notJson, RECEIPT_KEYSTORE_PASSWORD: "pw" })),
      "KEYSTORE_INVALID",
      "RECEIPT_KEYSTORE",
    );
    await expectKeyError(
      loadKeys(
        config({
          ANCHORER_KEYSTORE: file,
          ANCHORER_KEYSTORE_PASSWORD: "pw",
          ANCHORER_PRIVATE_KEY: ANCHORER_KEY,
        }),
      ),
      "KEY_CONFLICT",
      "ANCHORER_PRIVATE_KEY",
    );
    await expectKeyError(
      loadKeys(config({ ANCHORER_PRIVATE_KEY: "0x" + "00".repeat(32) })),
      "KEY_INVALID",
      "ANCHORER_PRIVATE_KEY",
    );
    await expectKeyError(
      loadKeys(config({ ANCHORER_PRIVATE_KEY: ANCHORER_KEY, RECEIPT_PRIVATE_KEY: ANCHORER_KEY })),
      "KEYS_NOT_DISTINCT",
      "RECEIPT_PRIVATE_KEY",
    );
    await expectKeyError(
      loadKeys(
        config({
          ...prod,
          ANCHORER_PRIVATE_KEY: HARDHAT_DEV_ACCOUNTS.anchorer.privateKey,
          RECEIPT_PRIVATE_KEY: RECEIPT_KEY,
        }),
      ),
      "KEY_INSECURE",
      "ANCHORER_PRIVATE_KEY",
    );
    const ok = await loadKeys(
      config({
        ...prod,
        ANCHORER_KEYSTORE: file,
        ANCHORER_KEYSTORE_PASSWORD: "pw",
        RECEIPT_PRIVATE_KEY: RECEIPT_KEY,
      }),
    );
    expect(ok.anchorer.wallet.address).to.equal(new Wallet(ANCHORER_KEY).address);
    expect(ok.admin).to.equal(undefined);
  });

  it("signerPeriodCovers compares a receipt instant (ms) with block timestamps (s)", () => {
    expect(signerPeriodCovers({ validFrom: 0, validUntil: 0 }, 5_000)).to.equal(false);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 0 }, 4_999)).to.equal(false);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 0 }, 5_000)).to.equal(true);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 9 }, 9_999)).to.equal(true);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 9 }, 10_000)).to.equal(false);
    // With an allowed clock skew of 2 s on both sides.
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 9 }, 11_999, 2)).to.equal(true);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 9 }, 12_000, 2)).to.equal(false);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 0 }, 3_000, 2)).to.equal(true);
    expect(signerPeriodCovers({ validFrom: 5, validUntil: 0 }, 2_999, 2)).to.equal(false);
  });

  describe("receipts against the registered signer, and rotation (real Hardhat node)", function () {
    this.timeout(90_000);
    let node: HardhatNode;
    before(async () => {
      node = await HardhatNode.start();
    });
    after(async () => {
      await node?.stop();
    });

    /** Automine gives every block at least the previous timestamp + 1 s, so the chain clock can run
     * ahead of the wall clock; receipts are stamped with the wall clock. */
    async function waitForWallClockPast(seconds: number): Promise<void> {
      while (Math.floor(Date.now() / 1000) <= seconds) await new Promise((r) => setTimeout(r, 50));
    }

    it("verifies receipts against signerPeriod; tampered ones fail; after rotation old and new receipts verify against the signer of their time", async () => {
      const keys = await loadKeys(config({}));
      const admin = (keys.admin as { wallet: Wallet }).wallet;
      const provider = makeProvider(node.url, 31337);
      const ledgerDir = await mkdtemp(path.join(dir, "ledger-"));
      const open = (receiptSigner: Wallet) =>
        Ledger.open({
          location: ledgerDir,
          receiptSigner,
          batchMaxEvents: 1_000,
          batchMaxWaitMs: 60_000,
          anchorDeadlineMs: 3_600_000,
          groupCommitMaxEvents: 64,
        });
      let ledger = await open(keys.receiptSigner.wallet);
      try {
        const { client } = await RegistryClient.deploy({ provider, admin });
        const registered = await client.registerLog(admin, {
          logId: ledger.logId,
          anchorer: keys.anchorer.wallet.address,
          receiptSigner: keys.receiptSigner.wallet.address,
          operator: "Test log",
        });
        await waitForWallClockPast(registered.log.registeredAt);

        const [old] = await ledger.ingest([makeNativeEvent({ requestId: "req-keys-1" })]);
        const oldReceipt = old?.receipt;
        const { signer } = verifyReceipt(oldReceipt);
        expect(signer).to.equal(keys.receiptSigner.wallet.address);
        const period = await client.signerPeriod(ledger.logId, signer);
        expect(signerPeriodCovers(period, Date.parse(oldReceipt?.issuedAt ?? ""))).to.equal(true);
        for (const tampered of [
          { ...oldReceipt, seq: (oldReceipt?.seq ?? 0) + 1 },
          { ...oldReceipt, leafHash: "0x" + "00".repeat(32) },
          { ...oldReceipt, anchorDeadline: new Date(Date.now() + 1e9).toISOString() },
        ]) {
          expect(() => {
            const r = verifyReceipt(tampered);
            // A re-signed-looking receipt must at least not recover the registered signer.
            if (r.signer === signer) throw new Error("unexpected");
          }).to.throw(ReceiptError);
        }

        // Rotate: the admin registers a new key, the ledger reopens with it.
        const next = Wallet.createRandom();
        // Hardhat's block clock drifts from the wall clock (ahead under automine load, behind
        // after a clock step); pin the rotation block to the wall clock so the boundary between
        // the two signers is where this test expects it.
        const latest = await provider.getBlock("latest");
        await node.rpc("evm_setNextBlockTimestamp", [
          Math.max(Math.floor(Date.now() / 1000) + 1, (latest?.timestamp ?? 0) + 1),
        ]);
        const rotation = await rotateReceiptSigner({
          client,
          admin,
          logId: ledger.logId,
          newSigner: next.address,
        });
        expect(rotation.previous.address).to.equal(signer);
        expect(rotation.previous.period.validUntil).to.be.greaterThan(0);
        expect(rotation.next.period).to.deep.equal({
          validFrom: rotation.previous.period.validUntil,
          validUntil: 0,
        });
        expect((await client.getLog(ledger.logId)).receiptSigner).to.equal(next.address);
        await ledger.close();
        ledger = await open(new Wallet(next.privateKey));
        await waitForWallClockPast(rotation.next.period.validFrom);

        const [fresh] = await ledger.ingest([makeNativeEvent({ requestId: "req-keys-2" })]);
        const freshSigner = verifyReceipt(fresh?.receipt).signer;
        expect(freshSigner).to.equal(next.address);
        const freshAt = Date.parse(fresh?.receipt.issuedAt ?? "");
        expect(
          signerPeriodCovers(await client.signerPeriod(ledger.logId, freshSigner), freshAt),
        ).to.equal(true);
        // The old key is not valid for a receipt issued after the rotation ...
        expect(
          signerPeriodCovers(await client.signerPeriod(ledger.logId, signer), freshAt),
        ).to.equal(false);
        // ... but the old receipt still verifies against the signer registered at its time.
        expect(verifyReceipt(oldReceipt).signer).to.equal(signer);
        expect(
          signerPeriodCovers(
            await client.signerPeriod(ledger.logId, signer),
            Date.parse(oldReceipt?.issuedAt ?? ""),
          ),
        ).to.equal(true);
        // The ledger re-issues the old receipt verbatim (signed by the old key).
        expect(await ledger.receipt(oldReceipt?.seq ?? -1)).to.deep.equal(oldReceipt);
      } finally {
        await ledger.close();
        provider.destroy();
      }
    });
  });
});

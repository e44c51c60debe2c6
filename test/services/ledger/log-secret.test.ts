/**
 * The log secret at rest: sealed under the operator's key when one is given (required in
 * production), never on disk in clear then, migrated from clear to sealed, and refused without
 * or with the wrong key.
 */
import { expect } from "chai";
import { Wallet, encryptKeystoreJson } from "ethers";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { subjectTag } from "../../../services/core/entry.ts";
import { fromHex } from "../../../services/core/hex.ts";
import { ConfigError, loadConfig } from "../../../services/config.ts";
import { KeyError, loadLogSecretKey } from "../../../services/ledger/keystore.ts";
import { Ledger, type LedgerOptions } from "../../../services/ledger/ledger.ts";
import { LogSecretError } from "../../../services/ledger/log-secret.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

const KEY = fromHex("0x" + "5a".repeat(32));
const OTHER_KEY = fromHex("0x" + "a5".repeat(32));
const PATIENT = { system: "urn:oid:1.2.3", value: "MRN-SECRET-0001" };

function options(location: string, logSecretKey?: Uint8Array): LedgerOptions {
  return {
    location,
    receiptSigner: new Wallet("0x" + "66".repeat(32)),
    batchMaxEvents: 100,
    batchMaxWaitMs: 60_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 100,
    ...(logSecretKey ? { logSecretKey } : {}),
  };
}

/** Every byte LevelDB keeps on disk for this log (tables, write-ahead log, manifest). */
async function diskBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const name of await readdir(dir)) parts.push(await readFile(path.join(dir, name)));
  return Buffer.concat(parts);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail("expected a rejection"),
    (e: unknown) => e,
  );
}

describe("log secret at rest (real LevelDB)", () => {
  let dir: string;
  let ledger: Ledger | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-secret-"));
  });
  afterEach(async () => {
    if (ledger?.store.isOpen) await ledger.close();
    ledger = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("with a key, the secret is sealed: not in LevelDB's values or on disk; tags unchanged across reopen", async () => {
    ledger = await Ledger.open(options(dir, KEY));
    expect(ledger.logSecretAtRest).to.equal("sealed");
    const secret = ledger.meta.logSecret;
    const [r] = await ledger.ingest([{ ...makeNativeEvent(), patient: PATIENT }]);
    expect(r!.receipt.seq).to.equal(0);
    const tag = (await ledger.getEvent(0)).entry.subject;
    expect(tag).to.equal(subjectTag(fromHex(secret), PATIENT, "jcs"));
    for await (const [, v] of ledger.store.scan({}))
      expect(v.toString("latin1")).to.not.include(secret.slice(2));
    await ledger.close();
    expect((await diskBytes(dir)).toString("latin1")).to.not.include(secret.slice(2));

    ledger = await Ledger.open(options(dir, KEY));
    expect(ledger.meta.logSecret).to.equal(secret);
    await ledger.close();

    const without = await rejection(Ledger.open(options(dir)));
    expect(without).to.be.instanceOf(LogSecretError);
    expect(String(without)).to.match(/LOG_SECRET_KEY/);
    const wrong = await rejection(Ledger.open(options(dir, OTHER_KEY)));
    expect(wrong).to.be.instanceOf(LogSecretError);
    expect(String(wrong)).to.match(/sealed under key [0-9a-f]{16}; the configured key is/);
  });

  it("a secret stored in clear is sealed on the next start with a key, and the clear copy purged from disk", async () => {
    ledger = await Ledger.open(options(dir));
    expect(ledger.logSecretAtRest).to.equal("clear");
    const secret = ledger.meta.logSecret;
    await ledger.ingest([{ ...makeNativeEvent(), patient: PATIENT }]);
    await ledger.close();
    expect((await diskBytes(dir)).toString("latin1")).to.include(secret.slice(2));

    ledger = await Ledger.open(options(dir, KEY));
    expect(ledger.logSecretAtRest).to.equal("sealed");
    expect(ledger.meta.logSecret).to.equal(secret);
    const [r] = await ledger.ingest([{ ...makeNativeEvent(), patient: PATIENT }]);
    expect((await ledger.getEvent(r!.receipt.seq)).entry.subject).to.equal(
      (await ledger.getEvent(0)).entry.subject,
    );
    await ledger.close();
    expect((await diskBytes(dir)).toString("latin1")).to.not.include(secret.slice(2));
  });

  it("a sealed secret does not open in another log (the logId is bound in)", async () => {
    ledger = await Ledger.open(options(dir, KEY));
    await ledger.close();
    ledger = undefined;
    const other = await mkdtemp(path.join(tmpdir(), "veritrail-secret-other-"));
    try {
      const second = await Ledger.open(options(other, KEY));
      await second.close();
      // Graft the first log's sealed secret into the second log's metadata.
      const first = await Ledger.open(options(dir, KEY));
      const sealed = (await first.store.getMeta())!.logSecretSealed;
      await first.close();
      const reopened = await Ledger.open(options(other, KEY));
      const meta = (await reopened.store.getMeta())!;
      await reopened.store.putMeta({ ...meta, logSecretSealed: sealed });
      await reopened.close();
      const error = await rejection(Ledger.open(options(other, KEY)));
      expect(String(error)).to.match(/does not open/);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("config: production needs LOG_SECRET_KEY or LOG_SECRET_KEYSTORE; keys are checked", async () => {
    const prod = {
      CHAIN_MODE: "production",
      RPC_URL: "http://127.0.0.1:1",
      CONTRACT_ADDRESS: "0x" + "11".repeat(20),
      ANCHORER_PRIVATE_KEY: "0x" + "12".repeat(32),
      RECEIPT_PRIVATE_KEY: "0x" + "13".repeat(32),
    };
    expect(() => loadConfig(prod)).to.throw(
      ConfigError,
      /LOG_SECRET_KEY: .*required in production/,
    );
    expect(loadConfig({ ...prod, LOG_SECRET_KEY: "0x" + "14".repeat(32) }).LOG_SECRET_KEY).to.be.a(
      "string",
    );
    expect(() => loadConfig({ LOG_SECRET_KEY: "0x1234" })).to.throw(ConfigError, /LOG_SECRET_KEY/);
    expect(() => loadConfig({ LOG_SECRET_KEYSTORE: "/k.json" })).to.throw(
      ConfigError,
      /LOG_SECRET_KEYSTORE_PASSWORD/,
    );

    const wallet = new Wallet("0x" + "15".repeat(32));
    const file = path.join(dir, "log-secret.json");
    await writeFile(
      file,
      await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, "pw", {
        scrypt: { N: 1 << 10 },
      }),
    );
    const fromKeystore = await loadLogSecretKey(
      loadConfig({ LOG_SECRET_KEYSTORE: file, LOG_SECRET_KEYSTORE_PASSWORD: "pw" }),
    );
    expect(Buffer.from(fromKeystore!.key).toString("hex")).to.equal("15".repeat(32));
    const wrongPassword = await rejection(
      loadLogSecretKey(
        loadConfig({ LOG_SECRET_KEYSTORE: file, LOG_SECRET_KEYSTORE_PASSWORD: "x" }),
      ),
    );
    expect(wrongPassword).to.be.instanceOf(KeyError);
    expect(await loadLogSecretKey(loadConfig({}))).to.equal(undefined);
  });
});

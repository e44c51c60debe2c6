import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { runCli } from "../../../services/cli/main.ts";
import { RegistryClient, makeProvider } from "../../../services/chain/registry-client.ts";
import { trustPolicyFingerprint } from "../../../services/core/trust-policy.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";
import { CapturedStream } from "../../support/running-service.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const LOG_A = `0x${"a1".repeat(32)}`;
const LOG_B = `0x${"b2".repeat(32)}`;
// Addresses only: rotations and an admin transfer are scheduled to them, nobody signs as them.
const NEW_ANCHORER = Wallet.createRandom().address;
const NEW_SIGNER = Wallet.createRandom().address;
const NEXT_ADMIN = Wallet.createRandom().address;

async function cli(args: string[]) {
  const stdout = new CapturedStream(false);
  const stderr = new CapturedStream(false);
  const code = await runCli(["node", "veritrail", "trust", ...args], {
    stdout,
    stderr,
    stdin: new PassThrough(),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe("cli: veritrail trust init|show (Hardhat)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let client: RegistryClient;
  let dir: string;

  before(async () => {
    node = await HardhatNode.start();
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-trust-cli-"));
    ({ client } = await RegistryClient.deploy({
      provider: makeProvider(node.url, 31337),
      admin: ADMIN,
    }));
    await client.registerLog(ADMIN, {
      logId: LOG_A,
      anchorer: HARDHAT_ACCOUNTS[1].address,
      receiptSigner: HARDHAT_ACCOUNTS[2].address,
      operator: "St Mary General Hospital",
    });
    await client.registerLog(ADMIN, {
      logId: LOG_B,
      anchorer: HARDHAT_ACCOUNTS[3].address,
      receiptSigner: HARDHAT_ACCOUNTS[4].address,
      operator: "Northside Lab",
    });
  });
  after(async () => {
    client?.destroy();
    await node?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("init reads every log and its operator from the registry's state; show prints them with the fingerprint", async () => {
    const out = path.join(dir, "trust.json");
    const init = await cli([
      "init",
      "--rpc",
      node.url,
      "--registry",
      client.address.toLowerCase(),
      "--chain-id",
      "31337",
      "--confirmations",
      "2",
      "--issuer",
      "Health Data Authority",
      "--out",
      out,
    ]);
    expect(init.code, init.stderr).to.equal(0);
    const document = JSON.parse(await readFile(out, "utf8")) as {
      registries: Array<{ chainId: number; address: string; confirmations: number }>;
      logs: Array<{ logId: string; operator: string; registry: string }>;
    };
    const fingerprint = trustPolicyFingerprint(document);
    expect(init.stderr).to.include(`fingerprint ${fingerprint}`);
    expect(document.registries).to.deep.equal([
      { chainId: 31337, address: client.address, confirmations: 2 },
    ]);
    expect(document.logs.map((l) => [l.logId, l.operator])).to.deep.equal([
      [LOG_A, "St Mary General Hospital"],
      [LOG_B, "Northside Lab"],
    ]);
    const show = await cli(["show", out]);
    expect(show.code, show.stderr).to.equal(0);
    expect(show.stdout).to.include("issued by Health Data Authority");
    expect(show.stdout).to.include(`log ${LOG_A}  St Mary General Hospital`);
    expect(show.stdout).to.include(`log ${LOG_B}  Northside Lab`);
    expect(show.stdout).to.include(`fingerprint ${fingerprint}`);

    // A rename on-chain shows in the next policy, with another fingerprint.
    await client.renameLogOperator(ADMIN, LOG_B, "Northside Laboratories");
    const again = await cli([
      "init",
      "--rpc",
      node.url,
      "--registry",
      client.address,
      "--log",
      LOG_B,
    ]);
    expect(again.code, again.stderr).to.equal(0);
    const only = JSON.parse(again.stdout) as { logs: Array<{ operator: string }> };
    expect(only.logs.map((l) => l.operator)).to.deep.equal(["Northside Laboratories"]);
  });

  it("show --rpc prints the registry's admin and each log's rotations from the chain, and what is pending", async () => {
    const out = path.join(dir, "history.json");
    expect(
      (await cli(["init", "--rpc", node.url, "--registry", client.address, "--out", out])).code,
    ).to.equal(0);
    const provider = makeProvider(node.url, 31337);
    try {
      await client.rotateAnchorer(ADMIN, LOG_A, NEW_ANCHORER);
      await client.rotateReceiptSigner(ADMIN, LOG_A, NEW_SIGNER);
      const registry = client.contract.connect(ADMIN.connect(provider)) as typeof client.contract;
      await (await registry.getFunction("beginDefaultAdminTransfer")(NEXT_ADMIN)).wait();
    } finally {
      provider.destroy();
    }
    const show = await cli(["show", out, "--rpc", node.url]);
    expect(show.code, show.stderr).to.equal(0);
    const text = show.stdout;
    expect(text).to.include(
      `admin ${ADMIN.address}; a transfer of the admin role waits 3 day(s) between being scheduled and accepted`,
    );
    expect(text).to.match(
      new RegExp(`PENDING: admin transfer to ${NEXT_ADMIN}, acceptable from 20`),
    );
    expect(text).to.match(
      /block \d+ {2}admin role granted to 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266/,
    );
    expect(text).to.match(new RegExp(`admin transfer to ${NEXT_ADMIN} scheduled, acceptable from`));
    const logA = text.slice(text.indexOf(`log ${LOG_A}`), text.indexOf(`log ${LOG_B}`));
    expect(logA).to.match(
      new RegExp(
        `registered: anchorer ${HARDHAT_ACCOUNTS[1].address}, receipt signer ${HARDHAT_ACCOUNTS[2].address}, operator "St Mary General Hospital"`,
      ),
    );
    expect(logA).to.include(`anchorer rotated: ${HARDHAT_ACCOUNTS[1].address} → ${NEW_ANCHORER}`);
    expect(logA).to.include(
      `receipt signer rotated: ${HARDHAT_ACCOUNTS[2].address} → ${NEW_SIGNER}`,
    );
    expect(logA).to.include(`now: anchorer ${NEW_ANCHORER}, receipt signer ${NEW_SIGNER}`);
    expect(logA).to.not.include("INCOMPLETE");

    // Events from a block after the registration: the history says it is incomplete.
    const late = await cli(["show", out, "--rpc", node.url, "--from-block", "1000000"]);
    expect(late.code, late.stderr).to.equal(0);
    expect(late.stdout).to.include("history INCOMPLETE");
    const json = await cli(["show", out, "--rpc", node.url, "--json"]);
    const parsed = JSON.parse(json.stdout) as {
      history: Array<{ logs: Array<{ events: Array<{ kind: string }> }> }>;
    };
    expect(parsed.history[0]!.logs[0]!.events.map((e) => e.kind)).to.deep.equal([
      "registered",
      "anchorer-rotated",
      "signer-rotated",
    ]);
  });

  it("refuses a chain id the RPC does not serve, an address without a registry, an unknown log, and a bad policy file", async () => {
    const wrongChain = await cli([
      "init",
      "--rpc",
      node.url,
      "--registry",
      client.address,
      "--chain-id",
      "1",
    ]);
    expect(wrongChain.code).to.equal(2);
    expect(wrongChain.stderr).to.match(/serves chain 31337, not chain 1/);
    const nothing = await cli([
      "init",
      "--rpc",
      node.url,
      "--registry",
      "0x000000000000000000000000000000000000dEaD",
    ]);
    expect(nothing.code).to.equal(2);
    expect(nothing.stderr).to.match(/no contract at/);
    const unknown = await cli([
      "init",
      "--rpc",
      node.url,
      "--registry",
      client.address,
      "--log",
      `0x${"cc".repeat(32)}`,
    ]);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/is not registered/);
    const bad = path.join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ format: "veritrail-trust/1", issuer: "x" }));
    const show = await cli(["show", bad]);
    expect(show.code).to.equal(2);
    expect(show.stderr).to.match(/registries/);
  });
});

import { expect } from "chai";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { runCli } from "../../../services/cli/main.ts";
import type { AuditReport } from "../../../services/ledger/audit.ts";
import { K } from "../../../services/store/keys.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode, freePort } from "../../support/hardhat-node.ts";
import { CapturedStream } from "../../support/running-service.ts";

/** `--trust <file>` for every run (set by the suite once its log exists). */
let trustArgs: string[] = [];

async function audit(args: string[], tty = false) {
  const stdout = new CapturedStream(false);
  const stderr = new CapturedStream(tty);
  const code = await runCli(["node", "veritrail", "audit", ...args, ...trustArgs], {
    stdout,
    stderr,
    stdin: new PassThrough(),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe("cli: veritrail audit (Hardhat)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let log: AnchoredLog;
  let trustFile: string;

  before(async () => {
    node = await HardhatNode.start();
    log = await AnchoredLog.create(node);
    trustFile = await log.writeTrustFile();
    trustArgs = ["--trust", trustFile];
    await log.ledger.ingest([patientEvent("MRN-1"), patientEvent("MRN-2"), patientEvent("MRN-1")]);
    await log.sealAndAnchor();
    await log.ledger.ingest([patientEvent("MRN-2")]);
    await log.sealAndAnchor();
    await log.ledger.close();
  });

  after(async () => {
    await log?.close();
    await node?.stop();
  });

  it("exits 0 on a clean log and says so; --json prints the report", async () => {
    const human = await audit(["--data", log.dir, "--rpc", node.url]);
    expect(human.code, human.stderr).to.equal(0);
    expect(human.stdout).to.include("4 events (0 erased, 0 not sealed yet) in 2 batches");
    expect(human.stdout).to.include(`registry ${log.contract}: 2 batches anchored`);
    expect(human.stdout).to.match(/^CLEAN: /m);
    const json = await audit(["--data", log.dir, "--rpc", node.url, "--json"]);
    expect(json.code).to.equal(0);
    const report = JSON.parse(json.stdout) as AuditReport & { rpc: string };
    expect(report).to.include({ ok: true, events: 4, batches: 2, findingCount: 0 });
    expect(report.rpc).to.equal(node.url);
  });

  it("accepts the service's DATA_DIR (the ledger under <dir>/ledger)", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "veritrail-datadir-"));
    try {
      await symlink(log.dir, path.join(dataDir, "ledger"));
      const r = await audit(["--data", dataDir, "--rpc", node.url]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include("in 2 batches");
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("shows a progress bar on a TTY", async () => {
    const r = await audit(["--data", log.dir, "--rpc", node.url], true);
    expect(r.code).to.equal(0);
    expect(r.stderr).to.include("replaying events");
    expect(r.stderr).to.include("checking batches on-chain");
  });

  it("exits 1 and names each finding when a body was tampered with", async () => {
    const store = await LedgerStore.open(log.dir);
    const key = K.body(1);
    const original = (await store.getRaw(key))!;
    const tampered = Buffer.from(original);
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 0x01;
    await store.write([{ type: "put", key, value: tampered }]);
    await store.close();
    try {
      const r = await audit(["--data", log.dir, "--rpc", node.url]);
      expect(r.code).to.equal(1);
      expect(r.stdout).to.match(/✗ (COMMITMENT_MISMATCH|BODY_MALFORMED) \(seq 1\)/);
      expect(r.stdout).to.match(/^FINDINGS: 1 discrepancies$/m);
    } finally {
      const s = await LedgerStore.open(log.dir);
      await s.write([{ type: "put", key, value: original }]);
      await s.close();
    }
  });

  it("exits 1 when the registry named with --contract is not the policy's (and holds nothing)", async () => {
    const r = await audit([
      "--data",
      log.dir,
      "--rpc",
      node.url,
      "--contract",
      "0x000000000000000000000000000000000000dEaD",
      "--json",
    ]);
    expect(r.code).to.equal(1);
    const report = JSON.parse(r.stdout) as AuditReport;
    expect(report.findings.map((f) => f.kind)).to.deep.equal([
      "UNTRUSTED_REGISTRY",
      "CHAIN_NO_REGISTRY",
    ]);
  });

  it("without a trust policy: exit 2 naming how to get one; a policy without this log: UNKNOWN_LOG", async () => {
    const saved = trustArgs;
    trustArgs = [];
    try {
      const none = await audit(["--data", log.dir, "--rpc", node.url]);
      expect(none.code).to.equal(2);
      expect(none.stderr).to.match(/no trust policy/);
      const other = path.join(path.dirname(trustFile), "other.json");
      const doc = JSON.parse(await readFile(trustFile, "utf8")) as {
        logs: Array<{ logId: string }>;
      };
      doc.logs[0]!.logId = `0x${"cd".repeat(32)}`;
      await writeFile(other, JSON.stringify(doc));
      const r = await audit(["--data", log.dir, "--rpc", node.url, "--trust", other]);
      expect(r.code).to.equal(1);
      expect(r.stdout).to.match(/✗ UNKNOWN_LOG: /);
    } finally {
      trustArgs = saved;
    }
  });

  it("exits 2 for a directory in use, a missing ledger, an unreachable RPC or bad arguments", async () => {
    const store = await LedgerStore.open(log.dir);
    try {
      const busy = await audit(["--data", log.dir, "--rpc", node.url]);
      expect(busy.code).to.equal(2);
      expect(busy.stderr).to.include("in use");
    } finally {
      await store.close();
    }
    const empty = await mkdtemp(path.join(tmpdir(), "veritrail-empty-"));
    try {
      const none = await audit(["--data", empty, "--rpc", node.url]);
      expect(none.code).to.equal(2);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    const dead = await audit(["--data", log.dir, "--rpc", `http://127.0.0.1:${await freePort()}`]);
    expect(dead.code).to.equal(2);
    expect(dead.stderr).to.include("cannot reach the RPC");
    expect((await audit(["--data", log.dir])).code).to.equal(2);
    expect(
      (await audit(["--data", log.dir, "--rpc", node.url, "--contract", "0x12"])).code,
    ).to.equal(2);
  });
});

/**
 * `veritrail backup` / `veritrail restore` without a service: the offline copy (tail sealed
 * first), both backup forms, verification before anything is written, and the refusals. The
 * copy taken from a running service under load, and the reconciliation with the chain, are in
 * test/reliability/backup-restore.test.ts.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { runCli } from "../../../services/cli/main.ts";
import { auditLog } from "../../../services/ledger/audit.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import type { RestoreMarker } from "../../../services/ledger/lost-ranges.ts";
import type { BackupManifest } from "../../../services/store/backup-archive.ts";
import { K } from "../../../services/store/keys.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString("utf8");
    done();
  }
}

async function cli(...args: string[]) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli(["node", "veritrail", ...args], {
    stdout,
    stderr,
    stdin: new PassThrough(),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const signer = new Wallet("0x" + "44".repeat(32));
let serial = 0;
/** Events with distinct requestIds (the fixture's default one would make them duplicates). */
const events = (n: number) =>
  Array.from({ length: n }, () => makeNativeEvent({ requestId: `backup-cli-${serial++}` }));

async function openLedger(location: string): Promise<Ledger> {
  return Ledger.open({
    location,
    receiptSigner: signer,
    batchMaxEvents: 50,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  });
}

/** Every key and value of a LevelDB, for comparing a restored copy with its source. */
async function dump(location: string): Promise<Map<string, string>> {
  const store = await LedgerStore.open(location);
  const out = new Map<string, string>();
  try {
    for await (const [k, v] of store.scan({})) out.set(k, v.toString("base64"));
  } finally {
    await store.close();
  }
  return out;
}

describe("cli: veritrail backup and restore (offline)", function () {
  this.timeout(60_000);
  let root: string;
  let dataDir: string;
  let logId: string;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "veritrail-backup-cli-"));
    dataDir = path.join(root, "data");
    const ledger = await openLedger(path.join(dataDir, "ledger"));
    logId = ledger.logId;
    await ledger.ingest(events(120));
    await ledger.sealPending();
    // 30 more, left unsealed by the stop (as a stopped service leaves its tail).
    await ledger.ingest(events(30));
    await ledger.close();
    await writeFile(path.join(dataDir, "deployment.json"), '{"contract":"0xabc"}\n');
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("backs up a stopped service's ledger to an archive, sealing its tail first; restore puts back the same keys, marked as restored", async () => {
    const archive = path.join(root, "copy.tar");
    const backup = await cli("backup", "--data", dataDir, "--out", archive, "--json");
    expect(backup.code, backup.stderr).to.equal(0);
    const { manifest } = JSON.parse(backup.stdout) as { manifest: BackupManifest };
    expect(manifest).to.include({ logId, source: "offline", headSeq: 150, ingestPausedMs: 0 });
    // The tail was sealed: every event is in a batch (50 + 50 + 20 sealed before, 30 now).
    expect(manifest.lastSealedBatch).to.include({ batchNo: 3, firstSeq: 120, count: 30 });
    expect(manifest.lastAnchoredBatch).to.equal(null);
    expect(manifest.files.map((f) => f.name)).to.deep.equal([
      "ledger-000001.kv",
      "VERITRAIL-BODY-KEYS",
      "deployment.json",
    ]);
    expect((await stat(archive)).mode & 0o777).to.equal(0o600);

    const target = path.join(root, "restored");
    const restore = await cli("restore", "--from", archive, "--data", target);
    expect(restore.code, restore.stderr).to.equal(0);
    expect(restore.stdout).to.include("every file matches its SHA-256");
    const source = await dump(path.join(dataDir, "ledger"));
    const copy = await dump(path.join(target, "ledger"));
    const marker = JSON.parse(
      Buffer.from(copy.get(K.restoreMarker) ?? "", "base64").toString("utf8"),
    ) as RestoreMarker;
    expect(marker.backup).to.include({
      headSeq: 150,
      lastSealedBatchNo: 3,
      lastAnchoredBatchNo: -1,
    });
    copy.delete(K.restoreMarker);
    expect(copy).to.deep.equal(source);
    // The keys the bodies are sealed under come back with them.
    expect(await readFile(path.join(target, "ledger", "VERITRAIL-BODY-KEYS"))).to.deep.equal(
      await readFile(path.join(dataDir, "ledger", "VERITRAIL-BODY-KEYS")),
    );
    expect(await readFile(path.join(target, "deployment.json"), "utf8")).to.equal(
      '{"contract":"0xabc"}\n',
    );
    const store = await LedgerStore.open(path.join(target, "ledger"));
    try {
      const report = await auditLog(store);
      expect(report.findings).to.deep.equal([]);
      expect(report).to.include({ events: 150, batches: 4, sealedEvents: 150 });
    } finally {
      await store.close();
    }
  });

  it("restored, the ledger accepts nothing until it has been compared with the chain", async () => {
    const target = path.join(root, "gated");
    const archive = path.join(root, "gated.tar.gz");
    expect((await cli("backup", "--data", dataDir, "--out", archive)).code).to.equal(0);
    expect((await cli("restore", "--from", archive, "--data", target)).code).to.equal(0);
    const ledger = await openLedger(path.join(target, "ledger"));
    try {
      expect(ledger.restorePending?.backup.headSeq).to.equal(150);
      let refused: unknown;
      await ledger.ingest(events(1)).catch((e: unknown) => (refused = e));
      expect(refused).to.have.property("code", "RESTORE_PENDING");
      await ledger.completeRestore(undefined);
      const [r] = await ledger.ingest(events(1));
      expect(r!.receipt.seq).to.equal(150);
    } finally {
      await ledger.close();
    }
  });

  it("writes a backup directory into an existing directory; restore verifies it", async () => {
    const into = path.join(root, "backups");
    await mkdir(into);
    const backup = await cli("backup", "--data", dataDir, "--out", into);
    expect(backup.code, backup.stderr).to.equal(0);
    expect(backup.stdout).to.match(/taken offline/);
    const [dir] = await readdir(into);
    expect(dir).to.match(new RegExp(`^veritrail-${logId.slice(2, 10)}-\\d{8}T\\d{6}Z$`));
    const files = await readdir(path.join(into, dir!));
    expect(files.sort()).to.deep.equal([
      "VERITRAIL-BODY-KEYS",
      "deployment.json",
      "ledger-000001.kv",
      "manifest.json",
    ]);
    expect((await stat(path.join(into, dir!))).mode & 0o777).to.equal(0o700);
    const dry = await cli("restore", "--from", path.join(into, dir!), "--data", root, "--dry-run");
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.include("dry run: nothing restored");
  });

  it("refuses a backup with one byte changed, before it writes anything", async () => {
    const into = path.join(root, "tampered");
    await mkdir(into);
    expect((await cli("backup", "--data", dataDir, "--out", into)).code).to.equal(0);
    const [dir] = await readdir(into);
    const file = path.join(into, dir!, "ledger-000001.kv");
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(file, bytes);
    const target = path.join(root, "never");
    const restore = await cli("restore", "--from", path.join(into, dir!), "--data", target);
    expect(restore.code).to.equal(2);
    expect(restore.stderr).to.include("does not match the manifest");
    expect(await readdir(target).catch(() => [])).to.deep.equal([]);
  });

  it("refuses to restore over a ledger unless --force, which moves it aside", async () => {
    const archive = path.join(root, "again.tar");
    expect((await cli("backup", "--data", dataDir, "--out", archive)).code).to.equal(0);
    const target = path.join(root, "occupied");
    expect((await cli("restore", "--from", archive, "--data", target)).code).to.equal(0);
    const refused = await cli("restore", "--from", archive, "--data", target);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.include("--force");
    const forced = await cli("restore", "--from", archive, "--data", target, "--force");
    expect(forced.code, forced.stderr).to.equal(0);
    const entries = await readdir(target);
    expect(entries.filter((e) => e.startsWith("ledger.replaced-"))).to.have.length(1);
    expect(entries).to.include("ledger");
    // A backup never overwrites a file.
    const again = await cli("backup", "--data", dataDir, "--out", archive);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.include("never overwrites");
  });
});

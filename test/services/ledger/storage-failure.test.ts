/**
 * A full disk under the ledger: on a tmpfs of 48 MiB filled with a ballast file (real ENOSPC
 * from the kernel, through LevelDB). Where no tmpfs can be mounted (not root), the same tests run
 * with the store's write-fault injection instead, and their titles say so.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import path from "node:path";
import { pino } from "pino";
import { createApp } from "../../../services/api/app.ts";
import { startServer } from "../../../services/api/server.ts";
import { loadConfig } from "../../../services/config.ts";
import { entryLeafHash } from "../../../services/core/entry.ts";
import { toHex } from "../../../services/core/hex.ts";
import type { Receipt } from "../../../services/core/receipt.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import { auditLog } from "../../../services/ledger/audit.ts";
import { StorageUnavailableError } from "../../../services/ledger/errors.ts";
import { Ledger, type StorageEvent } from "../../../services/ledger/ledger.ts";
import { HOSPITAL_ORG, makeNativeEvent } from "../../fixtures/events.ts";
import { type SizeLimitedFs, mountSizeLimited } from "../../support/size-limited-fs.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";

const signer = new Wallet("0x" + "33".repeat(32));

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let serial = 0;
function events(n: number) {
  return Array.from({ length: n }, () => {
    const e = makeNativeEvent({ requestId: `disk-${process.pid}-${serial++}` });
    return { ...e, source: { ...e.source, organization: HOSPITAL_ORG } };
  });
}

/** The disk under test: a real full tmpfs, or (without root) injected ENOSPC write faults. */
interface Disk {
  kind: "tmpfs" | "fault injection";
  dir: string;
  fill(): Promise<void>;
  free(): Promise<void>;
  close(): Promise<void>;
  faultHook?: () => Error | undefined;
}

async function smallDisk(): Promise<Disk> {
  const fs: SizeLimitedFs | undefined = await mountSizeLimited(48 * 1024 * 1024);
  if (fs)
    return {
      kind: "tmpfs",
      dir: fs.dir,
      fill: async () => void (await fs.fill()),
      free: () => fs.free(),
      close: () => fs.close(),
    };
  const dir = await mkdtemp(path.join(tmpdir(), "veritrail-faulty-disk-"));
  let full = false;
  return {
    kind: "fault injection",
    dir,
    fill: async () => {
      full = true;
    },
    free: async () => {
      full = false;
    },
    close: () => rm(dir, { recursive: true, force: true }),
    faultHook: () =>
      full
        ? Object.assign(new Error("IO error: 000009.log: No space left on device"), {
            code: "LEVEL_IO_ERROR",
          })
        : undefined,
  };
}

describe("ledger on a full disk", function () {
  this.timeout(60_000);
  let disk: Disk;
  let ledger: Ledger;
  const storageEvents: StorageEvent[] = [];

  beforeEach(async () => {
    disk = await smallDisk();
    storageEvents.length = 0;
    ledger = await Ledger.open({
      location: path.join(disk.dir, "ledger"),
      receiptSigner: signer,
      batchMaxEvents: 64,
      batchMaxWaitMs: 30,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 4_096,
      storageRetryMs: 50,
      storageProbeBytes: 1024 * 1024,
      onStorage: (e) => storageEvents.push(e),
      ...(disk.faultHook ? { store: { injectWriteFault: disk.faultHook } } : {}),
    });
  });
  afterEach(async () => {
    if (ledger.store.isOpen) await ledger.close();
    await disk.close();
  });

  it("stops acknowledging with STORAGE_UNAVAILABLE, keeps what it acknowledged, and resumes by itself when space returns", async function () {
    this.test!.title += ` (${await smallDiskKind()})`;
    const acked: Receipt[] = [];
    for (let i = 0; i < 10; i++)
      acked.push(...(await ledger.ingest(events(20))).map((r) => r.receipt));
    await disk.fill();
    // Writers keep coming; the first synced write that meets the full disk fails the store.
    let refused: unknown;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      try {
        acked.push(...(await ledger.ingest(events(5))).map((r) => r.receipt));
      } catch (error) {
        refused = error;
      }
    }
    expect(refused).to.be.instanceOf(StorageUnavailableError);
    expect((refused as StorageUnavailableError).failure.reason).to.equal("ENOSPC");
    expect((refused as Error).message).to.include("no space left on device");
    const health = ledger.storageHealth();
    expect(health).to.include({ state: "failed", reason: "ENOSPC", failures: 1 });
    expect(storageEvents.map((e) => e.type)).to.deep.equal(["failed"]);

    // Later writes are refused at once; reads go on, and every acknowledged event is served.
    await expectRejected(ledger.ingest(events(1)));
    for (const r of acked) {
      const stored = await ledger.getEvent(r.seq);
      expect(toHex(entryLeafHash(stored.entry)), `seq ${r.seq}`).to.equal(r.leafHash);
    }
    // Still full: the probes fail and nothing resumes.
    await sleep(300);
    expect(ledger.storageHealth().state).to.equal("failed");

    await disk.free();
    await waitFor("writes resume", () => ledger.storageHealth().state === "ok");
    expect(storageEvents.map((e) => e.type)).to.include("recovered");
    const lastAcked = acked.reduce((m, r) => Math.max(m, r.seq), -1);
    const after = (await ledger.ingest(events(30))).map((r) => r.receipt);
    // Seqs never repeat: the new events come after every acknowledged one (a group whose write
    // failed may have reached the log before the disk filled; it was never acknowledged).
    expect(after[0]!.seq).to.be.greaterThan(lastAcked);
    await ledger.sealPending();
    for (const r of [...acked, ...after]) {
      const bundle = await ledger.prove(r.seq);
      expect(bundle.receipt.leafHash, `seq ${r.seq}`).to.equal(r.leafHash);
      expect(bundle.batch, `seq ${r.seq} sealed`).to.not.equal(null);
    }
    const report = await auditLog(ledger.store);
    expect(report.findings, JSON.stringify(report.findings.slice(0, 3))).to.deep.equal([]);
  });

  it("answers 503 STORAGE_UNAVAILABLE with Retry-After, turns /readyz and the alarm metric on, and off again", async () => {
    const keys = ApiKeys.forLedger(ledger);
    const writer = (await keys.create({ role: "writer", organization: HOSPITAL_ORG })).secret;
    const app = createApp({
      ledger,
      apiKeys: keys,
      logger: pino({ level: "silent" }),
      config: loadConfig({}),
    });
    const server = await startServer(app, { host: "127.0.0.1", port: 0 });
    const post = () =>
      fetch(`${server.url}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${writer}`, "content-type": "application/json" },
        body: JSON.stringify(events(1)[0]),
      });
    const metric = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return /veritrail_storage_failed\{reason="(\w+)"\} (\d)/.exec(text)?.slice(1);
    };
    try {
      expect((await post()).status).to.equal(201);
      expect(await metric()).to.deep.equal(["none", "0"]);
      await disk.fill();
      let answer = await post();
      for (let i = 0; i < 50 && answer.status === 201; i++) answer = await post();
      expect(answer.status).to.equal(503);
      expect(answer.headers.get("retry-after")).to.equal("5");
      const body = (await answer.json()) as { error: { code: string; message: string } };
      expect(body.error.code).to.equal("STORAGE_UNAVAILABLE");
      expect(body.error.message).to.include("nothing was acknowledged");
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).to.equal(503);
      const readyBody = (await ready.json()) as {
        error: { code: string };
        checks: { storage: { state: string; reason: string } };
      };
      expect(readyBody.error.code).to.equal("STORAGE_UNAVAILABLE");
      expect(readyBody.checks.storage).to.include({ state: "failed", reason: "ENOSPC" });
      expect(await metric()).to.deep.equal(["ENOSPC", "1"]);
      // Reads are served while writes are refused.
      const list = await fetch(`${server.url}/v1/events`, {
        headers: { authorization: `Bearer ${writer}` },
      });
      expect(list.status).to.equal(200);

      await disk.free();
      await waitFor("writes resume", () => ledger.storageHealth().state === "ok");
      expect((await post()).status).to.equal(201);
      expect((await fetch(`${server.url}/readyz`)).status).to.equal(200);
      expect(await metric()).to.deep.equal(["none", "0"]);
    } finally {
      await server.close(1_000);
    }
  });

  async function smallDiskKind(): Promise<string> {
    return disk.kind === "tmpfs" ? "real ENOSPC on a full 48 MiB tmpfs" : "injected ENOSPC";
  }
});

async function expectRejected(p: Promise<unknown>): Promise<void> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error).to.be.instanceOf(StorageUnavailableError);
}

/**
 * A backup from the store's side, on real LevelDB directories: the snapshot a running store
 * copies (LedgerStore.snapshotCopy) is the store as of that call, whatever is written while it
 * is read; written as a backup and verified, it loads into a fresh LevelDB (loadBackup) record
 * for record, with the body-key file and the restore marker (`m:restore`, the JSON text of the
 * marker, as the restore wrote it before), and that copy opens as a ledger store.
 */
import { expect } from "chai";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  FrameDecoder,
  backupTarget,
  loadBackup,
  verifyBackup,
  writeBackup,
} from "../../../services/store/backup-archive.ts";
import { BODY_KEYS_FILE } from "../../../services/store/body-keys.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";
import type { RestoreMarker } from "../../../services/store/restore-records.ts";
import { storeOnDisk } from "../../support/store-on-disk.ts";

const hex12 = (n: number) => n.toString(16).padStart(12, "0");
const LOG_ID = `0x${"7e".repeat(32)}`;

describe("store/backup-archive (LevelDB on disk)", () => {
  const disk = storeOnDisk("backup-archive");
  let scratch: string;

  beforeEach(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "veritrail-backup-archive-"));
    await disk.store.putMeta({
      logId: LOG_ID,
      logSecret: "00".repeat(32),
      createdAt: "2026-05-01T09:00:00.000Z",
      formatVersion: 1,
    });
    const ops = [];
    for (let seq = 0; seq < 1_500; seq++)
      ops.push({
        type: "put" as const,
        key: `e:${hex12(seq)}`,
        value: Buffer.from(`entry ${seq}`),
      });
    await disk.store.write(ops);
  });

  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  async function everything(store: LedgerStore): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for await (const [k, v] of store.scan({})) out.push([k, v.toString("hex")]);
    return out;
  }

  /** The store backed up (written and verified), and the marker a restore of it sets. */
  async function backUp() {
    const copy = await disk.store.snapshotCopy();
    const target = await backupTarget(path.join(scratch, "out") + path.sep, LOG_ID);
    await writeBackup(target, {
      bytes: copy.frames,
      source: "offline",
      ingestPausedMs: 0,
      bodyKeys: copy.bodyKeys,
      startedAt: Date.now(),
    });
    const backup = await verifyBackup(target.path);
    const marker: RestoreMarker = {
      restoredAt: "2026-05-04T10:00:00.000Z",
      backup: {
        createdAt: backup.manifest.createdAt,
        headSeq: backup.manifest.headSeq,
        lastSealedBatchNo: -1,
        lastAnchoredBatchNo: -1,
        manifestSha256: backup.manifestSha256,
      },
    };
    return { bodyKeys: copy.bodyKeys, backup, marker };
  }

  it("the snapshot is the store as of the call, whatever is written while it is read", async () => {
    const before = await everything(disk.store);
    const copy = await disk.store.snapshotCopy();
    await disk.store.write([
      { type: "put", key: `e:${hex12(1_500)}`, value: Buffer.from("later") },
      { type: "del", key: `e:${hex12(3)}` },
    ]);
    const decoder = new FrameDecoder();
    const frames = [];
    for await (const bytes of copy.frames) frames.push(...decoder.push(bytes));
    decoder.finish();
    expect(frames.map((f) => [f.key, f.value.toString("hex")])).to.deep.equal(before);
    expect(copy.bodyKeys.length).to.be.greaterThan(0);
  });

  it("a written and verified backup loads record for record, marked as restored", async () => {
    const { bodyKeys, backup, marker } = await backUp();
    const location = path.join(scratch, "restored");
    const progress: number[] = [];
    const records = await loadBackup(backup, location, marker, (n) => progress.push(n));
    expect(records).to.equal(1_501);
    expect(progress[progress.length - 1]).to.equal(1_501);

    const original = await everything(disk.store);
    const restored = await LedgerStore.open(location);
    try {
      const markerText = `{"restoredAt":"2026-05-04T10:00:00.000Z","backup":{"createdAt":"${backup.manifest.createdAt}","headSeq":1500,"lastSealedBatchNo":-1,"lastAnchoredBatchNo":-1,"manifestSha256":"${backup.manifestSha256}"}}`;
      expect(await everything(restored)).to.deep.equal(
        [
          ...original,
          ["m:restore", Buffer.from(markerText).toString("hex")] as [string, string],
        ].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      );
      expect(await restored.getRestoreMarker()).to.deep.equal(marker);
    } finally {
      await restored.close();
    }
    expect(await readFile(path.join(location, BODY_KEYS_FILE))).to.deep.equal(bodyKeys);
  });

  it("refuses to load over an existing LevelDB", async () => {
    const { backup, marker } = await backUp();
    const error = await loadBackup(backup, disk.dir, marker).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(Error);
    expect(await disk.store.getRestoreMarker()).to.equal(undefined);
    expect(await disk.store.nextSeq()).to.equal(1_500);
  });
});

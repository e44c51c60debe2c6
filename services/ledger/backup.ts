/**
 * Backup and restore of one log's data directory (docs/operations.md).
 *
 * Backup: a running service holds LevelDB's lock, so another process cannot read the database.
 * The service itself takes the copy when asked over its control socket (api/control-socket.ts):
 * `Ledger.backupStream` holds acknowledgements back for as long as it takes to seal the
 * unsealed tail and take a LevelDB snapshot, then streams the snapshot while ingest goes on.
 * With no service running, `offlineBackupStream` opens the ledger itself and does the same.
 * Either way the CLI writes the frames as a `veritrail-backup/1` backup (store/backup-archive.ts).
 *
 * Restore: the backup is verified whole, loaded into a fresh LevelDB next to the data
 * directory's ledger, marked as restored (`m:restore`) and moved into place. The service then
 * compares it with the chain before it accepts anything (restore-reconcile.ts).
 */
import { ZeroAddress } from "ethers";
import { access, mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TypedDataSigner } from "../core/receipt.ts";
import { DEPLOYMENT_FILE, type VerifiedBackup, loadBackup } from "../store/backup-archive.ts";
import { Ledger } from "./ledger.ts";
import type { RestoreMarker } from "./lost-ranges.ts";

/** The archive format the CLI and the control socket speak (the store writes and reads it). */
export {
  type BackupManifest,
  DEPLOYMENT_FILE,
  END_MARKER,
  backupTarget,
  verifyBackup,
  writeBackup,
} from "../store/backup-archive.ts";

/** Opening the ledger to copy it signs nothing: a signer that refuses. */
const NO_RECEIPTS: TypedDataSigner = {
  getAddress: () => Promise.resolve(ZeroAddress),
  signTypedData: () => Promise.reject(new Error("a ledger opened for a backup signs no receipts")),
};

/**
 * The frames of a ledger no service holds (the CLI without a running service). The tail left
 * unsealed by the last stop is sealed first, as the service would at its next start.
 */
export async function offlineBackupStream(location: string): Promise<{
  logId: string;
  ingestPausedMs: number;
  headSeq: number;
  bodyKeys: Buffer;
  frames: AsyncGenerator<Buffer>;
  close: () => Promise<void>;
}> {
  const ledger = await Ledger.open({
    location,
    receiptSigner: NO_RECEIPTS,
    // Sealing settings only matter for the tail sealed here: one batch per 10,000 events.
    batchMaxEvents: 10_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 1,
  });
  try {
    const stream = await ledger.backupStream();
    return { ...stream, logId: ledger.logId, ingestPausedMs: 0, close: () => ledger.close() };
  } catch (error) {
    await ledger.close();
    throw error;
  }
}

export interface RestoreResult {
  location: string;
  /** Where the ledger that was there before went (never deleted). */
  replaced?: string;
  deploymentRestored: boolean;
  records: number;
}

/**
 * Loads a verified backup as the ledger of `dataDir` (`<dataDir>/ledger`). An existing ledger is
 * refused unless `force`, and then moved aside to `ledger.replaced-<time>`, never deleted.
 */
export async function restoreBackup(
  backup: VerifiedBackup,
  dataDir: string,
  opts: { force: boolean; now?: Date; onProgress?: (records: number) => void },
): Promise<RestoreResult> {
  const now = opts.now ?? new Date();
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
  const location = path.join(dataDir, "ledger");
  const exists = await access(location).then(
    () => true,
    () => false,
  );
  if (exists && !opts.force)
    throw new Error(
      `${location} already holds a ledger; pass --force to move it aside (to ledger.replaced-${stamp}) and restore`,
    );
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const loading = path.join(dataDir, `ledger.restoring-${stamp}`);
  const { manifest } = backup;
  const marker: RestoreMarker = {
    restoredAt: now.toISOString(),
    backup: {
      createdAt: manifest.createdAt,
      headSeq: manifest.headSeq,
      lastSealedBatchNo: manifest.lastSealedBatch?.batchNo ?? -1,
      lastAnchoredBatchNo: manifest.lastAnchoredBatch?.batchNo ?? -1,
      manifestSha256: backup.manifestSha256,
    },
  };
  let records: number;
  try {
    records = await loadBackup(backup, loading, marker, opts.onProgress);
  } catch (error) {
    await rm(loading, { recursive: true, force: true });
    throw error;
  }
  let replaced: string | undefined;
  if (exists) {
    replaced = path.join(dataDir, `ledger.replaced-${stamp}`);
    await rename(location, replaced);
  }
  await rename(loading, location);
  let deploymentRestored = false;
  if (backup.deployment) {
    const file = path.join(dataDir, DEPLOYMENT_FILE);
    const present = await access(file).then(
      () => true,
      () => false,
    );
    if (!present) {
      await writeFile(file, backup.deployment, { mode: 0o600 });
      deploymentRestored = true;
    }
  }
  return { location, ...(replaced ? { replaced } : {}), deploymentRestored, records };
}

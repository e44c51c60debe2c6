/**
 * What the store does when the disk refuses a write (a full disk, a quota, an I/O error).
 *
 * LevelDB makes such a failure sticky: once a write-ahead-log append or a background compaction
 * fails, the database refuses every later write until it is reopened ("the log record we just
 * added may or may not show up when the DB is re-opened", db_impl.cc). Acknowledged events are
 * never at risk — they were synced before they were acknowledged, and LevelDB writes new files
 * instead of changing old ones — but nothing new can be acknowledged. So the store fails fast:
 * the first failed write records a {@link StorageFailure}, every later write is refused with a
 * {@link StorageUnavailableError} without touching the disk, and the ledger reopens the store
 * once a probe write shows that the disk takes writes again.
 */
import { open, unlink } from "node:fs/promises";
import path from "node:path";

/** Why writes stop: the errno LevelDB reported, when it is one of these. */
export type StorageFailureReason = "ENOSPC" | "EDQUOT" | "EIO" | "EROFS" | "IO_ERROR";

export interface StorageFailure {
  reason: StorageFailureReason;
  /** LevelDB's message (file names inside the data directory; no event data). */
  message: string;
  /** When the first failed write happened (ms since the epoch). */
  since: number;
}

/** A write refused because the store cannot write right now; nothing was acknowledged. */
export class StorageUnavailableError extends Error {
  readonly code = "STORAGE_UNAVAILABLE";

  constructor(readonly failure: StorageFailure) {
    super(
      `the ledger cannot write to its disk (${describeReason(failure.reason)}); nothing was acknowledged; retry later`,
    );
    this.name = "StorageUnavailableError";
  }
}

export function describeReason(reason: StorageFailureReason): string {
  switch (reason) {
    case "ENOSPC":
      return "no space left on device";
    case "EDQUOT":
      return "disk quota exceeded";
    case "EIO":
      return "input/output error";
    case "EROFS":
      return "read-only file system";
    case "IO_ERROR":
      return "I/O error";
  }
}

/**
 * The failure a LevelDB write error stands for, or undefined when the error is not the disk's
 * (the database was closed by a shutdown). classic-level reports an errno only in its message
 * text (`IO error: <file>: No space left on device`), so the text is matched.
 */
export function storageFailureOf(error: unknown, now = Date.now()): StorageFailure | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (code === "LEVEL_DATABASE_NOT_OPEN" || code === "LEVEL_DATABASE_NOT_CLOSED") return undefined;
  const text = `${error.message} ${String((error as { cause?: unknown }).cause ?? "")}`;
  const reason: StorageFailureReason = /No space left on device|ENOSPC/i.test(text)
    ? "ENOSPC"
    : /Disk quota exceeded|EDQUOT/i.test(text)
      ? "EDQUOT"
      : /Read-only file system|EROFS/i.test(text)
        ? "EROFS"
        : /Input\/output error|EIO\b/i.test(text)
          ? "EIO"
          : "IO_ERROR";
  return { reason, message: error.message.slice(0, 300), since: now };
}

/** The probe file's name inside the LevelDB directory (LevelDB ignores names it did not make). */
export const WRITE_PROBE_FILE = "VERITRAIL-WRITE-PROBE";

/**
 * Writes `bytes` to a probe file in `dir`, syncs it and removes it. Resolves when the disk took
 * the write, rejects with the file system's error otherwise. Reopening LevelDB writes a new log
 * and manifest, and the next group commit and compaction need room too: a probe of a few MiB
 * says there is room for them, where a free-space figure would miss quotas and reserved blocks.
 */
export async function probeWritable(dir: string, bytes: number): Promise<void> {
  const file = path.join(dir, WRITE_PROBE_FILE);
  const handle = await open(file, "w", 0o600);
  try {
    const chunk = Buffer.alloc(Math.min(bytes, 1024 * 1024), 0xa5);
    for (let written = 0; written < bytes; written += chunk.length) {
      await handle.write(chunk, 0, Math.min(chunk.length, bytes - written));
    }
    await handle.sync();
  } finally {
    await handle.close();
    await unlink(file).catch(() => undefined);
  }
}

/**
 * A small file system that can be filled up: a tmpfs of a given size mounted on a fresh temp
 * directory (needs root or CAP_SYS_ADMIN, as on this project's machines and CI). `fill()` writes
 * a ballast file until the disk says ENOSPC; `free()` deletes it: "another process filled the
 * disk, then someone cleaned up". Where mounting is refused, `mountSizeLimited` returns
 * undefined and the caller falls back to fault injection (and says so).
 */
import { execFile } from "node:child_process";
import { mkdtemp, open, rm, rmdir, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface SizeLimitedFs {
  dir: string;
  sizeBytes: number;
  /** Writes a ballast file until ENOSPC; resolves with the bytes written. */
  fill(): Promise<number>;
  /** Deletes the ballast. */
  free(): Promise<void>;
  /** Unmounts and removes the mount point (call in `after`, also on failure). */
  close(): Promise<void>;
}

export async function mountSizeLimited(sizeBytes: number): Promise<SizeLimitedFs | undefined> {
  if (process.platform !== "linux") return undefined;
  const dir = await mkdtemp(path.join(tmpdir(), "veritrail-small-disk-"));
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0700`, "tmpfs", dir]);
  } catch {
    await rmdir(dir).catch(() => undefined);
    return undefined;
  }
  const ballast = path.join(dir, "ballast");
  let mounted = true;
  return {
    dir,
    sizeBytes,
    async fill() {
      const handle = await open(ballast, "a");
      const chunk = Buffer.alloc(256 * 1024, 1);
      let written = 0;
      try {
        for (;;) {
          try {
            const { bytesWritten } = await handle.write(chunk);
            written += bytesWritten;
            if (bytesWritten < chunk.length) break;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOSPC") break;
            throw error;
          }
        }
        // The last partial pages too: tmpfs refuses at page granularity.
        for (let size = 4096; size >= 1; size = Math.floor(size / 2)) {
          for (;;) {
            try {
              const { bytesWritten } = await handle.write(chunk.subarray(0, size));
              written += bytesWritten;
              if (bytesWritten < size) break;
            } catch {
              break;
            }
          }
        }
      } finally {
        await handle.close();
      }
      return written;
    },
    async free() {
      await unlink(ballast).catch(() => undefined);
    },
    async close() {
      if (!mounted) return;
      mounted = false;
      await run("umount", ["-l", dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

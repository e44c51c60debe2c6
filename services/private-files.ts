import { chmod, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";

/**
 * DATA_DIR holds the log (events, the log secret, API key hashes), the dev deployment and the
 * dev chain's pid file: nothing in it is for other users of the machine. Directories are 0700
 * and files 0600, for what the service writes itself and for LevelDB's own files, which
 * classic-level creates with the process umask.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** The umask that gives new files 0600 and new directories 0700. */
const PRIVATE_UMASK = 0o077;

/**
 * Makes every file and directory this process creates from now on private to its user (LevelDB
 * opens its files itself, so only the umask reaches them). The service process sets it once at
 * start; it is the process's, not one call's.
 */
export function restrictNewFileModes(): void {
  process.umask(PRIVATE_UMASK);
}

/**
 * Creates `dir` (0700) if needed and makes what is already in it private: directories 0700,
 * files 0600 (an existing DATA_DIR from before, or one restored from a backup with other
 * modes). Symbolic links are neither followed nor changed.
 */
export async function makeTreePrivate(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const walk = async (at: string): Promise<void> => {
    const info = await lstat(at);
    if (info.isSymbolicLink()) return;
    if (info.isDirectory()) {
      if ((info.mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(at, PRIVATE_DIR_MODE);
      for (const name of await readdir(at)) await walk(path.join(at, name));
    } else if ((info.mode & 0o777 & ~PRIVATE_FILE_MODE) !== 0) {
      await chmod(at, info.mode & 0o777 & PRIVATE_FILE_MODE);
    }
  };
  await walk(dir);
}

/**
 * Writes `file` (0600) atomically: a temporary file beside it is written and synced, then
 * renamed over it, so a crash leaves the old content or the new, never half of one.
 */
export async function writePrivateFile(file: string, content: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, "w", PRIVATE_FILE_MODE);
  try {
    await handle.writeFile(content, "utf8");
    await handle.chmod(PRIVATE_FILE_MODE);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
}

export async function removePrivateFile(file: string): Promise<void> {
  await rm(file, { force: true });
}

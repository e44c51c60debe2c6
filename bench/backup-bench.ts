/**
 * What a backup costs (docs/operations.md): a log of `--events` events is built in-process, then
 *
 *   1. while writers keep posting (the group committer under concurrent load), a backup is taken
 *      the way the service takes one for `veritrail backup` (Ledger.backupStream → frames →
 *      archive): how long ingest is held back, how long the copy takes, and the ingest rate
 *      during the copy against the rate just before it (same run);
 *   2. the archive's size as .tar and as .tar.gz, against the LevelDB directory's size;
 *   3. `veritrail restore` of it (verify whole, load into a fresh LevelDB).
 *
 *   node --import tsx bench/backup-bench.ts [--events 100000] [--writers 16]
 */
import { Command } from "commander";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { restoreBackup } from "../services/ledger/backup.ts";
import { backupTarget, verifyBackup, writeBackup } from "../services/store/backup-archive.ts";
import { benchEvent, ingestHonouringBackpressure, openBenchLedger } from "./ledger-bench.ts";

const o = new Command()
  .option("--events <n>", "events in the log before the backup", (v) => Number(v), 100_000)
  .option("--writers <n>", "concurrent writers during the backup", (v) => Number(v), 16)
  .parse()
  .opts<{ events: number; writers: number }>();

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true }))
    total += e.isDirectory()
      ? await dirBytes(path.join(dir, e.name))
      : (await stat(path.join(dir, e.name))).size;
  return total;
}

const root = await mkdtemp(path.join(tmpdir(), "veritrail-backup-bench-"));
try {
  // Opened as the service opens its ledger (sealing worker, memory bounds, backpressure).
  const ledger = await openBenchLedger(path.join(root, "data", "ledger"));
  let built = 0;
  const build0 = Date.now();
  while (built < o.events) {
    const n = Math.min(1_000, o.events - built);
    await ingestHonouringBackpressure(
      ledger,
      Array.from({ length: n }, (_, i) => benchEvent(built + i, 10_000)),
    );
    built += n;
  }
  await ledger.sealPending();
  process.stderr.write(`built ${built} events in ${((Date.now() - build0) / 1000).toFixed(0)} s\n`);

  // Writers post single events, as API clients do, throughout.
  let stop = false;
  let acked = 0;
  let serial = built;
  const writer = async () => {
    while (!stop) {
      await ingestHonouringBackpressure(ledger, [benchEvent(serial++, 10_000)]);
      acked++;
    }
  };
  const writers = Array.from({ length: o.writers }, writer);
  const rate = async (ms: number) => {
    const a = acked;
    await new Promise((r) => setTimeout(r, ms));
    return ((acked - a) * 1000) / ms;
  };
  const before = await rate(3_000);
  const t0 = Date.now();
  const ackedAtStart = acked;
  const stream = await ledger.backupStream();
  const archive = path.join(root, "backup.tar");
  const manifest = await writeBackup(await backupTarget(archive, ledger.logId), {
    bytes: stream.frames,
    bodyKeys: stream.bodyKeys,
    source: "service",
    ingestPausedMs: stream.ingestPausedMs,
    startedAt: t0,
  });
  const copyMs = Date.now() - t0;
  const during = ((acked - ackedAtStart) * 1000) / copyMs;
  stop = true;
  await Promise.all(writers);
  await ledger.close();
  const gz = path.join(root, "backup.tar.gz");
  const gz0 = Date.now();
  const again = await openBenchLedger(path.join(root, "data", "ledger"));
  const s2 = await again.backupStream();
  await writeBackup(await backupTarget(gz, again.logId), {
    bytes: s2.frames,
    bodyKeys: s2.bodyKeys,
    source: "offline",
    ingestPausedMs: 0,
    startedAt: gz0,
  });
  const gzMs = Date.now() - gz0;
  await again.close();
  const r0 = Date.now();
  const verified = await verifyBackup(archive);
  const verifyMs = Date.now() - r0;
  await restoreBackup(verified, path.join(root, "restored"), { force: false });
  const restoreMs = Date.now() - r0;
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const rows = [
    ["events in the copy", `${manifest.headSeq}`],
    ["LevelDB directory", mb(await dirBytes(path.join(root, "data", "ledger")))],
    [
      "backup (.tar), from the running ledger",
      `${(copyMs / 1000).toFixed(1)} s, ${mb((await stat(archive)).size)}`,
    ],
    ["ingest held back (seal tail + snapshot)", `${manifest.ingestPausedMs} ms`],
    [
      `ingest during the copy (${o.writers} writers)`,
      `${during.toFixed(0)} events/s, ${before.toFixed(0)} just before`,
    ],
    ["backup (.tar.gz)", `${(gzMs / 1000).toFixed(1)} s, ${mb((await stat(gz)).size)}`],
    ["restore: verify", `${(verifyMs / 1000).toFixed(1)} s`],
    ["restore: verify + load", `${(restoreMs / 1000).toFixed(1)} s`],
  ];
  process.stdout.write(
    `| ${o.events} events | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join("\n")}\n`,
  );
} finally {
  await rm(root, { recursive: true, force: true });
}

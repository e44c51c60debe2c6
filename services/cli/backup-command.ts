/**
 * `veritrail backup --data <DATA_DIR> --out <file|dir>` and
 * `veritrail restore --from <file|dir> --data <DATA_DIR> [--force] [--dry-run]`
 * (services/ledger/backup.ts, store/backup-archive.ts, docs/operations.md).
 *
 * backup: asks the running service over its control socket for a consistent copy (ingest is
 * held back while the tail is sealed and a snapshot taken; the command says for how long); with
 * no service running it opens the ledger itself. `--out` names an archive file (`.tar`, or
 * `.tar.gz`/`.tgz` compressed) or an existing directory to create a backup directory in.
 *
 * restore: verifies the backup whole, then loads it as `<DATA_DIR>/ledger` (an existing ledger
 * is refused, or with --force moved aside, never deleted). The service must be stopped. On its
 * next start it compares the copy with the chain before it accepts events.
 *
 * Exit code: 0 done, 2 a usage error or a backup/restore that could not be done.
 */
import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { controlSocketPath } from "../api/control-socket.ts";
import { offlineBackupStream, restoreBackup } from "../ledger/backup.ts";
import {
  type BackupManifest,
  DEPLOYMENT_FILE,
  backupTarget,
  verifyBackup,
  writeBackup,
} from "../ledger/backup.ts";
import { type CliContext, EXIT_OK, EXIT_USAGE } from "./context.ts";

interface BackupOptions {
  data: string;
  out: string;
  json: boolean;
}

interface RestoreOptions {
  from: string;
  data: string;
  force: boolean;
  dryRun: boolean;
  json: boolean;
}

export function registerBackupCommands(program: Command, ctx: CliContext): void {
  program
    .command("backup")
    .description(
      "take a consistent copy of a log's ledger (from the running service, or offline) with a manifest",
    )
    .requiredOption("--data <dir>", "the service's DATA_DIR")
    .requiredOption(
      "--out <file|dir>",
      "an archive to create (.tar, .tar.gz, .tgz) or an existing directory to create the backup in",
    )
    .option("--json", "print the manifest and the path as JSON on stdout", false)
    .action(async (opts: BackupOptions) => {
      ctx.exitCode = await runBackup(opts, ctx);
    });
  program
    .command("restore")
    .description(
      "verify a backup and load it as DATA_DIR's ledger; the service reconciles it with the chain at its next start",
    )
    .requiredOption("--from <file|dir>", "the backup (archive file or backup directory)")
    .requiredOption("--data <dir>", "the service's DATA_DIR (the service must be stopped)")
    .addOption(
      new Option("--force", "move an existing ledger aside (ledger.replaced-<time>)").default(
        false,
      ),
    )
    .option("--dry-run", "verify the backup and print its manifest; change nothing", false)
    .option("--json", "print the result as JSON on stdout", false)
    .action(async (opts: RestoreOptions) => {
      ctx.exitCode = await runRestore(opts, ctx);
    });
}

/** The running service's control socket, or undefined when no service answers there. */
async function serviceSocket(dataDir: string): Promise<string | undefined> {
  const socketPath = await controlSocketPath(dataDir);
  const status = await new Promise<number | undefined>((resolve) => {
    const req = http.request(
      { socketPath, path: "/status", method: "GET", timeout: 5_000 },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on("error", () => resolve(undefined));
    req.on("timeout", () => {
      req.destroy();
      resolve(undefined);
    });
    req.end();
  });
  return status === 200 ? socketPath : undefined;
}

/** POST /backup on the control socket: the head line, then the frame bytes. */
async function backupFromService(socketPath: string): Promise<{
  head: { logId: string; ingestPausedMs: number; headSeq: number; bodyKeys: string };
  bytes: AsyncIterable<Buffer>;
}> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ socketPath, path: "/backup", method: "POST" }, resolve);
    req.on("error", reject);
    req.end();
  });
  const iterator = (res as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let buffered = Buffer.alloc(0);
  for (;;) {
    const newline = buffered.indexOf(0x0a);
    if (newline >= 0) break;
    const next = await iterator.next();
    if (next.done) break;
    buffered = Buffer.concat([buffered, next.value]);
  }
  const newline = buffered.indexOf(0x0a);
  const headText = buffered.toString("utf8", 0, newline < 0 ? buffered.length : newline);
  if (res.statusCode !== 200) {
    let rest = headText;
    for (let n = await iterator.next(); !n.done; n = await iterator.next()) rest += String(n.value);
    let message = rest;
    try {
      message = (JSON.parse(rest) as { error: { message: string } }).error.message;
    } catch {
      // not the error envelope: say what came
    }
    throw new Error(`the service refused the backup (${res.statusCode}): ${message}`);
  }
  const head = JSON.parse(headText) as {
    logId: string;
    ingestPausedMs: number;
    headSeq: number;
    bodyKeys: string;
  };
  const first = buffered.subarray(newline + 1);
  const bytes = (async function* () {
    if (first.length > 0) yield first;
    for (let n = await iterator.next(); !n.done; n = await iterator.next()) yield n.value;
  })();
  return { head, bytes };
}

export async function runBackup(opts: BackupOptions, ctx: CliContext): Promise<number> {
  const startedAt = Date.now();
  const dataDir = path.resolve(opts.data);
  const location = path.join(dataDir, "ledger");
  const deployment = await readFile(path.join(dataDir, DEPLOYMENT_FILE)).catch(() => undefined);
  let socket: string | undefined;
  try {
    socket = await serviceSocket(dataDir);
  } catch (e) {
    ctx.stderr.write(`veritrail backup: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  let bytes: AsyncIterable<Buffer>;
  let logId: string;
  let ingestPausedMs: number;
  let bodyKeys: Buffer;
  let close: (() => Promise<void>) | undefined;
  try {
    if (socket) {
      const fromService = await backupFromService(socket);
      ({ logId, ingestPausedMs } = fromService.head);
      bodyKeys = Buffer.from(fromService.head.bodyKeys, "base64");
      bytes = fromService.bytes;
    } else {
      const offline = await offlineBackupStream(location);
      logId = offline.logId;
      ingestPausedMs = 0;
      bodyKeys = offline.bodyKeys;
      bytes = offline.frames;
      close = offline.close;
    }
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    ctx.stderr.write(
      `veritrail backup: ${
        cause?.code === "LEVEL_LOCKED"
          ? `${location} is in use, but no service answers on its control socket (${await controlSocketPath(dataDir)}); is the service starting or stopping?`
          : (e as Error).message
      }\n`,
    );
    return EXIT_USAGE;
  }
  const bar =
    ctx.stderr.isTTY === true
      ? new SingleBar({
          stream: ctx.stderr,
          format: "copying {value} records, {mb} MB",
          hideCursor: true,
        })
      : undefined;
  bar?.start(0, 0, { mb: "0" });
  let manifest: BackupManifest;
  let target: { kind: "directory" | "archive"; path: string };
  try {
    target = await backupTarget(opts.out, logId);
    manifest = await writeBackup(
      target,
      {
        bytes,
        source: socket ? "service" : "offline",
        ingestPausedMs,
        bodyKeys,
        ...(deployment ? { deployment } : {}),
        startedAt,
        expectEndMarker: socket !== undefined,
      },
      (records, total) => bar?.update(records, { mb: (total / 1e6).toFixed(0) }),
    );
  } catch (e) {
    ctx.stderr.write(`veritrail backup: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  } finally {
    bar?.stop();
    await close?.();
  }
  if (opts.json) {
    ctx.stdout.write(`${JSON.stringify({ path: target.path, kind: target.kind, manifest })}\n`);
  } else {
    ctx.stdout.write(describeBackup(target, manifest));
  }
  return EXIT_OK;
}

function describeBackup(
  target: { kind: "directory" | "archive"; path: string },
  m: BackupManifest,
): string {
  const sealed = m.lastSealedBatch;
  const anchored = m.lastAnchoredBatch;
  const size = m.files.reduce((n, f) => n + f.bytes, 0);
  return [
    `backup of log ${m.logId} → ${target.path} (${target.kind})`,
    `  events 0..${m.headSeq - 1} (head seq ${m.headSeq}), every one in a sealed batch`,
    `  last sealed batch ${sealed ? `${sealed.batchNo} (seqs ${sealed.firstSeq}..${sealed.firstSeq + sealed.count - 1})` : "none"}; last anchored ${anchored ? `${anchored.batchNo} (tx ${anchored.anchor?.txHash ?? "?"}, block ${anchored.anchor?.blockNumber ?? "?"})` : "none"}`,
    `  ${m.records} records, ${(size / 1e6).toFixed(1)} MB in ${m.files.length} files (SHA-256 in manifest.json)`,
    m.source === "service"
      ? `  taken from the running service: ingest paused ${m.ingestPausedMs} ms (tail sealed, snapshot taken); ${(m.durationMs / 1000).toFixed(1)} s in all`
      : `  taken offline (no service running); ${(m.durationMs / 1000).toFixed(1)} s`,
    "",
  ].join("\n");
}

export async function runRestore(opts: RestoreOptions, ctx: CliContext): Promise<number> {
  const dataDir = path.resolve(opts.data);
  try {
    if (await serviceSocket(dataDir)) {
      ctx.stderr.write(`veritrail restore: a service is running on ${dataDir}; stop it first\n`);
      return EXIT_USAGE;
    }
  } catch (e) {
    ctx.stderr.write(`veritrail restore: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  let verified;
  try {
    verified = await verifyBackup(path.resolve(opts.from));
  } catch (e) {
    ctx.stderr.write(`veritrail restore: the backup does not verify: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  const m = verified.manifest;
  const summary = `backup of log ${m.logId} taken ${m.createdAt}: ${m.records} records, events 0..${m.headSeq - 1}, last sealed batch ${m.lastSealedBatch?.batchNo ?? "none"}, last anchored ${m.lastAnchoredBatch?.batchNo ?? "none"}; every file matches its SHA-256`;
  if (opts.dryRun) {
    if (opts.json) ctx.stdout.write(`${JSON.stringify({ verified: true, manifest: m })}\n`);
    else ctx.stdout.write(`${summary}\n(dry run: nothing restored)\n`);
    return EXIT_OK;
  }
  let result;
  try {
    result = await restoreBackup(verified, dataDir, { force: opts.force });
  } catch (e) {
    ctx.stderr.write(`veritrail restore: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (opts.json) {
    ctx.stdout.write(`${JSON.stringify({ ...result, manifest: m })}\n`);
    return EXIT_OK;
  }
  ctx.stdout.write(
    [
      summary,
      `restored as ${result.location}${result.replaced ? ` (the ledger that was there is now ${result.replaced})` : ""}${result.deploymentRestored ? "; deployment.json restored" : ""}`,
      "On its next start the service compares this copy with the chain before it accepts events:",
      `batches the chain anchored after the backup (seqs from ${m.headSeq} on) are reported as lost, and new`,
      "events continue after the chain's last anchored seq, so no seq is ever given twice.",
      "",
    ].join("\n"),
  );
  return EXIT_OK;
}

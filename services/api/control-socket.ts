/**
 * The service's local control socket: HTTP over a Unix domain socket in DATA_DIR, for the
 * operator's own commands on the same machine (`veritrail backup` while the service runs).
 * Access is the file system's: the socket is 0600 inside the data directory, so only the
 * account that runs the service can connect. It is not part of the public API and carries no
 * API keys.
 *
 *   GET  /status   { logId, nextSeq, sealedThrough, storage, restorePending, lostRanges }
 *   POST /backup   200, then: one JSON line (ingestPausedMs, headSeq, logId, the body-key file
 *                  in base64), the snapshot's
 *                  frames (store/backup-archive.ts), the end marker, one JSON trailer line
 */
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import type { Logger } from "pino";
import type { Ledger } from "../ledger/ledger.ts";
import { END_MARKER } from "../ledger/backup.ts";
import { toApiError } from "./errors.ts";

/** sun_path holds 108 bytes on Linux (104 on macOS): longer data directories use a fallback. */
const MAX_SOCKET_PATH = 100;

/**
 * Where the control socket of the service on `dataDir` is: `<dataDir>/control.sock`, or, when
 * that path is too long for a socket, a name derived from it in a private directory of this
 * user under the temp dir. The service and the CLI compute the same path.
 */
export async function controlSocketPath(dataDir: string): Promise<string> {
  const resolved = path.resolve(dataDir);
  const direct = path.join(resolved, "control.sock");
  if (Buffer.byteLength(direct) <= MAX_SOCKET_PATH) return direct;
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(os.tmpdir(), `veritrail-${uid}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (!info.isDirectory() || info.uid !== uid || (info.mode & 0o077) !== 0)
    throw new Error(`${dir} is not a private directory of this user; refusing to use it`);
  const digest = createHash("sha256").update(resolved).digest("hex").slice(0, 16);
  return path.join(dir, `${digest}.sock`);
}

export interface ControlSocket {
  path: string;
  close(): Promise<void>;
}

export async function startControlSocket(
  ledger: Ledger,
  dataDir: string,
  logger: Logger,
): Promise<ControlSocket> {
  const socketPath = await controlSocketPath(dataDir);
  // A socket file left by a killed service. Only one service holds this data directory (LevelDB's
  // lock), and it is this one, so nobody else is listening there.
  await unlink(socketPath).catch(() => undefined);
  const server = http.createServer((req, res) => {
    void handle(ledger, logger, req, res);
  });
  server.listen(socketPath);
  await once(server, "listening");
  await chmod(socketPath, 0o600);
  return {
    path: socketPath,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await unlink(socketPath).catch(() => undefined);
    },
  };
}

async function handle(
  ledger: Ledger,
  logger: Logger,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    if (req.method === "GET" && req.url === "/status") {
      sendJson(res, 200, {
        logId: ledger.logId,
        nextSeq: ledger.nextSeq,
        sealedThrough: ledger.sealedThrough,
        storage: ledger.storageHealth(),
        restorePending: ledger.restorePending ?? null,
        lostRanges: ledger.lostRanges(),
      });
      return;
    }
    if (req.method === "POST" && req.url === "/backup") {
      await streamBackup(ledger, logger, res);
      return;
    }
    sendJson(res, 404, { error: { code: "NOT_FOUND", message: "no such control route" } });
  } catch (error) {
    if (res.headersSent) {
      // Mid-stream: cut the connection; the client sees no end marker and discards the copy.
      res.destroy();
      logger.error({ err: error }, "backup stream failed");
      return;
    }
    const { error: apiError } = toApiError(error);
    sendJson(res, apiError.status, apiError.body());
  }
}

async function streamBackup(
  ledger: Ledger,
  logger: Logger,
  res: http.ServerResponse,
): Promise<void> {
  const started = Date.now();
  const { ingestPausedMs, headSeq, bodyKeys, frames } = await ledger.backupStream();
  logger.info(
    { ingestPausedMs: Math.round(ingestPausedMs), headSeq },
    "backup: tail sealed and snapshot taken; streaming it",
  );
  res.writeHead(200, { "content-type": "application/vnd.veritrail.kv-stream" });
  res.write(
    `${JSON.stringify({ logId: ledger.logId, ingestPausedMs, headSeq, bodyKeys: bodyKeys.toString("base64") })}\n`,
  );
  let pages = 0;
  let bytes = 0;
  try {
    for await (const page of frames) {
      pages++;
      bytes += page.length;
      if (!res.write(page))
        await new Promise<void>((resolve) => {
          res.once("drain", resolve);
          res.once("close", resolve);
        });
      if (res.destroyed) throw new Error("the backup client went away");
    }
  } finally {
    await frames.return(undefined);
  }
  res.write(END_MARKER);
  res.end(`${JSON.stringify({ pages, bytes })}\n`);
  logger.info({ bytes, ms: Date.now() - started }, "backup: snapshot streamed");
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json" });
  res.end(text);
}

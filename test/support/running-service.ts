/**
 * The whole service as `npm start` runs it (embedded Hardhat node, registry deployed, log
 * registered, anchor loop, LevelDB, HTTP API), in this process on free loopback ports with a
 * temp DATA_DIR, plus a way to run `bin/veritrail.js` against it the way a user does.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { runCli } from "../../services/cli/main.ts";
import { type RunningService, runService } from "../../services/cli/serve.ts";
import { loadConfig } from "../../services/config.ts";
import { createLogger } from "../../services/logger.ts";
import { freePort } from "./hardhat-node.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
export const VERITRAIL_BIN = path.join(ROOT, "bin/veritrail.js");

export interface TestService {
  url: string;
  rpcUrl: string;
  adminKey: string;
  dataDir: string;
  service: RunningService;
  stop(): Promise<void>;
}

export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "veritrail-service-"));
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    EMBEDDED_CHAIN_PORT: String(await freePort()),
    BATCH_MAX_WAIT_MS: "200",
    ...env,
  });
  const service = await runService(config, createLogger("silent"));
  if (service.firstAdminKey === undefined) throw new Error("a fresh DATA_DIR yields an admin key");
  return {
    url: service.server.url,
    rpcUrl: service.system.rpcUrl,
    adminKey: service.firstAdminKey,
    dataDir,
    service,
    async stop() {
      await service.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface CommandRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/veritrail.js …` as a child process (the Node running the tests, Node 22). */
export function veritrail(
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<CommandRun> {
  // Only what the test passes: a VERITRAIL_URL or VERITRAIL_KEY of the caller's shell must not leak in.
  const { VERITRAIL_URL: _url, VERITRAIL_KEY: _key, ...inherited } = process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VERITRAIL_BIN, ...args], {
      cwd: ROOT,
      env: { ...inherited, ...opts.env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}

/** A stream that keeps what is written; `isTTY` decides whether commands draw progress bars. */
export class CapturedStream extends Writable {
  text = "";
  columns = 100;
  constructor(readonly isTTY: boolean) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString("utf8");
    done();
  }
}

/** Runs the CLI in this process (faster than a child; stderr a TTY when `tty`). */
export async function veritrailInProcess(
  args: string[],
  opts: { tty?: boolean } = {},
): Promise<CommandRun> {
  const stdout = new CapturedStream(false);
  const stderr = new CapturedStream(opts.tty ?? false);
  const code = await runCli(["node", "veritrail", ...args], {
    stdout,
    stderr,
    stdin: new PassThrough(),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

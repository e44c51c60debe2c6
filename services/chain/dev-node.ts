import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { removePrivateFile, writePrivateFile } from "../private-files.ts";

/**
 * The embedded development chain of `npm start`: a Hardhat node run as a child process, bound to
 * loopback only (Hardhat binds 0.0.0.0 unless told otherwise). Its chain lives in memory, so a
 * restart is a chain reset; the anchor loop notices and, in development mode, re-anchors.
 *
 * It cannot outlive the service. The node runs in its own process group (a Ctrl-C reaches the
 * service, which stops it in order), so a SIGKILL of the service would orphan it; two guards:
 *
 * 1. It dies with its parent: its stdin is a pipe from the service, and a preloaded watcher
 *    exits the node when that pipe ends, which the kernel does when the service dies, however.
 * 2. The service records the node in a pid file under DATA_DIR (pid, the kernel's start time of
 *    that pid, the boot id, the port and a random token in the node's environment). On start, a
 *    node still running from that record is stopped, but only once /proc proves it is that very
 *    process: same boot, same start time (a recycled pid has another), our token in its
 *    environment and `hardhat node` on that port in its command line. Anything else is
 *    never signalled.
 */

const REPO_ROOT = path.resolve(import.meta.dirname, "../..");

export function hardhatCliPath(): string {
  const require = createRequire(path.join(REPO_ROOT, "package.json"));
  const packageDir = path.dirname(require.resolve("hardhat/package.json"));
  const manifest = require("hardhat/package.json") as { bin: string | Record<string, string> };
  const bin = typeof manifest.bin === "string" ? manifest.bin : manifest.bin.hardhat;
  if (!bin) throw new Error("hardhat has no CLI entry in its package.json");
  return path.join(packageDir, bin);
}

export class DevChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DevChainError";
  }
}

async function answersChainId(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(2_000),
    });
    return response.ok;
  } catch {
    return false;
  }
}

export class EmbeddedDevChain {
  private output = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    private readonly pidFile?: string,
  ) {
    child.stdout?.on("data", (d: Buffer) => this.append(d));
    child.stderr?.on("data", (d: Buffer) => this.append(d));
  }

  private append(d: Buffer): void {
    this.output = (this.output + d.toString("utf8")).slice(-20_000);
  }

  /**
   * Starts `hardhat node` on 127.0.0.1:`port` and waits until it answers JSON-RPC. With
   * `pidFile`, first stops the node a previous run left there (if provably that node), and
   * records this one.
   */
  static async start(opts: {
    port: number;
    readyTimeoutMs?: number;
    pidFile?: string;
    /** Told when an orphan of a previous run was found and stopped. */
    onOrphanStopped?: (pid: number) => void;
  }): Promise<EmbeddedDevChain> {
    const url = `http://127.0.0.1:${opts.port}`;
    if (opts.pidFile !== undefined) {
      const stopped = await stopRecordedOrphan(opts.pidFile);
      if (stopped !== undefined) opts.onOrphanStopped?.(stopped);
    }
    if (await answersChainId(url)) {
      throw new DevChainError(
        `something already answers JSON-RPC at ${url} and it is not a node this service started; stop it, set EMBEDDED_CHAIN_PORT to another port, or set RPC_URL to use it`,
      );
    }
    const token = randomBytes(16).toString("hex");
    const child = spawn(
      process.execPath,
      [
        "--import",
        EXIT_WITH_PARENT,
        hardhatCliPath(),
        "node",
        "--hostname",
        "127.0.0.1",
        "--port",
        String(opts.port),
      ],
      {
        cwd: REPO_ROOT,
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
        env: { ...process.env, [OWNER_TOKEN_VARIABLE]: token },
      },
    );
    const chain = new EmbeddedDevChain(child, url, opts.pidFile);
    if (opts.pidFile !== undefined && child.pid !== undefined) {
      const identity = await processIdentity(child.pid);
      const record: PidRecord = {
        pid: child.pid,
        port: opts.port,
        token,
        ...(identity ?? {}),
      };
      await writePrivateFile(opts.pidFile, JSON.stringify(record) + "\n");
    }
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    while (!(await answersChainId(url))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new DevChainError(`hardhat node exited early:\n${chain.output.slice(-2_000)}`);
      }
      if (Date.now() > deadline) {
        await chain.stop();
        throw new DevChainError(`hardhat node did not answer at ${url} in time`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return chain;
  }

  /**
   * Mines a block every `ms` even without transactions. Hardhat automines only when a
   * transaction arrives, so on an idle dev chain CONFIRMATIONS > 1 would never be reached.
   */
  async mineEvery(ms: number): Promise<void> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "evm_setIntervalMining",
        params: [ms],
      }),
      signal: AbortSignal.timeout(5_000),
    });
    const body = (await response.json()) as { error?: { message: string } };
    if (body.error) throw new DevChainError(`evm_setIntervalMining: ${body.error.message}`);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Stops the node and its process group. */
  async stop(): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    try {
      process.kill(-this.child.pid, "SIGTERM");
    } catch {
      this.child.kill("SIGTERM");
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-this.child.pid!, "SIGKILL");
      } catch {
        // gone
      }
    }, 5_000);
    await exited;
    clearTimeout(timer);
    if (this.pidFile !== undefined) await removePrivateFile(this.pidFile);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
}

/**
 * Preloaded into the node (`--import`, with its stdin a pipe from the parent): exit when stdin
 * ends, which happens when the parent exits or is killed, since the kernel closes the parent's
 * end of the pipe. The nodes tests and benches start use it too (test/support/hardhat-node.ts).
 */
export const EXIT_WITH_PARENT =
  "data:text/javascript,process.stdin.on('end',()=>process.exit(0));process.stdin.on('error',()=>process.exit(0));process.stdin.resume();";

/** Set in the node's environment to the pid file's token: one more proof that it is ours. */
const OWNER_TOKEN_VARIABLE = "VERITRAIL_DEV_CHAIN_TOKEN";

interface PidRecord {
  pid: number;
  port: number;
  token: string;
  /** /proc/sys/kernel/random/boot_id when it was started. */
  bootId?: string;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot at which the process started. */
  startTicks?: string;
}

/** Who a pid is right now, by the kernel's account (Linux /proc); undefined elsewhere or gone. */
async function processIdentity(
  pid: number,
): Promise<{ bootId: string; startTicks: string } | undefined> {
  try {
    const [bootId, stat] = await Promise.all([
      readFile("/proc/sys/kernel/random/boot_id", "utf8"),
      readFile(`/proc/${pid}/stat`, "utf8"),
    ]);
    // The command name (field 2) may hold spaces and parentheses: count fields after its ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const startTicks = fields[19];
    return startTicks === undefined ? undefined : { bootId: bootId.trim(), startTicks };
  } catch {
    return undefined;
  }
}

/** Whether the running process `record.pid` is provably the node `record` describes. */
async function isRecordedNode(record: PidRecord): Promise<boolean> {
  if (record.bootId === undefined || record.startTicks === undefined) return false;
  const now = await processIdentity(record.pid);
  if (!now || now.bootId !== record.bootId || now.startTicks !== record.startTicks) return false;
  try {
    const [environ, cmdline] = await Promise.all([
      readFile(`/proc/${record.pid}/environ`, "latin1"),
      readFile(`/proc/${record.pid}/cmdline`, "utf8"),
    ]);
    const args = cmdline.split("\0");
    return (
      environ.split("\0").includes(`${OWNER_TOKEN_VARIABLE}=${record.token}`) &&
      args.includes("node") &&
      args[args.indexOf("--port") + 1] === String(record.port)
    );
  } catch {
    return false;
  }
}

/**
 * Stops the node a previous run recorded in `pidFile`, if it still runs and is provably that
 * node (its process group: the node may have children), and removes the record. Returns the
 * pid it stopped. A record that proves nothing (another process now has the pid, another boot,
 * no /proc) is removed and nothing is signalled.
 */
export async function stopRecordedOrphan(pidFile: string): Promise<number | undefined> {
  let record: PidRecord;
  try {
    record = JSON.parse(await readFile(pidFile, "utf8")) as PidRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    await removePrivateFile(pidFile);
    return undefined;
  }
  if (!Number.isSafeInteger(record.pid) || record.pid <= 1 || !(await isRecordedNode(record))) {
    await removePrivateFile(pidFile);
    return undefined;
  }
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-record.pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + 10_000;
  while (await isRecordedNode(record)) {
    if (Date.now() > deadline) signal("SIGKILL");
    await new Promise((r) => setTimeout(r, 100));
  }
  await removePrivateFile(pidFile);
  return record.pid;
}

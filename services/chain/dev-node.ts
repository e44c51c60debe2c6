import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";

/**
 * The embedded development chain of `npm start`: a Hardhat node run as a child process, bound to
 * loopback only (Hardhat binds 0.0.0.0 unless told otherwise). Its chain lives in memory, so a
 * restart is a chain reset; the anchor loop notices and, in development mode, re-anchors.
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
  ) {
    child.stdout?.on("data", (d: Buffer) => this.append(d));
    child.stderr?.on("data", (d: Buffer) => this.append(d));
  }

  private append(d: Buffer): void {
    this.output = (this.output + d.toString("utf8")).slice(-20_000);
  }

  /** Starts `hardhat node` on 127.0.0.1:`port` and waits until it answers JSON-RPC. */
  static async start(opts: { port: number; readyTimeoutMs?: number }): Promise<EmbeddedDevChain> {
    const url = `http://127.0.0.1:${opts.port}`;
    if (await answersChainId(url)) {
      throw new DevChainError(
        `something already answers JSON-RPC at ${url}; stop it or set RPC_URL to use it`,
      );
    }
    const child = spawn(
      process.execPath,
      [hardhatCliPath(), "node", "--hostname", "127.0.0.1", "--port", String(opts.port)],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    const chain = new EmbeddedDevChain(child, url);
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
  }
}

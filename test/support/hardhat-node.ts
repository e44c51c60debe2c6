/**
 * A real Hardhat node for integration tests, started as a child process on a free loopback
 * port, plus a TCP proxy that can cut and restore the connection to it ("the RPC is down"
 * without losing the node's in-memory chain).
 *
 * Usage:
 *   const node = await HardhatNode.start();      // waits until eth_chainId answers
 *   await node.rpc("evm_mine");
 *   await node.restart();                        // a fresh chain on the same port
 *   await node.stop();                           // in `after`, also on failure
 *
 * The node runs in its own process group (detached) and `stop` signals the whole group, so no
 * orphan survives the test; nodes still running when the test process exits are killed from a
 * synchronous `exit` hook. A process killed outright (SIGKILL) runs no hook: the node then
 * exits by itself when its stdin, a pipe from that process, ends.
 */
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { EXIT_WITH_PARENT, hardhatCliPath } from "../../services/chain/dev-node.ts";

const HOST = "127.0.0.1";
const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
/** Hardhat's CLI entry, from its package.json "bin" (the subpath is not in its "exports"). */
const HARDHAT_CLI = hardhatCliPath();

/**
 * The well-known accounts of a default Hardhat node (mnemonic "test test … junk"). Public keys:
 * never use them on a real chain.
 */
export const HARDHAT_ACCOUNTS = [
  {
    address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    privateKey: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  },
  {
    address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    privateKey: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  },
  {
    address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    privateKey: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  },
  {
    address: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    privateKey: "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  },
  {
    address: "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    privateKey: "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  },
  {
    address: "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    privateKey: "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  },
] as const;

/** A port that was free a moment ago: bind port 0 on loopback, read it, release it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("no port"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

export class JsonRpcCallError extends Error {
  constructor(
    readonly method: string,
    readonly rpcCode: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(`${method}: ${message}`);
    this.name = "JsonRpcCallError";
  }
}

/** One JSON-RPC call over HTTP, without ethers (so a test can talk to the node directly). */
export async function jsonRpc<T = unknown>(
  url: string,
  method: string,
  params: unknown[] = [],
  timeoutMs = 10_000,
): Promise<T> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await response.json()) as {
    result?: T;
    error?: { code: number; message: string; data?: unknown };
  };
  if (body.error)
    throw new JsonRpcCallError(method, body.error.code, body.error.message, body.error.data);
  return body.result as T;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Mocha runs with `exit: true`: `after` hooks normally stop every node first; this only
  // catches a crashed run so that no node outlives the test process.
  process.on("exit", () => {
    for (const child of running) killGroup(child, "SIGKILL");
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

export interface HardhatNodeOptions {
  /** A fixed port (e.g. to restart on the same one); a free port otherwise. */
  port?: number;
  /** How long to wait for the first RPC answer. */
  readyTimeoutMs?: number;
}

export class HardhatNode {
  private child: ChildProcess | null = null;
  private output = "";

  private constructor(
    readonly port: number,
    private readonly readyTimeoutMs: number,
  ) {}

  /** Starts a node and resolves once it answers eth_chainId. */
  static async start(opts: HardhatNodeOptions = {}): Promise<HardhatNode> {
    const node = new HardhatNode(opts.port ?? (await freePort()), opts.readyTimeoutMs ?? 60_000);
    await node.launch();
    return node;
  }

  get host(): string {
    return HOST;
  }

  get url(): string {
    return `http://${HOST}:${this.port}`;
  }

  get isRunning(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The child's pid (its process group id too), for tests that check for orphans. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Everything the node printed so far (handy in assertion messages). */
  get log(): string {
    return this.output;
  }

  rpc<T = unknown>(method: string, params: unknown[] = []): Promise<T> {
    return jsonRpc<T>(this.url, method, params);
  }

  async snapshot(): Promise<string> {
    return this.rpc<string>("evm_snapshot");
  }

  async revert(snapshotId: string): Promise<boolean> {
    return this.rpc<boolean>("evm_revert", [snapshotId]);
  }

  async mine(blocks = 1): Promise<void> {
    for (let i = 0; i < blocks; i++) await this.rpc("evm_mine");
  }

  async setAutomine(enabled: boolean): Promise<void> {
    await this.rpc("evm_setAutomine", [enabled]);
  }

  async dropTransaction(txHash: string): Promise<boolean> {
    return this.rpc<boolean>("hardhat_dropTransaction", [txHash]);
  }

  async blockNumber(): Promise<number> {
    return Number(BigInt(await this.rpc<string>("eth_blockNumber")));
  }

  /** Stops the node (SIGTERM to its process group, SIGKILL after 5 s) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      killGroup(child, "SIGTERM");
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    // The group may still hold a grandchild; make sure nothing survives.
    killGroup(child, "SIGKILL");
    running.delete(child);
  }

  /** Kills the node and starts a fresh one (empty chain) on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  private async launch(): Promise<void> {
    installExitHook();
    const deadline = Date.now() + this.readyTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      this.output = "";
      // Its own process group (stop() signals the group), and it dies with this process even
      // when that is SIGKILLed (a test run or a bench stopped hard): its stdin is a pipe from
      // here, and the preloaded watcher exits when the pipe ends.
      const child = spawn(
        process.execPath,
        [
          "--import",
          EXIT_WITH_PARENT,
          HARDHAT_CLI,
          "node",
          "--hostname",
          HOST,
          "--port",
          String(this.port),
        ],
        {
          cwd: REPO_ROOT,
          detached: true,
          stdio: ["pipe", "pipe", "pipe"],
          env: { ...process.env },
        },
      );
      running.add(child);
      this.child = child;
      const append = (chunk: Buffer): void => {
        // Keep the head (start-up messages) and a bounded tail.
        this.output = (this.output + chunk.toString("utf8")).slice(-64_000);
      };
      child.stdout?.on("data", append);
      child.stderr?.on("data", append);
      const ready = await this.waitReady(child, deadline);
      if (ready === "ready") return;
      await this.stop();
      // The port can still be held for a moment after a restart: retry until the deadline.
      if (
        ready === "exited" &&
        /EADDRINUSE|address already in use/i.test(this.output) &&
        Date.now() < deadline
      ) {
        await sleep(200 + attempt * 100);
        continue;
      }
      throw new Error(
        `hardhat node on ${this.url} did not become ready (${ready}):\n${this.output.slice(-4_000)}`,
      );
    }
  }

  private async waitReady(
    child: ChildProcess,
    deadline: number,
  ): Promise<"ready" | "exited" | "timeout"> {
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) return "exited";
      try {
        await jsonRpc(this.url, "eth_chainId", [], 2_000);
        return "ready";
      } catch {
        await sleep(100);
      }
    }
    return "timeout";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A TCP proxy on a free loopback port in front of `target`. `cut()` closes every open
 * connection and refuses new ones (an RPC outage); `restore()` accepts again. The node behind
 * it keeps its chain state.
 */
export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private up = true;
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const port = await freePort();
    const server = net.createServer();
    const proxy = new TcpProxy(server, port);
    server.on("connection", (client) => proxy.accept(client, target));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, HOST, () => resolve());
    });
    return proxy;
  }

  get url(): string {
    return `http://${HOST}:${this.port}`;
  }

  get isUp(): boolean {
    return this.up;
  }

  cut(): void {
    this.up = false;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.up = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket, target: { host: string; port: number }): void {
    if (!this.up) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

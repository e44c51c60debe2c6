/**
 * The service as a user runs it (`node --import tsx scripts/start.ts`, what `npm start` execs;
 * or `npm start` itself, with `npmStart`), in its own process group on free loopback ports,
 * with everything it prints captured. The reliability scenarios kill it with SIGKILL, stop it
 * with SIGTERM and restart it on the same DATA_DIR; `kill` always targets the group so nothing
 * outlives a scenario.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";

const REPO = path.resolve(import.meta.dirname, "../..");
const ADMIN_KEY = /First admin key[^\n]*\n\s+(vt_[A-Za-z0-9_-]{43})/;

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

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

export class ServiceProcess {
  private out = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly baseUrl: string,
  ) {
    const append = (chunk: Buffer): void => {
      this.out += chunk.toString("utf8");
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
  }

  /** Starts the service with `env` added to this process's environment; waits for the banner. */
  static async start(
    env: Record<string, string>,
    opts: { readyTimeoutMs?: number; npmStart?: boolean } = {},
  ): Promise<ServiceProcess> {
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on("exit", () => {
        for (const child of running) killGroup(child, "SIGKILL");
      });
    }
    // Directly, with the Node flags and environment `npm start` gives the service.
    const runtime = await serviceRuntime();
    const [command, args] = opts.npmStart
      ? ["npm", ["start", "--silent"]]
      : [process.execPath, [...runtime.nodeArgs, "scripts/start.ts"]];
    const child = spawn(command, args, {
      cwd: REPO,
      env: { ...process.env, ...runtime.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    running.add(child);
    const service = new ServiceProcess(child, `http://127.0.0.1:${env.PORT ?? "8080"}`);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
    while (!service.out.includes("Veritrail is running.")) {
      if (child.exitCode !== null || child.signalCode !== null) {
        running.delete(child);
        throw new Error(`service exited (${child.exitCode ?? child.signalCode}):\n${service.out}`);
      }
      if (Date.now() > deadline) {
        await service.kill("SIGKILL");
        throw new Error(`service did not come up:\n${service.out.slice(-4_000)}`);
      }
      await sleep(100);
    }
    // The banner is one write; the key line follows in the same chunk or right after it.
    await sleep(100);
    return service;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * The service's own process: the spawned one, or under `npm start` npm's child (the script's
   * shell execs node, so that child is the service). Linux /proc.
   */
  async servicePid(): Promise<number | undefined> {
    const pid = this.child.pid;
    if (pid === undefined) return undefined;
    for (const name of await readdir("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
      const [, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) === pid && stat.includes("(node)")) return Number(name);
    }
    return pid;
  }

  get output(): string {
    return this.out;
  }

  get adminKey(): string | undefined {
    return ADMIN_KEY.exec(this.out)?.[1];
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /**
   * Signals the whole group and waits for the exit; a SIGTERM that is not obeyed within
   * `graceMs` becomes a SIGKILL. Returns the exit code (null when killed by a signal).
   */
  async kill(signal: NodeJS.Signals, graceMs = 30_000): Promise<number | null> {
    const child = this.child;
    if (this.exited) {
      running.delete(child);
      return child.exitCode;
    }
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => resolve(code)),
    );
    killGroup(child, signal);
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
    const code = await exited;
    clearTimeout(timer);
    killGroup(child, "SIGKILL");
    running.delete(child);
    return code;
  }
}

/**
 * The Node flags and environment `npm start` runs the service with (its memory settings: V8
 * heap limit, glibc malloc arenas), read from package.json so the two never differ.
 */
export async function serviceRuntime(): Promise<{
  nodeArgs: string[];
  env: Record<string, string>;
}> {
  const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  };
  const m = /exec env ((?:[A-Z_]+=\S+ )*)node ((?:\S+ )*)scripts\/start\.ts$/.exec(
    pkg.scripts["start"] ?? "",
  );
  if (!m)
    throw new Error(
      `package.json "start" is not "… exec env [VAR=value …] node [flags …] scripts/start.ts"`,
    );
  const env = Object.fromEntries(
    m[1]!
      .trim()
      .split(" ")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  return { nodeArgs: m[2]!.trim().split(" ").filter(Boolean), env };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

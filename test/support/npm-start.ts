/**
 * `npm start` as a user runs it, in its own process group (so a signal reaches it as Ctrl-C in a
 * terminal does): waits for the banner and picks the printed first admin key out of it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

const REPO = path.resolve(import.meta.dirname, "../..");

export interface Started {
  child: ChildProcess;
  output: () => string;
  adminKey?: string;
}

export async function npmStart(env: Record<string, string>): Promise<Started> {
  const child = spawn("npm", ["start", "--silent"], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const deadline = Date.now() + 120_000;
  while (!out.includes("Veritrail is running.")) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) throw new Error(`npm start did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // The banner is written in one call; give the key line a moment to arrive with it.
  await new Promise((r) => setTimeout(r, 200));
  const key = /First admin key[^\n]*\n\s+(vt_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
  return { child, output: () => out, ...(key ? { adminKey: key } : {}) };
}

export async function stop(
  started: Started,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<number | null> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  // Like Ctrl-C in a terminal: the whole foreground group gets the signal; npm forwards it to
  // the service (exec'd by the start script), which stops its own Hardhat node.
  process.kill(-child.pid!, signal);
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone
    }
  }, 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/**
 * The embedded Hardhat node cannot outlive the service: it dies with its parent, and a pid file
 * under DATA_DIR lets the next start stop an orphan that is provably its own, and nothing else.
 */
import { expect } from "chai";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  DevChainError,
  EmbeddedDevChain,
  hardhatCliPath,
} from "../../../services/chain/dev-node.ts";
import { freePort, jsonRpc } from "../../support/hardhat-node.ts";

const REPO = path.resolve(import.meta.dirname, "../../..");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms: number) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function answers(port: number): Promise<boolean> {
  return jsonRpc(`http://127.0.0.1:${port}`, "eth_chainId", []).then(
    () => true,
    () => false,
  );
}

/**
 * Runs `code` (an ES module, through tsx) in a process of its own, and resolves with it once
 * it has printed "node <pid> <port>": the node it started.
 */
function parentOfNode(
  code: string,
): Promise<{ parent: ChildProcess; nodePid: number; port: number }> {
  const parent = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    parent.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /node (\d+) (\d+)/.exec(out);
      if (m) resolve({ parent, nodePid: Number(m[1]), port: Number(m[2]) });
    });
    parent.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    parent.on("exit", (code) => reject(new Error(`parent exited ${code}: ${out}`)));
  });
}

/** A process that starts the embedded chain (as the service does). */
function serviceLike(port: number, pidFile: string) {
  return parentOfNode(`
    import { EmbeddedDevChain } from ${JSON.stringify(path.join(REPO, "services/chain/dev-node.ts"))};
    const chain = await EmbeddedDevChain.start({ port: ${port}, pidFile: ${JSON.stringify(pidFile)} });
    process.stdout.write("node " + chain.pid + " ${port}\\n");
    setInterval(() => {}, 1000);
  `);
}

/**
 * A process that starts a node the way tests and benches do (test/support/hardhat-node.ts, as
 * `npm run bench:soak` does).
 */
function benchLike() {
  return parentOfNode(`
    import { HardhatNode } from ${JSON.stringify(path.join(REPO, "test/support/hardhat-node.ts"))};
    const node = await HardhatNode.start();
    process.stdout.write("node " + node.pid + " " + node.port + "\\n");
    setInterval(() => {}, 1000);
  `);
}

/** `hardhat node` started the old way: detached, no watcher; it survives its parent. */
function bareNode(port: number, env: Record<string, string> = {}): ChildProcess {
  return spawn(
    process.execPath,
    [hardhatCliPath(), "node", "--hostname", "127.0.0.1", "--port", String(port)],
    { cwd: REPO, stdio: "ignore", detached: true, env: { ...process.env, ...env } },
  );
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // gone
  }
}

describe("embedded dev chain lifecycle", function () {
  this.timeout(120_000);
  let dir: string;
  const cleanup: Array<number | undefined> = [];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-devchain-"));
  });
  const parents: ChildProcess[] = [];
  afterEach(async () => {
    for (const parent of parents.splice(0)) parent.kill("SIGKILL");
    for (const pid of cleanup.splice(0)) killGroup(pid);
    await rm(dir, { recursive: true, force: true });
  });

  it("dies with its parent: SIGKILL the service and the node is gone, its port free", async () => {
    const port = await freePort();
    const { parent, nodePid } = await serviceLike(port, path.join(dir, "dev-chain.pid"));
    cleanup.push(nodePid);
    parents.push(parent);
    expect(await answers(port)).to.equal(true);
    parent.kill("SIGKILL");
    await waitFor("the node to exit", () => !alive(nodePid), 10_000);
    await waitFor("the port to be free", async () => !(await answers(port)), 10_000);
  });

  it("a node started by a test or a bench dies with its parent too (SIGKILL: no exit hook runs)", async () => {
    const { parent, nodePid, port } = await benchLike();
    cleanup.push(nodePid);
    parents.push(parent);
    expect(await answers(port)).to.equal(true);
    parent.kill("SIGKILL");
    await waitFor("the node to exit", () => !alive(nodePid), 10_000);
    await waitFor("the port to be free", async () => !(await answers(port)), 10_000);
  });

  it("a restart stops the orphan its pid file proves to be its own, and records the new node", async () => {
    const port = await freePort();
    const pidFile = path.join(dir, "dev-chain.pid");
    // An orphan left as before this change: a node without the watcher, recorded by a start
    // whose process then died (here: the record is written by a first start's own code path).
    const first = await EmbeddedDevChain.start({ port, pidFile });
    const record = JSON.parse(await readFile(pidFile, "utf8")) as { pid: number };
    expect(record.pid).to.equal(first.pid);
    expect((await stat(pidFile)).mode & 0o777).to.equal(0o600);
    // The service is "gone" without stopping its node (as after a SIGKILL that the watcher
    // could not act on): start again on the same port and pid file.
    const stopped: number[] = [];
    const second = await EmbeddedDevChain.start({
      port,
      pidFile,
      onOrphanStopped: (pid) => stopped.push(pid),
    });
    cleanup.push(second.pid);
    try {
      expect(stopped).to.deep.equal([first.pid]);
      expect(alive(first.pid!)).to.equal(false);
      expect(await answers(port)).to.equal(true);
      const now = JSON.parse(await readFile(pidFile, "utf8")) as { pid: number };
      expect(now.pid).to.equal(second.pid);
    } finally {
      await second.stop();
    }
    await expectMissing(pidFile);
  });

  it("never signals a process it cannot prove is its node: another pid, start time, token or port", async () => {
    const port = await freePort();
    const pidFile = path.join(dir, "dev-chain.pid");
    const foreign = bareNode(port);
    cleanup.push(foreign.pid);
    await waitFor("the foreign node", () => answers(port), 60_000);
    const chain = await EmbeddedDevChain.start({ port: await freePort(), pidFile });
    const genuine = JSON.parse(await readFile(pidFile, "utf8")) as Record<string, unknown>;
    await chain.stop();
    // Records that name the foreign node's pid but fail one proof each.
    const forged = [
      { ...genuine, pid: foreign.pid, port },
      { ...genuine, pid: foreign.pid, port, startTicks: "1" },
      { pid: foreign.pid, port, token: "0".repeat(32) },
    ];
    for (const record of forged) {
      await writeFile(pidFile, JSON.stringify(record));
      const error = await EmbeddedDevChain.start({ port, pidFile }).catch((e: unknown) => e);
      expect(error).to.be.instanceOf(DevChainError);
      expect(String(error)).to.match(/not a node this service started/);
      expect(alive(foreign.pid!), JSON.stringify(record)).to.equal(true);
      expect(await answers(port)).to.equal(true);
    }
    await expectMissing(pidFile);
  });
});

async function expectMissing(file: string): Promise<void> {
  const error = await stat(file).catch((e: unknown) => e);
  expect((error as NodeJS.ErrnoException).code).to.equal("ENOENT");
}

/**
 * The `veritrail` command as a newcomer starts it: with the system's Node (often 20, older than
 * the Node 22 the project pins), directly as `node bin/veritrail.js` and through `npx veritrail`
 * with a fresh npx cache (its first run installs a link to this package there, which is where
 * npm printed EBADENGINE warnings before).
 */
import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "bin/veritrail.js");
const VERSION = (
  JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    version: string;
  }
).version;

/** PATH without this project's node_modules/.bin (npm puts it first when it runs the tests). */
const SYSTEM_PATH = (process.env.PATH ?? "")
  .split(path.delimiter)
  .filter((dir) => !dir.includes(`${path.sep}node_modules${path.sep}`))
  .join(path.delimiter);

function onSystemPath(command: string): string | undefined {
  for (const dir of SYSTEM_PATH.split(path.delimiter)) {
    const candidate = path.join(dir, command);
    if (dir !== "" && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function nodeMajor(node: string): number {
  return Number(execFileSync(node, ["-p", "process.versions.node.split('.')[0]"]).toString());
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  stdin = "",
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, PATH: SYSTEM_PATH, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe("the veritrail command from the system's Node", function () {
  this.timeout(120_000);
  const systemNode = onSystemPath("node");
  const olderNode = systemNode !== undefined && nodeMajor(systemNode) < 22 ? systemNode : undefined;

  it("node bin/veritrail.js on a Node older than 22 hands itself to the pinned Node 22", async function () {
    // Without an older Node on this machine there is nothing to hand over from.
    if (olderNode === undefined) this.skip();
    const version = await run(olderNode!, [BIN, "--version"]);
    expect(version, version.stderr).to.deep.equal({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
    // The exit code, stderr and stdin pass through: a usage error is 2, and `-` reads stdin.
    const usage = await run(olderNode!, [BIN, "verify"]);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.include("required option '--rpc <url>' not specified");
    const trustDir = await mkdtemp(path.join(tmpdir(), "veritrail-trust-"));
    const trustFile = path.join(trustDir, "trust.json");
    await writeFile(
      trustFile,
      JSON.stringify({
        format: "veritrail-trust/1",
        issuer: "test",
        registries: [
          { chainId: 1, address: "0x0000000000000000000000000000000000000001", confirmations: 1 },
        ],
        logs: [],
      }),
    );
    const unreachable = await run(
      olderNode!,
      [BIN, "verify", "-", "--rpc", "http://127.0.0.1:1", "--trust", trustFile],
      {},
      '{"format":"veritrail-proof/1"}',
    ).finally(() => rm(trustDir, { recursive: true, force: true }));
    expect(unreachable.code).to.equal(2);
    expect(unreachable.stderr).to.include("cannot reach the RPC at http://127.0.0.1:1");
  });

  it("npx veritrail with a fresh npx cache prints no npm warning (no EBADENGINE)", async function () {
    const npx = onSystemPath("npx");
    if (npx === undefined) this.skip();
    const cache = await mkdtemp(path.join(tmpdir(), "veritrail-npx-cache-"));
    try {
      for (const attempt of ["first run (installs the link)", "second run"]) {
        const result = await run(npx!, ["veritrail", "--version"], {
          npm_config_cache: cache,
          npm_config_update_notifier: "false",
        });
        expect(result.code, `${attempt}: ${result.stderr}`).to.equal(0);
        expect(result.stdout, attempt).to.equal(`${VERSION}\n`);
        expect(result.stderr, attempt).to.not.match(/EBADENGINE|npm warn/i);
      }
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });
});

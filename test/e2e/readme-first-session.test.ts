/**
 * README.md's "A first session", run as written against a real `npm start`, so the README cannot
 * drift from the code. The fenced block is taken from the README itself and run, command by
 * command, in one bash (so `export`s carry over), from the repository's root, with the PATH a
 * user has (no node_modules/.bin: `npx veritrail` runs from the system's Node) and a fresh npx
 * cache. Each command must exit 0 and its output must show every `# →` line of the README in
 * order (`…` stands for anything); a command without `# →` lines must print nothing.
 *
 * The only substitutions are what a user copies from npm start's banner or what this test must
 * change to run next to others: `vt_…` becomes the printed first admin key, and the service's
 * ports (8080 for the API, 8545 for the chain) become free ones (VERITRAIL_URL tells the CLI).
 */
import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../support/hardhat-node.ts";
import { type Started, npmStart, stop } from "../support/npm-start.ts";

const REPO = path.resolve(import.meta.dirname, "../..");

export interface SessionStep {
  /** The command as written (continuation lines included). */
  command: string;
  /** The `# →` lines that follow it. */
  expect: string[];
}

/** The first ```sh block after the heading "### A first session", split into commands. */
export function firstSession(readme: string): SessionStep[] {
  const heading = readme.indexOf("\n### A first session\n");
  if (heading < 0) throw new Error('README.md has no "### A first session" heading');
  const open = readme.indexOf("\n```sh\n", heading);
  const close = readme.indexOf("\n```\n", open + 1);
  if (open < 0 || close < 0) throw new Error("no ```sh block after the heading");
  const steps: SessionStep[] = [];
  let continued: string[] | undefined;
  for (const line of readme.slice(open + "\n```sh\n".length, close).split("\n")) {
    if (continued) {
      continued.push(line);
      if (!line.endsWith("\\")) {
        steps.push({ command: continued.join("\n"), expect: [] });
        continued = undefined;
      }
      continue;
    }
    const expected = /^# → (.*)$/.exec(line);
    if (expected) {
      const step = steps.at(-1);
      if (!step) throw new Error(`an answer before any command: ${line}`);
      step.expect.push(expected[1]!);
    } else if (line.trim() === "" || line.startsWith("#")) {
      continue;
    } else if (line.endsWith("\\")) {
      continued = [line];
    } else {
      steps.push({ command: line, expect: [] });
    }
  }
  if (continued) throw new Error("the block ends inside a continued command");
  return steps;
}

/** `# →` text as a whole-line pattern: `…` matches anything, the rest literally. */
export function answerPattern(expected: string): RegExp {
  const parts = expected.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`);
}

/** Every expected line matches a line of `output`, in order. Returns the first that did not. */
export function missingAnswer(output: string, expected: string[]): string | undefined {
  const lines = output.split("\n");
  let at = 0;
  for (const e of expected) {
    const pattern = answerPattern(e);
    const found = lines.findIndex((line, i) => i >= at && pattern.test(line));
    if (found < 0) return e;
    at = found + 1;
  }
  return undefined;
}

function userPath(): string {
  return (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => !dir.includes(`${path.sep}node_modules${path.sep}`))
    .join(path.delimiter);
}

describe("README: the first session runs as written", function () {
  this.timeout(300_000);
  let work: string;
  let started: Started | undefined;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), "veritrail-readme-"));
  });
  after(async () => {
    if (started) await stop(started, "SIGKILL").catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it("parses: the block, its commands and the answers (and the matcher is strict)", async () => {
    const steps = firstSession(await readFile(path.join(REPO, "README.md"), "utf8"));
    expect(steps.length).to.be.greaterThan(5);
    expect(steps.filter((s) => s.command.includes("vt_…"))).to.have.length(1);
    expect(missingAnswer('{"seq":0,"x":1}', ['{"seq":0,…}'])).to.equal(undefined);
    expect(missingAnswer('{"seq":10,"x":1}', ['{"seq":0,…}'])).to.equal('{"seq":0,…}');
    expect(missingAnswer("b\na", ["a", "b"])).to.equal("b");
    expect(missingAnswer("a.b", ["a…b", "x"])).to.equal("x");
  });

  it("every command of the README's first session answers what the README says", async () => {
    for (const tool of ["bash", "curl"]) {
      try {
        execFileSync(tool, ["--version"], { stdio: "ignore" });
      } catch {
        throw new Error(`the README's first session needs ${tool}, which is not installed`);
      }
    }
    const port = await freePort();
    const chainPort = await freePort();
    started = await npmStart({
      DATA_DIR: path.join(work, "data"),
      PORT: String(port),
      EMBEDDED_CHAIN_PORT: String(chainPort),
    });
    expect(started.adminKey, started.output()).to.be.a("string");

    const steps = firstSession(await readFile(path.join(REPO, "README.md"), "utf8"));
    const out = path.join(work, "out");
    await mkdir(out);
    const script = [
      `cd ${JSON.stringify(REPO)}`,
      ...steps.map((step, i) => {
        const command = step.command
          .replaceAll("vt_…", started!.adminKey!)
          .replaceAll("localhost:8080", `localhost:${port}`)
          .replaceAll("127.0.0.1:8545", `127.0.0.1:${chainPort}`);
        return `{\n${command}\n} > ${out}/${i}.out 2>&1; echo $? > ${out}/${i}.rc`;
      }),
    ].join("\n");
    await writeFile(path.join(work, "session.sh"), script + "\n");
    const env: Record<string, string | undefined> = {
      ...process.env,
      PATH: userPath(),
      VERITRAIL_URL: `http://127.0.0.1:${port}`,
      npm_config_cache: path.join(work, "npm-cache"),
      npm_config_update_notifier: "false",
    };
    delete env["VERITRAIL_KEY"];
    const code = await new Promise<number | null>((resolve, reject) => {
      const bash = spawn("bash", [path.join(work, "session.sh")], { env, stdio: "ignore" });
      bash.on("error", reject);
      bash.on("close", resolve);
    });
    expect(code).to.equal(0);

    for (const [i, step] of steps.entries()) {
      const output = await readFile(path.join(out, `${i}.out`), "utf8");
      const rc = (await readFile(path.join(out, `${i}.rc`), "utf8")).trim();
      const where = `README first session, command ${i + 1}:\n${step.command}\n--- answered ---\n${output}`;
      expect(rc, where).to.equal("0");
      if (step.expect.length === 0) expect(output, where).to.equal("");
      else expect(missingAnswer(output, step.expect), where).to.equal(undefined);
    }
    expect(await stop(started)).to.equal(0);
    started = undefined;
  });
});

/**
 * README.md's "A first session", run as written against a real `npm start`, so the README cannot
 * drift from the code. The fenced block is taken from the README itself and run command by
 * command as a reader would (test/support/shell-session.ts says how, and what it substitutes:
 * the printed admin key and free ports). Each command must exit 0 and its output must show every
 * `# →` line of the README in order (`…` stands for anything); a command without `# →` lines
 * must print nothing.
 */
import { expect } from "chai";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Started, stop } from "../support/npm-start.ts";
import {
  type Service,
  type ShellCommand,
  answerPattern,
  requireTools,
  runCommands,
  shellCommands,
  startForCommands,
} from "../support/shell-session.ts";

const REPO = path.resolve(import.meta.dirname, "../..");

/** The commands of the first ```sh block after the heading "### A first session". */
export function firstSession(readme: string): ShellCommand[] {
  const heading = readme.indexOf("\n### A first session\n");
  if (heading < 0) throw new Error('README.md has no "### A first session" heading');
  const open = readme.indexOf("\n```sh\n", heading);
  const close = readme.indexOf("\n```\n", open + 1);
  if (open < 0 || close < 0) throw new Error("no ```sh block after the heading");
  return shellCommands(readme.slice(open + "\n```sh\n".length, close));
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
    requireTools("bash", "curl");
    let service: Service;
    ({ started, service } = await startForCommands(work));

    const steps = firstSession(await readFile(path.join(REPO, "README.md"), "utf8"));
    const results = await runCommands(
      steps.map((s) => s.command),
      service,
      work,
    );
    for (const [i, step] of steps.entries()) {
      const { output, exitCode } = results[i]!;
      const where = `README first session, command ${i + 1}:\n${step.command}\n--- answered ---\n${output}`;
      expect(exitCode, where).to.equal(0);
      if (step.answers.length === 0) expect(output, where).to.equal("");
      else expect(missingAnswer(output, step.answers), where).to.equal(undefined);
    }
    expect(await stop(started)).to.equal(0);
    started = undefined;
  });
});

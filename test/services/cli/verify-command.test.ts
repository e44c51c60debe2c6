import { expect } from "chai";
import { spawn } from "node:child_process";
import { PassThrough, Writable } from "node:stream";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { runCli } from "../../../services/cli/main.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";
import {
  type GeneratedBundles,
  type VectorCase,
  buildCase,
  confirmationsFor,
  generateBundles,
  loadCases,
  verdictMismatch,
} from "../../vectors/bundles/generate.ts";
import type { VerdictSummary } from "../../vectors/bundles/generate.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const BIN = path.join(ROOT, "bin/veritrail.js");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/veritrail.js with the Node running the tests (Node 22), optionally feeding stdin. */
function veritrail(
  args: string[],
  opts: { stdin?: string; viaShebang?: boolean } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = {
      ...process.env,
      // The shebang runs `env node`: the Node 22 of node_modules/.bin must come first.
      PATH: `${path.join(ROOT, "node_modules/.bin")}${path.delimiter}${process.env.PATH ?? ""}`,
    };
    const child = opts.viaShebang
      ? spawn(BIN, args, { cwd: ROOT, env })
      : spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}

interface JsonReport {
  ok: boolean;
  summary: Record<string, number>;
  verdicts: Array<VerdictSummary & { line: number; ok: boolean }>;
}

describe("veritrail verify (CLI, real Hardhat node)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let g: GeneratedBundles;
  let cases: VectorCase[];
  let dir: string;
  /** The regulator's policy for the generated log, as a file. */
  let trustFile: string;
  const T = () => ["--trust", trustFile];

  async function file(name: string, content: unknown, pretty = true): Promise<string> {
    const p = path.join(dir, name);
    await writeFile(
      p,
      typeof content === "string" ? content : JSON.stringify(content, null, pretty ? 2 : 0),
    );
    return p;
  }

  async function bundleOf(desc: string): Promise<unknown> {
    const c = cases.find((x) => x.desc === desc);
    if (!c) throw new Error(`no vector "${desc}"`);
    return buildCase(c, g);
  }

  before(async () => {
    cases = await loadCases();
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-cli-"));
    node = await HardhatNode.start();
    g = await generateBundles(node);
    trustFile = await file("trust.json", g.trustDocument);
  });
  after(async () => {
    await g?.close();
    await node?.stop();
  });

  it("a fresh bundle file: every check ✓, VERIFIED, exit 0 (launched through its shebang)", async () => {
    const p = await file("fresh.json", g.bases.fresh);
    const run = await veritrail(["verify", p, "--rpc", node.url, ...T()], { viaShebang: true });
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(
      /^VERIFIED: seq 5 of log 0x[0-9a-f]{64} \(operator: St Mary General Hospital \(test\), registry 0x[0-9a-fA-F]{40} on chain 31337\)/m,
    );
    expect(run.stdout).to.include(`trust policy ${g.trust.fingerprint} (issuer: Test regulator)`);
    expect(run.stdout.match(/^ {2}✓ /gm)).to.have.length(9);
  });

  it("without a trust policy: refuses with exit 2 and says how to get one, never VERIFIED", async () => {
    const p = await file("fresh-no-policy.json", g.bases.fresh);
    const run = await veritrail(["verify", p, "--rpc", node.url]);
    expect(run.code).to.equal(2);
    expect(run.stdout).to.not.match(/VERIFIED/);
    expect(run.stderr).to.match(/no trust policy: .*--trust <file>.*veritrail trust init/);
    const bad = await file("bad-policy.json", { ...g.trustDocument, format: "veritrail-trust/9" });
    const badRun = await veritrail(["verify", p, "--rpc", node.url, "--trust", bad]);
    expect(badRun.code).to.equal(2);
    expect(badRun.stderr).to.match(/unknown format "veritrail-trust\/9"/);
  });

  it("erased vs withheld: ERASED exit 0; nulled content without a record WITHHELD exit 3", async () => {
    const erased = await veritrail([
      "verify",
      await file("erased.json", g.bases.erased),
      "--rpc",
      node.url,
      ...T(),
    ]);
    expect(erased.code, erased.stdout).to.equal(0);
    expect(erased.stdout).to.match(/^ERASED: seq 3 .*as seq 10 of the log records$/m);
    const nulled = { ...structuredClone(g.bases.fresh), event: null, salt: null };
    const withheld = await veritrail([
      "verify",
      await file("nulled.json", nulled),
      "--rpc",
      node.url,
      ...T(),
    ]);
    expect(withheld.code).to.equal(3);
    expect(withheld.stdout).to.match(/^WITHHELD: seq 5 .*nothing shows that it was erased$/m);
    expect(withheld.stdout).to.not.match(/^(VERIFIED|ERASED)/m);
  });

  it("a saved patient history: VERIFIED when complete, INCOMPLETE_HISTORY when one event is removed", async () => {
    const good = await veritrail([
      "verify",
      await file("history.json", g.history),
      "--rpc",
      node.url,
      ...T(),
    ]);
    expect(good.code, good.stdout + good.stderr).to.equal(0);
    expect(good.stdout).to.match(
      /^VERIFIED: complete history of \d+ event\(s\) \(operator: St Mary/m,
    );
    const cut = structuredClone(g.history);
    cut.events.splice(1, 1);
    const bad = await veritrail([
      "verify",
      await file("history-cut.json", cut),
      "--rpc",
      node.url,
      ...T(),
    ]);
    expect(bad.code).to.equal(1);
    expect(bad.stdout).to.match(/^FAILED: INCOMPLETE_HISTORY/m);
    const json = await veritrail([
      "verify",
      await file("history-cut2.json", cut),
      "--rpc",
      node.url,
      "--json",
      ...T(),
    ]);
    expect(JSON.parse(json.stdout)).to.include({
      ok: false,
      code: "INCOMPLETE_HISTORY",
      kind: "patient-history",
    });
  });

  it("a tampered bundle: names the failed step and code, exit 1", async () => {
    const p = await file("tampered.json", await bundleOf("altered event field (requestId)"));
    const run = await veritrail(["verify", p, "--rpc", node.url, ...T()]);
    expect(run.code).to.equal(1);
    expect(run.stdout).to.match(/✗ commitment +COMMITMENT_MISMATCH: SHA-256/);
    expect(run.stdout).to.match(/^FAILED: seq 5 .*: COMMITMENT_MISMATCH at step commitment$/m);
  });

  it("a pending bundle: PENDING and exit 1, exit 0 with --allow-pending; read from stdin", async () => {
    const stdin = JSON.stringify(g.bases.pending);
    const strict = await veritrail(["verify", "-", "--rpc", node.url, ...T()], { stdin });
    expect(strict.code).to.equal(1);
    expect(strict.stdout).to.match(
      /^PENDING: seq 12 .*receipt verified, not yet anchored in the trusted registry$/m,
    );
    const lenient = await veritrail(["verify", "-", "--rpc", node.url, "--allow-pending", ...T()], {
      stdin,
    });
    expect(lenient.code, lenient.stderr).to.equal(0);
  });

  it("--json on the NDJSON of every vector: each verdict as expected, exit 1", async () => {
    const latest = await node.blockNumber();
    const usable = cases.filter(
      (c) => c.rpc === undefined && c.confirmations === undefined && c.trust === undefined,
    );
    const lines = [];
    for (const c of usable) lines.push(JSON.stringify(await buildCase(c, g)));
    lines.splice(3, 0, "{this is not json");
    const p = await file("all.ndjson", `${lines.join("\n")}\n`);
    const run = await veritrail(["verify", p, "--rpc", node.url, "--json", ...T()]);
    expect(run.code, run.stderr).to.equal(1);
    const report = JSON.parse(run.stdout) as JsonReport;
    expect(report.ok).to.equal(false);
    expect(report.verdicts).to.have.length(usable.length + 1);
    const bad = report.verdicts[3]!;
    expect(bad).to.include({ line: 4, status: "failed", code: "BUNDLE_MALFORMED" });
    const rest = report.verdicts.filter((_, i) => i !== 3);
    const mismatches = usable
      .map((c, i) => verdictMismatch(c, rest[i]!))
      .filter((m) => m !== undefined);
    expect(mismatches).to.deep.equal([]);
    expect(report.summary.verified).to.equal(
      usable.filter((c) => c.wantStatus === "verified").length,
    );
    // Confirmation-dependent vectors, one run each.
    for (const c of cases.filter((x) => x.confirmations !== undefined)) {
      const one = await file("conf.json", await buildCase(c, g));
      const n = confirmationsFor(c, latest, g.anchorBlock);
      const r = await veritrail([
        "verify",
        one,
        "--rpc",
        node.url,
        "--json",
        "--confirmations",
        String(n),
        ...T(),
      ]);
      const verdict = (JSON.parse(r.stdout) as JsonReport).verdicts[0]!;
      expect(verdictMismatch(c, verdict)).to.equal(undefined);
      expect(r.code).to.equal(c.wantStatus === "verified" || c.wantStatus === "erased" ? 0 : 1);
    }
  });

  it("an array of good bundles: a summary line, exit 0", async () => {
    const p = await file("good.json", [g.bases.fresh, g.bases.erased], false);
    const run = await veritrail(["verify", p, "--rpc", node.url, ...T()]);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.equal(
      "2 bundles: 1 verified, 1 erased, 0 withheld, 0 pending, 0 failed, 0 not checked; " +
        `operator: St Mary General Hospital (test)\ntrust policy ${g.trust.fingerprint} (issuer: Test regulator)\n`,
    );
  });

  it("in-process: a progress bar on a TTY for many bundles, none for one", async () => {
    class Capture extends Writable {
      text = "";
      isTTY: boolean;
      columns = 100;
      constructor(tty: boolean) {
        super();
        this.isTTY = tty;
      }
      override _write(chunk: Buffer, _enc: string, done: () => void): void {
        this.text += chunk.toString("utf8");
        done();
      }
    }
    const many = await file(
      "many.ndjson",
      [g.bases.fresh, g.bases.erased, g.bases.fresh].map((b) => JSON.stringify(b)).join("\n"),
    );
    const stdout = new Capture(false);
    const stderr = new Capture(true);
    const code = await runCli(["node", "veritrail", "verify", many, "--rpc", node.url, ...T()], {
      stdout,
      stderr,
      stdin: new PassThrough(),
    });
    expect(code, stderr.text).to.equal(0);
    expect(stderr.text).to.match(/verifying .* 3\/3 bundles/);
    expect(stdout.text).to.match(
      /^3 bundles: 2 verified, 1 erased, 0 withheld, 0 pending, 0 failed, 0 not checked; operator: /,
    );
    const quiet = new Capture(false);
    const one = await file("one.json", g.bases.fresh);
    const code1 = await runCli(["node", "veritrail", "verify", one, "--rpc", node.url, ...T()], {
      stdout: new Capture(false),
      stderr: quiet,
      stdin: new PassThrough(),
    });
    expect(code1).to.equal(0);
    expect(quiet.text).to.equal("");
  });

  it("an unreachable RPC, a missing file or a bad option: exit 2 with a message", async () => {
    const p = await file("fresh2.json", g.bases.fresh);
    const dead = await veritrail(["verify", p, "--rpc", g.deadRpcUrl, ...T()]);
    expect(dead.code).to.equal(2);
    expect(dead.stderr).to.match(/cannot reach the RPC at http:\/\/127\.0\.0\.1:\d+/);
    const missing = await veritrail([
      "verify",
      path.join(dir, "nope.json"),
      "--rpc",
      node.url,
      ...T(),
    ]);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.match(/cannot read .*nope\.json/);
    const badOption = await veritrail([
      "verify",
      p,
      "--rpc",
      node.url,
      "--confirmations",
      "-1",
      ...T(),
    ]);
    expect(badOption.code).to.equal(2);
    expect(badOption.stderr).to.match(/--confirmations/);
  });
});

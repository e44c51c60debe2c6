/**
 * `veritrail provenance` on its own: how it reads traces (saved files, APIs), refuses what it
 * cannot check, and reports a trace whose hops do not hold. The whole path against a real chain
 * with two institutions' logs is in test/services/api/provenance-route.test.ts; here the RPC is
 * a plain JSON-RPC server that answers eth_chainId, because none of these traces gets as far as
 * reading the chain.
 */
import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { runCli } from "../../../services/cli/main.ts";
import { freePort } from "../../support/hardhat-node.ts";
import { policyDocument } from "../../support/trust.ts";

const LOG_A = `0x${"a1".repeat(32)}`;
const LOG_B = `0x${"b2".repeat(32)}`;
const DATA = `0x${"d4".repeat(32)}`;
const OTHER_DATA = `0x${"e5".repeat(32)}`;

function sink(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString("utf8");
      done();
    },
  });
  return { stream, text: () => text };
}

async function veritrail(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await runCli(["node", "veritrail", "provenance", ...args], {
    stdout: out.stream,
    stderr: err.stream,
    stdin: process.stdin,
  });
  return { code, out: out.text(), err: err.text() };
}

function side(logId: string, seq: number, organization: string, bundle: unknown = {}) {
  return { log: "local", logId, seq, organization, recorded: "2026-01-01T00:00:00.000Z", bundle };
}

describe("veritrail provenance (CLI)", function () {
  this.timeout(60_000);
  let dir: string;
  let trustFile: string;
  let rpc: Server;
  let rpcUrl: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-provenance-cli-"));
    trustFile = path.join(dir, "trust.json");
    await writeFile(
      trustFile,
      JSON.stringify(
        policyDocument({
          chainId: 31337,
          contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          logIds: [LOG_A, LOG_B],
        }),
      ),
    );
    rpc = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: "0x7a69" }));
      });
    });
    await new Promise<void>((resolve) => rpc.listen(0, "127.0.0.1", resolve));
    rpcUrl = `http://127.0.0.1:${(rpc.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => rpc.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  async function traceFile(name: string, trace: unknown): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, typeof trace === "string" ? trace : JSON.stringify(trace));
    return file;
  }

  it("usage errors exit 2 and say what is missing", async () => {
    const t = ["--trust", trustFile, "--rpc", rpcUrl];
    const cases: Array<{ args: string[]; says: RegExp }> = [
      { args: t, says: /give --url \(with --key\) or --file/ },
      {
        args: [...t, "--url", "http://127.0.0.1:1", "--key", "vt_x"],
        says: /--url needs --data-hash or --reference/,
      },
      {
        args: [
          ...t,
          ...["--url", "http://127.0.0.1:1", "--url", "http://127.0.0.1:2"],
          ...["--key", "a", "--key", "b", "--key", "c", "--reference", "r"],
        ],
        says: /one --key for all --url, or one --key per --url/,
      },
      { args: ["--rpc", rpcUrl, "--file", "x.json"], says: /no trust policy/ },
      { args: [...t, "--data-hash", "0x12"], says: /must be 0x and 64 lowercase hex digits/ },
    ];
    for (const c of cases) {
      const run = await veritrail(c.args);
      expect(run.code, c.args.join(" ")).to.equal(2);
      expect(run.err, c.args.join(" ")).to.match(c.says);
    }
  });

  it("a file that cannot be read, is not JSON or is not a trace: exit 2 naming it", async () => {
    const t = ["--trust", trustFile, "--rpc", rpcUrl];
    const missing = await veritrail([...t, "--file", path.join(dir, "nope.json")]);
    expect(missing.code).to.equal(2);
    expect(missing.err).to.match(/cannot read .*nope\.json/);

    const notJson = await veritrail([...t, "--file", await traceFile("text.json", "{hops")]);
    expect(notJson.code).to.equal(2);
    expect(notJson.err).to.match(/text\.json is not JSON/);

    const noHops = await traceFile("shape.json", { unmatched: [] });
    const wrongShape = await veritrail([...t, "--file", noHops, "--json"]);
    expect(wrongShape.code).to.equal(2);
    expect(wrongShape.err).to.match(/shape\.json is not a provenance trace \(hops: /);
    const json = JSON.parse(wrongShape.out) as { ok: boolean; error: { code: string } };
    expect(json).to.deep.include({ ok: false });
    expect(json.error.code).to.equal("USAGE");
  });

  it("traces of two different data items are not merged", async () => {
    const one = await traceFile("one.json", { dataHash: DATA, hops: [], unmatched: [] });
    const two = await traceFile("two.json", { dataHash: OTHER_DATA, hops: [], unmatched: [] });
    const run = await veritrail([
      "--trust",
      trustFile,
      "--rpc",
      rpcUrl,
      "--file",
      one,
      "--file",
      two,
    ]);
    expect(run.code).to.equal(2);
    expect(run.err).to.include("the traces are of different data items");
  });

  it("an unreachable RPC is exit 2, without the URL's secret part", async () => {
    const file = await traceFile("empty.json", { dataHash: DATA, hops: [], unmatched: [] });
    const dead = `http://127.0.0.1:${await freePort()}/secret-key`;
    const run = await veritrail(["--trust", trustFile, "--rpc", dead, "--file", file]);
    expect(run.code).to.equal(2);
    expect(run.err).to.match(/cannot reach the RPC at http:\/\/127\.0\.0\.1:\d+:/);
    expect(run.err).not.to.include("secret-key");
  });

  it("nothing found is not OK (exit 1); an unreadable peer log makes the trace incomplete", async () => {
    const empty = await traceFile("nothing.json", { dataHash: DATA, hops: [], unmatched: [] });
    const none = await veritrail(["--trust", trustFile, "--rpc", rpcUrl, "--file", empty]);
    expect(none.code).to.equal(1);
    expect(none.out).to.include("no transfer of this data item was found");
    expect(none.out).to.match(/^NOT OK: 0 hops, 0 verified, 0 failed; 0 unmatched transfers$/m);

    const incomplete = await traceFile("incomplete.json", {
      dataHash: DATA,
      hops: [],
      unmatched: [],
      logs: [{ name: "lab", readable: false, error: "lab: GET /v1/events answered 401" }],
      complete: false,
    });
    const run = await veritrail([
      ...["--trust", trustFile, "--rpc", rpcUrl, "--file", incomplete, "--json"],
    ]);
    expect(run.code).to.equal(1);
    const out = JSON.parse(run.out) as { ok: boolean; complete: boolean; unreadable: unknown[] };
    expect(out.ok).to.equal(false);
    expect(out.complete).to.equal(false);
    expect(out.unreadable).to.deep.equal([
      { name: "lab", readable: false, error: "lab: GET /v1/events answered 401" },
    ]);
  });

  it("a hop whose bundles are not proofs, or that was withheld, fails; custody still shown", async () => {
    const file = await traceFile("bad-hop.json", {
      dataHash: DATA,
      hops: [
        {
          reference: "xfer-1",
          dataHash: DATA,
          from: side(LOG_A, 3, "org:hospital", { not: "a bundle" }),
          to: side(LOG_B, 7, "org:lab", { not: "a bundle" }),
        },
        {
          reference: "xfer-2",
          dataHash: DATA,
          from: side(LOG_B, 9, "org:lab", {}),
          to: { withheld: true },
        },
      ],
      unmatched: [],
    });
    const text = await veritrail(["--trust", trustFile, "--rpc", rpcUrl, "--file", file]);
    expect(text.code).to.equal(1);
    expect(text.out).to.match(/^hop 1: xfer-1 {2}org:hospital → org:lab$/m);
    expect(text.out).to.match(
      /✗ export org:hospital, seq 3 of log 0xa1a1.*: FAILED BUNDLE_MALFORMED$/m,
    );
    expect(text.out).to.match(/✗ match {2}export: the bundle is of undefined:undefined, not 0xa1/m);
    expect(text.out).to.match(/^HOP 1 FAILED$/m);
    expect(text.out).to.match(/✗ import withheld from this key/);
    expect(text.out).to.include("the import side was withheld from the key that asked");
    expect(text.out).to.match(/^custody: org:hospital → org:lab$/m);
    expect(text.out).to.match(/^NOT OK: 2 hops, 0 verified, 2 failed; 0 unmatched transfers$/m);

    const json = await veritrail(["--trust", trustFile, "--rpc", rpcUrl, "--file", file, "--json"]);
    const out = JSON.parse(json.out) as {
      ok: boolean;
      rpc: string;
      hops: Array<{ ok: boolean; from: { status?: string }; match: { ok: boolean } }>;
    };
    expect(out.ok).to.equal(false);
    expect(out.rpc).to.equal(rpcUrl);
    expect(out.hops.map((h) => [h.ok, h.match.ok])).to.deep.equal([
      [false, false],
      [false, false],
    ]);
    expect(out.hops[0]?.from.status).to.equal("failed");
  });
});

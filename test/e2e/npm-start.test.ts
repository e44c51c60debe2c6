/**
 * End to end, as a user would: `npm start` in a temp data directory on free loopback ports,
 * events posted with the printed admin key's writer, bundles verified against the chain with the
 * standalone verifier, SIGTERM, and a restart that still has every acknowledged event.
 */
import { expect } from "chai";
import { JsonRpcProvider } from "ethers";
import { lstat, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { readTrustPolicyFile } from "../../services/cli/trust-policy-file.ts";
import { verifyBundle } from "../../services/verifier/verify-bundle.ts";
import { makeNativeEvent } from "../fixtures/events.ts";
import { freePort } from "../support/hardhat-node.ts";
import { type Started, npmStart, stop } from "../support/npm-start.ts";

/** Pids whose parent is `pid` (Linux /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) out.push(Number(name));
  }
  return out;
}

/** Every path under `dir` with its permission bits, as `mode path` lines. */
async function modesUnder(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (at: string): Promise<void> => {
    const info = await lstat(at);
    lines.push(`${(info.mode & 0o777).toString(8)} ${path.relative(dir, at) || "."}`);
    if (info.isDirectory()) for (const n of await readdir(at)) await walk(path.join(at, n));
  };
  await walk(dir);
  return lines;
}

async function api<T>(
  base: string,
  key: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(base + route, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as T };
}

describe("npm start, end to end", function () {
  this.timeout(300_000);
  let dataDir: string;
  const running: Started[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), "veritrail-e2e-"));
  });
  after(async () => {
    for (const s of running) await stop(s, "SIGKILL").catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  });

  it("logs, anchors, proves, stops cleanly and keeps every acknowledged event", async () => {
    const port = await freePort();
    const chainPort = await freePort();
    const env = {
      DATA_DIR: path.join(dataDir, "data"),
      PORT: String(port),
      EMBEDDED_CHAIN_PORT: String(chainPort),
      BATCH_MAX_WAIT_MS: "200",
      LOG_LEVEL: "info",
    };
    const first = await npmStart(env);
    running.push(first);
    const base = `http://127.0.0.1:${port}`;
    expect(first.adminKey, first.output()).to.be.a("string");
    const admin = first.adminKey!;

    const writer = await api<{ secret: string }>(base, admin, "POST", "/v1/keys", {
      role: "writer",
      organization: "org:st-mary-general",
    });
    expect(writer.status).to.equal(201);
    const writerKey = writer.body.secret;

    // 30 single posts, 10 at a time, plus one bulk call of 20.
    const event = (i: number) => {
      const e = makeNativeEvent({ requestId: `e2e-${i}` });
      return { ...e, source: { ...e.source, organization: "org:st-mary-general" } };
    };
    const receipts: Array<{ seq: number; leafHash: string }> = [];
    for (let round = 0; round < 3; round++) {
      const posted = await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          api<{ receipts: Array<{ receipt: { seq: number; leafHash: string } }> }>(
            base,
            writerKey,
            "POST",
            "/v1/events",
            event(round * 10 + j),
          ),
        ),
      );
      for (const p of posted) {
        expect(p.status).to.equal(201);
        receipts.push(p.body.receipts[0]!.receipt);
      }
    }
    const bulk = await api<{ receipts: Array<{ receipt: { seq: number; leafHash: string } }> }>(
      base,
      writerKey,
      "POST",
      "/v1/events",
      Array.from({ length: 20 }, (_, i) => event(100 + i)),
    );
    expect(bulk.status).to.equal(201);
    receipts.push(...bulk.body.receipts.map((r) => r.receipt));
    expect(receipts.map((r) => r.seq).sort((a, b) => a - b)).to.deep.equal(
      Array.from({ length: 50 }, (_, i) => i),
    );

    // Wait until the last event's batch is anchored, then verify bundles against the chain.
    const deadline = Date.now() + 60_000;
    let last: { status: string } | undefined;
    while (Date.now() < deadline) {
      last = (await api<{ status: string }>(base, writerKey, "GET", "/v1/events/49/proof")).body;
      if (last.status === "anchored") break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(last?.status).to.equal("anchored");
    const provider = new JsonRpcProvider(`http://127.0.0.1:${chainPort}`, undefined, {
      staticNetwork: true,
    });
    // npm start wrote this log's trust policy and printed its path and fingerprint; the API
    // serves the same document at /.well-known/veritrail-trust.json.
    const trustFile = path.join(env.DATA_DIR, "trust.json");
    const trust = await readTrustPolicyFile(trustFile);
    expect(first.output()).to.include(`trust policy   ${path.resolve(trustFile)}`);
    expect(first.output()).to.include(`fingerprint ${trust.fingerprint}`);
    expect(trust.logs.map((l) => l.operator)).to.deep.equal(["Veritrail development log"]);
    const wellKnown = await fetch(`${base}/.well-known/veritrail-trust.json`);
    expect(wellKnown.status).to.equal(200);
    expect(wellKnown.headers.get("x-veritrail-trust-fingerprint")).to.equal(trust.fingerprint);
    // GET /v1/status (and so `veritrail status`) shows the same policy.
    const status = await api<{ trust: { fingerprint: string; file: string } | null }>(
      base,
      admin,
      "GET",
      "/v1/status",
    );
    expect(status.body.trust).to.deep.include({
      fingerprint: trust.fingerprint,
      file: path.resolve(trustFile),
    });
    for (const seq of [0, 17, 49]) {
      const bundle = (await api<unknown>(base, writerKey, "GET", `/v1/events/${seq}/proof`)).body;
      const verdict = await verifyBundle(bundle, provider, { trust, confirmations: 1 });
      expect(verdict.ok, JSON.stringify(verdict.checks)).to.equal(true);
      expect(verdict.trust?.operator).to.equal("Veritrail development log");
      // The service's own /v1/verify runs the same verifier against its chain.
      const served = await api<{ ok: boolean }>(base, writerKey, "POST", "/v1/verify", bundle);
      expect(served.status).to.equal(200);
      expect(served.body.ok).to.equal(true);
    }
    provider.destroy();

    // The regulator's audit replays the log and compares every header with the registry.
    const auditor = await api<{ secret: string }>(base, admin, "POST", "/v1/keys", {
      role: "auditor",
    });
    const audit = await api<{ ok: boolean; events: number; chain: unknown; findings: unknown[] }>(
      base,
      auditor.body.secret,
      "POST",
      "/v1/audit",
    );
    expect(audit.status, JSON.stringify(audit.body)).to.equal(200);
    expect(audit.body.ok, JSON.stringify(audit.body.findings)).to.equal(true);
    expect(audit.body.events).to.equal(50);
    expect(audit.body.chain).to.not.equal(null);

    const anchoredBatches = (await api<{ batches: unknown[] }>(base, admin, "GET", "/v1/batches"))
      .body.batches.length;
    expect(await stop(first)).to.equal(0);
    running.pop();

    // Restart on the same data: no new admin key, the keys still work, every acknowledged
    // event is there, unchanged.
    expect(first.output()).to.match(/deployed the registry on the development chain at 0x/);
    expect(first.output()).to.match(/registered the log in the registry at 0x/);

    const second = await npmStart(env);
    running.push(second);
    expect(second.adminKey).to.equal(undefined);
    // The embedded chain starts empty: the service says that it redeploys, re-registers and
    // re-anchors every batch, and when it is done.
    const caughtUp = new RegExp(
      `anchoring caught up after the chain reset: ${anchoredBatches} batch(es)? anchored in`,
    );
    const until = Date.now() + 60_000;
    while (!caughtUp.test(second.output()) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 250));
    expect(second.output()).to.match(
      new RegExp(
        `the development chain was reset \\(no registry code at 0x[0-9a-fA-F]{40}\\): redeployed the registry at 0x[0-9a-fA-F]{40} \\(was 0x[0-9a-fA-F]{40}\\), re-registered the log, re-anchoring ${anchoredBatches} batch(es)? from LevelDB`,
      ),
    );
    expect(second.output()).to.match(caughtUp);
    const keys = await api<unknown[]>(base, admin, "GET", "/v1/keys");
    expect(keys.status).to.equal(200);
    for (const r of receipts) {
      const got = await api<{ entry: { seq: number } }>(
        base,
        writerKey,
        "GET",
        `/v1/events/${r.seq}`,
      );
      expect(got.status, `seq ${r.seq}`).to.equal(200);
      expect(got.body.entry.seq).to.equal(r.seq);
      const proof = await api<{ receipt: { leafHash: string } }>(
        base,
        writerKey,
        "GET",
        `/v1/events/${r.seq}/proof`,
      );
      expect(proof.body.receipt.leafHash).to.equal(r.leafHash);
    }
    expect(await stop(second)).to.equal(0);
    running.pop();
  });

  it("restarts after kill -9 with no manual step (the embedded node died with it); DATA_DIR is private", async () => {
    const port = await freePort();
    const chainPort = await freePort();
    const data = path.join(dataDir, "killed");
    const env = {
      DATA_DIR: data,
      PORT: String(port),
      EMBEDDED_CHAIN_PORT: String(chainPort),
      BATCH_MAX_WAIT_MS: "200",
      LOG_LEVEL: "warn",
    };
    const base = `http://127.0.0.1:${port}`;
    const first = await npmStart(env);
    running.push(first);
    const admin = first.adminKey!;
    const writer = await api<{ secret: string }>(base, admin, "POST", "/v1/keys", {
      role: "writer",
      organization: "org:st-mary-general",
    });
    const e = makeNativeEvent({ requestId: "kill9-e2e" });
    const posted = await api<{ receipts: Array<{ receipt: { seq: number } }> }>(
      base,
      writer.body.secret,
      "POST",
      "/v1/events",
      { ...e, source: { ...e.source, organization: "org:st-mary-general" } },
    );
    expect(posted.status).to.equal(201);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const proof = await api<{ status: string }>(
        base,
        writer.body.secret,
        "GET",
        "/v1/events/0/proof",
      );
      if (proof.body.status === "anchored") break;
      await new Promise((r) => setTimeout(r, 250));
    }

    // Everything under DATA_DIR is the user's alone: LevelDB's files, deployment.json, the pid file.
    const modes = await modesUnder(data);
    expect(modes).to.include.members([
      "700 .",
      "700 ledger",
      "600 deployment.json",
      "600 dev-chain.pid",
    ]);
    expect(modes.some((l) => l.startsWith("600 ledger/CURRENT"))).to.equal(true);
    expect(
      modes.filter((l) => !/^(700|600) /.test(l)),
      modes.join("\n"),
    ).to.deep.equal([]);

    // kill -9 of the service process alone (npm's child, the exec'd node), then of the whole
    // npm group: each time `npm start` must come back on the same ports and data.
    const [service] = await childrenOf(first.child.pid!);
    expect(service).to.be.a("number");
    const chainPid = Number(
      (JSON.parse(await readFile(path.join(data, "dev-chain.pid"), "utf8")) as { pid: number }).pid,
    );
    process.kill(service!, "SIGKILL");
    await stop(first, "SIGKILL");
    running.pop();
    const second = await npmStart(env);
    running.push(second);
    expect(second.output()).to.not.include("could not start");
    const nodeGone = await readFile(`/proc/${chainPid}/stat`, "utf8").then(
      () => false,
      () => true,
    );
    expect(nodeGone, "the first embedded node is gone").to.equal(true);
    expect((await api<unknown>(base, admin, "GET", "/v1/events/0", undefined)).status).to.equal(
      403,
    );
    expect((await api<unknown>(base, writer.body.secret, "GET", "/v1/events/0")).status).to.equal(
      200,
    );

    await stop(second, "SIGKILL");
    running.pop();
    const third = await npmStart(env);
    running.push(third);
    expect((await api<unknown>(base, writer.body.secret, "GET", "/v1/events/0")).status).to.equal(
      200,
    );
    expect(await stop(third)).to.equal(0);
    running.pop();
  });
});

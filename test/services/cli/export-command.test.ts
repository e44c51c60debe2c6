import { expect } from "chai";
import { spawn } from "node:child_process";
import http from "node:http";
import { Readable, Writable } from "node:stream";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { createApp } from "../../../services/api/app.ts";
import { runCli } from "../../../services/cli/main.ts";
import { startServer } from "../../../services/api/server.ts";
import { loadConfig } from "../../../services/config.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import { eraseEvent } from "../../../services/ledger/erasure.ts";
import { HOSPITAL_ORG, LAB_ORG } from "../../fixtures/events.ts";
import { AnchoredLog, patientEvent } from "../../support/anchored-log.ts";
import { HardhatNode } from "../../support/hardhat-node.ts";
import {
  type TestService,
  startTestService,
  veritrailInProcess,
} from "../../support/running-service.ts";

const BIN = path.resolve(import.meta.dirname, "../../../bin/veritrail.js");

/** Runs `bin/veritrail.js` as a user would; stdout goes to `stdoutFile` when given. */
async function veritrail(
  args: string[],
  stdoutFile?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = stdoutFile === undefined ? undefined : await open(stdoutFile, "w");
  try {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ["ignore", out === undefined ? "pipe" : out.fd, "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const code = await new Promise<number>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (c) => resolve(c ?? -1));
    });
    return { code, stdout, stderr };
  } finally {
    await out?.close();
  }
}

describe("cli/export-command: veritrail export | veritrail verify (Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let log: AnchoredLog;
  let server: Awaited<ReturnType<typeof startServer>>;
  let auditorKey: string;
  let writerKey: string;
  let outDir: string;

  before(async () => {
    outDir = await mkdtemp(path.join(tmpdir(), "veritrail-export-"));
    node = await HardhatNode.start();
    log = await AnchoredLog.create(node);
    const keys = ApiKeys.forLedger(log.ledger);
    const app = createApp({
      ledger: log.ledger,
      apiKeys: keys,
      logger: pino({ level: "silent" }),
      config: loadConfig({}),
    });
    server = await startServer(app, { host: "127.0.0.1", port: 0 });
    auditorKey = (await keys.create({ role: "auditor" })).secret;
    writerKey = (await keys.create({ role: "writer", organization: LAB_ORG })).secret;
    const results = await log.ledger.ingest([
      patientEvent("MRN-EXPORT-1"),
      patientEvent("MRN-EXPORT-2", {
        source: { ...patientEvent("x").source, organization: LAB_ORG },
      }),
      patientEvent("MRN-EXPORT-1"),
      patientEvent("MRN-EXPORT-3"),
    ]);
    await log.sealAndAnchor();
    await eraseEvent(log.ledger, {
      seq: results[2]!.receipt.seq,
      legalBasis: "GDPR Art. 17",
      reason: "test",
      keyId: "key_0000000000000022",
    });
    await log.sealAndAnchor();
  });

  after(async () => {
    await server?.close(1_000);
    await log?.close();
    await node?.stop();
    if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
  });

  it("exports every bundle (erased one included) and `veritrail verify` accepts the file: exit 0", async () => {
    const file = path.join(outDir, "all.ndjson");
    const exported = await veritrail(["export", "--url", server.url, "--key", auditorKey], file);
    expect(exported.code, exported.stderr).to.equal(0);
    expect(exported.stderr).to.include(`${log.ledger.nextSeq} bundles exported`);
    const lines = (await readFile(file, "utf8")).trim().split("\n");
    expect(lines).to.have.length(log.ledger.nextSeq);
    expect(
      lines.filter((l) => (JSON.parse(l) as { event: unknown }).event === null),
    ).to.have.length(1);

    const trust = ["--trust", await log.writeTrustFile()];
    const verified = await veritrail(["verify", file, "--rpc", node.url, ...trust]);
    expect(verified.code, verified.stdout + verified.stderr).to.equal(0);
    // The erased event's bundle carries its erasure record: erased, not withheld.
    expect(verified.stdout).to.include(
      `${lines.length - 1} verified, 1 erased, 0 withheld, 0 pending, 0 failed`,
    );

    // The same file with one event altered no longer verifies.
    const bundle = JSON.parse(lines[0]!) as { event: { action: string } };
    bundle.event.action = bundle.event.action === "R" ? "U" : "R";
    const tampered = file.replace(/\.ndjson$/, "-tampered.ndjson");
    await writeFile(tampered, [JSON.stringify(bundle), ...lines.slice(1)].join("\n") + "\n");
    const rejected = await veritrail(["verify", tampered, "--rpc", node.url, ...trust]);
    expect(rejected.code).to.equal(1);
    expect(rejected.stdout).to.include("COMMITMENT_MISMATCH");
  });

  it("--organization and --from/--to narrow the export", async () => {
    const file = path.join(outDir, "lab.ndjson");
    const exported = await veritrail(
      ["export", "--url", server.url, "--key", auditorKey, "--organization", LAB_ORG],
      file,
    );
    expect(exported.code, exported.stderr).to.equal(0);
    const lines = (await readFile(file, "utf8")).trim().split("\n");
    expect(lines).to.have.length(1);
    const none = await veritrail(
      ["export", "--url", server.url, "--key", auditorKey, "--to", "2000-01-01T00:00:00Z"],
      file,
    );
    expect(none.code).to.equal(0);
    expect(await readFile(file, "utf8")).to.equal("");
  });

  it("an error answer or a bad option is exit 2 with the API's error code on stderr", async () => {
    const denied = await veritrail(["export", "--url", server.url, "--key", writerKey]);
    expect(denied.code).to.equal(2);
    expect(denied.stderr).to.include("403").and.include("FORBIDDEN");
    const badKey = await veritrail(["export", "--url", server.url, "--key", "vt_nope"]);
    expect(badKey.code).to.equal(2);
    expect(badKey.stderr).to.include("UNAUTHENTICATED");
    const badFrom = await veritrail([
      "export",
      "--url",
      server.url,
      "--key",
      auditorKey,
      "--from",
      "soon",
    ]);
    expect(badFrom.code).to.equal(2);
    const down = await veritrail(["export", "--url", "http://127.0.0.1:1", "--key", auditorKey]);
    expect(down.code).to.equal(2);
    expect(down.stderr).to.include("cannot reach");
  });
});

describe("cli/export-command: a stream that breaks off", () => {
  it("exits 1 and says how many bundles arrived when the connection drops mid-line", async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write('{"format":"veritrail-proof/1"}\n{"format":"veri');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const out: string[] = [];
    const err: string[] = [];
    const sink = (into: string[]) =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          into.push(chunk.toString("utf8"));
          done();
        },
      });
    try {
      const code = await runCli(
        ["node", "veritrail", "export", "--url", `http://127.0.0.1:${port}`, "--key", "vt_x"],
        { stdout: sink(out), stderr: sink(err), stdin: Readable.from([]) },
      );
      expect(code).to.equal(1);
      expect(err.join("")).to.match(/broke off after 1 bundles/);
      expect(out.join("")).to.match(/^\{"format":"veritrail-proof\/1"\}\n/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("cli/export-command: progress against a running service", function () {
  this.timeout(120_000);
  let service: TestService;
  let auditor: string;
  let posted = 0;

  before(async () => {
    service = await startTestService();
    const key = async (body: unknown) => {
      const res = await fetch(`${service.url}/v1/keys`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${service.adminKey}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      return ((await res.json()) as { secret: string }).secret;
    };
    const writer = await key({ role: "writer", organization: HOSPITAL_ORG });
    auditor = await key({ role: "auditor" });
    const events = Array.from({ length: 40 }, (_, i) => ({
      ...patientEvent(`MRN-EXPORT-${i % 4}`),
      requestId: `export-progress-${i}`,
    }));
    const res = await fetch(`${service.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${writer}`, "content-type": "application/json" },
      body: JSON.stringify(events),
    });
    expect(res.status).to.equal(201);
    posted = events.length;
  });
  after(async () => {
    await service?.stop();
  });

  it("on a terminal: a progress bar out of the log's size, every bundle on stdout", async () => {
    const r = await veritrailInProcess(["export", "--url", service.url, "--key", auditor], {
      tty: true,
    });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(new RegExp(`exporting .* ${posted}/${posted} bundles`));
    expect(r.stderr).to.include(`veritrail export: ${posted} bundles exported`);
    const lines = r.stdout.trim().split("\n");
    expect(lines).to.have.length(posted);
    expect(lines.map((l) => (JSON.parse(l) as { entry: { seq: number } }).entry.seq)).to.deep.equal(
      Array.from({ length: posted }, (_, i) => i),
    );
  });

  it("a filtered export has no total to show: it counts", async () => {
    const r = await veritrailInProcess(
      ["export", "--url", service.url, "--key", auditor, "--organization", HOSPITAL_ORG],
      { tty: true },
    );
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(new RegExp(`exporting ${posted} bundles`));
    expect(r.stderr).to.not.match(/\d+\/\d+ bundles/);
  });

  it("--help", async () => {
    const r = await veritrailInProcess(["export", "--help"]);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.include("--organization <org>").and.include("env: VERITRAIL_KEY");
  });
});

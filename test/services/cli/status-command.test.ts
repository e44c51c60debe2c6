import { expect } from "chai";
import { Wallet } from "ethers";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { RegistryClient } from "../../../services/chain/registry-client.ts";
import { LogStatusSchema } from "../../../services/ledger/log-status.ts";
import { HARDHAT_ACCOUNTS } from "../../support/hardhat-node.ts";
import {
  type TestService,
  startTestService,
  veritrail,
  veritrailInProcess,
} from "../../support/running-service.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");

async function createKey(service: TestService, body: unknown): Promise<string> {
  const res = await fetch(`${service.url}/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${service.adminKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).to.equal(201);
  return ((await res.json()) as { secret: string }).secret;
}

/** Posts the examples' three NDJSON events, with fresh requestIds (`tag`), as the hospital. */
async function postEvents(service: TestService, writer: string, tag: string): Promise<number> {
  const lines = (await readFile(path.join(ROOT, "examples/events.ndjson"), "utf8"))
    .trim()
    .split("\n")
    .map((line) => {
      const event = JSON.parse(line) as { requestId: string };
      return JSON.stringify({ ...event, requestId: `${event.requestId}-${tag}` });
    });
  const res = await fetch(`${service.url}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${writer}`, "content-type": "application/x-ndjson" },
    body: lines.join("\n"),
  });
  expect(res.status, await res.clone().text()).to.equal(201);
  return lines.length;
}

describe("cli: veritrail status (a running service)", function () {
  this.timeout(180_000);
  let service: TestService;
  let writer: string;
  let auditor: string;
  let api: string[];

  before(async () => {
    // A recoverable alarm is re-checked every ANCHOR_RETRY_MAX_MS (30 s by default).
    service = await startTestService({ ANCHOR_RETRY_MAX_MS: "1000" });
    writer = await createKey(service, { role: "writer", organization: "org:st-mary-general" });
    auditor = await createKey(service, { role: "auditor" });
    api = ["--url", service.url, "--key", auditor];
  });
  after(async () => {
    await service?.stop();
  });

  it("an empty log: nothing accepted, no backlog, no alarm, this log's trust policy; exit 0", async () => {
    const r = await veritrail(["status", ...api]);
    expect(r.code, r.stderr).to.equal(0);
    const logId = service.service.system.ledger.logId;
    expect(r.stdout).to.match(new RegExp(`^log {12}${logId}$`, "m"));
    expect(r.stdout).to.match(/^events {9}0 accepted: 0 sealed, 0 anchored$/m);
    expect(r.stdout).to.match(/^batches {8}0 sealed, 0 anchored$/m);
    expect(r.stdout).to.match(/^backlog {8}none$/m);
    expect(r.stdout).to.match(/^alarms {9}none$/m);
    // The service publishes its own log's policy (DATA_DIR/trust.json) once it is registered.
    const trust = service.service.trust;
    const line = r.stdout.split("\n").find((l) => l.startsWith("trust policy"));
    expect(line).to.match(new RegExp(`^trust policy {3}${trust.fingerprint!} \\(`));
    expect(line?.endsWith(`, ${trust.file}`)).to.equal(true);
  });

  it("--wait waits until every event accepted so far is anchored, then reports it; --json", async () => {
    const posted = await postEvents(service, writer, "wait");
    const r = await veritrailInProcess(["status", "--wait", ...api]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(
      new RegExp(
        `^events {9}${posted} accepted \\(seq 0–${posted - 1}\\): ${posted} sealed, ${posted} anchored$`,
        "m",
      ),
    );
    expect(r.stdout).to.match(/^backlog {8}none$/m);
    const contract = service.service.system.contractAddress() as string;
    expect(r.stdout).to.match(
      new RegExp(`^anchoring {6}running, registry ${contract} on chain 31337`, "m"),
    );

    const json = await veritrailInProcess(["status", "--json", ...api]);
    const status = LogStatusSchema.parse(JSON.parse(json.stdout));
    expect(status.events).to.deep.equal({ accepted: posted, sealed: posted, anchored: posted });
    expect(status.batches.anchored).to.equal(status.batches.sealed);
    expect(status.anchoring?.contract).to.equal(contract);
    // The status answer is the one the API serves to admins too.
    const asAdmin = await veritrailInProcess([
      "status",
      "--json",
      "--url",
      service.url,
      "--key",
      service.adminKey,
    ]);
    expect(LogStatusSchema.parse(JSON.parse(asAdmin.stdout)).events).to.deep.equal(status.events);
  });

  it("--wait on a terminal shows a progress bar of anchored events", async () => {
    const before = LogStatusSchema.parse(
      JSON.parse((await veritrailInProcess(["status", "--json", ...api])).stdout),
    );
    const posted = await postEvents(service, writer, "bar");
    const total = before.events.accepted + posted;
    const r = await veritrailInProcess(["status", "--wait", ...api], { tty: true });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(new RegExp(`anchoring .* ${total}/${total} events`));
  });

  it("an anchoring alarm (the registry's anchorer for this log was changed) is exit 1 and named; it clears once fixed", async () => {
    const system = service.service.system;
    const registry = await RegistryClient.connect({
      rpcUrl: system.rpcUrl,
      address: system.contractAddress() as string,
    });
    const admin = new Wallet(HARDHAT_ACCOUNTS[0].privateKey, registry.provider);
    const stranger = Wallet.createRandom().address;
    try {
      await registry.rotateAnchorer(admin, system.ledger.logId, stranger);
      await postEvents(service, writer, "alarm");
      let r = await veritrailInProcess(["status", ...api]);
      for (let i = 0; i < 100 && !/ANCHORER_MISMATCH/.test(r.stdout); i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        r = await veritrailInProcess(["status", ...api]);
      }
      expect(r.code, r.stdout).to.equal(1);
      expect(r.stdout).to.match(
        new RegExp(
          `^alarms {9}ANCHORER_MISMATCH: the registry's anchorer for this log is ${stranger}`,
          "m",
        ),
      );
      expect(r.stdout).to.match(/\(clears by itself once fixed\)$/m);
      // --wait does not wait for what cannot happen: it stops at the alarm, exit 1.
      const waited = await veritrailInProcess(["status", "--wait", "--timeout", "60", ...api]);
      expect(waited.code).to.equal(1);
      expect(waited.stdout).to.include("ANCHORER_MISMATCH");

      await registry.rotateAnchorer(admin, system.ledger.logId, system.anchorerAddress);
      for (let i = 0; i < 100 && (await veritrailInProcess(["status", ...api])).code !== 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 200));
      const fixed = await veritrailInProcess(["status", "--wait", "--timeout", "60", ...api]);
      expect(fixed.code, fixed.stdout + fixed.stderr).to.equal(0);
      expect(fixed.stdout).to.match(/^alarms {9}none$/m);
    } finally {
      registry.destroy();
    }
  });

  it("a writer or patient key, a bad key, an unreachable API: exit 2 with the reason", async () => {
    const patient = await createKey(service, { role: "patient", patient: { value: "MRN-1" } });
    for (const [key, says] of [
      [writer, "the API answered 403: FORBIDDEN"],
      [patient, "the API answered 403: FORBIDDEN"],
      ["vt_nope", "the API answered 401: UNAUTHENTICATED"],
    ] as const) {
      const r = await veritrailInProcess(["status", "--url", service.url, "--key", key]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include(says);
    }
    const down = await veritrailInProcess([
      "status",
      "--url",
      "http://127.0.0.1:1",
      "--key",
      auditor,
    ]);
    expect(down.code).to.equal(2);
    expect(down.stderr).to.include("cannot reach http://127.0.0.1:1");
    const noKey = await veritrailInProcess(["status", "--url", service.url]);
    expect(noKey.code).to.equal(2);
    expect(noKey.stderr).to.include("--key");
    const help = await veritrailInProcess(["status", "--help"]);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include("--wait").and.include("--timeout <seconds>");
  });
});

describe("cli: veritrail status --wait that times out (events that never seal)", function () {
  this.timeout(120_000);
  let service: TestService;

  before(async () => {
    service = await startTestService({ BATCH_MAX_WAIT_MS: "3600000" });
  });
  after(async () => {
    await service?.stop();
  });

  it("exit 1 after --timeout, saying how many of the events are anchored", async () => {
    const writer = await createKey(service, {
      role: "writer",
      organization: "org:st-mary-general",
    });
    const posted = await postEvents(service, writer, "never");
    const r = await veritrailInProcess([
      "status",
      "--wait",
      "--timeout",
      "1",
      "--url",
      service.url,
      "--key",
      service.adminKey,
    ]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(
      `after 1 s, 0 of the ${posted} events accepted when it started are anchored`,
    );
    expect(r.stdout).to.match(new RegExp(`^backlog {8}${posted} events not sealed yet$`, "m"));
  });
});

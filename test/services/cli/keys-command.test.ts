import { expect } from "chai";
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  type TestService,
  startTestService,
  veritrail,
  veritrailInProcess,
} from "../../support/running-service.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const SECRET = /^vt_[A-Za-z0-9_-]{43}$/;

async function post(service: TestService, key: string, route: string, body: unknown) {
  const res = await fetch(service.url + route, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe("cli: veritrail keys create|list|revoke (a running service)", function () {
  this.timeout(120_000);
  let service: TestService;
  let api: string[];

  before(async () => {
    service = await startTestService();
    api = ["--url", service.url, "--key", service.adminKey];
  });
  after(async () => {
    await service?.stop();
  });

  it("create: the secret alone on stdout, what it is on stderr; the key works at once", async () => {
    const r = await veritrail([
      "keys",
      "create",
      "--role",
      "writer",
      "--organization",
      "org:st-mary-general",
      ...api,
    ]);
    expect(r.code, r.stderr).to.equal(0);
    const secret = r.stdout.trim();
    expect(r.stdout).to.match(/^vt_[A-Za-z0-9_-]{43}\n$/);
    expect(r.stderr).to.match(
      /^created key_[0-9a-f]{16} \(writer for org:st-mary-general\); its secret, shown once \(only its hash is stored\):\n$/,
    );
    const posted = await post(
      service,
      secret,
      "/v1/events",
      await readFile(path.join(ROOT, "examples/event.json"), "utf8"),
    );
    expect(posted.status, JSON.stringify(posted.body)).to.equal(201);
  });

  it("create takes the URL and the key from VERITRAIL_URL and VERITRAIL_KEY; --json prints the answer", async () => {
    const r = await veritrail(["keys", "create", "--role", "auditor", "--json"], {
      env: { VERITRAIL_URL: service.url, VERITRAIL_KEY: service.adminKey },
    });
    expect(r.code, r.stderr).to.equal(0);
    const answer = JSON.parse(r.stdout) as { secret: string; key: { role: string; id: string } };
    expect(answer.secret).to.match(SECRET);
    expect(answer.key.role).to.equal("auditor");
  });

  it("create a patient key: it reads that patient's history", async () => {
    const r = await veritrailInProcess([
      "keys",
      "create",
      "--role",
      "patient",
      "--patient-system",
      "urn:oid:2.16.840.1.113883.3.8901.1",
      "--patient",
      "MRN-0042-7731",
      ...api,
    ]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/\(patient \(subject 0x[0-9a-f]{64}\)\)/);
    const res = await fetch(`${service.url}/v1/patient/history`, {
      headers: { authorization: `Bearer ${r.stdout.trim()}` },
    });
    expect(res.status).to.equal(200);
  });

  it("list: a table of every key (never a secret) and a count; --json", async () => {
    const r = await veritrailInProcess(["keys", "list", ...api]);
    expect(r.code, r.stderr).to.equal(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).to.match(/^ID\s+ROLE\s+SCOPE\s+CREATED\s+REVOKED$/);
    expect(r.stdout).to.match(/^key_[0-9a-f]{16}\s+admin\s+—\s+\d{4}-\d\d-\d\dT\S+Z\s+—$/m);
    expect(r.stdout).to.match(/^key_[0-9a-f]{16}\s+writer\s+org:st-mary-general\s/m);
    expect(r.stdout).to.not.match(/vt_/);
    expect(lines.at(-1)).to.equal("4 keys, 4 live, 0 revoked");
    const json = await veritrailInProcess(["keys", "list", "--json", ...api]);
    expect((JSON.parse(json.stdout) as { keys: unknown[] }).keys).to.have.length(4);
  });

  it("revoke: the key stops working; revoking it again or an unknown id is exit 2 with the API's code", async () => {
    const created = await veritrailInProcess([
      "keys",
      "create",
      "--role",
      "auditor",
      "--json",
      ...api,
    ]);
    const { secret, key } = JSON.parse(created.stdout) as { secret: string; key: { id: string } };
    const before = await fetch(`${service.url}/v1/batches`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(before.status).to.equal(200);

    const r = await veritrailInProcess(["keys", "revoke", key.id, ...api]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(new RegExp(`^revoked ${key.id} \\(auditor\\) at \\d{4}-\\S+Z\\n$`));
    const after = await fetch(`${service.url}/v1/batches`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(after.status).to.equal(401);
    const listed = await veritrailInProcess(["keys", "list", ...api]);
    expect(listed.stdout).to.match(
      new RegExp(`^${key.id}\\s+auditor\\s+—\\s+\\S+\\s+\\d{4}-\\S+Z$`, "m"),
    );
    expect(listed.stdout).to.match(/, 1 revoked\n$/);

    const again = await veritrailInProcess(["keys", "revoke", key.id, ...api]);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.include("the API answered 409: CONFLICT");
    const unknown = await veritrailInProcess(["keys", "revoke", "key_0000000000000000", ...api]);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.include("the API answered 404: NOT_FOUND");
  });

  it("usage errors, a key that is not an admin's, an unreachable API: exit 2 with the reason", async () => {
    const cases: Array<{ args: string[]; says: string }> = [
      { args: ["keys", "create", "--role", "writer", ...api], says: "--organization" },
      {
        args: ["keys", "create", "--role", "auditor", "--organization", "org:x", ...api],
        says: "--organization does not apply to a auditor key",
      },
      { args: ["keys", "create", "--role", "patient", ...api], says: "--patient" },
      { args: ["keys", "create", "--role", "root", ...api], says: "Allowed choices are admin" },
      { args: ["keys", "create", "--role", "admin", "--url", service.url], says: "--key" },
      { args: ["keys", "revoke", "42", ...api], says: "must be a key id" },
      {
        args: ["keys", "list", "--url", "http://127.0.0.1:1", "--key", service.adminKey],
        says: "cannot reach http://127.0.0.1:1",
      },
      {
        args: ["keys", "list", "--url", service.url, "--key", "vt_nope"],
        says: "401: UNAUTHENTICATED",
      },
    ];
    for (const c of cases) {
      const r = await veritrailInProcess(c.args);
      expect(r.code, c.args.join(" ")).to.equal(2);
      expect(r.stderr, c.args.join(" ")).to.include(c.says);
      expect(r.stdout, c.args.join(" ")).to.equal("");
    }
    const writer = await veritrailInProcess([
      "keys",
      "create",
      "--role",
      "writer",
      "--organization",
      "org:northside-lab",
      ...api,
    ]);
    const denied = await veritrailInProcess([
      "keys",
      "list",
      "--url",
      service.url,
      "--key",
      writer.stdout.trim(),
    ]);
    expect(denied.code).to.equal(2);
    expect(denied.stderr).to.include("the API answered 403: FORBIDDEN");
  });

  it("--help for keys and each subcommand", async () => {
    for (const [args, says] of [
      [["keys", "--help"], "create, list and revoke API keys"],
      [["keys", "create", "--help"], "--organization <org>"],
      [["keys", "list", "--help"], "revoked ones included"],
      [["keys", "revoke", "--help"], "<id>"],
    ] as const) {
      const r = await veritrailInProcess([...args]);
      expect(r.code, args.join(" ")).to.equal(0);
      expect(r.stdout, args.join(" ")).to.include(says).and.include("--help");
    }
  });
});

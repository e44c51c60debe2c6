/**
 * Two institutions, two logs, one registry on a real Hardhat node: the hospital's API traces a
 * data item across its own log and the lab's (PEER_LOGS), `veritrail provenance` verifies the
 * trace hop by hop against the chain, and forged imports show up as unmatched.
 */
import { policyDocument, policyFor } from "../../support/trust.ts";
import { expect } from "chai";
import { Wallet } from "ethers";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { pino } from "pino";
import { createApp } from "../../../services/api/app.ts";
import { type RunningServer, startServer } from "../../../services/api/server.ts";
import { runCli } from "../../../services/cli/main.ts";
import { DevDeployment } from "../../../services/chain/dev-deployment.ts";
import { loadConfig } from "../../../services/config.ts";
import type { NativeEvent } from "../../../services/core/event.ts";
import type { Hex } from "../../../services/core/hex.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import type { AnchorLoop } from "../../../services/anchoring/anchor-loop.ts";
import type { Ledger } from "../../../services/ledger/ledger.ts";
import { PROOF_EXTENSION } from "../../../services/api/fhir-provenance.ts";
import { connectRpc } from "../../../services/verifier/rpc.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../fixtures/events.ts";
import { waitUntil } from "../../support/anchored-log.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";
import { type InstitutionAccounts, startInstitutionLog } from "../../support/two-institutions.ts";
import { provenanceBundleIssues } from "./fhir-provenance-structure.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);

const H1: Hex = `0x${"a1".repeat(32)}`;
const H2: Hex = `0x${"b2".repeat(32)}`;
const H3: Hex = `0x${"c3".repeat(32)}`;
const FORGED: Hex = `0x${"ee".repeat(32)}`;

const HOSPITAL_SOURCE = { organization: HOSPITAL_ORG, observer: "Device/audit-gateway-1" };
const LAB_SOURCE = { organization: LAB_ORG, observer: "Device/lab-gateway-2" };

let n = 0;
const at = () => new Date(Date.UTC(2024, 4, 1, 8, 0, ++n)).toISOString();
function exportEvent(
  source: NativeEvent["source"],
  to: string,
  reference: string,
  dataHash: Hex,
): NativeEvent {
  return makeBalpNativeEvent("PrivacyDisclosureSource", {
    overrides: {
      source,
      recipient: { organization: to },
      transfer: { reference, dataHash },
      requestId: `route-export-${++n}`,
      recorded: at(),
    },
  });
}
function importEvent(source: NativeEvent["source"], reference: string, dataHash: Hex) {
  return makeBalpNativeEvent("PrivacyDisclosureRecipient", {
    overrides: {
      source,
      transfer: { reference, dataHash },
      requestId: `route-import-${++n}`,
      recorded: at(),
    },
  });
}

/** One institution: its ledger, anchor loop (own anchorer, shared registry) and API. */
class Institution {
  readonly servers: RunningServer[] = [];
  auditorKey = "";
  keys: ApiKeys;
  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly ledger: Ledger,
    readonly loop: AnchorLoop,
  ) {
    this.keys = ApiKeys.forLedger(ledger);
  }

  static async start(
    name: string,
    node: HardhatNode,
    deployment: DevDeployment,
    accounts: InstitutionAccounts,
  ): Promise<Institution> {
    const { dir, ledger, loop } = await startInstitutionLog(
      name,
      node,
      deployment,
      accounts,
      "veritrail-prov-route-",
    );
    return new Institution(name, dir, ledger, loop);
  }

  async serve(env: Record<string, string> = {}): Promise<string> {
    const app = createApp({
      ledger: this.ledger,
      apiKeys: this.keys,
      logger: pino({ level: "silent" }),
      config: loadConfig(env),
    });
    const server = await startServer(app, { host: "127.0.0.1", port: 0 });
    this.servers.push(server);
    if (this.auditorKey === "")
      this.auditorKey = (await this.keys.create({ role: "auditor" })).secret;
    return server.url;
  }

  async sealAndAnchor(): Promise<void> {
    await this.ledger.sealPending();
    await this.loop.waitForAnchored(await this.ledger.lastBatchNo(), 60_000);
  }

  async stop(): Promise<void> {
    for (const server of this.servers) await server.close(1_000);
    await this.loop.stop();
    await this.ledger.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

interface SideJson {
  log: string;
  logId: string;
  seq: number;
  organization: string;
  bundle: { entry: { log: string; seq: number }; anchor: { contract: string; chainId: number } };
}
interface TraceJson {
  dataHash: string | null;
  reference: string | null;
  hops: Array<{ reference: string; dataHash: string; from: SideJson; to: SideJson }>;
  custody: string[];
  unmatched: Array<{ kind: string; reason: string; reference: string; side: SideJson }>;
  logs: Array<{ name: string; peer: boolean; readable: boolean; error?: string }>;
  complete: boolean;
}

async function get(
  url: string,
  key: string | undefined,
): Promise<{ status: number; body: unknown; type: string }> {
  const res = await fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  const text = await res.text();
  return {
    status: res.status,
    body: JSON.parse(text) as unknown,
    type: res.headers.get("content-type") ?? "",
  };
}

/** `--trust <file>`: both institutions' logs in the shared registry (set once they exist). */
let trustArgs: string[] = [];

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const code = await runCli(["node", "veritrail", ...args, ...trustArgs], {
    stdout: sink((s) => (stdout += s)),
    stderr: sink((s) => (stderr += s)),
    stdin: new PassThrough(),
  });
  return { code, stdout, stderr };
}

describe("api/provenance: GET /v1/provenance and veritrail provenance across two institutions in one registry (Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let hospital: Institution;
  let lab: Institution;
  let hospitalUrl: string;
  let labUrl: string;
  let tmp: string;
  const seqs: Record<string, number> = {};
  const trace = async (query: string, key = hospital.auditorKey) =>
    get(`${hospitalUrl}/v1/provenance?${query}`, key);

  before(async () => {
    node = await HardhatNode.start();
    const deployment = new DevDeployment(ADMIN);
    hospital = await Institution.start("hospital", node, deployment, { anchorer: 1, signer: 2 });
    lab = await Institution.start("lab", node, deployment, { anchorer: 3, signer: 4 });
    const block = await node.rpc<{ timestamp: string }>("eth_getBlockByNumber", ["latest", false]);
    const registeredAt = Number(BigInt(block.timestamp));
    await waitUntil("clock past registration", async () => Date.now() > (registeredAt + 1) * 1000);

    // H2: hospital → lab → hospital, all genuine. H1: a genuine hop and an import at the lab
    // that reuses xfer-1 with other bytes. H3: the lab logs the import under a wrong reference.
    const steps: Array<[Institution, string, NativeEvent]> = [
      [hospital, "export-h2", exportEvent(HOSPITAL_SOURCE, LAB_ORG, "xfer-h2", H2)],
      [hospital, "export-h1", exportEvent(HOSPITAL_SOURCE, LAB_ORG, "xfer-1", H1)],
      [hospital, "export-h3", exportEvent(HOSPITAL_SOURCE, LAB_ORG, "xfer-3", H3)],
      [lab, "import-h2", importEvent(LAB_SOURCE, "xfer-h2", H2)],
      [lab, "import-h1", importEvent(LAB_SOURCE, "xfer-1", H1)],
      [lab, "forged-hash", importEvent(LAB_SOURCE, "xfer-1", FORGED)],
      [lab, "forged-ref", importEvent(LAB_SOURCE, "xfer-3-typo", H3)],
      [lab, "export-back", exportEvent(LAB_SOURCE, HOSPITAL_ORG, "xfer-back", H2)],
      [hospital, "import-back", importEvent(HOSPITAL_SOURCE, "xfer-back", H2)],
    ];
    for (const [inst, key, event] of steps) {
      const [result] = await inst.ledger.ingest([event]);
      seqs[key] = result!.receipt.seq;
    }
    await hospital.sealAndAnchor();
    await lab.sealAndAnchor();
    labUrl = await lab.serve();
    hospitalUrl = await hospital.serve({ PEER_LOGS: `lab=${labUrl}=${lab.auditorKey}` });
    tmp = await mkdtemp(path.join(tmpdir(), "veritrail-prov-cli-"));
    const trustFile = path.join(tmp, "trust.json");
    await writeFile(
      trustFile,
      JSON.stringify(
        policyDocument({
          chainId: Number(BigInt(await node.rpc<string>("eth_chainId", []))),
          contract: deployment.address!,
          logIds: [hospital.ledger.logId, lab.ledger.logId],
        }),
      ),
    );
    trustArgs = ["--trust", trustFile];
  });

  after(async () => {
    await hospital?.stop();
    await lab?.stop();
    await node?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("the auditor's trace follows H2 hospital → lab → hospital through the lab peer; every hop's two bundles verify against the chain, in one registry", async () => {
    const res = await trace(`dataHash=${H2}`);
    expect(res.status).to.equal(200);
    expect(res.type).to.match(/^application\/json/);
    const t = res.body as TraceJson;
    expect(t.complete).to.equal(true);
    expect(t.logs).to.deep.equal([
      { name: "local", peer: false, readable: true },
      { name: "lab", peer: true, readable: true },
    ]);
    expect(
      t.hops.map((h) => [h.reference, h.from.log, h.from.seq, h.to.log, h.to.seq]),
    ).to.deep.equal([
      ["xfer-h2", "local", seqs["export-h2"], "lab", seqs["import-h2"]],
      ["xfer-back", "lab", seqs["export-back"], "local", seqs["import-back"]],
    ]);
    expect(t.custody).to.deep.equal([HOSPITAL_ORG, LAB_ORG, HOSPITAL_ORG]);
    expect(t.unmatched).to.deep.equal([]);
    const provider = await connectRpc(node.url);
    // The registry this test deployed and both logs, as their regulator lists them.
    const first = t.hops[0]!.from.bundle.anchor;
    const trust = policyFor({
      chainId: first.chainId,
      contract: first.contract,
      logIds: [...new Set(t.hops.flatMap((h) => [h.from.logId, h.to.logId]))],
    });
    try {
      const contracts = new Set<string>();
      for (const hop of t.hops) {
        expect(hop.from.logId).to.not.equal(hop.to.logId);
        for (const side of [hop.from, hop.to]) {
          expect(side.bundle.entry).to.include({ log: side.logId, seq: side.seq });
          const verdict = await verifyBundle(side.bundle, provider, { trust, confirmations: 1 });
          expect(verdict.status, JSON.stringify(verdict.checks)).to.equal("verified");
          contracts.add(`${side.bundle.anchor.chainId}:${side.bundle.anchor.contract}`);
        }
      }
      expect(contracts.size).to.equal(1);
    } finally {
      provider.destroy();
    }
  });

  it("?reference= names the item through one of its transfers: the same trace as by dataHash", async () => {
    const byHash = (await trace(`dataHash=${H2}`)).body as TraceJson;
    const byRef = (await trace("reference=xfer-back")).body as TraceJson;
    expect(byRef.dataHash).to.equal(H2);
    expect(byRef.reference).to.equal("xfer-back");
    expect(byRef.hops).to.deep.equal(byHash.hops);
  });

  it("forged imports are unmatched: a wrong data hash (DATA_HASH_MISMATCH) and a wrong transfer reference (NO_SUCH_EXPORT, the export then NOT_IMPORTED)", async () => {
    const h1 = (await trace(`dataHash=${H1}`)).body as TraceJson;
    expect(h1.hops.map((h) => [h.from.seq, h.to.seq])).to.deep.equal([
      [seqs["export-h1"], seqs["import-h1"]],
    ]);
    expect(h1.unmatched.map((u) => [u.kind, u.reason, u.side.log, u.side.seq])).to.deep.equal([
      ["import", "DATA_HASH_MISMATCH", "lab", seqs["forged-hash"]],
    ]);
    const h3 = (await trace(`dataHash=${H3}`)).body as TraceJson;
    expect(h3.hops).to.deep.equal([]);
    expect(
      h3.unmatched.map((u) => [u.kind, u.reason, u.reference, u.side.seq]),
    ).to.have.deep.members([
      ["import", "NO_SUCH_EXPORT", "xfer-3-typo", seqs["forged-ref"]],
      ["export", "NOT_IMPORTED", "xfer-3", seqs["export-h3"]],
    ]);
    // Asked by the forged import's own reference, the item is its data hash: still unmatched.
    const typo = (await trace("reference=xfer-3-typo")).body as TraceJson;
    expect(typo.dataHash).to.equal(H3);
    expect(typo.unmatched.map((u) => u.reason)).to.have.members(["NO_SUCH_EXPORT", "NOT_IMPORTED"]);
  });

  it("format=fhir: a collection Bundle of R4 Provenance resources (structurally valid), unmatched transfers as OperationOutcome warnings", async () => {
    const res = await trace(`dataHash=${H1}&format=fhir`);
    expect(res.status).to.equal(200);
    expect(res.type).to.match(/^application\/fhir\+json/);
    expect(provenanceBundleIssues(res.body)).to.deep.equal([]);
    const bundle = res.body as {
      type: string;
      entry: Array<{ resource: Record<string, unknown> }>;
    };
    expect(bundle.type).to.equal("collection");
    const [prov, outcome] = bundle.entry.map((e) => e.resource);
    expect(prov).to.include({ resourceType: "Provenance" });
    const t = (await trace(`dataHash=${H1}`)).body as TraceJson;
    const hop = t.hops[0]!;
    expect(prov!["target"]).to.deep.equal([{ reference: "DiagnosticReport/lab-2024-0581" }]);
    expect(
      (prov!["agent"] as Array<{ who: { identifier: { value: string } } }>).map(
        (a) => a.who.identifier.value,
      ),
    ).to.deep.equal([HOSPITAL_ORG, LAB_ORG]);
    expect(
      (prov!["extension"] as Array<{ url: string; valueString: string }>)
        .filter((e) => e.url === PROOF_EXTENSION)
        .map((e) => e.valueString),
    ).to.deep.equal([`${hop.from.logId}:${hop.from.seq}`, `${hop.to.logId}:${hop.to.seq}`]);
    expect(outcome).to.include({ resourceType: "OperationOutcome" });
    const issues = outcome!["issue"] as Array<{
      severity: string;
      code: string;
      details: { coding: Array<{ code: string }> };
    }>;
    expect(issues.map((i) => [i.severity, i.code, i.details.coding[0]!.code])).to.deep.equal([
      ["warning", "business-rule", "DATA_HASH_MISMATCH"],
    ]);
    const clean = await trace(`dataHash=${H2}&format=fhir`);
    expect(provenanceBundleIssues(clean.body)).to.deep.equal([]);
    expect(
      (clean.body as typeof bundle).entry.map((e) => e.resource["resourceType"]),
    ).to.deep.equal(["Provenance", "Provenance"]);
  });

  it("a writer sees only the transfers of its own organization", async () => {
    const labWriter = (await hospital.keys.create({ role: "writer", organization: LAB_ORG }))
      .secret;
    const elsewhere = (
      await hospital.keys.create({ role: "writer", organization: "org:elsewhere" })
    ).secret;
    const hospitalWriter = (
      await hospital.keys.create({ role: "writer", organization: HOSPITAL_ORG })
    ).secret;
    const own = (await trace(`dataHash=${H1}`, hospitalWriter)).body as TraceJson;
    expect(own.hops).to.have.length(1);
    // The forged import claims the hospital's xfer-1: the hospital is shown it.
    expect(own.unmatched.map((u) => u.reason)).to.deep.equal(["DATA_HASH_MISMATCH"]);
    const labView = (await trace(`dataHash=${H3}`, labWriter)).body as TraceJson;
    expect(labView.unmatched.map((u) => u.reason).sort()).to.deep.equal([
      "NOT_IMPORTED",
      "NO_SUCH_EXPORT",
    ]);
    const none = (await trace(`dataHash=${H2}`, elsewhere)).body as TraceJson;
    expect(none.hops).to.deep.equal([]);
    expect(none.unmatched).to.deep.equal([]);
    expect(none.custody).to.deep.equal([]);
  });

  it("veritrail provenance --url verifies H2 hop by hop against the chain → exit 0", async () => {
    const { code, stdout, stderr } = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--data-hash",
      H2,
      "--rpc",
      node.url,
    ]);
    expect(code, stdout + stderr).to.equal(0);
    expect(stdout).to.include("HOP 1 VERIFIED");
    expect(stdout).to.include("HOP 2 VERIFIED");
    expect(stdout).to.include(`custody: ${HOSPITAL_ORG} → ${LAB_ORG} → ${HOSPITAL_ORG}`);
    const json = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--reference",
      "xfer-h2",
      "--rpc",
      node.url,
      "--json",
    ]);
    expect(json.code).to.equal(0);
    const out = JSON.parse(json.stdout) as {
      ok: boolean;
      hops: Array<{
        ok: boolean;
        from: { status: string };
        to: { status: string };
        match: { ok: boolean };
      }>;
    };
    expect(out.ok).to.equal(true);
    expect(out.hops.map((h) => [h.ok, h.from.status, h.to.status, h.match.ok])).to.deep.equal([
      [true, "verified", "verified", true],
      [true, "verified", "verified", true],
    ]);
  });

  it("veritrail provenance: a forged import (wrong data hash or wrong reference) is unmatched → exit 1", async () => {
    const h1 = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--data-hash",
      H1,
      "--rpc",
      node.url,
    ]);
    expect(h1.code, h1.stdout + h1.stderr).to.equal(1);
    expect(h1.stdout).to.include("HOP 1 VERIFIED");
    expect(h1.stdout).to.include("UNMATCHED import (DATA_HASH_MISMATCH)");
    const h3 = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--data-hash",
      H3,
      "--rpc",
      node.url,
      "--json",
    ]);
    expect(h3.code).to.equal(1);
    const out = JSON.parse(h3.stdout) as {
      ok: boolean;
      unmatched: Array<{ reason: string; status: string }>;
    };
    expect(out.ok).to.equal(false);
    // The forged import itself is genuinely logged (its bundle verifies); it just matches nothing.
    expect(out.unmatched.map((u) => [u.reason, u.status])).to.have.deep.members([
      ["NO_SUCH_EXPORT", "verified"],
      ["NOT_IMPORTED", "verified"],
    ]);
  });

  it("veritrail provenance --file checks a saved trace offline from the API; a tampered bundle or relabelled hop fails → exit 1", async () => {
    const saved = (await trace(`dataHash=${H2}`)).body as TraceJson;
    const file = path.join(tmp, "trace.json");
    await writeFile(file, JSON.stringify(saved));
    const ok = await cli(["provenance", "--file", file, "--rpc", node.url]);
    expect(ok.code, ok.stdout + ok.stderr).to.equal(0);

    // The import's event claims other bytes: its commitment no longer matches the anchored leaf.
    const tampered = JSON.parse(await readFile(file, "utf8")) as TraceJson;
    (
      tampered.hops[0]!.to.bundle as unknown as { event: { transfer: { dataHash: string } } }
    ).event.transfer.dataHash = FORGED;
    await writeFile(file, JSON.stringify(tampered));
    const bad = await cli(["provenance", "--file", file, "--rpc", node.url]);
    expect(bad.code).to.equal(1);
    expect(bad.stdout).to.include("HOP 1 FAILED");
    expect(bad.stdout).to.include("HOP 2 VERIFIED");

    // Genuine bundles, but the server pairs two transfers that do not belong together.
    const relabelled = JSON.parse(JSON.stringify(saved)) as TraceJson;
    relabelled.hops[0]!.to = relabelled.hops[1]!.to;
    await writeFile(file, JSON.stringify(relabelled));
    const mixed = await cli(["provenance", "--file", file, "--rpc", node.url, "--json"]);
    expect(mixed.code).to.equal(1);
    const out = JSON.parse(mixed.stdout) as {
      hops: Array<{ ok: boolean; match: { ok: boolean; reason: string } }>;
    };
    expect(out.hops[0]!.match.ok).to.equal(false);
    expect(out.hops[0]!.match.reason).to.match(/references differ|went to/);

    // Answers about two different data items are not one chain of custody.
    const otherFile = path.join(tmp, "other.json");
    await writeFile(otherFile, JSON.stringify((await trace(`dataHash=${H1}`)).body));
    await writeFile(file, JSON.stringify(saved));
    const mixedItems = await cli([
      "provenance",
      "--file",
      file,
      "--file",
      otherFile,
      "--rpc",
      node.url,
    ]);
    expect(mixedItems.code).to.equal(2);
    expect(mixedItems.stderr).to.include("different data items");

    // Every anchored bundle must name the registry given with --registry.
    await writeFile(file, JSON.stringify(saved));
    const other = await cli([
      "provenance",
      "--file",
      file,
      "--rpc",
      node.url,
      "--registry",
      `0x${"11".repeat(20)}`,
    ]);
    expect(other.code).to.equal(1);
    expect(other.stdout).to.include("not in the registry");
  });

  it("veritrail provenance --file: a hop with a side withheld from the key fails (cannot be checked); merged with a whole answer it verifies", async () => {
    const saved = (await trace(`dataHash=${H2}`)).body as TraceJson;
    const scoped = JSON.parse(JSON.stringify(saved)) as {
      hops: Array<{ from: unknown; to: unknown }>;
    };
    scoped.hops[0]!.from = { withheld: true };
    const scopedFile = path.join(tmp, "scoped.json");
    const wholeFile = path.join(tmp, "whole.json");
    await writeFile(scopedFile, JSON.stringify(scoped));
    await writeFile(wholeFile, JSON.stringify(saved));
    const alone = await cli(["provenance", "--file", scopedFile, "--rpc", node.url]);
    expect(alone.code, alone.stdout + alone.stderr).to.equal(1);
    expect(alone.stdout).to.include("withheld from this key");
    expect(alone.stdout).to.include("HOP 1 FAILED");
    expect(alone.stdout).to.include("HOP 2 VERIFIED");
    const merged = await cli([
      "provenance",
      "--file",
      scopedFile,
      "--file",
      wholeFile,
      "--rpc",
      node.url,
    ]);
    expect(merged.code, merged.stdout + merged.stderr).to.equal(0);
    expect(merged.stdout).to.include("2 hops, 2 verified, 0 failed; 0 unmatched");
  });

  it("several APIs: the lab alone cannot match the hospital's transfers, merged with the hospital's answer everything matches → exit 0", async () => {
    const labOnly = await cli([
      "provenance",
      "--url",
      labUrl,
      "--key",
      lab.auditorKey,
      "--data-hash",
      H2,
      "--rpc",
      node.url,
    ]);
    expect(labOnly.code).to.equal(1);
    expect(labOnly.stdout).to.include("UNMATCHED");
    const both = await cli([
      "provenance",
      "--url",
      labUrl,
      "--key",
      lab.auditorKey,
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--data-hash",
      H2,
      "--rpc",
      node.url,
    ]);
    expect(both.code, both.stdout + both.stderr).to.equal(0);
    expect(both.stdout).to.include("2 hops, 2 verified, 0 failed; 0 unmatched");
  });

  it("an unreachable peer is listed, the trace is incomplete, and the CLI exits 1; usage and API errors exit 2", async () => {
    const dead = await hospital.serve({
      PEER_LOGS: `lab=${labUrl}=${lab.auditorKey},gone=http://127.0.0.1:1/=vt_x`,
      PEER_TIMEOUT_MS: "2000",
    });
    const res = await get(`${dead}/v1/provenance?dataHash=${H2}`, hospital.auditorKey);
    expect(res.status).to.equal(200);
    const t = res.body as TraceJson;
    expect(t.complete).to.equal(false);
    expect(t.logs[2]).to.include({ name: "gone", peer: true, readable: false });
    expect(t.hops).to.have.length(2);
    const run = await cli([
      "provenance",
      "--url",
      dead,
      "--key",
      hospital.auditorKey,
      "--data-hash",
      H2,
      "--rpc",
      node.url,
    ]);
    expect(run.code).to.equal(1);
    expect(run.stdout).to.include("INCOMPLETE: the log gone could not be read");

    const noItem = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--rpc",
      node.url,
    ]);
    expect(noItem.code).to.equal(2);
    const badKey = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      "vt_nope",
      "--data-hash",
      H2,
      "--rpc",
      node.url,
    ]);
    expect(badKey.code).to.equal(2);
    expect(badKey.stderr).to.include("401");
    const noFile = await cli([
      "provenance",
      "--file",
      path.join(tmp, "missing.json"),
      "--rpc",
      node.url,
    ]);
    expect(noFile.code).to.equal(2);
    const nothing = await cli([
      "provenance",
      "--url",
      hospitalUrl,
      "--key",
      hospital.auditorKey,
      "--data-hash",
      `0x${"00".repeat(32)}`,
      "--rpc",
      node.url,
    ]);
    expect(nothing.code).to.equal(1);
    expect(nothing.stdout).to.include("no transfer of this data item was found");
  });
});

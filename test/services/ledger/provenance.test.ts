import { expect } from "chai";
import { policyFor } from "../../support/trust.ts";
import { Wallet } from "ethers";
import { rm } from "node:fs/promises";
import { DevDeployment } from "../../../services/chain/dev-deployment.ts";
import { loadConfig } from "../../../services/config.ts";
import type { NativeEvent } from "../../../services/core/event.ts";
import type { Hex } from "../../../services/core/hex.ts";
import type { AnchorLoop } from "../../../services/anchoring/anchor-loop.ts";
import type { Ledger } from "../../../services/ledger/ledger.ts";
import { pino } from "pino";
import { createApp } from "../../../services/api/app.ts";
import { startServer } from "../../../services/api/server.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import { PROOF_EXTENSION, toFhirProvenance } from "../../../services/api/fhir-provenance.ts";
import {
  type TransferLog,
  ledgerTransferLog,
  traceProvenance,
} from "../../../services/ledger/provenance.ts";
import { apiTransferLog } from "../../../services/peers/api-transfer-log.ts";
import { EventQueries } from "../../../services/ledger/queries.ts";
import { connectRpc } from "../../../services/verifier/rpc.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../fixtures/events.ts";
import { waitUntil } from "../../support/anchored-log.ts";
import { HARDHAT_ACCOUNTS, HardhatNode } from "../../support/hardhat-node.ts";
import { type InstitutionAccounts, startInstitutionLog } from "../../support/two-institutions.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const DEFAULTS = loadConfig({});

const H1: Hex = `0x${"a1".repeat(32)}`;
const H2: Hex = `0x${"b2".repeat(32)}`;
const FORGED: Hex = `0x${"ee".repeat(32)}`;

const HOSPITAL_SOURCE: NativeEvent["source"] = {
  organization: HOSPITAL_ORG,
  observer: "Device/audit-gateway-1",
};
const LAB_SOURCE: NativeEvent["source"] = {
  organization: LAB_ORG,
  observer: "Device/lab-gateway-2",
};

let n = 0;
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
      requestId: `prov-export-${++n}`,
      recorded: `2024-05-0${n}T09:00:00.000Z`,
    },
  });
}
function importEvent(source: NativeEvent["source"], reference: string, dataHash: Hex) {
  return makeBalpNativeEvent("PrivacyDisclosureRecipient", {
    overrides: {
      source,
      transfer: { reference, dataHash },
      requestId: `prov-import-${++n}`,
      recorded: `2024-05-0${n}T10:00:00.000Z`,
    },
  });
}

/** One institution's log, anchoring into the shared registry with its own anchorer. */
class Institution {
  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly ledger: Ledger,
    readonly loop: AnchorLoop,
  ) {}

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
      "veritrail-prov-",
    );
    return new Institution(name, dir, ledger, loop);
  }

  async sealAndAnchor(): Promise<void> {
    await this.ledger.sealPending();
    await this.loop.waitForAnchored(await this.ledger.lastBatchNo(), 60_000);
  }

  transferLog(): TransferLog {
    return ledgerTransferLog(this.name, this.ledger, new EventQueries(this.ledger));
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.ledger.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

describe("ledger/provenance: transfers across two institutions' logs in one registry (Hardhat)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let hospital: Institution;
  let lab: Institution;
  const seqs: Record<string, number> = {};

  before(async () => {
    node = await HardhatNode.start();
    const deployment = new DevDeployment(ADMIN);
    hospital = await Institution.start("hospital", node, deployment, { anchorer: 1, signer: 2 });
    lab = await Institution.start("lab", node, deployment, { anchorer: 3, signer: 4 });
    // Receipts must be issued after the signers' on-chain periods began (block time, seconds).
    const block = await node.rpc<{ timestamp: string }>("eth_getBlockByNumber", ["latest", false]);
    const registeredAt = Number(BigInt(block.timestamp));
    await waitUntil("clock past registration", async () => Date.now() > (registeredAt + 1) * 1000);

    const atHospital: Array<[string, NativeEvent]> = [
      ["export-1", exportEvent(HOSPITAL_SOURCE, LAB_ORG, "xfer-1", H1)],
      ["export-2", exportEvent(HOSPITAL_SOURCE, LAB_ORG, "xfer-2", H2)],
    ];
    const atLab: Array<[string, NativeEvent]> = [
      ["import-1", importEvent(LAB_SOURCE, "xfer-1", H1)],
      ["forged-hash", importEvent(LAB_SOURCE, "xfer-1", FORGED)],
      ["forged-ref", importEvent(LAB_SOURCE, "xfer-never-sent", H1)],
      ["export-3", exportEvent(LAB_SOURCE, HOSPITAL_ORG, "xfer-3", H1)],
    ];
    const atHospital2: Array<[string, NativeEvent]> = [
      ["import-3", importEvent(HOSPITAL_SOURCE, "xfer-3", H1)],
      // The hospital claims to have received xfer-1, which went to the lab.
      ["wrong-recipient", importEvent(HOSPITAL_SOURCE, "xfer-1", H1)],
    ];
    for (const [inst, batch] of [
      [hospital, atHospital],
      [lab, atLab],
      [hospital, atHospital2],
    ] as const) {
      const results = await inst.ledger.ingest(batch.map(([, e]) => e));
      batch.forEach(([k], i) => (seqs[k] = results[i]!.receipt.seq));
    }
    await hospital.sealAndAnchor();
    await lab.sealAndAnchor();
  });

  after(async () => {
    await hospital?.stop();
    await lab?.stop();
    await node?.stop();
  });

  it("traces a data item hop by hop (hospital → lab → hospital); every hop verifies against the chain", async () => {
    const trace = await traceProvenance([hospital.transferLog(), lab.transferLog()], {
      dataHash: H1,
    });
    expect(
      trace.hops.map((h) => [h.reference, h.from.log, h.from.seq, h.to.log, h.to.seq]),
    ).to.deep.equal([
      ["xfer-1", "hospital", seqs["export-1"], "lab", seqs["import-1"]],
      ["xfer-3", "lab", seqs["export-3"], "hospital", seqs["import-3"]],
    ]);
    expect(trace.custody).to.deep.equal([HOSPITAL_ORG, LAB_ORG, HOSPITAL_ORG]);
    const provider = await connectRpc(node.url);
    // The registry this test deployed and both institutions' logs, as their regulator lists them.
    const first = trace.hops[0]!.from.bundle.anchor!;
    const trust = policyFor({
      chainId: first.chainId,
      contract: first.contract,
      logIds: [...new Set(trace.hops.flatMap((h) => [h.from.logId, h.to.logId]))],
    });
    try {
      for (const hop of trace.hops) {
        expect(hop.from.logId).to.not.equal(hop.to.logId);
        for (const s of [hop.from, hop.to]) {
          expect(s.bundle.entry.log).to.equal(s.logId);
          const verdict = await verifyBundle(s.bundle, provider, { trust, confirmations: 1 });
          expect(verdict.status, JSON.stringify(verdict)).to.equal("verified");
        }
        // One registry witnesses both logs.
        expect(hop.from.bundle.anchor!.contract).to.equal(hop.to.bundle.anchor!.contract);
        expect(hop.from.bundle.anchor!.chainId).to.equal(hop.to.bundle.anchor!.chainId);
        expect(hop.from.bundle.event).to.have.nested.property("transfer.dataHash", H1);
        expect(hop.to.bundle.event).to.have.nested.property("transfer.dataHash", H1);
      }
    } finally {
      provider.destroy();
    }
  });

  it("forged imports (wrong data hash, unknown reference, wrong recipient) are listed as unmatched", async () => {
    const trace = await traceProvenance([hospital.transferLog(), lab.transferLog()], {
      dataHash: H1,
    });
    const unmatched = trace.unmatched.map((u) => [u.kind, u.reason, u.side.log, u.side.seq]);
    expect(unmatched).to.have.deep.members([
      ["import", "DATA_HASH_MISMATCH", "lab", seqs["forged-hash"]],
      ["import", "NO_SUCH_EXPORT", "lab", seqs["forged-ref"]],
      ["import", "RECIPIENT_MISMATCH", "hospital", seqs["wrong-recipient"]],
    ]);
    expect(trace.hops.map((h) => h.to.seq)).to.not.include(seqs["forged-hash"]);
  });

  it("an export never imported is unmatched (NOT_IMPORTED); the whole-log report lists every transfer", async () => {
    const h2 = await traceProvenance([hospital.transferLog(), lab.transferLog()], {
      dataHash: H2,
    });
    expect(h2.hops).to.deep.equal([]);
    expect(h2.unmatched.map((u) => [u.kind, u.reason, u.side.seq])).to.deep.equal([
      ["export", "NOT_IMPORTED", seqs["export-2"]],
    ]);
    const all = await traceProvenance([hospital.transferLog(), lab.transferLog()]);
    expect(all.dataHash).to.equal(null);
    expect(all.hops).to.have.length(2);
    expect(all.unmatched).to.have.length(4);
    // Tracing one log alone cannot match anything across institutions.
    const alone = await traceProvenance([hospital.transferLog()], { dataHash: H1 });
    expect(alone.hops).to.deep.equal([]);
    expect(alone.unmatched.map((u) => u.reason)).to.include("NOT_IMPORTED");
  });

  it("traces the same through the institutions' APIs (auditor keys) as through their ledgers", async () => {
    const servers = await Promise.all(
      [hospital, lab].map(async (inst) => {
        const keys = ApiKeys.forLedger(inst.ledger);
        const app = createApp({
          ledger: inst.ledger,
          apiKeys: keys,
          logger: pino({ level: "silent" }),
          config: DEFAULTS,
        });
        const server = await startServer(app, { host: "127.0.0.1", port: 0 });
        const key = (await keys.create({ role: "auditor" })).secret;
        return { server, log: apiTransferLog(inst.name, server.url, key) };
      }),
    );
    try {
      const remote = await traceProvenance(
        servers.map((s) => s.log),
        { dataHash: H1 },
      );
      const local = await traceProvenance([hospital.transferLog(), lab.transferLog()], {
        dataHash: H1,
      });
      expect(JSON.parse(JSON.stringify(remote))).to.deep.equal(JSON.parse(JSON.stringify(local)));
      expect(remote.hops).to.have.length(2);
      const denied = apiTransferLog("hospital", servers[0]!.server.url, "vt_not-a-key");
      const err = await traceProvenance([denied]).catch((e: unknown) => e);
      expect(String(err)).to.match(/answered 401/);
    } finally {
      await Promise.all(servers.map((s) => s.server.close(1_000)));
    }
  });

  it("renders each hop as a FHIR R4 Provenance naming both proofs", async () => {
    const trace = await traceProvenance([hospital.transferLog(), lab.transferLog()], {
      dataHash: H1,
    });
    const hop = trace.hops[0]!;
    const p = toFhirProvenance(hop);
    expect(p.resourceType).to.equal("Provenance");
    expect(p.id).to.match(/^[A-Za-z0-9\-.]{1,64}$/);
    expect(p.target.length).to.be.greaterThan(0);
    expect(p.target[0]).to.deep.equal({ reference: "DiagnosticReport/lab-2024-0581" });
    expect(p.recorded).to.equal(hop.to.recorded);
    expect(p.occurredPeriod).to.deep.equal({ start: hop.from.recorded, end: hop.to.recorded });
    expect(p.agent.map((a) => a.who.identifier.value)).to.deep.equal([HOSPITAL_ORG, LAB_ORG]);
    expect(p.agent.every((a) => a.type.coding[0]!.code === "custodian")).to.equal(true);
    expect(p.entity).to.deep.equal([
      {
        role: "source",
        what: { identifier: { system: "urn:veritrail:transfer", value: "xfer-1" } },
      },
    ]);
    expect(
      p.extension.filter((e) => e.url === PROOF_EXTENSION).map((e) => e.valueString),
    ).to.deep.equal([`${hop.from.logId}:${hop.from.seq}`, `${hop.to.logId}:${hop.to.seq}`]);
  });
});

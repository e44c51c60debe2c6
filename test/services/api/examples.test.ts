/**
 * examples/: what users post, one file per kind of request body (README's first session and
 * docs/api.md use them). Every file is accepted by the API as it is, every event has its own
 * requestId (so posting them all never answers `duplicate: true` with another event's receipt),
 * there is a FHIR AuditEvent for every IHE BALP profile the service recognises, and the transfer
 * pair traces as one hop.
 */
import { expect } from "chai";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { parseNativeEvent } from "../../../services/core/event.ts";
import {
  BALP_PROFILES,
  balpProfileOf,
  fromFhirAuditEvent,
} from "../../../services/core/fhir-audit-event.ts";
import { HOSPITAL_ORG, LAB_ORG } from "../../fixtures/events.ts";
import { type TestApi, startTestApi } from "./harness.ts";

const EXAMPLES = path.resolve(import.meta.dirname, "../../../examples");

async function files(dir = EXAMPLES): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await files(full)));
    else out.push(path.relative(EXAMPLES, full));
  }
  return out.sort();
}

const read = (file: string) => readFile(path.join(EXAMPLES, file), "utf8");
const json = async (file: string) => JSON.parse(await read(file)) as Record<string, unknown>;

/** "patient-read" → "PatientRead", "privacy-disclosure-source" → "PrivacyDisclosureSource". */
const profileName = (file: string) =>
  path
    .basename(file, ".json")
    .split("-")
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("") as keyof typeof BALP_PROFILES;

describe("examples/: every file is a request body the API accepts", function () {
  this.timeout(60_000);
  let api: TestApi;
  let all: string[];

  before(async () => {
    api = await startTestApi();
    all = await files();
  });
  after(async () => {
    await api?.close();
  });

  it("holds the native event, bulk NDJSON, one FHIR AuditEvent per BALP profile, a transfer pair, an erasure body", async () => {
    const fhir = Object.keys(BALP_PROFILES).map(
      (p) => `fhir/${p.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase()}.json`,
    );
    expect(all).to.have.members([
      "README.md",
      "erasure.json",
      "event.json",
      "events.ndjson",
      ...fhir,
      "transfer/export.json",
      "transfer/import.json",
    ]);
  });

  it("each FHIR file is valid and is the BALP profile its name says (meta.profile agrees)", async () => {
    for (const file of all.filter((f) => f.startsWith("fhir/"))) {
      const resource = await json(file);
      const parsed = fromFhirAuditEvent(resource);
      expect(parsed.ok, `${file}: ${JSON.stringify(parsed.ok ? null : parsed.issues)}`).to.equal(
        true,
      );
      if (!parsed.ok) continue;
      const profile = BALP_PROFILES[profileName(file)];
      expect(balpProfileOf(parsed.value), file).to.equal(profile);
      expect(resource["meta"], file).to.deep.equal({ profile: [profile] });
    }
  });

  it("every event has its own requestId", async () => {
    const ids: string[] = [];
    const add = (file: string, native: unknown) => {
      const parsed = parseNativeEvent(native);
      expect(parsed.ok, `${file}: ${JSON.stringify(parsed.ok ? null : parsed.issues)}`).to.equal(
        true,
      );
      if (parsed.ok) ids.push(parsed.value.requestId ?? `${file}: no requestId`);
    };
    for (const file of all) {
      if (file.startsWith("fhir/")) {
        const parsed = fromFhirAuditEvent(await json(file));
        if (parsed.ok) add(file, parsed.value);
      } else if (file.endsWith(".ndjson")) {
        for (const line of (await read(file)).trim().split("\n")) add(file, JSON.parse(line));
      } else if (file === "event.json" || file.startsWith("transfer/")) {
        add(file, await json(file));
      }
    }
    expect(ids).to.have.length(1 + 3 + Object.keys(BALP_PROFILES).length + 2);
    expect(new Set(ids).size, ids.join(", ")).to.equal(ids.length);
  });

  it("posted as they are, each is accepted as new events; the transfer traces as one hop; the erasure body erases", async () => {
    const post = async (file: string, type: string, key: string) => {
      const res = await api.request("POST", "/v1/events", { key, raw: await read(file), type });
      expect(res.status, `${file}: ${res.text}`).to.equal(201);
      const receipts = (
        res.body as { receipts: Array<{ duplicate: boolean; receipt: { seq: number } }> }
      ).receipts;
      for (const r of receipts) expect(r.duplicate, file).to.equal(false);
      return receipts.map((r) => r.receipt.seq);
    };
    const { writer, otherWriter, auditor, admin } = api.secrets;
    const seqs = [
      ...(await post("event.json", "application/json", writer)),
      ...(await post("events.ndjson", "application/x-ndjson", writer)),
      ...(await post("transfer/export.json", "application/json", writer)),
      ...(await post("transfer/import.json", "application/json", otherWriter)),
    ];
    for (const file of all.filter((f) => f.startsWith("fhir/"))) {
      // The recipient's side of a disclosure is logged by the laboratory that received it.
      const org = ((await json(file))["source"] as { extension?: Array<{ valueString?: string }> })
        .extension?.[0]?.valueString;
      expect(org, file).to.be.oneOf([HOSPITAL_ORG, LAB_ORG]);
      seqs.push(
        ...(await post(file, "application/fhir+json", org === LAB_ORG ? otherWriter : writer)),
      );
    }
    expect(new Set(seqs).size).to.equal(seqs.length);

    for (const reference of ["xfer-2026-03-02-0117", "xfer-2026-03-02-0042"]) {
      const trace = await api.request("GET", `/v1/provenance?reference=${reference}`, {
        key: auditor,
      });
      expect(trace.status, trace.text).to.equal(200);
      const body = trace.body as { hops: unknown[]; unmatched: unknown[] };
      expect(body.hops, reference).to.have.length(1);
      expect(body.unmatched, reference).to.deep.equal([]);
    }

    const erased = await api.request("POST", `/v1/events/${seqs[0]}/erasure`, {
      key: admin,
      raw: await read("erasure.json"),
      type: "application/json",
    });
    expect(erased.status, erased.text).to.equal(201);
  });
});

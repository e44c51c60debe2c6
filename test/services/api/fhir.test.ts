import { ingestAtTheirTimes } from "../../support/log-clock.ts";
import { expect } from "chai";
import { SYSTEM } from "../../../services/core/codes.ts";
import { eraseEvent } from "../../../services/ledger/erasure.ts";
import { fhirDateRange } from "../../../services/api/fhir.ts";
import { HOSPITAL_ORG, LAB_ORG, makeBalpNativeEvent } from "../../fixtures/events.ts";
import { type Element, type Json, checkJsonRules, isObj } from "./fhir-provenance-structure.ts";
import { PATIENT_1, PATIENT_2, type TestApi, eventFor, startTestApi } from "./harness.ts";

// ---- A structural validator written from the FHIR R4 definitions --------------------------
// AuditEvent: https://hl7.org/fhir/R4/auditevent.html ; Bundle: https://hl7.org/fhir/R4/bundle.html

function checkElements(
  obj: unknown,
  at: string,
  defs: Record<string, Element>,
  issues: string[],
): void {
  if (!isObj(obj)) {
    issues.push(`${at}: not an object`);
    return;
  }
  const allowed = new Set([...Object.keys(defs), "id", "extension", "modifierExtension"]);
  for (const k of Object.keys(obj)) if (!allowed.has(k)) issues.push(`${at}.${k}: not in R4`);
  for (const [name, def] of Object.entries(defs)) {
    const v = obj[name];
    if (v === undefined) {
      if (def.min === 1) issues.push(`${at}.${name}: required (${def.min}..${def.max})`);
      continue;
    }
    if (def.max === "*" && !Array.isArray(v)) issues.push(`${at}.${name}: must be an array`);
    if (def.max === 1 && Array.isArray(v)) issues.push(`${at}.${name}: must not be an array`);
    const items = Array.isArray(v) ? v : [v];
    items.forEach((x, i) =>
      def.check?.(x, Array.isArray(v) ? `${at}.${name}[${i}]` : `${at}.${name}`, issues),
    );
  }
}

const str = (v: unknown, at: string, issues: string[]) => {
  if (typeof v !== "string") issues.push(`${at}: not a string`);
};
const uri = (v: unknown, at: string, issues: string[]) => {
  if (typeof v !== "string" || /\s/.test(v)) issues.push(`${at}: not a uri`);
};
const coding = (v: unknown, at: string, issues: string[]) =>
  checkElements(
    v,
    at,
    {
      system: { min: 0, max: 1, check: uri },
      version: { min: 0, max: 1, check: str },
      code: { min: 0, max: 1, check: str },
      display: { min: 0, max: 1, check: str },
      userSelected: { min: 0, max: 1 },
    },
    issues,
  );
const codeable = (v: unknown, at: string, issues: string[]) =>
  checkElements(
    v,
    at,
    { coding: { min: 0, max: "*", check: coding }, text: { min: 0, max: 1, check: str } },
    issues,
  );
const reference = (v: unknown, at: string, issues: string[]) =>
  checkElements(
    v,
    at,
    {
      reference: { min: 0, max: 1, check: str },
      type: { min: 0, max: 1, check: uri },
      identifier: { min: 0, max: 1, check: (x, a, i) => checkElements(x, a, IDENTIFIER, i) },
      display: { min: 0, max: 1, check: str },
    },
    issues,
  );
const IDENTIFIER: Record<string, Element> = {
  use: { min: 0, max: 1 },
  type: { min: 0, max: 1, check: codeable },
  system: { min: 0, max: 1, check: uri },
  value: { min: 0, max: 1, check: str },
  period: { min: 0, max: 1 },
  assigner: { min: 0, max: 1 },
};
const oneOf =
  (values: readonly string[], what: string) => (v: unknown, at: string, issues: string[]) => {
    if (typeof v !== "string" || !values.includes(v))
      issues.push(`${at}: ${String(v)} is not a ${what} code`);
  };
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const instant = (v: unknown, at: string, issues: string[]) => {
  if (typeof v !== "string" || !INSTANT.test(v)) issues.push(`${at}: not an instant`);
};
const base64 = (v: unknown, at: string, issues: string[]) => {
  if (
    typeof v !== "string" ||
    !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(v)
  )
    issues.push(`${at}: not base64Binary`);
};
/** AuditEvent.type is bound (extensible) to audit-event-type, which includes DICOM CID 400. */
const eventTypeCoding = (v: unknown, at: string, issues: string[]) => {
  coding(v, at, issues);
  const system = isObj(v) ? v["system"] : undefined;
  if (system !== SYSTEM.auditEventType && system !== SYSTEM.dcm)
    issues.push(`${at}.system: ${String(system)} is not an audit event type system`);
  if (!isObj(v) || typeof v["code"] !== "string") issues.push(`${at}.code: required`);
};
const purposeConcept = (v: unknown, at: string, issues: string[]) => {
  codeable(v, at, issues);
  const codings = isObj(v) && Array.isArray(v["coding"]) ? v["coding"] : [];
  if (!codings.some((c) => isObj(c) && c["system"] === SYSTEM.actReason))
    issues.push(`${at}: purpose of use is not a v3-ActReason coding`);
};

/** R4 AuditEvent: elements, cardinalities, required bindings (action, outcome, network type). */
export function auditEventIssues(resource: unknown): string[] {
  const issues: string[] = [];
  checkJsonRules(resource, "AuditEvent", issues);
  if (!isObj(resource) || resource["resourceType"] !== "AuditEvent")
    return [...issues, "resourceType must be AuditEvent"];
  const { resourceType: _ignored, meta: _meta, ...rest } = resource;
  checkElements(
    rest,
    "AuditEvent",
    {
      type: { min: 1, max: 1, check: eventTypeCoding },
      subtype: { min: 0, max: "*", check: coding },
      action: { min: 0, max: 1, check: oneOf(["C", "R", "U", "D", "E"], "audit-event-action") },
      period: { min: 0, max: 1, check: (v, a, i) => checkElements(v, a, PERIOD, i) },
      recorded: { min: 1, max: 1, check: instant },
      outcome: { min: 0, max: 1, check: oneOf(["0", "4", "8", "12"], "audit-event-outcome") },
      outcomeDesc: { min: 0, max: 1, check: str },
      purposeOfEvent: { min: 0, max: "*", check: purposeConcept },
      agent: { min: 1, max: "*", check: (v, a, i) => checkElements(v, a, AGENT, i) },
      source: { min: 1, max: 1, check: (v, a, i) => checkElements(v, a, SOURCE, i) },
      entity: { min: 0, max: "*", check: entityCheck },
    },
    issues,
  );
  return issues;
}
const PERIOD: Record<string, Element> = {
  start: { min: 0, max: 1, check: instant },
  end: { min: 0, max: 1, check: instant },
};
const AGENT: Record<string, Element> = {
  type: { min: 0, max: 1, check: codeable },
  role: { min: 0, max: "*", check: codeable },
  who: { min: 0, max: 1, check: reference },
  altId: { min: 0, max: 1, check: str },
  name: { min: 0, max: 1, check: str },
  requestor: {
    min: 1,
    max: 1,
    check: (v, a, i) => {
      if (typeof v !== "boolean") i.push(`${a}: not a boolean`);
    },
  },
  location: { min: 0, max: 1, check: reference },
  policy: { min: 0, max: "*", check: uri },
  media: { min: 0, max: 1, check: coding },
  network: {
    min: 0,
    max: 1,
    check: (v, a, i) =>
      checkElements(
        v,
        a,
        {
          address: { min: 0, max: 1, check: str },
          type: { min: 0, max: 1, check: oneOf(["1", "2", "3", "4", "5"], "network-type") },
        },
        i,
      ),
  },
  purposeOfUse: { min: 0, max: "*", check: purposeConcept },
};
const SOURCE: Record<string, Element> = {
  site: { min: 0, max: 1, check: str },
  observer: { min: 1, max: 1, check: reference },
  type: { min: 0, max: "*", check: coding },
};
function entityCheck(v: unknown, at: string, issues: string[]): void {
  checkElements(
    v,
    at,
    {
      what: { min: 0, max: 1, check: reference },
      type: { min: 0, max: 1, check: coding },
      role: { min: 0, max: 1, check: coding },
      lifecycle: { min: 0, max: 1, check: coding },
      securityLabel: { min: 0, max: "*", check: coding },
      name: { min: 0, max: 1, check: str },
      description: { min: 0, max: 1, check: str },
      query: { min: 0, max: 1, check: base64 },
      detail: {
        min: 0,
        max: "*",
        check: (d, a, i) => {
          checkElements(
            d,
            a,
            {
              type: { min: 1, max: 1, check: str },
              valueString: { min: 0, max: 1, check: str },
              valueBase64Binary: { min: 0, max: 1, check: base64 },
            },
            i,
          );
          if (
            isObj(d) &&
            (d["valueString"] === undefined) === (d["valueBase64Binary"] === undefined)
          )
            i.push(`${a}: value[x] is 1..1`);
        },
      },
      agent: { min: 0, max: "*" },
    },
    issues,
  );
  // sev-1: either a name or a query (NOT both).
  if (isObj(v) && v["name"] !== undefined && v["query"] !== undefined)
    issues.push(`${at}: sev-1 name and query both present`);
}

/** R4 Bundle rules for a searchset: bdl-1..bdl-8 as they apply, links, search.mode. */
export function searchsetIssues(bundle: unknown): string[] {
  const issues: string[] = [];
  checkJsonRules(bundle, "Bundle", issues);
  if (!isObj(bundle) || bundle["resourceType"] !== "Bundle") return ["resourceType must be Bundle"];
  if (bundle["type"] !== "searchset") issues.push("type must be searchset");
  const total = bundle["total"];
  if (total !== undefined && !(Number.isInteger(total) && (total as number) >= 0))
    issues.push("total must be an unsignedInt");
  const links = bundle["link"];
  if (links !== undefined) {
    if (!Array.isArray(links)) issues.push("link must be an array");
    else
      for (const l of links)
        if (!isObj(l) || typeof l["relation"] !== "string" || typeof l["url"] !== "string")
          issues.push("link needs relation and url (1..1)");
        else if (!/^https?:\/\//.test(l["url"]))
          issues.push(`link ${l["relation"]} is not absolute`);
  }
  const entries = bundle["entry"] ?? [];
  if (!Array.isArray(entries)) return [...issues, "entry must be an array"];
  const fullUrls = new Set<string>();
  entries.forEach((e, i) => {
    const at = `entry[${i}]`;
    if (!isObj(e)) return issues.push(`${at}: not an object`);
    if (e["resource"] === undefined) issues.push(`${at}: bdl-5 needs a resource`);
    if (e["request"] !== undefined) issues.push(`${at}: bdl-3 request only in batch/transaction`);
    if (e["response"] !== undefined) issues.push(`${at}: bdl-4 response only in responses`);
    const search = e["search"];
    if (!isObj(search) || !["match", "include", "outcome"].includes(String(search["mode"])))
      issues.push(`${at}: search.mode must be match, include or outcome`);
    const fullUrl = e["fullUrl"];
    if (typeof fullUrl !== "string" || !/^https?:\/\/\S+$/.test(fullUrl))
      issues.push(`${at}: fullUrl must be an absolute URL`);
    else {
      if (fullUrls.has(fullUrl)) issues.push(`${at}: bdl-7 fullUrl repeated`);
      fullUrls.add(fullUrl);
      if (fullUrl.includes("/_history/")) issues.push(`${at}: bdl-8 version-specific fullUrl`);
      const id = isObj(e["resource"]) ? e["resource"]["id"] : undefined;
      if (!fullUrl.endsWith(`/AuditEvent/${String(id)}`))
        issues.push(`${at}: fullUrl does not name the resource's id`);
    }
    issues.push(...auditEventIssues(e["resource"]).map((m) => `${at}.${m}`));
    return undefined;
  });
  return issues;
}

// ---- Tests --------------------------------------------------------------------------------

type Bundle = {
  resourceType: string;
  total?: number;
  link: Array<{ relation: string; url: string }>;
  entry: Array<{ fullUrl: string; resource: Json & { id: string } }>;
};

describe("api/fhir: GET /fhir/AuditEvent", function () {
  let api: TestApi;
  let tag1: string;
  const seqs: Record<string, number> = {};
  const p1Token = `${PATIENT_1.system}|${PATIENT_1.value}`;

  before(async () => {
    api = await startTestApi();
    tag1 = api.ledger.subjectTagOf(PATIENT_1);
    const named: Array<[string, ReturnType<typeof eventFor>]> = [
      ["p1-may", eventFor(HOSPITAL_ORG, PATIENT_1)],
      ["p2", eventFor(HOSPITAL_ORG, PATIENT_2)],
      [
        "p1-export",
        {
          ...makeBalpNativeEvent("PrivacyDisclosureSource"),
          patient: PATIENT_1,
          recorded: "2024-06-10T12:00:00.000Z",
          requestId: "fhir-export-1",
        },
      ],
      [
        "p1-query",
        {
          ...makeBalpNativeEvent("Query"),
          patient: PATIENT_1,
          recorded: "2024-07-01T08:00:00.000Z",
          requestId: "fhir-query-1",
        },
      ],
      ["p1-lab", eventFor(LAB_ORG, PATIENT_1, { recorded: "2024-08-15T00:00:00.000Z" })],
      ["p1-erased", eventFor(HOSPITAL_ORG, PATIENT_1, { recorded: "2024-09-01T00:00:00.000Z" })],
      ["nobody", eventFor(HOSPITAL_ORG, null)],
    ];
    const results = await ingestAtTheirTimes(
      api.ledger,
      api.clock,
      named.map(([, e]) => e),
    );
    named.forEach(([k], i) => (seqs[k] = results[i]!.receipt.seq));
    await eraseEvent(api.ledger, {
      seq: seqs["p1-erased"]!,
      legalBasis: "GDPR Art. 17",
      reason: "test",
      keyId: "key_0000000000000011",
    });
  });
  after(async () => {
    await api.close();
  });

  const search = async (query: string, key = api.secrets.auditor) => {
    const res = await api.request("GET", `/fhir/AuditEvent${query}`, { key });
    return { ...res, bundle: res.body as Bundle };
  };

  it("the validator catches what R4 forbids (so a pass means something)", () => {
    const broken: Json[] = [
      { resourceType: "AuditEvent", recorded: "2024-05-01T09:30:00Z", source: { observer: {} } },
      {
        resourceType: "AuditEvent",
        type: { system: SYSTEM.auditEventType, code: "rest" },
        recorded: "2024-05-01",
        agent: [{ requestor: "yes" }],
        source: { observer: { reference: "Device/x" } },
        outcome: "3",
      },
      {
        resourceType: "AuditEvent",
        type: { system: "urn:local", code: "x" },
        recorded: "2024-05-01T09:30:00Z",
        agent: [],
        source: { site: "s" },
        entity: [{ name: "n", query: "eA==" }],
      },
    ];
    for (const r of broken) expect(auditEventIssues(r)).to.not.deep.equal([]);
    expect(
      searchsetIssues({ resourceType: "Bundle", type: "batch", entry: [{}] }),
    ).to.not.deep.equal([]);
  });

  it("auditor, patient=system|value: a valid searchset of that patient's events (erased left out), total counts all pages", async () => {
    const res = await search(`?patient=${encodeURIComponent(p1Token)}`);
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.match(/^application\/fhir\+json/);
    expect(res.headers.get("cache-control")).to.equal("no-store");
    expect(searchsetIssues(res.body)).to.deep.equal([]);
    const ids = res.bundle.entry.map((e) => Number(e.resource.id));
    expect(ids).to.deep.equal(["p1-may", "p1-export", "p1-query", "p1-lab"].map((k) => seqs[k]));
    expect(res.bundle.total).to.equal(4);
    const self = res.bundle.link.find((l) => l.relation === "self")!;
    expect(self.url).to.include("/fhir/AuditEvent?patient=");
    expect(res.bundle.link.find((l) => l.relation === "next")).to.equal(undefined);
    const exportEntry = res.bundle.entry.find((e) => e.resource.id === String(seqs["p1-export"]))!;
    expect(exportEntry.resource["meta"]).to.deep.equal({
      profile: [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source",
      ],
    });
  });

  it("paging: _count=1 follows next links through every match once", async () => {
    let url: string | undefined = `?patient=${encodeURIComponent(p1Token)}&_count=1`;
    const seen: string[] = [];
    let pages = 0;
    while (url !== undefined) {
      const res = await search(url);
      expect(res.status).to.equal(200);
      expect(searchsetIssues(res.body)).to.deep.equal([]);
      expect(res.bundle.total).to.equal(4);
      seen.push(...(res.bundle.entry ?? []).map((e) => e.resource.id));
      const next = res.bundle.link.find((l) => l.relation === "next");
      url = next === undefined ? undefined : next.url.slice(next.url.indexOf("?"));
      if (++pages > 10) throw new Error("paging does not end");
    }
    expect(seen.map(Number)).to.deep.equal(
      ["p1-may", "p1-export", "p1-query", "p1-lab"].map((k) => seqs[k]),
    );
    const tampered = await search(`?patient=${encodeURIComponent(p1Token)}&_cursor=abc.def`);
    expect(tampered.status).to.equal(400);
  });

  it("date=ge…&date=le… and organization narrow the search; a subjectTag works as patient", async () => {
    const june = await search(`?patient=${tag1}&date=ge2024-06-01&date=le2024-07-01`);
    expect(june.bundle.entry.map((e) => Number(e.resource.id))).to.deep.equal([
      seqs["p1-export"],
      seqs["p1-query"],
    ]);
    const lab = await search(`?patient=${tag1}&organization=${encodeURIComponent(LAB_ORG)}`);
    expect(lab.bundle.entry.map((e) => Number(e.resource.id))).to.deep.equal([seqs["p1-lab"]]);
    const after = await search(`?date=gt2024-08-14T23:59:59Z`);
    expect(after.bundle.entry.map((e) => Number(e.resource.id))).to.include(seqs["p1-lab"]);
    expect(after.bundle.entry.map((e) => Number(e.resource.id))).to.not.include(seqs["p1-query"]);
    expect(searchsetIssues(after.body)).to.deep.equal([]);
  });

  it("FHIR date values stand for their whole precision range", () => {
    expect(fhirDateRange("2024")).to.deep.equal({
      prefix: "eq",
      start: Date.UTC(2024, 0, 1),
      end: Date.UTC(2025, 0, 1),
    });
    expect(fhirDateRange("le2024-02-29").end).to.equal(Date.UTC(2024, 2, 1));
    expect(fhirDateRange("lt2024-05-01T10:00:00+02:00").start).to.equal(
      Date.UTC(2024, 4, 1, 8, 0, 0),
    );
    for (const bad of ["2023-02-29", "2024-13", "ne2024", "2024-05-01T10:00", "yesterday"])
      expect(() => fhirDateRange(bad), bad).to.throw();
  });

  it("a patient searches only their own events, without staff identities; naming another patient → 403", async () => {
    const own = await search("", api.secrets.patient1);
    expect(own.status).to.equal(200);
    expect(searchsetIssues(own.body)).to.deep.equal([]);
    expect(own.bundle.total).to.equal(4);
    expect(own.text).to.not.include("Dr. Anna Weber");
    expect(own.text).to.not.include("aweber");
    for (const e of own.bundle.entry)
      for (const a of e.resource["agent"] as Json[]) expect(a).to.not.have.property("who");
    const explicit = await search(`?patient=${encodeURIComponent(p1Token)}`, api.secrets.patient1);
    expect(explicit.bundle.total).to.equal(4);
    const other = await search(
      `?patient=${encodeURIComponent(`${PATIENT_2.system}|${PATIENT_2.value}`)}`,
      api.secrets.patient1,
    );
    expect(other.status).to.equal(403);
  });

  it("writers and admins may not search; no key → 401; bad parameters → 400", async () => {
    expect((await search("", api.secrets.writer)).status).to.equal(403);
    expect((await search("", api.secrets.admin)).status).to.equal(403);
    expect((await api.request("GET", "/fhir/AuditEvent")).status).to.equal(401);
    for (const q of [
      "?date=yesterday",
      "?_count=0",
      "?foo=1",
      "?date=ge2025-01-01&date=le2024-01-01",
    ]) {
      const res = await search(q);
      expect(res.status, q).to.equal(400);
    }
  });

  it("GET /fhir/AuditEvent/{seq}: the fullUrl target; erased → 404; other patient's → 404 (as if missing)", async () => {
    const res = await api.request("GET", `/fhir/AuditEvent/${seqs["p1-export"]}`, {
      key: api.secrets.auditor,
    });
    expect(res.status).to.equal(200);
    expect(auditEventIssues(res.body)).to.deep.equal([]);
    expect(res.body).to.have.property("id", String(seqs["p1-export"]));
    const erased = await api.request("GET", `/fhir/AuditEvent/${seqs["p1-erased"]}`, {
      key: api.secrets.auditor,
    });
    expect(erased.status).to.equal(404);
    const other = await api.request("GET", `/fhir/AuditEvent/${seqs["p2"]}`, {
      key: api.secrets.patient1,
    });
    expect(other.status).to.equal(404);
    const own = await api.request("GET", `/fhir/AuditEvent/${seqs["p1-may"]}`, {
      key: api.secrets.patient1,
    });
    expect(own.status).to.equal(200);
    expect(auditEventIssues(own.body)).to.deep.equal([]);
  });
});

import { readFileSync, readdirSync } from "node:fs";
import { expect } from "chai";
import fc from "fast-check";
import type { FieldIssue, NativeEvent, ParseResult } from "../../../services/core/event.ts";
import {
  BALP_PROFILES,
  EXT,
  balpProfileOf,
  decodeBase64Text,
  encodeBase64Text,
  fromFhirAuditEvent,
  normalizeFhirInstant,
  toFhirAuditEvent,
} from "../../../services/core/fhir-audit-event.ts";
import type { FhirAuditEvent } from "../../../services/core/fhir-audit-event.ts";
import {
  BALP_PROFILES as PROFILE_NAMES,
  HOSPITAL_ORG,
  arbitraryNativeEvent,
  makeBalpNativeEvent,
  makeFhirAuditEvent,
  makeNativeEvent,
} from "../../fixtures/events.ts";

const VECTORS = new URL("../../vectors/events/", import.meta.url);

interface RoundTripVector {
  desc: string;
  profile: string | null;
  native: NativeEvent;
  fhir: FhirAuditEvent;
}
interface ErrVector {
  desc: string;
  input: unknown;
  wantErr: { field: string; code: string };
}

/** What an HTTP client would send: plain JSON, no shared references. */
const json = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function issues(r: ParseResult<NativeEvent>): FieldIssue[] {
  if (r.ok) throw new Error("expected the resource to be rejected");
  return r.issues;
}

function expectFhirIssue(input: unknown, field: string, code?: string): FieldIssue {
  const found = issues(fromFhirAuditEvent(input));
  const hit = found.find((i) => i.field === field && (code === undefined || i.code === code));
  expect(hit, `no issue ${field}/${code ?? "*"} in ${JSON.stringify(found)}`).to.not.equal(
    undefined,
  );
  expect(hit!.message).to.include(field);
  return hit!;
}

function ok(r: ParseResult<NativeEvent>): NativeEvent {
  if (!r.ok) throw new Error(`rejected: ${JSON.stringify(r.issues)}`);
  return r.value;
}

describe("core/fhir-audit-event: FHIR R4 AuditEvent (IHE BALP)", () => {
  describe("BALP round-trip vectors", () => {
    const dir = new URL("balp/", VECTORS);
    const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    const vectors = files.map(
      (f) => [f, JSON.parse(readFileSync(new URL(f, dir), "utf8")) as RoundTripVector] as const,
    );

    it("covers every BALP profile", () => {
      const profiles = new Set(vectors.map(([, v]) => v.profile));
      for (const url of Object.values(BALP_PROFILES)) expect(profiles).to.include(url);
      expect(profiles).to.include(null);
    });

    for (const [file, v] of vectors) {
      describe(`${file}: ${v.desc}`, () => {
        it("native → FHIR gives the vector's resource", () => {
          expect(json(toFhirAuditEvent(v.native))).to.deep.equal(v.fhir);
        });
        it("FHIR → native gives the vector's event", () => {
          expect(ok(fromFhirAuditEvent(v.fhir))).to.deep.equal(v.native);
        });
        it("toFhir(fromFhir(r)) = r and the profile is recognised", () => {
          expect(json(toFhirAuditEvent(ok(fromFhirAuditEvent(v.fhir))))).to.deep.equal(v.fhir);
          expect(balpProfileOf(v.native)).to.equal(v.profile);
          expect(v.fhir.meta?.profile).to.deep.equal(v.profile === null ? undefined : [v.profile]);
        });
      });
    }
  });

  describe("profiles", () => {
    const expected: Record<(typeof PROFILE_NAMES)[number], [string, string | null]> = {
      Create: [BALP_PROFILES.PatientCreate, BALP_PROFILES.Create],
      Read: [BALP_PROFILES.PatientRead, BALP_PROFILES.Read],
      Update: [BALP_PROFILES.PatientUpdate, BALP_PROFILES.Update],
      Delete: [BALP_PROFILES.PatientDelete, BALP_PROFILES.Delete],
      Query: [BALP_PROFILES.PatientQuery, BALP_PROFILES.Query],
      PrivacyDisclosureSource: [BALP_PROFILES.PrivacyDisclosureSource, null],
      PrivacyDisclosureRecipient: [BALP_PROFILES.PrivacyDisclosureRecipient, null],
    };
    for (const name of PROFILE_NAMES) {
      it(`${name}: meta.profile is the BALP canonical URL and the round trip is lossless`, () => {
        const [withPatient, without] = expected[name];
        const fhir = makeFhirAuditEvent(name);
        expect(fhir.meta?.profile).to.deep.equal([withPatient]);
        expect(ok(fromFhirAuditEvent(json(fhir)))).to.deep.equal(makeBalpNativeEvent(name));
        if (without !== null) {
          const e = makeBalpNativeEvent(name, { patient: false });
          expect(balpProfileOf(e)).to.equal(without);
          expect(ok(fromFhirAuditEvent(json(toFhirAuditEvent(e))))).to.deep.equal(e);
        }
      });
    }

    it("the patient is an entity with type audit-entity-type#1 and role object-role#1", () => {
      const fhir = makeFhirAuditEvent("Read");
      const patient = fhir.entity?.find((e) => e.role?.code === "1");
      expect(patient).to.deep.equal({
        what: {
          identifier: { system: "urn:oid:2.16.840.1.113883.3.8901.1", value: "MRN-0042-7731" },
        },
        type: {
          system: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
          code: "1",
          display: "Person",
        },
        role: {
          system: "http://terminology.hl7.org/CodeSystem/object-role",
          code: "1",
          display: "Patient",
        },
      });
    });

    it("PrivacyDisclosure uses DCM 110106 Export (action R) and 110107 Import (action C)", () => {
      const src = makeFhirAuditEvent("PrivacyDisclosureSource");
      const dst = makeFhirAuditEvent("PrivacyDisclosureRecipient");
      expect([src.type.code, src.action]).to.deep.equal(["110106", "R"]);
      expect([dst.type.code, dst.action]).to.deep.equal(["110107", "C"]);
      expect(src.subtype?.some((s) => s.code === "disclose")).to.equal(true);
      // both sides of one transfer carry the same reference and data hash
      const transfer = (r: FhirAuditEvent) => r.extension?.find((x) => x.url === EXT.transfer);
      expect(transfer(src)).to.deep.equal(transfer(dst));
    });

    it("gives no profile to failures, to events missing a discriminator, or with too few agents", () => {
      const read = makeBalpNativeEvent("Read");
      expect(balpProfileOf({ ...read, outcome: 4 })).to.equal(null);
      expect(balpProfileOf({ ...read, action: "U" })).to.equal(null);
      expect(balpProfileOf({ ...read, subtype: [] })).to.equal(null);
      expect(balpProfileOf({ ...read, entities: [] })).to.equal(null);
      expect(balpProfileOf({ ...read, agents: read.agents.slice(0, 1) })).to.equal(null);
      const query = makeBalpNativeEvent("Query");
      expect(balpProfileOf({ ...query, entities: [{ what: "Observation/1" }] })).to.equal(null);
      const source = makeBalpNativeEvent("PrivacyDisclosureSource");
      expect(balpProfileOf({ ...source, subtype: [] })).to.equal(null);
      const { patient: _patient, ...noPatient } = source;
      expect(balpProfileOf(noPatient)).to.equal(null);
      // a failed export is still a disclosure attempt: BALP requires outcome but fixes no value
      expect(balpProfileOf({ ...source, outcome: 8 })).to.equal(
        BALP_PROFILES.PrivacyDisclosureSource,
      );
    });
  });

  describe("mapping details", () => {
    it("outcome is a code string in FHIR and a number natively", () => {
      for (const outcome of [0, 4, 8, 12] as const) {
        const e = makeNativeEvent({ outcome });
        const fhir = toFhirAuditEvent(e);
        expect(fhir.outcome).to.equal(String(outcome));
        expect(ok(fromFhirAuditEvent(json(fhir))).outcome).to.equal(outcome);
      }
    });

    it("the raw query travels base64-encoded, as BALP requires", () => {
      const fhir = makeFhirAuditEvent("Query");
      const q = fhir.entity?.find((e) => e.role?.code === "24");
      expect(q?.query).to.equal(
        encodeBase64Text(
          "GET /fhir/Observation?patient=Patient/p-1&category=laboratory&_count=50 HTTP/1.1",
        ),
      );
      expect(q?.what).to.equal(undefined);
      expect(decodeBase64Text("w6nDoCDwn5Sl")).to.equal("éà 🔥");
      expect(encodeBase64Text("éà 🔥")).to.equal("w6nDoCDwn5Sl");
      expect(encodeBase64Text("")).to.equal("");
      expect(encodeBase64Text("a")).to.equal("YQ==");
      expect(encodeBase64Text("ab")).to.equal("YWI=");
      expect(decodeBase64Text("YQ=")).to.equal(null);
      expect(decodeBase64Text("//4=")).to.equal(null); // not UTF-8
    });

    it("requestId maps to the BALP X-Request-Id transaction entity", () => {
      const fhir = makeFhirAuditEvent("Read");
      const tx = fhir.entity?.find((e) => e.type?.code === "XrequestId");
      expect(tx?.what).to.deep.equal({ identifier: { value: "req-7f3a9c21-0001" } });
    });

    it("an agent of another organization carries the organization extension; others inherit source", () => {
      const fhir = makeFhirAuditEvent("PrivacyDisclosureSource");
      expect(fhir.agent[0]!.extension).to.equal(undefined);
      expect(fhir.agent[1]!.extension).to.deep.equal([
        { url: EXT.organization, valueString: "org:northside-lab" },
      ]);
      expect(fhir.source.extension).to.deep.equal([
        { url: EXT.organization, valueString: HOSPITAL_ORG },
      ]);
    });

    it("break-glass: BTG in purposeOfEvent implies it; otherwise the extension carries it", () => {
      const etreat = makeNativeEvent({ purposeOfUse: ["ETREAT"], breakGlass: true });
      const f1 = toFhirAuditEvent(etreat);
      expect(f1.extension).to.deep.equal([{ url: EXT.breakGlass, valueBoolean: true }]);
      expect(ok(fromFhirAuditEvent(json(f1))).breakGlass).to.equal(true);

      const btg = makeNativeEvent({ purposeOfUse: ["BTG"], breakGlass: true });
      const f2 = toFhirAuditEvent(btg);
      expect(f2.extension).to.equal(undefined);
      expect(ok(fromFhirAuditEvent(json(f2))).breakGlass).to.equal(true);

      const plain = toFhirAuditEvent(makeNativeEvent());
      expect(ok(fromFhirAuditEvent(json(plain))).breakGlass).to.equal(false);
      expectFhirIssue(
        { ...json(f2), extension: [{ url: EXT.breakGlass, valueBoolean: true }] },
        "extension[0]",
        "redundant_extension",
      );
      expectFhirIssue(
        { ...json(plain), extension: [{ url: EXT.breakGlass, valueBoolean: false }] },
        "extension[0].valueBoolean",
        "bad_extension",
      );
    });

    it("normalises instants with offsets to UTC milliseconds", () => {
      expect(normalizeFhirInstant("2024-05-01T11:30:00+02:00")).to.equal(
        "2024-05-01T09:30:00.000Z",
      );
      expect(normalizeFhirInstant("2024-05-01T09:30:00.1Z")).to.equal("2024-05-01T09:30:00.100Z");
      expect(normalizeFhirInstant("2024-05-01T09:30:00.123000Z")).to.equal(
        "2024-05-01T09:30:00.123Z",
      );
      expect(normalizeFhirInstant("2024-05-01T09:30:00.1234Z")).to.equal(null);
      expect(normalizeFhirInstant("2023-02-29T09:30:00Z")).to.equal(null);
      expect(normalizeFhirInstant("2024-05-01")).to.equal(null);
      const fhir = {
        ...json(makeFhirAuditEvent("Read")),
        recorded: "2024-05-01T11:30:00.123+02:00",
      };
      expect(ok(fromFhirAuditEvent(fhir)).recorded).to.equal("2024-05-01T09:30:00.123Z");
    });

    it("takes the logging organization from the caller when the source has no extension", () => {
      const fhir = json(makeFhirAuditEvent("Read")) as unknown as Record<string, unknown>;
      const source = { ...(fhir["source"] as Record<string, unknown>) };
      delete source["extension"];
      const plain = { ...fhir, source };
      expectFhirIssue(plain, "source.extension", "required");
      const e = ok(fromFhirAuditEvent(plain, { organization: HOSPITAL_ORG }));
      expect(e).to.deep.equal(makeBalpNativeEvent("Read"));
    });

    it("drops id and non-BALP profiles, which are not part of the event", () => {
      const fhir = json(makeFhirAuditEvent("Read"));
      const e = ok(
        fromFhirAuditEvent({
          ...fhir,
          id: "ae-123",
          meta: {
            profile: [
              "http://example.org/StructureDefinition/national-audit",
              ...fhir.meta!.profile!,
            ],
          },
        }),
      );
      expect(e).to.deep.equal(makeBalpNativeEvent("Read"));
    });

    it("accepts a BALP PatientRead without any Veritrail extension or request id", () => {
      const resource = {
        resourceType: "AuditEvent",
        meta: { profile: [BALP_PROFILES.PatientRead] },
        type: {
          system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
          code: "rest",
          display: "Restful Operation",
        },
        subtype: [
          { system: "http://hl7.org/fhir/restful-interaction", code: "read", display: "read" },
        ],
        action: "R",
        recorded: "2020-04-29T09:49:00.000Z",
        outcome: "0",
        agent: [
          {
            type: {
              coding: [{ system: "http://dicom.nema.org/resources/ontology/DCM", code: "110152" }],
            },
            who: { reference: "Device/ex-device" },
            requestor: false,
            network: { address: "2001:0db8:85a3:0000:0000:8a2e:0370:7334", type: "2" },
          },
          {
            type: {
              coding: [{ system: "http://dicom.nema.org/resources/ontology/DCM", code: "110153" }],
            },
            who: {
              identifier: { system: "urn:ietf:rfc:3986", value: "http://server.example.com/fhir" },
            },
            requestor: false,
            network: { address: "http://server.example.com/fhir", type: "5" },
          },
        ],
        source: { observer: { reference: "Device/ex-device" } },
        entity: [
          {
            what: { reference: "Patient/ex-patient" },
            type: { system: "http://terminology.hl7.org/CodeSystem/audit-entity-type", code: "1" },
            role: { system: "http://terminology.hl7.org/CodeSystem/object-role", code: "1" },
          },
          {
            what: { reference: "Observation/ex-observation" },
            type: { system: "http://terminology.hl7.org/CodeSystem/audit-entity-type", code: "2" },
            role: { system: "http://terminology.hl7.org/CodeSystem/object-role", code: "4" },
          },
        ],
      };
      const e = ok(fromFhirAuditEvent(resource, { organization: "org:example" }));
      expect(e.patient).to.deep.equal({ value: "Patient/ex-patient" });
      expect(e.agents.map((a) => a.organization)).to.deep.equal(["org:example", "org:example"]);
      expect(balpProfileOf(e)).to.equal(BALP_PROFILES.PatientRead);
    });
  });

  describe("invalid FHIR vectors", () => {
    const vectors = JSON.parse(
      readFileSync(new URL("invalid-fhir.json", VECTORS), "utf8"),
    ) as ErrVector[];
    it("has vectors", () => expect(vectors.length).to.be.greaterThan(30));
    for (const v of vectors) {
      it(`${v.desc} → ${v.wantErr.field} ${v.wantErr.code}`, () => {
        expectFhirIssue(v.input, v.wantErr.field, v.wantErr.code);
      });
    }
  });

  describe("invalid FHIR: required elements and shapes", () => {
    const base = () => json(makeFhirAuditEvent("Query")) as unknown as Record<string, unknown>;
    for (const key of [
      "resourceType",
      "type",
      "action",
      "recorded",
      "outcome",
      "agent",
      "source",
    ]) {
      it(`names ${key} when it is missing`, () => {
        const r = base();
        delete r[key];
        expectFhirIssue(r, key, "required");
      });
    }

    it("rejects non-objects and arrays of the wrong shape at their path", () => {
      expectFhirIssue(null, "$", "invalid_type");
      expectFhirIssue({ ...base(), agent: {} }, "agent", "invalid_type");
      expectFhirIssue({ ...base(), subtype: { code: "read" } }, "subtype", "invalid_type");
      expectFhirIssue({ ...base(), subtype: [] }, "subtype", "too_few_items");
      expectFhirIssue({ ...base(), entity: "x" }, "entity", "invalid_type");
    });

    it("reports native-level rules at the FHIR element they came from", () => {
      const r = json(makeFhirAuditEvent("Read"));
      const e = json(r);
      e.purposeOfEvent = [
        {
          coding: [{ system: "http://terminology.hl7.org/CodeSystem/v3-ActReason", code: "TREAT" }],
        },
        {
          coding: [{ system: "http://terminology.hl7.org/CodeSystem/v3-ActReason", code: "TREAT" }],
        },
      ];
      expectFhirIssue(e, "purposeOfEvent[1]", "duplicate");
      const big = json(r);
      big.entity = [
        ...big.entity!,
        ...Array.from({ length: 40 }, (_, i) => ({
          what: { reference: `DocumentReference/${i}` },
          description: "d".repeat(1000),
        })),
      ];
      expectFhirIssue(big, "$", "event_too_large");
    });

    it("rejects a query entity whose decoded text has a control character", () => {
      const r = json(makeFhirAuditEvent("Query"));
      r.entity![1]!.query = encodeBase64Text("GET /x\r\nInjected: 1");
      expectFhirIssue(r, "entity[1].query", "bad_character");
    });
  });

  describe("properties", () => {
    it("fromFhir(toFhir(e)) deep-equals e for generated events", () => {
      fc.assert(
        fc.property(arbitraryNativeEvent, (e) => {
          expect(ok(fromFhirAuditEvent(json(toFhirAuditEvent(e))))).to.deep.equal(e);
        }),
        { numRuns: 300 },
      );
    });

    it("toFhir(fromFhir(r)) equals r for resources Veritrail emits", () => {
      fc.assert(
        fc.property(arbitraryNativeEvent, (e) => {
          const r = json(toFhirAuditEvent(e));
          expect(json(toFhirAuditEvent(ok(fromFhirAuditEvent(r))))).to.deep.equal(r);
        }),
        { numRuns: 200 },
      );
    });

    it("never throws, whatever the input", () => {
      fc.assert(
        fc.property(fc.anything(), (input) => {
          expect(fromFhirAuditEvent(input).ok).to.equal(false);
        }),
        { numRuns: 300 },
      );
    });
  });
});

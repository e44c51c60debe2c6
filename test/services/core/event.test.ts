import { readFileSync } from "node:fs";
import { expect } from "chai";
import fc from "fast-check";
import {
  MAX_ARRAY_ITEMS,
  MAX_EVENT_BYTES,
  MAX_QUERY_CHARS,
  MAX_STRING_CHARS,
  formatPath,
  isInstant,
  parseNativeEvent,
} from "../../../services/core/event.ts";
import type { FieldIssue, NativeEvent, ParseResult } from "../../../services/core/event.ts";
import { jcs, jcsBytes } from "../../../services/core/jcs.ts";
import {
  arbitraryNativeEventInput,
  makeBalpNativeEvent,
  makeNativeEvent,
} from "../../fixtures/events.ts";

const VECTORS = new URL("../../vectors/events/", import.meta.url);

interface ErrVector {
  desc: string;
  input: unknown;
  wantErr: { field: string; code: string };
}

function issues(r: ParseResult<NativeEvent>): FieldIssue[] {
  if (r.ok) throw new Error("expected the event to be rejected");
  return r.issues;
}

function expectIssue(input: unknown, field: string, code?: string): FieldIssue {
  const found = issues(parseNativeEvent(input));
  const hit = found.find((i) => i.field === field && (code === undefined || i.code === code));
  expect(hit, `no issue ${field}/${code ?? "*"} in ${JSON.stringify(found)}`).to.not.equal(
    undefined,
  );
  expect(hit!.message).to.be.a("string").and.include(field);
  return hit!;
}

/** An event that uses every field, optional ones included. */
function fullEvent(): NativeEvent {
  const e = makeBalpNativeEvent("PrivacyDisclosureSource");
  const agent2 = e.agents[2]!;
  agent2.altId = "emp-4411";
  return {
    ...e,
    period: { start: "2024-05-01T09:29:59.000Z", end: "2024-05-01T09:30:00.000Z" },
    outcomeDesc: "sent",
    consent: "Consent/c-1",
    entities: [
      ...e.entities,
      {
        type: { system: "http://terminology.hl7.org/CodeSystem/audit-entity-type", code: "2" },
        role: { system: "http://terminology.hl7.org/CodeSystem/object-role", code: "24" },
        query: "GET /fhir/Observation?patient=1",
        detail: [{ type: "http-method", value: "GET" }],
      },
    ],
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = Array<string | number>;

function walk(value: Json, path: Path, visit: (v: Json, p: Path) => void): void {
  visit(value, path);
  if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...path, i], visit));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) walk(v, [...path, k], visit);
  }
}

function setAt(root: Json, path: Path, value: Json | undefined): void {
  let cur = root as Record<string | number, Json>;
  for (const seg of path.slice(0, -1)) cur = cur[seg] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
}

const clone = <T>(v: T): T => structuredClone(v);

describe("core/event: native event model", () => {
  describe("valid events", () => {
    it("accepts the fixture and returns it unchanged (it is already normalised)", () => {
      const e = makeNativeEvent();
      const r = parseNativeEvent(e);
      expect(r).to.deep.equal({ ok: true, value: e });
    });

    it("accepts an event using every field", () => {
      const e = fullEvent();
      expect(parseNativeEvent(e)).to.deep.equal({ ok: true, value: e });
    });

    it("fills defaults: subtype, purposeOfUse, entities = [], breakGlass = false", () => {
      const minimal = {
        recorded: "2024-05-01T09:30:00.000Z",
        action: "R",
        type: { system: "http://dicom.nema.org/resources/ontology/DCM", code: "110110" },
        outcome: 0,
        agents: [{ who: { value: "u-1" }, organization: "org:a", requestor: true }],
        source: { organization: "org:a", observer: "Device/ehr" },
      };
      const r = parseNativeEvent(minimal);
      expect(r).to.deep.equal({
        ok: true,
        value: { ...minimal, subtype: [], purposeOfUse: [], breakGlass: false, entities: [] },
      });
    });

    it("does not mutate its input", () => {
      const input = { ...makeNativeEvent() } as Record<string, unknown>;
      delete input["subtype"];
      const before = clone(input);
      parseNativeEvent(input);
      expect(input).to.deep.equal(before);
    });

    it("ETREAT alone does not imply break-glass; BTG requires it", () => {
      expect(parseNativeEvent(makeNativeEvent({ purposeOfUse: ["ETREAT"] })).ok).to.equal(true);
      expect(
        parseNativeEvent(makeNativeEvent({ purposeOfUse: ["ETREAT"], breakGlass: true })).ok,
      ).to.equal(true);
      expectIssue(makeNativeEvent({ purposeOfUse: ["BTG"] }), "breakGlass", "break_glass_mismatch");
      expect(
        parseNativeEvent(makeNativeEvent({ purposeOfUse: ["BTG"], breakGlass: true })).ok,
      ).to.equal(true);
    });

    it("accepts the common purpose-of-use codes (TREAT, ETREAT, HPAYMT, HOPERAT, PATRQT, PUBHLTH, HRESCH, LEGAL)", () => {
      for (const p of ["TREAT", "ETREAT", "HPAYMT", "HOPERAT", "PATRQT", "PUBHLTH", "HRESCH"]) {
        expect(parseNativeEvent(makeNativeEvent({ purposeOfUse: [p] })).ok, p).to.equal(true);
      }
      expect(parseNativeEvent(makeNativeEvent({ purposeOfUse: ["HLEGAL", "LEGAL"] })).ok).to.equal(
        true,
      );
    });

    it("accepts a local code system where the value set is extensible, not where it is closed", () => {
      const local = { system: "urn:example:local", code: "x-1" };
      expect(parseNativeEvent(makeNativeEvent({ subtype: [local] })).ok).to.equal(true);
      expectIssue(makeNativeEvent({ type: local }), "type.system", "unknown_system");
    });

    it("accepts a string of exactly the maximum length and an event just under the byte limit", () => {
      expect(
        parseNativeEvent(makeNativeEvent({ outcomeDesc: "a".repeat(MAX_STRING_CHARS) })).ok,
      ).to.equal(true);
      const e = makeNativeEvent({ entities: [] });
      const room = MAX_EVENT_BYTES - jcsBytes(e).length;
      const pad = (n: number) => ({ what: "D/1", description: "d".repeat(n) });
      const overhead = jcsBytes({ ...e, entities: [pad(0)] }).length - jcsBytes(e).length;
      const n = Math.floor((room - overhead) / MAX_STRING_CHARS);
      const entities = Array.from({ length: n }, () => pad(MAX_STRING_CHARS - 60));
      const big = makeNativeEvent({ entities });
      expect(jcsBytes(big).length).to.be.at.most(MAX_EVENT_BYTES);
      expect(parseNativeEvent(big).ok).to.equal(true);
    });
  });

  describe("recorded", () => {
    for (const ok of [
      "2024-05-01T09:30:00.000Z",
      "2024-02-29T23:59:59.999Z",
      "1970-01-01T00:00:00.000Z",
    ]) {
      it(`accepts ${ok}`, () => expect(isInstant(ok)).to.equal(true));
    }
    for (const bad of [
      "2024-05-01T09:30:00Z",
      "2024-05-01T09:30:00.0Z",
      "2024-05-01T09:30:00.0000Z",
      "2024-05-01 09:30:00.000Z",
      "2024-05-01T09:30:00.000z",
      "2024-05-01T09:30:00.000+00:00",
      "2023-02-29T00:00:00.000Z",
      "2024-13-01T00:00:00.000Z",
      "2024-05-01T23:60:00.000Z",
      " 2024-05-01T09:30:00.000Z",
    ]) {
      it(`rejects ${JSON.stringify(bad)} naming RFC 3339 in the message`, () => {
        const hit = expectIssue(makeNativeEvent({ recorded: bad }), "recorded", "bad_instant");
        expect(hit.message).to.include("RFC 3339 UTC instant with milliseconds");
      });
    }
  });

  describe("every required field", () => {
    const required: Path[] = [
      ["recorded"],
      ["action"],
      ["type"],
      ["type", "system"],
      ["type", "code"],
      ["subtype", 0, "system"],
      ["subtype", 0, "code"],
      ["outcome"],
      ["agents"],
      ["agents", 0, "who"],
      ["agents", 0, "who", "value"],
      ["agents", 0, "organization"],
      ["agents", 0, "requestor"],
      ["agents", 0, "network", "address"],
      ["agents", 0, "network", "type"],
      ["agents", 2, "role", 0, "code"],
      ["agents", 2, "type", "system"],
      ["source"],
      ["source", "organization"],
      ["source", "observer"],
      ["source", "type", 0, "code"],
      ["patient", "value"],
      ["entities", 0, "what"],
      ["entities", 0, "type", "code"],
      ["entities", 0, "securityLabel", 0, "system"],
      ["entities", 1, "detail", 0, "type"],
      ["entities", 1, "detail", 0, "value"],
      ["recipient", "organization"],
      ["transfer", "reference"],
      ["transfer", "dataHash"],
    ];
    for (const path of required) {
      const field = formatPath(path);
      it(`names ${field} when it is missing`, () => {
        const e = clone(fullEvent()) as unknown as Json;
        setAt(e, path, undefined);
        expectIssue(e, field, "required");
      });
    }
  });

  describe("wrong types", () => {
    const cases: Array<[Path, Json]> = [
      [["recorded"], 1714555800000],
      [["action"], 1],
      [["type"], "rest"],
      [["subtype"], { system: "x", code: "y" }],
      [["outcome"], "0"],
      [["purposeOfUse"], "TREAT"],
      [["purposeOfUse", 0], 7],
      [["breakGlass"], "false"],
      [["agents"], {}],
      [["agents", 0], "u-1"],
      [["agents", 0, "requestor"], 1],
      [["agents", 0, "who"], "u-1"],
      [["agents", 2, "role"], { system: "x", code: "y" }],
      [["source", "type"], "4"],
      [["patient"], "MRN-1"],
      [["entities", 0, "securityLabel", 0, "code"], 5],
      [["recipient"], "org:x"],
      [["transfer", "dataHash"], 5],
      [["requestId"], 42],
    ];
    for (const [path, value] of cases) {
      const field = formatPath(path);
      it(`names ${field} when it is ${JSON.stringify(value)}`, () => {
        const e = clone(fullEvent()) as unknown as Json;
        setAt(e, path, value);
        const found = issues(parseNativeEvent(e));
        expect(found.map((i) => i.field)).to.include(field);
      });
    }

    it("rejects a non-object event at $", () => {
      for (const v of [null, 1, "event", [], true]) {
        expectIssue(v, "$", "invalid_type");
      }
    });
  });

  describe("unknown fields", () => {
    it("are rejected at every nesting level with the path of the key", () => {
      const objects: Path[] = [];
      walk(fullEvent() as unknown as Json, [], (v, p) => {
        if (v !== null && typeof v === "object" && !Array.isArray(v)) objects.push(p);
      });
      expect(objects.length).to.be.greaterThan(25);
      for (const p of objects) {
        const e = clone(fullEvent()) as unknown as Json;
        const target = p.length === 0 ? e : null;
        if (target !== null) (target as Record<string, Json>)["nickname"] = "x";
        else setAt(e, [...p, "nickname"], "x");
        expectIssue(e, formatPath([...p, "nickname"]), "unknown_field");
      }
    });
  });

  describe("hostile JSON", () => {
    it("rejects an own __proto__ key (JSON.parse creates one) as an unknown field", () => {
      const text = JSON.stringify(makeNativeEvent());
      const top = JSON.parse(text.replace('{"recorded"', '{"__proto__":{"admin":true},"recorded"'));
      expectIssue(top, "__proto__", "unknown_field");
      const nested = JSON.parse(text.replace('"who":{', '"who":{"__proto__":{"a":1},'));
      expectIssue(nested, "agents[0].who.__proto__", "unknown_field");
    });
  });

  describe("bounds", () => {
    it("rejects every free-text string over 1,024 chars (query over 8 KiB)", () => {
      const texts: Path[] = [];
      walk(fullEvent() as unknown as Json, [], (v, p) => {
        if (typeof v === "string") texts.push(p);
      });
      for (const p of texts) {
        const last = p[p.length - 1];
        const e = clone(fullEvent()) as unknown as Json;
        const limit = last === "query" ? MAX_QUERY_CHARS : MAX_STRING_CHARS;
        setAt(e, p, "a".repeat(limit + 1));
        // Every string field fails; free text as too_long, formatted ones by their format.
        const found = issues(parseNativeEvent(e));
        const field = formatPath(p);
        expect(
          found.some((i) => i.field === field),
          `${field}: ${JSON.stringify(found)}`,
        ).to.equal(true);
      }
      expectIssue(makeNativeEvent({ outcomeDesc: "x".repeat(1025) }), "outcomeDesc", "too_long");
      expectIssue(
        makeNativeEvent({ source: { organization: "o".repeat(1025), observer: "D/1" } }),
        "source.organization",
        "too_long",
      );
    });

    it("rejects every array over 64 items", () => {
      const arrays: Path[] = [];
      walk(fullEvent() as unknown as Json, [], (v, p) => {
        if (Array.isArray(v)) arrays.push(p);
      });
      expect(arrays.length).to.be.at.least(9);
      for (const p of arrays) {
        const e = clone(fullEvent()) as unknown as Json;
        let cur = e as Json;
        for (const seg of p) cur = (cur as Record<string | number, Json>)[seg]!;
        const first = (cur as Json[])[0]!;
        setAt(
          e,
          p,
          Array.from({ length: MAX_ARRAY_ITEMS + 1 }, () => clone(first)),
        );
        expectIssue(e, formatPath(p), "too_many_items");
      }
    });

    it("rejects an event whose JCS encoding exceeds 32 KiB, at $", () => {
      const entities = Array.from({ length: 40 }, (_, i) => ({
        what: `DocumentReference/${i}`,
        description: "d".repeat(1000),
      }));
      const hit = expectIssue(makeNativeEvent({ entities }), "$", "event_too_large");
      expect(hit.message).to.include(String(MAX_EVENT_BYTES));
    });

    it("draws the byte limit exactly on the JCS bytes, whatever the characters' UTF-8 widths", () => {
      // Around the limit: 1-, 2-, 3- and 4-byte characters in descriptions of random lengths.
      const chars = ["d", "\u00e9", "\u20ac", "\ud83d\ude00"];
      const lengths = fc.array(fc.integer({ min: 200, max: 340 }), {
        minLength: 20,
        maxLength: 60,
      });
      const mixed = fc.array(
        fc
          .tuple(fc.constantFrom(...chars), fc.integer({ min: 200, max: 340 }))
          .map(([c, n]) => c.repeat(n)),
        { minLength: 20, maxLength: 60 },
      );
      const uniform = fc
        .tuple(fc.constantFrom(...chars), lengths)
        .map(([c, ns]) => ns.map((n) => c.repeat(n)));
      const descriptions = fc.oneof(mixed, uniform);
      fc.assert(
        fc.property(descriptions, (texts) => {
          const entities = texts.map((description, i) => ({ what: `D/${i}`, description }));
          const event = makeNativeEvent({ entities });
          const result = parseNativeEvent(event);
          // makeNativeEvent gives a normalised event: its JCS bytes are what is committed.
          const tooLarge = jcsBytes(event).length > MAX_EVENT_BYTES;
          expect(result.ok).to.equal(!tooLarge);
          if (!result.ok)
            expect(result.issues.map((i) => i.code)).to.deep.equal(["event_too_large"]);
        }),
        { numRuns: 200 },
      );
    });
  });

  describe("invalid-native vectors", () => {
    const vectors = JSON.parse(
      readFileSync(new URL("invalid-native.json", VECTORS), "utf8"),
    ) as ErrVector[];
    it("has vectors", () => expect(vectors.length).to.be.greaterThan(40));
    for (const v of vectors) {
      it(`${v.desc} → ${v.wantErr.field} ${v.wantErr.code}`, () => {
        expectIssue(v.input, v.wantErr.field, v.wantErr.code);
      });
    }
  });

  describe("formatPath", () => {
    it("formats zod paths the way the API reports fields", () => {
      expect(formatPath([])).to.equal("$");
      expect(formatPath(["recorded"])).to.equal("recorded");
      expect(formatPath(["agents", 0, "requestor"])).to.equal("agents[0].requestor");
      expect(formatPath(["entities", 3, "securityLabel", 1, "code"])).to.equal(
        "entities[3].securityLabel[1].code",
      );
    });
  });

  describe("properties", () => {
    function permuteKeys(value: unknown, seed: number): unknown {
      if (Array.isArray(value)) return value.map((v, i) => permuteKeys(v, seed + i));
      if (value === null || typeof value !== "object") return value;
      const entries = Object.entries(value);
      // deterministic Fisher–Yates driven by a small LCG
      let s = seed >>> 0;
      for (let i = entries.length - 1; i > 0; i--) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const j = s % (i + 1);
        [entries[i], entries[j]] = [entries[j]!, entries[i]!];
      }
      return Object.fromEntries(entries.map(([k, v]) => [k, permuteKeys(v, s + k.length)]));
    }

    it("accepts generated valid events and parsing is idempotent", () => {
      fc.assert(
        fc.property(arbitraryNativeEventInput, (input) => {
          const first = parseNativeEvent(input);
          expect(first.ok, JSON.stringify(first)).to.equal(true);
          if (!first.ok) return;
          const second = parseNativeEvent(first.value);
          expect(second).to.deep.equal(first);
        }),
        { numRuns: 300 },
      );
    });

    it("the parsed value's JCS is stable under key permutation", () => {
      fc.assert(
        fc.property(arbitraryNativeEventInput, fc.integer(), (input, seed) => {
          const a = parseNativeEvent(input);
          const b = parseNativeEvent(permuteKeys(input, seed));
          if (!a.ok || !b.ok) throw new Error("generated event rejected");
          expect(jcs(b.value)).to.equal(jcs(a.value));
        }),
        { numRuns: 300 },
      );
    });

    it("never throws, whatever the input", () => {
      fc.assert(
        fc.property(fc.anything(), (input) => {
          const r = parseNativeEvent(input);
          expect(r.ok).to.equal(false);
        }),
        { numRuns: 300 },
      );
      fc.assert(
        fc.property(arbitraryNativeEventInput, fc.string(), fc.anything(), (input, key, junk) => {
          const r = parseNativeEvent({ ...input, [key]: junk });
          expect(typeof r.ok).to.equal("boolean");
        }),
        { numRuns: 200 },
      );
    });
  });
});

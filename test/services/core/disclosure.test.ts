import { expect } from "chai";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import {
  FIELD_SALT_BYTES,
  type FieldSalts,
  committedForm,
  fieldDigest,
  presentEvent,
  rebuildCommitted,
  redactableValues,
} from "../../../services/core/disclosure.ts";
import { patientKey, subjectTag } from "../../../services/core/entry.ts";
import { sha256 } from "../../../services/core/hash.ts";
import { fromHex, toHex, utf8 } from "../../../services/core/hex.ts";
import { jcs } from "../../../services/core/jcs.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";

function saltsFor(event: object): FieldSalts {
  const out: FieldSalts = {};
  for (const { pointer } of redactableValues(event))
    out[pointer] = toHex(randomBytes(FIELD_SALT_BYTES));
  return out;
}

describe("core/disclosure: entry v2 field digests (DESIGN.md)", () => {
  const event = makeNativeEvent();
  event.agents[2]!.altId = "EMP-1";
  const salts = saltsFor(event);
  const pointers = Object.keys(salts);

  it("redactable values are who, userName, altId and network of every agent, by RFC 6901 pointer", () => {
    expect(pointers.sort()).to.deep.equal(
      [
        "/agents/0/network",
        "/agents/0/who",
        "/agents/1/network",
        "/agents/1/who",
        "/agents/2/altId",
        "/agents/2/userName",
        "/agents/2/who",
      ].sort(),
    );
  });

  it("d_p = SHA-256(s_p ‖ utf8(JCS([p, v]))), and C(event) puts {_sd: d_p} in each value's place", () => {
    const p = "/agents/2/who";
    const s = fromHex(salts[p]!);
    const v = event.agents[2]!.who;
    expect(fieldDigest(s, p, v)).to.equal(toHex(sha256(s, utf8(jcs([p, v])))));
    const c = committedForm(event, salts) as { agents: Array<Record<string, unknown>> };
    expect(c.agents[2]!["who"]).to.deep.equal({ _sd: fieldDigest(s, p, v) });
    expect(c.agents[2]!["organization"]).to.equal(event.agents[2]!.organization);
    expect(JSON.stringify(c)).to.not.include("Dr. Anna Weber");
  });

  it("property: any subset withheld rebuilds the same C(event); any change of a value or digest does not", () => {
    const committed = jcs(committedForm(event, salts));
    fc.assert(
      fc.property(fc.subarray(pointers), fc.nat(), (withheld, pick) => {
        const shown = presentEvent(event, salts, (p) => withheld.includes(p));
        expect(Object.keys(shown.disclosures).sort()).to.deep.equal(
          pointers.filter((p) => !withheld.includes(p)).sort(),
        );
        const r = rebuildCommitted(shown.event, shown.disclosures);
        if (!r.ok) return expect.fail(r.reason);
        expect(jcs(r.committed)).to.equal(committed);
        expect(r.withheld.sort()).to.deep.equal([...withheld].sort());
        // Tamper with one redactable value (clear or withheld).
        const p = pointers[pick % pointers.length]!;
        const [, , i, field] = p.split("/");
        const agents = shown.event["agents"] as Array<Record<string, unknown>>;
        const agent = agents[Number(i)]!;
        agent[field!] = withheld.includes(p)
          ? { _sd: toHex(sha256(utf8("someone else"))) }
          : "someone else";
        const t = rebuildCommitted(shown.event, shown.disclosures);
        expect(t.ok && jcs(t.committed) === committed).to.equal(false);
      }),
      { numRuns: 200 },
    );
  });

  it("a clear value without its salt is DISCLOSURE_MISSING; an _sd elsewhere or a stray disclosure is BUNDLE_MALFORMED", () => {
    const shown = presentEvent(event, salts, () => false);
    const missing = { ...shown.disclosures };
    delete missing["/agents/2/userName"];
    expect(rebuildCommitted(shown.event, missing)).to.deep.include({
      ok: false,
      code: "DISCLOSURE_MISSING",
    });
    const stray = { ...shown.event, consent: { _sd: `0x${"11".repeat(32)}` } };
    expect(rebuildCommitted(stray, shown.disclosures)).to.deep.include({
      ok: false,
      code: "BUNDLE_MALFORMED",
    });
    const nested = structuredClone(shown.event) as { agents: Array<Record<string, unknown>> };
    nested.agents[2]!["who"] = { value: "x", system: { _sd: `0x${"11".repeat(32)}` } };
    expect(rebuildCommitted(nested, shown.disclosures)).to.deep.include({
      code: "BUNDLE_MALFORMED",
    });
    const withheld = presentEvent(event, salts, (p) => p === "/agents/2/who");
    expect(
      rebuildCommitted(withheld.event, {
        ...withheld.disclosures,
        "/agents/2/who": salts["/agents/2/who"],
      }),
    ).to.deep.include({ code: "BUNDLE_MALFORMED" });
    expect(
      rebuildCommitted(shown.event, { ...shown.disclosures, "/agents/2/who": "0x1234" }),
    ).to.deep.include({ code: "BUNDLE_MALFORMED" });
  });
});

describe("core/entry: subject tag derivations", () => {
  const secret = randomBytes(32);
  const a = { system: "urn:a", value: "b|PAT" };
  const b = { system: "urn:a|b", value: "PAT" };

  it("two identities that collided under system|value get different tags under JCS([system, value])", () => {
    expect(patientKey(a, "pipe")).to.equal(patientKey(b, "pipe"));
    expect(subjectTag(secret, a, "pipe")).to.equal(subjectTag(secret, b, "pipe"));
    expect(subjectTag(secret, a, "jcs")).to.not.equal(subjectTag(secret, b, "jcs"));
    expect(patientKey(a, "jcs")).to.equal('["urn:a","b|PAT"]');
    // No system is null, not "": the identifier without a system is not one with an empty one.
    expect(patientKey({ value: "PAT" }, "jcs")).to.equal('[null,"PAT"]');
  });

  it("property: JCS([system, value]) is injective", () => {
    const id = fc.record({
      system: fc.option(fc.string(), { nil: undefined }),
      value: fc.string(),
    });
    fc.assert(
      fc.property(id, id, (x, y) => {
        const same = x.system === y.system && x.value === y.value;
        expect(patientKey(x, "jcs") === patientKey(y, "jcs")).to.equal(same);
      }),
    );
  });
});

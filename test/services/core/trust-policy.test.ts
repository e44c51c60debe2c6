import { Ajv2020 } from "ajv/dist/2020.js";
import { expect } from "chai";
import fc from "fast-check";
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  TrustPolicyError,
  parseTrustPolicy,
  placesOfLog,
  trustDecision,
  trustPolicyFingerprint,
} from "../../../services/core/trust-policy.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");

interface Vectors {
  policies: Array<{ desc: string; policy: unknown; fingerprint: string }>;
  decisions: Array<{
    desc: string;
    anchor: { chainId: number; registry: string; logId: string };
    want?: { operator: string; registry: string };
    wantErr?: string;
  }>;
  malformed: Array<{ desc: string; policy: unknown; wantField: string | null }>;
}

async function vectors(): Promise<Vectors> {
  return JSON.parse(
    await readFile(path.join(ROOT, "test/vectors/trust/policies.json"), "utf8"),
  ) as Vectors;
}

/** Rejections only the verifier can make (not expressible in JSON Schema). */
const BEYOND_JSON_SCHEMA = new Set([
  "mixed-case registry address with a bad EIP-55 checksum",
  "log in a registry the policy does not list",
  "registry listed twice (case differs)",
  "log listed twice",
]);

describe("core/trust-policy (veritrail-trust/1)", () => {
  let v: Vectors;
  before(async () => {
    v = await vectors();
  });

  it("parses every valid policy and computes its published fingerprint", () => {
    for (const p of v.policies) {
      const policy = parseTrustPolicy(p.policy);
      expect(policy.fingerprint, p.desc).to.equal(p.fingerprint);
      expect(trustPolicyFingerprint(p.policy), p.desc).to.equal(p.fingerprint);
    }
    const fingerprints = new Set(v.policies.map((p) => p.fingerprint));
    expect(fingerprints.size, "any change to the document changes the fingerprint").to.equal(
      v.policies.length,
    );
  });

  it("ignores unknown fields but keeps them in the fingerprint", () => {
    const [base, extended] = v.policies;
    const a = parseTrustPolicy(base!.policy);
    const b = parseTrustPolicy(extended!.policy);
    expect({ ...b, fingerprint: "" }).to.deep.equal({ ...a, fingerprint: "" });
    expect(b.fingerprint).to.not.equal(a.fingerprint);
  });

  it("answers every decision vector with the operator or the expected error", () => {
    for (const policyCase of v.policies) {
      const policy = parseTrustPolicy(policyCase.policy);
      for (const d of v.decisions) {
        const got = trustDecision(policy, d.anchor);
        const label = `${policyCase.desc} / ${d.desc}`;
        if (d.wantErr) {
          expect(got.ok, label).to.equal(false);
          if (!got.ok) expect(got.code, label).to.equal(d.wantErr);
        } else {
          expect(got.ok, label).to.equal(true);
          if (got.ok) {
            expect(got.log.operator, label).to.equal(d.want!.operator);
            expect(got.registry.address.toLowerCase(), label).to.equal(
              d.want!.registry.toLowerCase(),
            );
          }
        }
      }
    }
  });

  it("an UNKNOWN_LOG message says where the policy does list the log", () => {
    const policy = parseTrustPolicy(v.policies[0]!.policy);
    const d = v.decisions.find((x) => x.desc.startsWith("same logId in another trusted"))!;
    const got = trustDecision(policy, d.anchor);
    expect(got.ok).to.equal(false);
    if (!got.ok) expect(got.message).to.include(policy.logs[0]!.registry);
    expect(placesOfLog(policy, d.anchor.logId).map((p) => p.log.operator)).to.deep.equal([
      "St Mary General Hospital",
    ]);
  });

  it("rejects every malformed policy, naming the field", () => {
    for (const m of v.malformed) {
      let error: unknown;
      try {
        parseTrustPolicy(m.policy);
      } catch (e) {
        error = e;
      }
      expect(error, m.desc).to.be.instanceOf(TrustPolicyError);
      expect((error as TrustPolicyError).field, m.desc).to.equal(m.wantField ?? undefined);
    }
  });

  it("the fingerprint does not depend on member order (RFC 8785)", () => {
    const base = v.policies[0]!;
    const shuffle = (value: unknown, seed: number): unknown => {
      if (Array.isArray(value)) return value.map((x, i) => shuffle(x, seed + i));
      if (value === null || typeof value !== "object") return value;
      const entries = Object.entries(value);
      const rotated = entries.map((_, i) => entries[(i + seed) % entries.length]!);
      return Object.fromEntries(rotated.map(([k, x]) => [k, shuffle(x, seed + 1)]));
    };
    fc.assert(
      fc.property(fc.nat(50), (seed) => {
        expect(trustPolicyFingerprint(shuffle(base.policy, seed))).to.equal(base.fingerprint);
      }),
    );
  });

  describe("docs/trust-policy.schema.json", () => {
    it("accepts every valid vector and rejects the structurally malformed ones", async () => {
      const schema = JSON.parse(
        await readFile(path.join(ROOT, "docs/trust-policy.schema.json"), "utf8"),
      ) as object;
      const validate = new Ajv2020({ allErrors: true }).compile(schema);
      for (const p of v.policies)
        expect(validate(p.policy), `${p.desc}: ${JSON.stringify(validate.errors)}`).to.equal(true);
      for (const m of v.malformed) {
        const want = !BEYOND_JSON_SCHEMA.has(m.desc);
        expect(validate(m.policy), m.desc).to.equal(!want);
      }
    });
  });
});

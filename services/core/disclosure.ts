import type { Agent, NativeEvent } from "./event.ts";
import { sha256 } from "./hash.ts";
import { type Hex, fromHex, isHex32, toHex, utf8 } from "./hex.ts";
import { jcs } from "./jcs.ts";

/**
 * Selective disclosure of staff identity (DESIGN.md "Entry v2: log time and selective
 * disclosure"). The agent fields that identify a person — the staff member, their account,
 * their workstation — are redactable in every `agents[i]`; everything a patient is owed under
 * CJEU C-579/21 (dates, organization, role, purpose) is not.
 */
export const REDACTABLE_AGENT_FIELDS = ["who", "userName", "altId", "network"] as const;
export type RedactableAgentField = (typeof REDACTABLE_AGENT_FIELDS)[number];

/** An agent whose redactable fields may be left out. */
export type AgentView = Omit<Agent, RedactableAgentField> &
  Partial<Pick<Agent, RedactableAgentField>>;

/** An event whose agents' redactable fields may be left out (what a patient may be shown). */
export type EventView = Omit<NativeEvent, "agents"> & { agents: AgentView[] };

/** `event` without any agent's redactable fields. */
export function withoutStaffIdentity(event: NativeEvent): EventView {
  return {
    ...event,
    agents: event.agents.map((a) => {
      const out: AgentView = { ...a };
      for (const field of REDACTABLE_AGENT_FIELDS) delete out[field];
      return out;
    }),
  };
}

/** Bytes of a field salt (DESIGN.md: 16 random bytes per redactable value). */
export const FIELD_SALT_BYTES = 16;

/** `{"_sd": "0x<digest>"}`: a redactable value withheld from a bundle (or in the committed form). */
export interface WithheldValue {
  _sd: Hex;
}

/** Field salts of an event, by JSON pointer (RFC 6901) of the redactable value. */
export type FieldSalts = Record<string, Hex>;

/** The redactable values present in `event`: `/agents/<i>/<field>` and the value there. */
export function redactableValues(event: unknown): Array<{ pointer: string; value: unknown }> {
  const out: Array<{ pointer: string; value: unknown }> = [];
  const agents = (event as { agents?: unknown } | null)?.agents;
  if (!Array.isArray(agents)) return out;
  agents.forEach((agent, i) => {
    if (typeof agent !== "object" || agent === null || Array.isArray(agent)) return;
    for (const field of REDACTABLE_AGENT_FIELDS) {
      const value = (agent as Record<string, unknown>)[field];
      if (value !== undefined) out.push({ pointer: `/agents/${i}/${field}`, value });
    }
  });
  return out;
}

/** d_p = SHA-256(s_p ‖ utf8(JCS([p, v]))). */
export function fieldDigest(salt: Uint8Array, pointer: string, value: unknown): Hex {
  if (salt.length !== FIELD_SALT_BYTES)
    throw new TypeError(`a field salt is ${FIELD_SALT_BYTES} bytes`);
  return toHex(sha256(salt, utf8(jcs([pointer, value]))));
}

/** Whether `value` is a withheld value: exactly `{"_sd": <32-byte hex>}`. */
export function isWithheldValue(value: unknown): value is WithheldValue {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === "_sd" && isHex32((value as { _sd: unknown })._sd);
}

/** A copy of the event with the value at each `/agents/i/field` pointer replaced. */
function replaceAt(
  event: Record<string, unknown>,
  replace: (pointer: string, value: unknown) => unknown,
): Record<string, unknown> {
  const agents = event["agents"];
  if (!Array.isArray(agents)) return { ...event };
  return {
    ...event,
    agents: agents.map((agent: unknown, i) => {
      if (typeof agent !== "object" || agent === null || Array.isArray(agent)) return agent;
      const copy: Record<string, unknown> = { ...(agent as Record<string, unknown>) };
      for (const field of REDACTABLE_AGENT_FIELDS) {
        if (copy[field] !== undefined) copy[field] = replace(`/agents/${i}/${field}`, copy[field]);
      }
      return copy;
    }),
  };
}

/**
 * C(event): each redactable value replaced by `{"_sd": d_p}`. The entry v2 commitment is
 * SHA-256(salt ‖ utf8(JCS(C(event)))).
 */
export function committedForm(event: object, fieldSalts: FieldSalts): Record<string, unknown> {
  return replaceAt(event as Record<string, unknown>, (pointer, value) => {
    const salt = fieldSalts[pointer];
    if (salt === undefined) throw new TypeError(`no field salt for ${pointer}`);
    return { _sd: fieldDigest(fromHex(salt), pointer, value) };
  });
}

/**
 * The event as a bundle shows it: each redactable value in clear with its field salt in
 * `disclosures`, or, where `withhold` says so, as `{"_sd": d_p}`.
 */
export function presentEvent(
  event: object,
  fieldSalts: FieldSalts,
  withhold: (pointer: string) => boolean,
): { event: Record<string, unknown>; disclosures: FieldSalts } {
  const disclosures: FieldSalts = {};
  const shown = replaceAt(event as Record<string, unknown>, (pointer, value) => {
    const salt = fieldSalts[pointer];
    if (salt === undefined) throw new TypeError(`no field salt for ${pointer}`);
    if (withhold(pointer)) return { _sd: fieldDigest(fromHex(salt), pointer, value) };
    disclosures[pointer] = salt;
    return value;
  });
  return { event: shown, disclosures };
}

export type RebuildResult =
  | { ok: true; committed: Record<string, unknown>; withheld: string[] }
  | { ok: false; code: "DISCLOSURE_MISSING" | "BUNDLE_MALFORMED"; reason: string };

/**
 * C(event) rebuilt from a bundle's event and disclosures (what a verifier hashes): a withheld
 * value stays `{"_sd": …}`, a clear one is digested with its field salt. A clear value without
 * its salt is DISCLOSURE_MISSING; an `_sd` object anywhere but at a redactable pointer, a
 * malformed one, or a disclosure for no clear redactable value is BUNDLE_MALFORMED.
 */
export function rebuildCommitted(
  event: Record<string, unknown>,
  disclosures: unknown,
): RebuildResult {
  const salts = (disclosures ?? {}) as Record<string, unknown>;
  if (typeof salts !== "object" || salts === null || Array.isArray(salts))
    return { ok: false, code: "BUNDLE_MALFORMED", reason: "disclosures must be an object" };
  const stray = strayWithheld(event);
  if (stray !== undefined)
    return {
      ok: false,
      code: "BUNDLE_MALFORMED",
      reason: `an _sd object at ${stray}, which is not a redactable path`,
    };
  const clear = new Set<string>();
  const withheld: string[] = [];
  let problem: Exclude<RebuildResult, { ok: true }> | undefined;
  const committed = replaceAt(event, (pointer, value) => {
    if (isWithheldValue(value)) {
      withheld.push(pointer);
      return { _sd: value._sd };
    }
    if (typeof value === "object" && value !== null && "_sd" in value) {
      problem ??= {
        ok: false,
        code: "BUNDLE_MALFORMED",
        reason: `${pointer}: malformed _sd value`,
      };
      return value;
    }
    clear.add(pointer);
    const salt = salts[pointer];
    if (salt === undefined) {
      problem ??= {
        ok: false,
        code: "DISCLOSURE_MISSING",
        reason: `${pointer} is shown in clear without its field salt in disclosures`,
      };
      return value;
    }
    if (!isHex16(salt)) {
      problem ??= {
        ok: false,
        code: "BUNDLE_MALFORMED",
        reason: `disclosures["${pointer}"] must be 0x-hex of ${FIELD_SALT_BYTES} bytes`,
      };
      return value;
    }
    return { _sd: fieldDigest(fromHex(salt), pointer, value) };
  });
  if (problem) return problem;
  for (const pointer of Object.keys(salts))
    if (!clear.has(pointer))
      return {
        ok: false,
        code: "BUNDLE_MALFORMED",
        reason: `disclosures names ${pointer}, which is not a redactable value shown in clear`,
      };
  return { ok: true, committed, withheld };
}

function isHex16(v: unknown): v is Hex {
  return typeof v === "string" && /^0x[0-9a-f]{32}$/.test(v);
}

/** The JSON pointer of an `_sd` member outside the redactable paths, if any. */
function strayWithheld(event: Record<string, unknown>): string | undefined {
  const walk = (value: unknown, pointer: string, redactable: boolean): string | undefined => {
    if (typeof value !== "object" || value === null) return undefined;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const found = walk(value[i], `${pointer}/${i}`, false);
        if (found !== undefined) return found;
      }
      return undefined;
    }
    const record = value as Record<string, unknown>;
    if ("_sd" in record && !redactable) return pointer === "" ? "/" : pointer;
    if (redactable && isWithheldValue(record)) return undefined;
    for (const key of Object.keys(record)) {
      const child = `${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      const found = walk(record[key], child, isRedactablePointer(child));
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return walk(event, "", false);
}

const REDACTABLE_POINTER = new RegExp(
  `^/agents/(0|[1-9][0-9]*)/(${REDACTABLE_AGENT_FIELDS.join("|")})$`,
);

export function isRedactablePointer(pointer: string): boolean {
  return REDACTABLE_POINTER.test(pointer);
}

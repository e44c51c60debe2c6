/**
 * Structural validators written from the FHIR R4 definitions, for the provenance and error
 * tests: Provenance (https://hl7.org/fhir/R4/provenance.html), OperationOutcome
 * (https://hl7.org/fhir/R4/operationoutcome.html) and the collection Bundle that carries them
 * (https://hl7.org/fhir/R4/bundle.html). Each returns a list of issues; [] means valid.
 */

export type Json = Record<string, unknown>;
export const isObj = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export const PROVENANCE_PARTICIPANT_TYPE =
  "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
/** R4 ProvenanceParticipantType codes. */
const PARTICIPANT_TYPES = new Set([
  "enterer",
  "performer",
  "author",
  "verifier",
  "legal",
  "attester",
  "informant",
  "custodian",
  "assembler",
  "composer",
]);
export const PROVENANCE_ENTITY_ROLE = "http://hl7.org/fhir/provenance-entity-role";
/** R4 ProvenanceEntityRole (required binding of Provenance.entity.role, a `code`). */
const ENTITY_ROLES = new Set(["derivation", "revision", "quotation", "source", "removal"]);
const ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/** R4 IssueType (http://hl7.org/fhir/issue-type), required binding of issue.code. */
export const ISSUE_TYPES = new Set([
  "invalid",
  "structure",
  "required",
  "value",
  "invariant",
  "security",
  "login",
  "unknown",
  "expired",
  "forbidden",
  "suppressed",
  "processing",
  "not-supported",
  "duplicate",
  "multiple-matches",
  "not-found",
  "deleted",
  "too-long",
  "code-invalid",
  "extension",
  "too-costly",
  "business-rule",
  "conflict",
  "transient",
  "lock-error",
  "no-store",
  "exception",
  "timeout",
  "incomplete",
  "throttled",
  "informational",
]);
const SEVERITIES = new Set(["fatal", "error", "warning", "information"]);

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const DATETIME = /^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const URI = /^\S+$/;

/** FHIR JSON: no nulls, no empty strings/arrays/objects anywhere. */
export function checkJsonRules(v: unknown, at: string, issues: string[]): void {
  if (v === null) issues.push(`${at}: null`);
  else if (typeof v === "string" && v.trim() === "") issues.push(`${at}: empty string`);
  else if (Array.isArray(v)) {
    if (v.length === 0) issues.push(`${at}: empty array`);
    v.forEach((x, i) => checkJsonRules(x, `${at}[${i}]`, issues));
  } else if (isObj(v)) {
    if (Object.keys(v).length === 0) issues.push(`${at}: empty object`);
    for (const [k, x] of Object.entries(v)) checkJsonRules(x, `${at}.${k}`, issues);
  }
}

export interface Element {
  min: 0 | 1;
  max: 1 | "*";
  check?: (v: unknown, at: string, issues: string[]) => void;
}

/** Cardinalities of `defs`, and no element outside them (R4 has no unknown elements). */
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
  for (const key of Object.keys(obj))
    if (!(key in defs)) issues.push(`${at}.${key}: not an element of this type`);
  for (const [key, def] of Object.entries(defs)) {
    const v = obj[key];
    if (v === undefined) {
      if (def.min === 1) issues.push(`${at}.${key}: required (min 1)`);
      continue;
    }
    if (def.max === "*") {
      if (!Array.isArray(v)) {
        issues.push(`${at}.${key}: must be an array (max *)`);
        continue;
      }
      if (def.min === 1 && v.length === 0) issues.push(`${at}.${key}: needs at least one`);
      v.forEach((x, i) => def.check?.(x, `${at}.${key}[${i}]`, issues));
    } else {
      if (Array.isArray(v)) issues.push(`${at}.${key}: must not be an array (max 1)`);
      else def.check?.(v, `${at}.${key}`, issues);
    }
  }
}

const str =
  (re?: RegExp) =>
  (v: unknown, at: string, issues: string[]): void => {
    if (typeof v !== "string") issues.push(`${at}: must be a string`);
    else if (re && !re.test(v)) issues.push(`${at}: ${JSON.stringify(v)} does not match ${re}`);
  };

const coding =
  (system?: string, codes?: Set<string>) =>
  (v: unknown, at: string, issues: string[]): void => {
    checkElements(
      v,
      at,
      {
        system: { min: 0, max: 1, check: str(URI) },
        version: { min: 0, max: 1, check: str() },
        code: { min: 0, max: 1, check: str() },
        display: { min: 0, max: 1, check: str() },
        userSelected: { min: 0, max: 1 },
      },
      issues,
    );
    if (!isObj(v)) return;
    if (system !== undefined && v["system"] !== system)
      issues.push(`${at}.system: must be ${system}`);
    if (codes !== undefined && !codes.has(String(v["code"])))
      issues.push(`${at}.code: ${String(v["code"])} is not in the value set`);
  };

const codeableConcept =
  (system?: string, codes?: Set<string>) =>
  (v: unknown, at: string, issues: string[]): void =>
    checkElements(
      v,
      at,
      {
        coding: { min: system ? 1 : 0, max: "*", check: coding(system, codes) },
        text: { min: 0, max: 1, check: str() },
      },
      issues,
    );

const identifier = (v: unknown, at: string, issues: string[]): void =>
  checkElements(
    v,
    at,
    {
      use: { min: 0, max: 1, check: str() },
      type: { min: 0, max: 1, check: codeableConcept() },
      system: { min: 0, max: 1, check: str(URI) },
      value: { min: 0, max: 1, check: str() },
    },
    issues,
  );

/** A Reference; `ref-1`-style: it must say something (reference, identifier or display). */
const reference = (v: unknown, at: string, issues: string[]): void => {
  checkElements(
    v,
    at,
    {
      reference: { min: 0, max: 1, check: str(/^\S+$/) },
      type: { min: 0, max: 1, check: str(URI) },
      identifier: { min: 0, max: 1, check: identifier },
      display: { min: 0, max: 1, check: str() },
    },
    issues,
  );
  if (isObj(v) && v["reference"] === undefined && v["identifier"] === undefined)
    issues.push(`${at}: a Reference needs a reference or an identifier`);
};

/** extension: url 1..1 and exactly one value[x] (ext-1). */
const extension = (v: unknown, at: string, issues: string[]): void => {
  if (!isObj(v)) {
    issues.push(`${at}: not an object`);
    return;
  }
  str(URI)(v["url"], `${at}.url`, issues);
  const values = Object.keys(v).filter((k) => k.startsWith("value"));
  if (values.length !== 1) issues.push(`${at}: needs exactly one value[x]`);
  for (const k of Object.keys(v))
    if (k !== "url" && !k.startsWith("value")) issues.push(`${at}.${k}: not an element`);
};

const period = (v: unknown, at: string, issues: string[]): void => {
  checkElements(
    v,
    at,
    {
      start: { min: 0, max: 1, check: str(DATETIME) },
      end: { min: 0, max: 1, check: str(DATETIME) },
    },
    issues,
  );
  if (isObj(v) && typeof v["start"] === "string" && typeof v["end"] === "string")
    if (Date.parse(v["start"]) > Date.parse(v["end"]))
      issues.push(`${at}: start after end (per-1)`);
};

/** R4 Provenance: target 1..*, recorded 1..1, agent 1..* (who 1..1), entity.role/what 1..1. */
export function provenanceIssues(resource: unknown, at = "Provenance"): string[] {
  const issues: string[] = [];
  checkJsonRules(resource, at, issues);
  checkElements(
    resource,
    at,
    {
      resourceType: { min: 1, max: 1, check: str(/^Provenance$/) },
      id: { min: 0, max: 1, check: str(ID) },
      meta: { min: 0, max: 1 },
      text: { min: 0, max: 1 },
      extension: { min: 0, max: "*", check: extension },
      target: { min: 1, max: "*", check: reference },
      occurredPeriod: { min: 0, max: 1, check: period },
      occurredDateTime: { min: 0, max: 1, check: str(DATETIME) },
      recorded: { min: 1, max: 1, check: str(INSTANT) },
      policy: { min: 0, max: "*", check: str(URI) },
      location: { min: 0, max: 1, check: reference },
      reason: { min: 0, max: "*", check: codeableConcept(ACT_REASON) },
      activity: { min: 0, max: 1, check: codeableConcept() },
      agent: {
        min: 1,
        max: "*",
        check: (v, a, i) =>
          checkElements(
            v,
            a,
            {
              type: {
                min: 0,
                max: 1,
                check: codeableConcept(PROVENANCE_PARTICIPANT_TYPE, PARTICIPANT_TYPES),
              },
              role: { min: 0, max: "*", check: codeableConcept() },
              who: { min: 1, max: 1, check: reference },
              onBehalfOf: { min: 0, max: 1, check: reference },
            },
            i,
          ),
      },
      entity: {
        min: 0,
        max: "*",
        check: (v, a, i) => {
          checkElements(
            v,
            a,
            {
              role: { min: 1, max: 1, check: str() },
              what: { min: 1, max: 1, check: reference },
              agent: { min: 0, max: "*" },
            },
            i,
          );
          if (isObj(v) && !ENTITY_ROLES.has(String(v["role"])))
            i.push(`${a}.role: ${String(v["role"])} is not in ${PROVENANCE_ENTITY_ROLE}`);
        },
      },
      signature: { min: 0, max: "*" },
    },
    issues,
  );
  if (isObj(resource) && resource["occurredPeriod"] && resource["occurredDateTime"])
    issues.push(`${at}: occurred[x] twice`);
  return issues;
}

/** R4 OperationOutcome: issue 1..* with severity and code from their required value sets. */
export function operationOutcomeIssues(resource: unknown, at = "OperationOutcome"): string[] {
  const issues: string[] = [];
  checkJsonRules(resource, at, issues);
  checkElements(
    resource,
    at,
    {
      resourceType: { min: 1, max: 1, check: str(/^OperationOutcome$/) },
      id: { min: 0, max: 1, check: str(ID) },
      meta: { min: 0, max: 1 },
      issue: {
        min: 1,
        max: "*",
        check: (v, a, i) => {
          checkElements(
            v,
            a,
            {
              severity: { min: 1, max: 1, check: str() },
              code: { min: 1, max: 1, check: str() },
              details: { min: 0, max: 1, check: codeableConcept() },
              diagnostics: { min: 0, max: 1, check: str() },
              location: { min: 0, max: "*", check: str() },
              expression: { min: 0, max: "*", check: str() },
            },
            i,
          );
          if (!isObj(v)) return;
          if (!SEVERITIES.has(String(v["severity"])))
            i.push(`${a}.severity: ${String(v["severity"])} is not an IssueSeverity`);
          if (!ISSUE_TYPES.has(String(v["code"])))
            i.push(`${a}.code: ${String(v["code"])} is not an IssueType`);
        },
      },
    },
    issues,
  );
  return issues;
}

/** The provenance route's FHIR answer: a collection Bundle of Provenance (+ OperationOutcome). */
export function provenanceBundleIssues(bundle: unknown): string[] {
  const issues: string[] = [];
  checkJsonRules(bundle, "Bundle", issues);
  checkElements(
    bundle,
    "Bundle",
    {
      resourceType: { min: 1, max: 1, check: str(/^Bundle$/) },
      id: { min: 0, max: 1, check: str(ID) },
      type: { min: 1, max: 1, check: str(/^collection$/) },
      timestamp: { min: 0, max: 1, check: str(INSTANT) },
      entry: {
        min: 0,
        max: "*",
        check: (v, a, i) => {
          checkElements(
            v,
            a,
            { fullUrl: { min: 0, max: 1, check: str(URI) }, resource: { min: 1, max: 1 } },
            i,
          );
          const resource = isObj(v) ? v["resource"] : undefined;
          if (!isObj(resource)) return;
          if (resource["resourceType"] === "Provenance")
            i.push(...provenanceIssues(resource, `${a}.resource`));
          else if (resource["resourceType"] === "OperationOutcome")
            i.push(...operationOutcomeIssues(resource, `${a}.resource`));
          else i.push(`${a}.resource: unexpected ${String(resource["resourceType"])}`);
        },
      },
    },
    issues,
  );
  return issues;
}

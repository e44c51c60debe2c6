/**
 * What the console keeps of each verified bundle: a few fields for the figures, never the bundle
 * itself (100,000 bundles are ~0.5 GB of JSON; their facts are a few MB). Read from untrusted
 * input (a dropped file may be anything): every field is checked for its type, and a field that
 * is missing or odd is counted as "unknown", never trusted into a figure it does not belong to.
 *
 * The patient identifier is never kept: distinct patients are counted by the entry's subject
 * tag (a keyed pseudonym, per log), so nothing a figure shows or exports names a patient.
 */
import { BREAK_GLASS_PURPOSE, PURPOSE_OF_USE_CODES, displayOf } from "../../services/core/codes.ts";
import { type TransferRecord, transferOf } from "../../services/core/transfer.ts";
import type { Verdict, VerdictStatus } from "../../services/verifier/verdict.ts";

/** A staff account: an agent that asked for the data (`requestor`), shown to auditors. */
export interface StaffRef {
  /** `who.system|who.value`: the account, stable across events. */
  key: string;
  /** `who.value` and `who.system` (the identity provider, "" when none). */
  id: string;
  system: string;
  /** What a person reads: display name, else user name, else the identifier. */
  label: string;
  organization: string;
}

export interface TransferFact {
  kind: "export" | "import";
  reference: string;
  dataHash: string;
  organization: string;
  recipient?: string;
}

export interface EventFacts {
  seq: number;
  /** entry.recorded (the log's clock), ms since the epoch. */
  t: number;
  status: VerdictStatus;
  /** The first failed check's code, and for a bundle that did not verify its step and reason. */
  code?: string;
  step?: string;
  reason?: string;
  /** The organization that made the access: the requesting agent's, else the logging one's. */
  organization: string;
  /** C, R, U, D or E; "?" when the event is absent (erased, withheld) or odd. */
  action: string;
  /** Purpose-of-use codes (the event's, else the requestor's). */
  purposes: string[];
  /** Data categories of the entities: their codes (labels in Strings.categoryLabels). */
  categories: string[];
  breakGlass: boolean;
  /** Requesting staff accounts with their identity in clear. */
  staff: StaffRef[];
  /** Requesting agents whose identity is withheld (entry v2 `_sd`): not attributable. */
  staffWithheld: number;
  /** The subject tag (pseudonym of the patient, per log), or null. */
  subject: string | null;
  batchNo: number | null;
  transfer?: TransferFact;
  /** Whether the bundle carried its event (false: erased or withheld). */
  content: boolean;
}

/** One batch as the bundles of an export describe it, with what their verification found. */
export interface BatchFacts {
  batchNo: number;
  firstSeq: number;
  count: number;
  /** Bundles of this batch in the export. */
  seen: number;
  anchor: { chainId: number; contract: string; txHash: string; blockNumber: number } | null;
  /** Bundle verdicts by status. */
  statuses: Partial<Record<VerdictStatus, number>>;
  /** Codes of failed anchor, confirmations or signer steps (a discrepancy of the batch itself). */
  chainCodes: string[];
  /** First bundle seq with a chain-step failure, for the link to its proof. */
  firstFailedSeq?: number;
}

export const UNKNOWN = "(unknown)";
export const NONE = "(none)";

/**
 * Interns strings: 100,000 events name a handful of organizations, one copy each. Also keeps
 * what a data category code is called (the first display seen for it).
 */
export class Strings {
  private readonly map = new Map<string, string>();
  readonly categoryLabels = new Map<string, string>();
  of(s: string): string {
    const known = this.map.get(s);
    if (known !== undefined) return known;
    this.map.set(s, s);
    return s;
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function requestors(event: Obj): Obj[] {
  const agents = Array.isArray(event["agents"]) ? event["agents"].filter(isObj) : [];
  return agents.filter((a) => a["requestor"] === true);
}

/** The facts of one bundle and its verdict; undefined when it is not even a bundle. */
export function factsOf(
  bundle: unknown,
  verdict: Verdict,
  strings: Strings,
): EventFacts | undefined {
  if (!isObj(bundle) || !isObj(bundle["entry"])) return undefined;
  const entry = bundle["entry"];
  const seq = entry["seq"];
  const recorded = str(entry["recorded"]);
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || recorded === undefined)
    return undefined;
  const t = Date.parse(recorded);
  if (!Number.isFinite(t)) return undefined;
  const batch = isObj(bundle["batch"]) ? bundle["batch"] : undefined;
  const batchNo = typeof batch?.["batchNo"] === "number" ? batch["batchNo"] : null;
  const subject = str(entry["subject"]) ?? null;
  const failed =
    verdict.status === "failed" || verdict.status === "error"
      ? verdict.checks.find((c) => c.ok === false && c.code === verdict.code)
      : undefined;
  const base = {
    seq,
    t,
    status: verdict.status,
    ...(verdict.code !== undefined ? { code: strings.of(verdict.code) } : {}),
    ...(failed ? { step: failed.step, reason: failed.reason } : {}),
    subject,
    batchNo,
  };
  const event = isObj(bundle["event"]) ? bundle["event"] : undefined;
  if (!event)
    return {
      ...base,
      organization: UNKNOWN,
      action: "?",
      purposes: [],
      categories: [],
      breakGlass: false,
      staff: [],
      staffWithheld: 0,
      content: false,
    };
  const asking = requestors(event);
  const source = isObj(event["source"]) ? event["source"] : {};
  const organization = strings.of(
    str(asking[0]?.["organization"]) ?? str(source["organization"]) ?? UNKNOWN,
  );
  const action = str(event["action"]);
  const codesOf = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  let purposes = codesOf(event["purposeOfUse"]);
  if (purposes.length === 0) purposes = codesOf(asking[0]?.["purposeOfUse"]);
  const categories: string[] = [];
  for (const entity of Array.isArray(event["entities"]) ? event["entities"] : []) {
    if (!isObj(entity) || !isObj(entity["category"])) continue;
    const c = entity["category"];
    const code = str(c["code"]) ?? str(c["display"]);
    if (code === undefined || categories.includes(code)) continue;
    categories.push(strings.of(code));
    if (!strings.categoryLabels.has(code))
      strings.categoryLabels.set(code, str(c["display"]) ?? code);
  }
  const staff: StaffRef[] = [];
  let staffWithheld = 0;
  for (const agent of asking) {
    const who = isObj(agent["who"]) ? agent["who"] : undefined;
    if (!who || "_sd" in who) {
      staffWithheld++;
      continue;
    }
    const value = str(who["value"]);
    if (value === undefined) continue;
    const userName = typeof agent["userName"] === "string" ? agent["userName"] : undefined;
    const system = str(who["system"]) ?? "";
    staff.push({
      key: strings.of(`${system}|${value}`),
      id: strings.of(value),
      system: strings.of(system),
      label: strings.of(str(who["display"]) ?? userName ?? value),
      organization: strings.of(str(agent["organization"]) ?? organization),
    });
  }
  const transfer = transferOf(event, undefined);
  return {
    ...base,
    organization,
    action: action !== undefined && /^[CRUDE]$/.test(action) ? strings.of(action) : "?",
    purposes: purposes.map((p) => strings.of(p)),
    categories,
    breakGlass: event["breakGlass"] === true || purposes.includes(BREAK_GLASS_PURPOSE),
    staff,
    staffWithheld,
    ...(transfer
      ? {
          transfer: {
            kind: transfer.kind,
            reference: transfer.reference,
            dataHash: transfer.dataHash,
            organization: strings.of(transfer.organization),
            ...(transfer.recipient !== undefined
              ? { recipient: strings.of(transfer.recipient) }
              : {}),
          },
        }
      : {}),
    content: true,
  };
}

/** Steps whose failure is the batch's, not the bundle's: every bundle of the batch shares it. */
const CHAIN_STEPS = new Set(["anchor", "confirmations", "signer"]);

/** What one bundle says about its batch, and what its verification found there. */
export interface BatchSighting {
  batchNo: number;
  firstSeq: number;
  count: number;
  anchor: BatchFacts["anchor"];
  status: VerdictStatus;
  /** Codes of its failed chain steps (anchor, confirmations, signer). */
  chainCodes: string[];
  seq: number | null;
}

export function batchSighting(bundle: unknown, verdict: Verdict): BatchSighting | undefined {
  if (!isObj(bundle) || !isObj(bundle["batch"])) return undefined;
  const b = bundle["batch"];
  const batchNo = b["batchNo"];
  if (typeof batchNo !== "number" || !Number.isSafeInteger(batchNo)) return undefined;
  const a = isObj(bundle["anchor"]) ? bundle["anchor"] : undefined;
  const chainCodes: string[] = [];
  for (const c of verdict.checks)
    if (c.ok === false && CHAIN_STEPS.has(c.step) && c.code !== undefined) chainCodes.push(c.code);
  return {
    batchNo,
    firstSeq: typeof b["firstSeq"] === "number" ? b["firstSeq"] : -1,
    count: typeof b["count"] === "number" ? b["count"] : 0,
    anchor:
      a &&
      typeof a["chainId"] === "number" &&
      typeof a["contract"] === "string" &&
      typeof a["txHash"] === "string" &&
      typeof a["blockNumber"] === "number"
        ? {
            chainId: a["chainId"],
            contract: a["contract"],
            txHash: a["txHash"],
            blockNumber: a["blockNumber"],
          }
        : null,
    status: verdict.status,
    chainCodes,
    seq: typeof verdict.seq === "number" ? verdict.seq : null,
  };
}

/** Adds one bundle's sighting to its batch's record. */
export function addToBatch(batches: Map<number, BatchFacts>, s: BatchSighting): void {
  let record = batches.get(s.batchNo);
  if (!record) {
    record = {
      batchNo: s.batchNo,
      firstSeq: s.firstSeq,
      count: s.count,
      seen: 0,
      anchor: s.anchor,
      statuses: {},
      chainCodes: [],
    };
    batches.set(s.batchNo, record);
  }
  record.seen++;
  record.statuses[s.status] = (record.statuses[s.status] ?? 0) + 1;
  for (const code of s.chainCodes) {
    if (!record.chainCodes.includes(code)) record.chainCodes.push(code);
    if (record.firstFailedSeq === undefined && s.seq !== null) record.firstFailedSeq = s.seq;
  }
}

/** "Treatment (TREAT)". */
export function purposeLabel(code: string): string {
  const display = displayOf(PURPOSE_OF_USE_CODES, code);
  return display ? `${display} (${code})` : code;
}

export const ACTION_LABELS: Record<string, string> = {
  C: "Create (C)",
  R: "Read (R)",
  U: "Update (U)",
  D: "Delete (D)",
  E: "Execute (E)",
  "?": "Not shown (erased or withheld)",
};

/** A transfer fact as the matcher (services/core/transfer.ts) takes it. */
export function transferRecord<S>(t: TransferFact, side: S): TransferRecord<S> {
  return { ...t, side };
}

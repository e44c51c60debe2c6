/**
 * Verifies a patient's history (DESIGN.md "Per-patient completeness") against the chain only:
 *
 *   1. shape: a `veritrail-patient-history/1` object;
 *   2. every event's bundle verifies (one session: chain reads shared per batch);
 *   3. the `asOf` header is in the registry's state, `confirmations` deep (a state read);
 *   4. every event is the subject's (entry.subject = subjectTag), lies in the covered range
 *      (seq < asOf.firstSeq + count), is anchored in the same registry and log, and its patient
 *      view agrees with the bundle's event;
 *   5. the chain over (seq, leafHash) — leafHash recomputed from each bundle's entry, never taken
 *      from the server — matches the subject-index proof under the on-chain `indexRoot`: an
 *      event left out (or added) fails with INCOMPLETE_HISTORY / UNEXPECTED_EVENTS.
 *
 * Imports only services/core and ethers, like the rest of the verifier (browser bundle).
 */
import type { Bundle } from "../core/bundle.ts";
import { REDACTABLE_AGENT_FIELDS } from "../core/disclosure.ts";
import { type Entry, entryLeafHash } from "../core/entry.ts";
import { fromHex, isHex32 } from "../core/hex.ts";
import { type TrustedRegistry, trustDecision } from "../core/trust-policy.ts";
import { type CompletenessErrorCode, verifyCompleteness } from "../core/subject-index-proof.ts";
import { type ChainRpc, ZERO_HASH, batchHeaderHash } from "./chain-reads.ts";
import { msg } from "./offline-checks.ts";
import type { Verdict, VerdictTrust } from "./verdict.ts";
import { type VerifyOptions, newSession } from "./verify-bundle.ts";
import { verifyBundles } from "./verify-bundles.ts";

export const PATIENT_HISTORY_FORMAT = "veritrail-patient-history/1";

export type HistoryErrorCode =
  /** Not a patient history object, or its fields contradict each other. */
  | "HISTORY_MALFORMED"
  /** The asOf batch (or an event) is anchored in a registry the trust policy does not list. */
  | "UNTRUSTED_REGISTRY"
  /** The trust policy does not list the history's log. */
  | "UNKNOWN_LOG"
  /** No batch is anchored yet: nothing can be proven complete (the verdict is pending). */
  | "NOTHING_ANCHORED"
  /** An event's bundle does not verify (its verdict names the step), or withholds its content. */
  | "BUNDLE_INVALID"
  /** An event belongs to another subject than the history's subjectTag. */
  | "WRONG_SUBJECT"
  /** A covered event lies at or after the end of the asOf batch, or a pending one before it. */
  | "OUT_OF_RANGE"
  /** An event's bundle is anchored in another registry, chain or log than the asOf batch. */
  | "ANCHOR_MISMATCH"
  /** The patient view shown for an event disagrees with the event its bundle proves. */
  | "VIEW_MISMATCH"
  /** The RPC serves another chain than asOf.anchor.chainId. */
  | "WRONG_CHAIN"
  /** The registry holds no commitment for the asOf batch. */
  | "NOT_ANCHORED"
  /** The registry holds another header for the asOf batch. */
  | "HEADER_MISMATCH"
  /** The asOf batch is not yet `confirmations` deep. */
  | "TOO_FEW_CONFIRMATIONS"
  /** The chain could not be read: try again (status "error"). */
  | "RPC_ERROR"
  /** The subject-index proof or the recomputed history chain does not match indexRoot. */
  | CompletenessErrorCode;

export interface HistoryFinding {
  code: HistoryErrorCode;
  message: string;
  seq?: number;
}

export interface HistoryEventResult {
  seq: number;
  ok: boolean;
  verdict: Verdict;
}

export interface HistoryVerdict {
  /** True only when every event verified and the list is proven complete. */
  ok: boolean;
  status: "verified" | "pending" | "failed" | "error";
  /** The first finding's code. */
  code?: HistoryErrorCode;
  findings: HistoryFinding[];
  /** The batch the history is complete as of, and its anchoring block. */
  asOf?: { batchNo: number; blockNumber: number; chainId: number; contract: string };
  /** Events proven complete (the count in the index). */
  count?: number;
  /** The trust policy applied, and the log's operator and registry per that policy. */
  trust: VerdictTrust;
  events: HistoryEventResult[];
  notYetCovered: HistoryEventResult[];
}

/** What the verifier reads of a history (the API's shape; the server is not trusted on any of it). */
interface HistoryEventInput {
  seq: number;
  recorded: string;
  event: Record<string, unknown> | null;
  erased: boolean;
  withheld?: boolean;
  bundle: unknown;
}

interface HistoryInput {
  format: string;
  subjectTag: string;
  asOf: {
    batch: Bundle["batch"] & object;
    anchor: NonNullable<Bundle["anchor"]>;
  } | null;
  proof: unknown;
  events: HistoryEventInput[];
  notYetCovered: HistoryEventInput[];
}

export async function verifyPatientHistory(
  history: unknown,
  provider: ChainRpc,
  options: VerifyOptions,
): Promise<HistoryVerdict> {
  const policy: VerdictTrust = {
    fingerprint: options.trust.fingerprint,
    issuer: options.trust.issuer,
  };
  const shaped = readShape(history);
  if (typeof shaped === "string")
    return finish([{ code: "HISTORY_MALFORMED", message: shaped }], [], [], undefined, policy);
  const h = shaped;
  const findings: HistoryFinding[] = [];
  // Whose log, on which registry: the policy decides before anything is read from the chain.
  let trust = policy;
  let registry: TrustedRegistry | undefined;
  if (h.asOf !== null) {
    const decision = trustDecision(options.trust, {
      chainId: h.asOf.anchor.chainId,
      registry: h.asOf.anchor.contract,
      logId: h.asOf.batch.logId,
    });
    if (decision.ok) {
      registry = decision.registry;
      trust = {
        ...policy,
        operator: decision.log.operator,
        registry: {
          chainId: decision.registry.chainId,
          address: decision.registry.address,
          ...(decision.registry.name ? { name: decision.registry.name } : {}),
        },
      };
    } else findings.push({ code: decision.code, message: `asOf batch: ${decision.message}` });
  }
  const session = newSession(provider);
  const all = [...h.events, ...h.notYetCovered];
  const verdicts = await verifyBundles(
    all.map((e) => e.bundle),
    provider,
    { ...options, session },
  );
  const results = all.map((e, i) => {
    const verdict = verdicts[i]!;
    return { seq: e.seq, ok: verdict.ok, verdict };
  });
  const covered = results.slice(0, h.events.length);
  const pending = results.slice(h.events.length);

  // Bundles: covered events must be fully verified (or proven erased); later ones may be pending.
  covered.forEach((r, i) => {
    if (r.verdict.ok) return;
    // An event the history says is withheld whole (the access policy may not show its staff
    // identity): its entry verified, and the view claims no content (checked below).
    if (r.verdict.status === "withheld" && h.events[i]!.withheld === true) return;
    const code =
      r.verdict.status === "error"
        ? "RPC_ERROR"
        : r.verdict.code === "UNTRUSTED_REGISTRY" || r.verdict.code === "UNKNOWN_LOG"
          ? r.verdict.code
          : "BUNDLE_INVALID";
    const check = r.verdict.checks.find(
      (c) => c.ok === false || (c.ok === "skipped" && r.verdict.status === "pending"),
    );
    findings.push({
      code,
      seq: h.events[i]!.seq,
      message: `event ${h.events[i]!.seq}: bundle ${r.verdict.status}${r.verdict.code ? ` (${r.verdict.code})` : ""}${check ? `: ${check.reason}` : ""}`,
    });
  });
  pending.forEach((r, i) => {
    if (
      r.verdict.status === "failed" ||
      (r.verdict.status === "withheld" && h.notYetCovered[i]!.withheld !== true)
    )
      findings.push({
        code: "BUNDLE_INVALID",
        seq: h.notYetCovered[i]!.seq,
        message: `event ${h.notYetCovered[i]!.seq} (not yet covered): bundle failed (${r.verdict.code ?? "?"})`,
      });
  });

  // Per-event facts the bundle proves: subject, seq, view.
  const bundles = all.map((e) => e.bundle as Bundle);
  all.forEach((e, i) => {
    const b = bundles[i]!;
    if (typeof b !== "object" || b === null || typeof b.entry !== "object" || b.entry === null)
      return;
    if (b.entry.seq !== e.seq || b.entry.recorded !== e.recorded)
      findings.push({
        code: "VIEW_MISMATCH",
        seq: e.seq,
        message: `event ${e.seq}: seq or date differs from its bundle's entry`,
      });
    if (b.entry.subject !== h.subjectTag)
      findings.push({
        code: "WRONG_SUBJECT",
        seq: e.seq,
        message: `event ${e.seq} belongs to another subject`,
      });
    const viewProblem = viewMismatch(e, b);
    if (viewProblem)
      findings.push({
        code: "VIEW_MISMATCH",
        seq: e.seq,
        message: `event ${e.seq}: ${viewProblem}`,
      });
  });

  if (h.asOf === null) {
    if (h.events.length > 0)
      findings.push({
        code: "HISTORY_MALFORMED",
        message: "events are listed as covered, but no batch is named",
      });
    findings.push({
      code: "NOTHING_ANCHORED",
      message: "no batch of this log is anchored yet: completeness cannot be proven",
    });
    return finish(findings, covered, pending, undefined, trust);
  }
  const asOf = h.asOf;
  const end = asOf.batch.firstSeq + asOf.batch.count;
  h.events.forEach((e, i) => {
    if (e.seq >= end)
      findings.push({
        code: "OUT_OF_RANGE",
        seq: e.seq,
        message: `event ${e.seq} is listed as covered but lies after batch ${asOf.batch.batchNo} (ends before ${end})`,
      });
    const b = bundles[i]!;
    if (
      b?.anchor &&
      b.batch &&
      (b.anchor.contract.toLowerCase() !== asOf.anchor.contract.toLowerCase() ||
        b.anchor.chainId !== asOf.anchor.chainId ||
        b.batch.logId !== asOf.batch.logId ||
        b.batch.batchNo > asOf.batch.batchNo)
    )
      findings.push({
        code: "ANCHOR_MISMATCH",
        seq: e.seq,
        message: `event ${e.seq} is anchored in another registry, chain, log or later batch than batch ${asOf.batch.batchNo}`,
      });
  });
  h.notYetCovered.forEach((e) => {
    if (e.seq < end)
      findings.push({
        code: "OUT_OF_RANGE",
        seq: e.seq,
        message: `event ${e.seq} is listed as not yet covered but lies inside batch ${asOf.batch.batchNo}'s range`,
      });
  });

  // The asOf header on-chain (a state read, like a bundle's anchor step).
  const asOfSummary = {
    batchNo: asOf.batch.batchNo,
    blockNumber: asOf.anchor.blockNumber,
    chainId: asOf.anchor.chainId,
    contract: asOf.anchor.contract,
  };
  if (registry) {
    const depth = Math.max(1, options.confirmations ?? 0, registry.confirmations);
    const chainFinding = await checkAsOfAnchored(asOf, session.reads, depth);
    if (chainFinding) findings.push(chainFinding);
  }

  // Completeness: the chain recomputed from the bundles' own entries.
  let count: number | undefined;
  const leafEvents: Array<{ seq: number; leafHash: Uint8Array }> = [];
  let leafOk = true;
  for (const b of bundles.slice(0, h.events.length)) {
    try {
      leafEvents.push({ seq: b.entry.seq, leafHash: entryLeafHash(b.entry as Entry) });
    } catch (e) {
      leafOk = false;
      findings.push({ code: "HISTORY_MALFORMED", message: `an entry cannot be hashed: ${msg(e)}` });
      break;
    }
  }
  if (leafOk) {
    const result = verifyCompleteness({
      indexRoot: fromHex(asOf.batch.indexRoot),
      subjectTag: fromHex(h.subjectTag),
      events: leafEvents,
      proof: h.proof as Parameters<typeof verifyCompleteness>[0]["proof"],
    });
    if (result.ok) count = result.count;
    else findings.push({ code: result.code, message: result.message });
  }
  return finish(findings, covered, pending, asOfSummary, trust, count);
}

async function checkAsOfAnchored(
  asOf: NonNullable<HistoryInput["asOf"]>,
  reads: ReturnType<typeof newSession>["reads"],
  depth: number,
): Promise<HistoryFinding | undefined> {
  const where = `batch ${asOf.batch.batchNo} of log ${asOf.batch.logId} at ${asOf.anchor.contract}`;
  try {
    const [chainId, latest] = await Promise.all([reads.chainId(), reads.latest()]);
    if (chainId !== BigInt(asOf.anchor.chainId))
      return {
        code: "WRONG_CHAIN",
        message: `the RPC serves chain ${chainId}, the history names chain ${asOf.anchor.chainId}`,
      };
    const deep = latest - depth + 1;
    const local = batchHeaderHash(asOf.batch);
    const read = (block: number) =>
      reads.batchCommitment(asOf.anchor.contract, asOf.batch.logId, asOf.batch.batchNo, block);
    const atDeep = deep >= 0 ? await read(deep) : ZERO_HASH;
    if (atDeep === local) return undefined;
    const atLatest = atDeep === ZERO_HASH ? await read(latest) : atDeep;
    if (atLatest === ZERO_HASH)
      return { code: "NOT_ANCHORED", message: `the registry holds no commitment for ${where}` };
    if (atLatest !== local)
      return { code: "HEADER_MISMATCH", message: `the registry holds another header for ${where}` };
    return { code: "TOO_FEW_CONFIRMATIONS", message: `${where} is not yet ${depth} block(s) deep` };
  } catch (e) {
    if (e instanceof Error && e.name === "NotARegistry")
      return {
        code: "NOT_ANCHORED",
        message: `no registry at ${asOf.anchor.contract}: ${e.message}`,
      };
    return { code: "RPC_ERROR", message: `cannot read the chain: ${msg(e)}` };
  }
}

/** The fields a patient is shown must be the bundle's event's (the view is the server's word). */
function viewMismatch(e: HistoryEventInput, b: Bundle): string | undefined {
  if (e.withheld === true) {
    // An event withheld whole (an entry v1 event whose staff identity may not be shown): the
    // entry still proves when it was logged; nothing else may be claimed.
    if (e.erased) return "an event cannot be both erased and withheld";
    if (e.event !== null || b.event !== null) return "a withheld event shows content";
    return undefined;
  }
  if (e.erased !== (b.event === null)) return "erased flag differs from the bundle";
  if (e.event === null || b.event === null)
    return e.event === b.event ? undefined : "view present for an erased event";
  for (const field of [
    "recorded",
    "action",
    "outcome",
    "purposeOfUse",
    "source",
    "type",
    "subtype",
    "breakGlass",
  ]) {
    if (JSON.stringify(e.event[field]) !== JSON.stringify(b.event[field]))
      return `view field ${field} differs from the bundle's event`;
  }
  const va = e.event["agents"];
  const ba = b.event["agents"];
  if (!Array.isArray(va) || !Array.isArray(ba) || va.length !== ba.length)
    return "view agents differ from the bundle's event";
  for (let i = 0; i < va.length; i++) {
    const v = va[i] as Record<string, unknown>;
    const a = ba[i] as Record<string, unknown>;
    for (const field of ["organization", "role", "purposeOfUse", "requestor"]) {
      if (JSON.stringify(v[field]) !== JSON.stringify(a[field]))
        return `view agent ${i} ${field} differs from the bundle's event`;
    }
    // Staff identity shown in the view must be what the bundle discloses, never more.
    for (const field of REDACTABLE_AGENT_FIELDS) {
      if (v[field] !== undefined && JSON.stringify(v[field]) !== JSON.stringify(a[field]))
        return `view agent ${i} ${field} is not what the bundle discloses`;
    }
  }
  return undefined;
}

function readShape(value: unknown): HistoryInput | string {
  if (typeof value !== "object" || value === null) return "the history is not an object";
  const h = value as Record<string, unknown>;
  if (h["format"] !== PATIENT_HISTORY_FORMAT) return `format must be ${PATIENT_HISTORY_FORMAT}`;
  if (!isHex32(h["subjectTag"])) return "subjectTag must be 32-byte 0x-hex";
  const lists = ["events", "notYetCovered"] as const;
  for (const name of lists) {
    const list = h[name];
    if (!Array.isArray(list)) return `${name} must be an array`;
    for (const [i, e] of list.entries()) {
      if (typeof e !== "object" || e === null) return `${name}[${i}] must be an object`;
      const ev = e as Record<string, unknown>;
      if (!Number.isSafeInteger(ev["seq"])) return `${name}[${i}].seq must be an integer`;
      if (typeof ev["recorded"] !== "string") return `${name}[${i}].recorded must be a string`;
      if (typeof ev["erased"] !== "boolean") return `${name}[${i}].erased must be a boolean`;
      if (ev["withheld"] !== undefined && ev["withheld"] !== true)
        return `${name}[${i}].withheld must be true when present`;
      if (ev["event"] !== null && (typeof ev["event"] !== "object" || Array.isArray(ev["event"])))
        return `${name}[${i}].event must be an object or null`;
    }
  }
  const asOf = h["asOf"];
  if (asOf !== null) {
    if (typeof asOf !== "object" || asOf === undefined) return "asOf must be an object or null";
    const a = asOf as Record<string, unknown>;
    const batch = a["batch"] as Record<string, unknown> | null | undefined;
    const anchor = a["anchor"] as Record<string, unknown> | null | undefined;
    if (typeof batch !== "object" || batch === null) return "asOf.batch must be a batch header";
    if (typeof anchor !== "object" || anchor === null) return "asOf.anchor must be an anchor";
    for (const k of ["logId", "eventsRoot", "indexRoot"])
      if (!isHex32(batch[k])) return `asOf.batch.${k} must be 32-byte 0x-hex`;
    for (const k of ["batchNo", "firstSeq", "count"])
      if (!Number.isSafeInteger(batch[k]) || (batch[k] as number) < 0)
        return `asOf.batch.${k} must be a non-negative integer`;
    if (!Number.isSafeInteger(anchor["chainId"]) || !Number.isSafeInteger(anchor["blockNumber"]))
      return "asOf.anchor.chainId and blockNumber must be integers";
    if (typeof anchor["contract"] !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(anchor["contract"]))
      return "asOf.anchor.contract must be an address";
  } else if (h["proof"] !== null) return "a proof without asOf";
  return value as HistoryInput;
}

function finish(
  findings: HistoryFinding[],
  events: HistoryEventResult[],
  notYetCovered: HistoryEventResult[],
  asOf: HistoryVerdict["asOf"],
  trust: VerdictTrust,
  count?: number,
): HistoryVerdict {
  const real = findings.filter((f) => f.code !== "RPC_ERROR" && f.code !== "NOTHING_ANCHORED");
  const status: HistoryVerdict["status"] =
    real.length > 0
      ? "failed"
      : findings.some((f) => f.code === "RPC_ERROR")
        ? "error"
        : findings.length > 0
          ? "pending"
          : "verified";
  const first = real[0] ?? findings[0];
  return {
    ok: status === "verified",
    status,
    ...(first ? { code: first.code } : {}),
    findings,
    ...(asOf ? { asOf } : {}),
    ...(count !== undefined && status === "verified" ? { count } : {}),
    trust,
    events,
    notYetCovered,
  };
}

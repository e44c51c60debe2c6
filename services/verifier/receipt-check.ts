/**
 * Holding a log to its receipts (DESIGN.md "Receipt": "a log that misses the deadline is provably
 * at fault"). A receipt is the log's signed promise that `seq` holds `leafHash` and will be
 * anchored by `anchorDeadline`; this turns it into one of:
 *
 * - `honored`: seq was anchored by the deadline, and a bundle for it (from the log's API or given
 *   by the caller) verifies against the trusted registry and carries the receipt's leaf hash;
 * - `pending`: not anchored, and the chain has no (sufficiently confirmed) block after the
 *   deadline yet: the promise still stands;
 * - `DEADLINE_MISSED`: in the registry state as the first block after the deadline found it (the
 *   end of the last block at or before the deadline) the log's next seq is ≤ seq: seq was not
 *   anchored in time, whatever happened later;
 * - `LEAF_MISMATCH`: a bundle for the same log and seq, anchored in the trusted registry, carries
 *   another leaf: the log anchored something else than it acknowledged (a rewritten store);
 * - `invalid`: the receipt is not a promise of a trusted log (bad signature, a signer the registry
 *   never registered for the log at issue, a log the trust policy does not list);
 * - `undecided`: the answer needs something missing (the bundle of an anchored seq, a chain that
 *   answers) — never a verdict against the log.
 *
 * The two failures come with evidence (`veritrail-receipt-evidence/1`, core/receipt-evidence.ts)
 * that `recheckEvidence` confirms from the chain alone: no API, nothing the log says.
 *
 * Like the bundle verifier, this imports only services/core and the chain reads, so it runs in
 * the CLI and, bundled, in the /verify page.
 */
import { entryLeafHash } from "../core/entry.ts";
import type { Entry } from "../core/entry.ts";
import { toHex } from "../core/hex.ts";
import { RECEIPT_FORMAT, type Receipt, ReceiptSchema } from "../core/receipt.ts";
import {
  type DeadlineEvidence,
  EVIDENCE_FORMAT,
  type EvidenceBlock,
  type LeafEvidence,
  type ReceiptEvidence,
  ReceiptEvidenceSchema,
  withoutContent,
} from "../core/receipt-evidence.ts";
import {
  type TrustPolicy,
  type TrustedLog,
  type TrustedRegistry,
  placesOfLog,
  registryLabel,
  trustDecision,
} from "../core/trust-policy.ts";
import { type BlockHeader, ChainReads, type ChainRpc, NotARegistry } from "./chain-reads.ts";
import { RpcUnavailableError } from "./rpc.ts";
import {
  ReceiptSignatureCache,
  msg,
  nonCanonicalSignature,
  parseBundle,
} from "./offline-checks.ts";
import { signerCheck } from "./signer-check.ts";
import type { Verdict, VerdictTrust } from "./verdict.ts";
import { type VerifySession, verifyInSession } from "./verify-bundle.ts";

export type ReceiptStatus =
  "honored" | "pending" | "DEADLINE_MISSED" | "LEAF_MISMATCH" | "invalid" | "undecided";

export type ReceiptCheckStep = "receipt" | "trust" | "signer" | "deadline" | "leaf" | "evidence";

export type ReceiptCheckCode =
  /** Not a `veritrail-receipt/1` receipt (step receipt). */
  | "RECEIPT_MALFORMED"
  /** Its group path or EIP-712 signature does not verify (step receipt). */
  | "RECEIPT_INVALID"
  /** The trust policy does not list the receipt's log (step trust). */
  | "UNKNOWN_LOG"
  /** The evidence names a registry the trust policy does not list for the log (step trust). */
  | "UNTRUSTED_REGISTRY"
  /** The RPC serves another chain than the policy's registry for the log (step trust). */
  | "WRONG_CHAIN"
  /** The signer never was a registered receipt signer of the log (step signer). */
  | "SIGNER_NOT_REGISTERED"
  /** The signer was registered, but not when the receipt was issued (step signer). */
  | "SIGNER_NOT_VALID_AT_ISSUE"
  /** seq was not anchored by anchorDeadline (step deadline). */
  | "DEADLINE_MISSED"
  /** An anchored bundle for the seq carries another leaf (step leaf). */
  | "LEAF_MISMATCH"
  /** seq is anchored: only its bundle can show which leaf (step leaf). */
  | "BUNDLE_NEEDED"
  /** The bundle given is of another log or seq (step leaf). */
  | "BUNDLE_OTHER_EVENT"
  /** The bundle does not verify, so it shows nothing about the leaf (step leaf). */
  | "BUNDLE_INVALID"
  /** The evidence does not hold: malformed, or the chain contradicts it (step evidence). */
  | "EVIDENCE_INVALID"
  /** The chain could not be read (any step). */
  | "RPC_ERROR";

export interface ReceiptCheck {
  step: ReceiptCheckStep;
  ok: boolean | "skipped";
  code?: ReceiptCheckCode;
  reason: string;
}

export interface ReceiptVerdict {
  status: ReceiptStatus;
  /** The failed check's code (for the two failures: DEADLINE_MISSED, LEAF_MISMATCH). */
  code?: ReceiptCheckCode;
  /** One sentence: what the verdict rests on. */
  reason: string;
  seq?: number;
  log?: string;
  anchorDeadline?: string;
  /** The policy the verdict is relative to, and what it says of the receipt's log. */
  trust: VerdictTrust;
  checks: ReceiptCheck[];
  /** For DEADLINE_MISSED and LEAF_MISMATCH: what a third party re-checks. */
  evidence?: ReceiptEvidence;
  /** The bundle's own verdict, when a bundle was checked. */
  bundle?: Verdict;
}

export interface ReceiptCheckOptions {
  trust: TrustPolicy;
  /**
   * Blocks required on top of a block, itself included, before it counts (the larger of this and
   * the policy's number for the registry applies): for the first block after the deadline and
   * for the anchor.
   */
  confirmations?: number;
  /** When the evidence is written (informational); defaults to now. */
  now?: Date;
}

/** Whether a parsed JSON document is receipt evidence (rather than a receipt). */
export function isReceiptEvidence(doc: unknown): boolean {
  return (
    typeof doc === "object" &&
    doc !== null &&
    (doc as { format?: unknown }).format === EVIDENCE_FORMAT
  );
}

interface Place {
  registry: TrustedRegistry;
  log: TrustedLog;
}

/** What every check shares: the chain reads of one run, the place, and the verdict so far. */
interface Run {
  session: VerifySession;
  reads: ChainReads;
  checks: ReceiptCheck[];
  trust: VerdictTrust;
  options: ReceiptCheckOptions;
}

const ok = (step: ReceiptCheckStep, reason: string): ReceiptCheck => ({ step, ok: true, reason });
const failed = (step: ReceiptCheckStep, code: ReceiptCheckCode, reason: string): ReceiptCheck => ({
  step,
  ok: false,
  code,
  reason,
});

function newRun(rpc: ChainRpc, options: ReceiptCheckOptions): Run {
  if (!options.trust || typeof options.trust.fingerprint !== "string")
    throw new TypeError("a trust policy is required (DESIGN.md: every verdict is relative to one)");
  const reads = new ChainReads(rpc);
  return {
    session: { reads, signatures: new ReceiptSignatureCache() },
    reads,
    checks: [],
    trust: { fingerprint: options.trust.fingerprint, issuer: options.trust.issuer },
    options,
  };
}

function finish(
  run: Run,
  status: ReceiptStatus,
  reason: string,
  extra: Partial<ReceiptVerdict> = {},
): ReceiptVerdict {
  const code =
    status === "honored" || status === "pending"
      ? undefined
      : run.checks.find((c) => c.ok === false)?.code;
  return {
    status,
    ...(code !== undefined ? { code } : {}),
    reason,
    trust: run.trust,
    checks: run.checks,
    ...extra,
  };
}

/** The blocks required for a registry: the policy's and the caller's, the larger (at least 1). */
function depthFor(registry: TrustedRegistry, options: ReceiptCheckOptions): number {
  return Math.max(1, options.confirmations ?? 0, registry.confirmations);
}

/**
 * Checks a receipt against the chain (see the file comment). `bundle`, when given, is the
 * `veritrail-proof/1` bundle of the receipt's seq: needed only once the seq is anchored.
 */
export async function checkReceipt(
  input: { receipt: unknown; bundle?: unknown },
  rpc: ChainRpc,
  options: ReceiptCheckOptions,
): Promise<ReceiptVerdict> {
  const run = newRun(rpc, options);
  const start = await receiptAndPlace(run, input.receipt);
  if ("verdict" in start) return start.verdict;
  const { receipt, place, latest } = start;
  const about = { seq: receipt.seq, log: receipt.log, anchorDeadline: receipt.anchorDeadline };
  const contract = place.registry.address;
  const depth = depthFor(place.registry, options);
  const deep = Math.max(0, latest - depth + 1);
  const deadlineMs = Date.parse(receipt.anchorDeadline);

  let anchoredBy: string;
  try {
    const head = await run.reads.blockHeader(latest);
    if (head === null)
      throw new RpcUnavailableError(`the node does not serve its latest block ${latest}`);
    const after =
      head.timestamp * 1000 > deadlineMs
        ? await firstBlockAfter(run.reads, deadlineMs, latest)
        : null;
    if (after === null || after.first.number > deep) {
      // No (confirmed) block after the deadline: the promise stands; anchored already, or not.
      const now = await run.reads.logHead(contract, receipt.log, deep);
      const where =
        after === null
          ? `the chain's latest block ${latest} (${iso(head.timestamp)}) is not past anchorDeadline ${receipt.anchorDeadline}`
          : `the deadline passed at block ${after.first.number}, which does not have ${depth} confirmation(s) yet`;
      if (now.nextSeq <= receipt.seq) {
        run.checks.push({
          step: "deadline",
          ok: "skipped",
          reason: `seq ${receipt.seq} is not anchored yet (next seq ${now.nextSeq} at block ${deep}); ${where}`,
        });
        return finish(
          run,
          "pending",
          `not anchored yet, and the deadline has not passed: ${where}`,
          about,
        );
      }
      anchoredBy = `anchored before the deadline (the registry's next seq is ${now.nextSeq} at block ${deep}; ${where})`;
    } else {
      const state = await headByDeadline(run.reads, contract, receipt.log, after.last, deep);
      if (state.nextSeq <= receipt.seq) {
        const reason =
          `seq ${receipt.seq} was not anchored by ${receipt.anchorDeadline}: the registry state at the ` +
          `end of block ${after.last.number} (${iso(after.last.timestamp)}), as block ` +
          `${after.first.number} (${iso(after.first.timestamp)}) found it` +
          (state.block === after.last.number ? "" : ` (read at block ${state.block}, later)`) +
          `, has next seq ${state.nextSeq}`;
        run.checks.push(failed("deadline", "DEADLINE_MISSED", reason));
        const evidence: DeadlineEvidence = {
          format: EVIDENCE_FORMAT,
          verdict: "DEADLINE_MISSED",
          receipt,
          registry: { chainId: place.registry.chainId, address: contract },
          lastBlockByDeadline: after.last,
          firstBlockAfterDeadline: after.first,
          logHead: { nextBatchNo: state.nextBatchNo, nextSeq: state.nextSeq, block: state.block },
          observedAt: (options.now ?? new Date()).toISOString(),
        };
        return finish(run, "DEADLINE_MISSED", reason, { ...about, evidence });
      }
      anchoredBy =
        `anchored by the deadline (the registry's next seq at the end of block ` +
        `${after.last.number}, the last one by ${receipt.anchorDeadline}, is ${state.nextSeq})`;
    }
  } catch (e) {
    return chainError(run, "deadline", e, about);
  }
  run.checks.push(ok("deadline", `seq ${receipt.seq} ${anchoredBy}`));

  if (input.bundle === undefined) {
    run.checks.push(
      failed(
        "leaf",
        "BUNDLE_NEEDED",
        `seq ${receipt.seq} is anchored; only its bundle shows whether the anchored leaf is ${receipt.leafHash}`,
      ),
    );
    return finish(
      run,
      "undecided",
      `seq ${receipt.seq} is anchored; its bundle is needed to check the leaf`,
      about,
    );
  }
  const leaf = await leafStep(run, receipt, input.bundle);
  run.checks.push(leaf.check);
  if (leaf.outcome === "same")
    return finish(run, "honored", `seq ${receipt.seq} was ${anchoredBy}, with the receipt's leaf`, {
      ...about,
      bundle: leaf.verdict,
    });
  if (leaf.outcome === "other") {
    const evidence: LeafEvidence = {
      format: EVIDENCE_FORMAT,
      verdict: "LEAF_MISMATCH",
      receipt,
      registry: { chainId: place.registry.chainId, address: contract },
      bundle: leaf.stripped,
      observedAt: (options.now ?? new Date()).toISOString(),
    };
    return finish(run, "LEAF_MISMATCH", leaf.check.reason, {
      ...about,
      evidence,
      bundle: leaf.verdict,
    });
  }
  return finish(run, "undecided", leaf.check.reason, {
    ...about,
    ...(leaf.verdict ? { bundle: leaf.verdict } : {}),
  });
}

/**
 * Re-checks a `veritrail-receipt-evidence/1` document from the chain alone: the receipt and its
 * signer, then the failure it claims. Answers the same failure when the chain bears it out,
 * `invalid` when the receipt or its log does not count, and `undecided` with EVIDENCE_INVALID
 * when the evidence does not hold.
 */
export async function recheckEvidence(
  document: unknown,
  rpc: ChainRpc,
  options: ReceiptCheckOptions,
): Promise<ReceiptVerdict> {
  const run = newRun(rpc, options);
  const parsed = ReceiptEvidenceSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : "evidence";
    run.checks.push(
      failed(
        "evidence",
        "EVIDENCE_INVALID",
        `not ${EVIDENCE_FORMAT}: ${where}: ${issue?.message ?? "invalid"}`,
      ),
    );
    return finish(run, "undecided", "the evidence is malformed");
  }
  const evidence = parsed.data;
  const decision = trustDecision(options.trust, {
    chainId: evidence.registry.chainId,
    registry: evidence.registry.address,
    logId: evidence.receipt.log,
  });
  if (!decision.ok) {
    run.checks.push(failed("trust", decision.code, decision.message));
    return finish(run, "invalid", decision.message, {
      seq: evidence.receipt.seq,
      log: evidence.receipt.log,
    });
  }
  const start = await receiptAndPlace(run, evidence.receipt, decision);
  if ("verdict" in start) return start.verdict;
  const { receipt, place, latest } = start;
  const about = { seq: receipt.seq, log: receipt.log, anchorDeadline: receipt.anchorDeadline };
  const depth = depthFor(place.registry, options);
  const deep = Math.max(0, latest - depth + 1);
  const refuted = (reason: string) => {
    run.checks.push(failed("evidence", "EVIDENCE_INVALID", reason));
    return finish(run, "undecided", `the evidence does not hold: ${reason}`, about);
  };

  if (evidence.verdict === "LEAF_MISMATCH") {
    const leaf = await leafStep(run, receipt, evidence.bundle);
    if (leaf.outcome === "other") {
      run.checks.push(leaf.check);
      return finish(run, "LEAF_MISMATCH", leaf.check.reason, {
        ...about,
        evidence,
        ...(leaf.verdict ? { bundle: leaf.verdict } : {}),
      });
    }
    if (leaf.outcome === "error") {
      run.checks.push(leaf.check);
      return finish(run, "undecided", leaf.check.reason, about);
    }
    return refuted(
      leaf.outcome === "same"
        ? "its bundle carries the receipt's own leaf"
        : `its bundle proves nothing: ${leaf.check.reason}`,
    );
  }

  const { lastBlockByDeadline: last, firstBlockAfterDeadline: first } = evidence;
  const deadlineMs = Date.parse(receipt.anchorDeadline);
  if (first.number !== last.number + 1)
    return refuted(`block ${first.number} does not follow block ${last.number}`);
  if (!(last.timestamp * 1000 <= deadlineMs && first.timestamp * 1000 > deadlineMs))
    return refuted(
      `the deadline ${receipt.anchorDeadline} does not fall between block ${last.number} (${iso(last.timestamp)}) and block ${first.number} (${iso(first.timestamp)})`,
    );
  try {
    for (const claimed of [last, first]) {
      const actual = await run.reads.blockHeader(claimed.number);
      if (actual === null) return refuted(`the chain has no block ${claimed.number} (yet)`);
      if (actual.hash !== claimed.hash.toLowerCase() || actual.timestamp !== claimed.timestamp)
        return refuted(
          `block ${claimed.number} on this chain is ${actual.hash} at ${iso(actual.timestamp)}, not ${claimed.hash} at ${iso(claimed.timestamp)} (a reorganised or another chain)`,
        );
    }
    if (first.number > deep) {
      run.checks.push({
        step: "deadline",
        ok: "skipped",
        reason: `block ${first.number} does not have ${depth} confirmation(s) yet (head ${latest})`,
      });
      return finish(
        run,
        "pending",
        "the evidence's blocks are not final yet; check again later",
        about,
      );
    }
    const at = Math.max(evidence.logHead.block, last.number);
    if (at > latest)
      return refuted(`its log head is read at block ${at}, above the chain head ${latest}`);
    const state = await headByDeadline(
      run.reads,
      place.registry.address,
      receipt.log,
      { ...last, number: at },
      deep,
    );
    if (state.nextSeq > receipt.seq)
      return refuted(
        `the registry state at block ${state.block} has next seq ${state.nextSeq}: seq ${receipt.seq} was anchored by then`,
      );
    const reason =
      `seq ${receipt.seq} was not anchored by ${receipt.anchorDeadline}: block ${first.number} ` +
      `(${iso(first.timestamp)}) is the first after it, and the registry state at block ${state.block} ` +
      `has next seq ${state.nextSeq}`;
    run.checks.push(failed("deadline", "DEADLINE_MISSED", reason));
    return finish(run, "DEADLINE_MISSED", reason, { ...about, evidence });
  } catch (e) {
    return chainError(run, "deadline", e, about);
  }
}

/**
 * The common start: the receipt verifies, its log is in the policy on the RPC's chain, and its
 * signer was registered when it was issued. Returns either a finished verdict or what the rest
 * needs.
 */
async function receiptAndPlace(
  run: Run,
  input: unknown,
  pinned?: Place,
): Promise<{ verdict: ReceiptVerdict } | { receipt: Receipt; place: Place; latest: number }> {
  const parsed = ReceiptSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const reason = `receipt.${issue?.path.map(String).join(".") ?? ""}: ${issue?.message ?? "invalid"}`;
    run.checks.push(failed("receipt", "RECEIPT_MALFORMED", reason));
    return { verdict: finish(run, "invalid", `not a ${RECEIPT_FORMAT} receipt: ${reason}`) };
  }
  const receipt = parsed.data;
  const verified = run.session.signatures.verify(receipt);
  if ("error" in verified) {
    run.checks.push(
      failed("receipt", "RECEIPT_INVALID", `${verified.error.code}: ${verified.error.message}`),
    );
    return { verdict: finish(run, "invalid", `not a valid receipt: ${verified.error.message}`) };
  }
  const signer = verified.signer;
  const nonCanonical = nonCanonicalSignature(receipt.signature);
  const about = { seq: receipt.seq, log: receipt.log, anchorDeadline: receipt.anchorDeadline };
  if (nonCanonical) {
    run.checks.push(failed("receipt", "RECEIPT_INVALID", nonCanonical));
    return { verdict: finish(run, "invalid", `not a valid receipt: ${nonCanonical}`, about) };
  }
  run.checks.push(ok("receipt", `EIP-712 receipt signature recovers ${signer}`));

  const places = pinned ? [pinned] : placesOfLog(run.options.trust, receipt.log);
  const where = `trust policy ${run.options.trust.fingerprint} (${run.options.trust.issuer})`;
  if (places.length === 0) {
    const reason = `log ${receipt.log} is not listed by the ${where}`;
    run.checks.push(failed("trust", "UNKNOWN_LOG", reason));
    return { verdict: finish(run, "invalid", reason, about) };
  }
  let chainId: bigint;
  let latest: number;
  try {
    [chainId, latest] = await Promise.all([run.reads.chainId(), run.reads.latest()]);
  } catch (e) {
    return { verdict: chainError(run, "trust", e, about) };
  }
  const place = places.find((p) => BigInt(p.registry.chainId) === chainId);
  if (!place) {
    const reason = `the RPC serves chain ${chainId}; the trust policy has log ${receipt.log} on chain ${places.map((p) => p.registry.chainId).join(", ")}`;
    run.checks.push(failed("trust", "WRONG_CHAIN", reason));
    return { verdict: finish(run, "undecided", reason, about) };
  }
  run.trust = {
    ...run.trust,
    operator: place.log.operator,
    registry: {
      chainId: place.registry.chainId,
      address: place.registry.address,
      ...(place.registry.name ? { name: place.registry.name } : {}),
    },
  };
  run.checks.push(
    ok(
      "trust",
      `log of ${place.log.operator}, in ${registryLabel(place.registry)}: listed by the ${where}`,
    ),
  );
  const deep = Math.max(0, latest - depthFor(place.registry, run.options) + 1);
  let signerResult;
  try {
    signerResult = await signerCheck(
      run.reads,
      place.registry.address,
      receipt.log,
      signer,
      receipt.issuedAt,
      deep,
    );
  } catch (e) {
    return { verdict: chainError(run, "signer", e, about) };
  }
  if (signerResult.ok !== true) {
    const code =
      signerResult.code === "SIGNER_NOT_VALID_AT_ISSUE"
        ? "SIGNER_NOT_VALID_AT_ISSUE"
        : "SIGNER_NOT_REGISTERED";
    run.checks.push(failed("signer", code, signerResult.reason));
    return {
      verdict: finish(
        run,
        "invalid",
        `the receipt is not the log's promise: ${signerResult.reason}`,
        about,
      ),
    };
  }
  run.checks.push(ok("signer", signerResult.reason));
  return { receipt, place, latest };
}

/**
 * The first block whose timestamp is after `deadlineMs`, and the one before it: a binary search
 * over block timestamps (non-decreasing), ⌈log2(latest)⌉ block reads. null when block 0 is
 * already after the deadline (no block is "by the deadline").
 */
async function firstBlockAfter(
  reads: ChainReads,
  deadlineMs: number,
  latest: number,
): Promise<{ last: EvidenceBlock; first: EvidenceBlock } | null> {
  const header = async (n: number): Promise<BlockHeader> => {
    const h = await reads.blockHeader(n);
    if (h === null) throw new RpcUnavailableError(`the node does not serve block ${n}`);
    return h;
  };
  let lo = 0; // candidate: the first block after the deadline is in (lo, hi]
  let hi = latest;
  if ((await header(0)).timestamp * 1000 > deadlineMs) return null;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if ((await header(mid)).timestamp * 1000 > deadlineMs) hi = mid;
    else lo = mid;
  }
  const [last, first] = await Promise.all([header(lo), header(hi)]);
  return { last, first };
}

/**
 * The log's head in the state at the end of `last` — or, when the node no longer serves that
 * state (a full node keeps recent state only), at `fallback`: a head read later with next seq ≤
 * seq shows the same, because a log's next seq only grows.
 */
async function headByDeadline(
  reads: ChainReads,
  contract: string,
  logId: string,
  last: EvidenceBlock,
  fallback: number,
): Promise<{ nextBatchNo: number; nextSeq: number; block: number }> {
  try {
    return { ...(await reads.logHead(contract, logId, last.number)), block: last.number };
  } catch (e) {
    if (!(e instanceof RpcUnavailableError) || fallback <= last.number) throw e;
    return { ...(await reads.logHead(contract, logId, fallback)), block: fallback };
  }
}

type LeafOutcome =
  | { outcome: "same"; check: ReceiptCheck; verdict: Verdict }
  | { outcome: "other"; check: ReceiptCheck; verdict: Verdict; stripped: LeafEvidence["bundle"] }
  | { outcome: "unproven" | "error"; check: ReceiptCheck; verdict?: Verdict };

/** The bundle checks that show where an entry is anchored (its content and receipt aside). */
const ANCHORING_STEPS = ["shape", "trust", "inclusion", "anchor", "confirmations"] as const;

/**
 * Which leaf the trusted registry holds at the receipt's seq, from a bundle: its entry must be
 * of the same log and seq, and anchored (shape, trust, entry ↔ batch, audit path, registry
 * state, confirmations). A bundle re-issued by a log that rewrote its store carries the old
 * receipt, which no longer describes the entry (RECEIPT_ENTRY_MISMATCH): that is the finding,
 * not a reason to ignore the bundle.
 */
async function leafStep(run: Run, receipt: Receipt, bundle: unknown): Promise<LeafOutcome> {
  const parsed = parseBundle(bundle);
  if (!parsed.ok)
    return {
      outcome: "unproven",
      check: failed("leaf", "BUNDLE_INVALID", `the bundle is malformed: ${parsed.reason}`),
    };
  const entry = parsed.bundle.entry;
  if (entry.log !== receipt.log || entry.seq !== receipt.seq)
    return {
      outcome: "unproven",
      check: failed(
        "leaf",
        "BUNDLE_OTHER_EVENT",
        `the bundle is of seq ${entry.seq} of log ${entry.log}, the receipt of seq ${receipt.seq} of log ${receipt.log}`,
      ),
    };
  const verdict = await verifyInSession(bundle, run.session, {
    trust: run.options.trust,
    ...(run.options.confirmations !== undefined
      ? { confirmations: run.options.confirmations }
      : {}),
  });
  const step = (name: string) => verdict.checks.find((c) => c.step === name);
  const rpcError = verdict.checks.find((c) => c.ok === false && c.code === "RPC_ERROR");
  if (rpcError)
    return {
      outcome: "error",
      verdict,
      check: failed("leaf", "RPC_ERROR", `the bundle could not be checked: ${rpcError.reason}`),
    };
  const entryCheck = step("entry");
  const anchored =
    ANCHORING_STEPS.every((s) => step(s)?.ok === true) &&
    (entryCheck?.ok === true || entryCheck?.code === "RECEIPT_ENTRY_MISMATCH");
  if (!anchored) {
    const broken = verdict.checks.find(
      (c) =>
        c.ok !== true && (ANCHORING_STEPS as readonly string[]).concat("entry").includes(c.step),
    );
    return {
      outcome: "unproven",
      verdict,
      check: failed(
        "leaf",
        "BUNDLE_INVALID",
        `the bundle does not show an anchored entry: ${broken ? `${broken.code ?? verdict.status} at step ${broken.step}: ${broken.reason}` : verdict.status}`,
      ),
    };
  }
  const leaf = toHex(entryLeafHash(entry as Entry));
  if (leaf !== receipt.leafHash) {
    return {
      outcome: "other",
      verdict,
      stripped: withoutContent(bundle as Record<string, unknown>) as LeafEvidence["bundle"],
      check: failed(
        "leaf",
        "LEAF_MISMATCH",
        `seq ${receipt.seq} is anchored in batch ${parsed.bundle.batch?.batchNo} with leaf ${leaf}; the receipt promised ${receipt.leafHash}`,
      ),
    };
  }
  if (!(verdict.ok || verdict.status === "withheld"))
    return {
      outcome: "unproven",
      verdict,
      check: failed(
        "leaf",
        "BUNDLE_INVALID",
        `the bundle carries the receipt's leaf but does not verify: ${verdict.code ?? verdict.status}`,
      ),
    };
  return {
    outcome: "same",
    verdict,
    check: ok(
      "leaf",
      `the bundle of seq ${receipt.seq} verifies (${verdict.status}) and carries the receipt's leaf ${receipt.leafHash}`,
    ),
  };
}

function chainError(
  run: Run,
  step: ReceiptCheckStep,
  e: unknown,
  about: Partial<ReceiptVerdict>,
): ReceiptVerdict {
  if (!(e instanceof RpcUnavailableError || e instanceof NotARegistry)) throw e;
  const reason = `cannot read the chain: ${msg(e)}`;
  run.checks.push(failed(step, "RPC_ERROR", reason));
  return finish(run, "undecided", reason, about);
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * The standalone verifier (DESIGN.md "Proof bundle"): a bundle and an RPC endpoint in, a
 * verdict out. It trusts nothing but the chain the caller chose: no Veritrail API, no server
 * key. Imports only services/core and ethers (enforced by test/services/verifier/imports.test.ts)
 * so the same code runs in the CLI and, bundled, in the browser page.
 *
 * Order of checks, as DESIGN.md lists them: shape, commitment, entry ↔ batch (and receipt),
 * audit path, registry state, confirmations, receipt signature, signer registration. Every
 * check runs that can (a failed commitment does not stop the path check), so a report names
 * every broken part; a check that cannot run is "skipped" with the reason.
 *
 * Not yet anchored (status unsealed/sealed/submitted, anchor null): everything present is
 * checked — the receipt signature included — and the verdict is `pending`, `ok: false`: the
 * log has promised to anchor (receipt.anchorDeadline) but nothing is on-chain yet, and the
 * signer's registration cannot be checked because the bundle names no chain.
 */
import type { BatchHeader } from "../core/batch-header.ts";
import type { ParsedBundle } from "../core/bundle.ts";
import { erasedSeqsIn } from "../core/erasure.ts";
import {
  type TrustPolicy,
  type TrustedLog,
  type TrustedRegistry,
  placesOfLog,
  registryLabel,
  trustDecision,
} from "../core/trust-policy.ts";
import {
  ChainReads,
  type ChainRpc,
  NotARegistry,
  ZERO_HASH,
  anchoredHeadersIn,
  batchHeaderHash,
} from "./chain-reads.ts";
import { RpcUnavailableError } from "./rpc.ts";
import {
  ReceiptSignatureCache,
  checkCommitment,
  checkEntry,
  checkInclusion,
  checkReceiptSignature,
  checkShape,
  msg,
  parseBundle,
} from "./offline-checks.ts";
import { signerCheck } from "./signer-check.ts";
import {
  type Check,
  VERIFIER_STEPS,
  type Verdict,
  type VerdictState,
  type VerdictTrust,
  fail,
  pass,
  skip,
  verdictOf,
} from "./verdict.ts";

export interface VerifyOptions {
  /**
   * The trust policy (DESIGN.md "Trust policy"): the registries and logs that count. A bundle
   * anchored anywhere else fails with UNTRUSTED_REGISTRY or UNKNOWN_LOG, whatever the chain says.
   */
  trust: TrustPolicy;
  /**
   * Blocks the anchoring block must have on top of it, itself included, at least: the larger of
   * this and the trusted registry's `confirmations` applies. 0 and 1 both mean "in the state at
   * the latest block".
   */
  confirmations?: number;
  /** The time a pending bundle's anchorDeadline is compared with; defaults to now. */
  now?: Date;
}

/**
 * Shared state of one verification run: chain reads and recovered signatures, both cached.
 * The chain head is read once per session, so a session is for one run (a CLI invocation, a
 * page click, one API request) — never keep one across time, or new anchors stay invisible.
 */
export interface VerifySession {
  reads: ChainReads;
  signatures: ReceiptSignatureCache;
}

export function newSession(rpc: ChainRpc): VerifySession {
  return { reads: new ChainReads(rpc), signatures: new ReceiptSignatureCache() };
}

export async function verifyBundle(
  bundle: unknown,
  provider: ChainRpc,
  options: VerifyOptions,
): Promise<Verdict> {
  return verifyInSession(bundle, newSession(provider), options);
}

/** A registry and log of the policy: where the chain steps look. */
interface Place {
  registry: TrustedRegistry;
  log: TrustedLog;
}

export async function verifyInSession(
  input: unknown,
  session: VerifySession,
  options: VerifyOptions,
): Promise<Verdict> {
  return verifyAt(input, session, options, false);
}

async function verifyAt(
  input: unknown,
  session: VerifySession,
  options: VerifyOptions,
  nested: boolean,
): Promise<Verdict> {
  checkOptions(options);
  const policy = { fingerprint: options.trust.fingerprint, issuer: options.trust.issuer };
  const shape = checkShape(input);
  if (!shape.ok)
    return verdictOf(
      [shape.check, ...VERIFIER_STEPS.slice(1).map((step) => skip(step, "bundle malformed"))],
      {},
      { trust: policy },
    );
  const b = shape.bundle;
  const trust = trustCheck(b, options.trust);
  const commitment = checkCommitment(b);
  const entry = checkEntry(b);
  const inclusion = checkInclusion(b, entry.leafHash);
  const receipt = checkReceiptSignature(b, session.signatures);
  const chain = await chainChecks(b, receipt.signer, trust.places, session.reads, options);
  const erasure = await erasureCheck(b, session, options, nested);
  const checks: Check[] = [
    shape.check,
    trust.check,
    commitment,
    entry.check,
    inclusion,
    chain.anchor,
    chain.confirmations,
    receipt.check,
    chain.signer,
    erasure.check,
  ];
  const place = chain.place ?? trust.places[0];
  const verdictTrust: VerdictTrust = {
    ...policy,
    ...(place
      ? {
          operator: place.log.operator,
          registry: {
            chainId: place.registry.chainId,
            address: place.registry.address,
            ...(place.registry.name ? { name: place.registry.name } : {}),
          },
        }
      : {}),
  };
  const state: VerdictState = {
    pending: chain.pending || erasure.pending,
    content: erasure.content,
  };
  return verdictOf(checks, state, {
    seq: b.entry.seq,
    log: b.entry.log,
    trust: verdictTrust,
    ...(erasure.erasedBy !== undefined ? { erasedBy: erasure.erasedBy } : {}),
  });
}

/**
 * The trust step: an anchored bundle's (chainId, registry, logId) must be listed by the policy.
 * A bundle that names no anchor yet must be of a listed log; its registry is the policy's.
 */
function trustCheck(b: ParsedBundle, policy: TrustPolicy): { check: Check; places: Place[] } {
  const where = `trust policy ${policy.fingerprint} (${policy.issuer})`;
  if (b.anchor !== null && b.batch !== null) {
    const decision = trustDecision(policy, {
      chainId: b.anchor.chainId,
      registry: b.anchor.contract,
      logId: b.batch.logId,
    });
    if (!decision.ok) return { check: fail("trust", decision.code, decision.message), places: [] };
    return {
      check: pass(
        "trust",
        `log of ${decision.log.operator}, anchored in ${registryLabel(decision.registry)}: listed by ${where}`,
      ),
      places: [{ registry: decision.registry, log: decision.log }],
    };
  }
  const logId = b.batch?.logId ?? b.entry.log;
  const places = placesOfLog(policy, logId);
  if (places.length === 0)
    return {
      check: fail("trust", "UNKNOWN_LOG", `log ${logId} is not listed by the ${where}`),
      places,
    };
  return {
    check: pass(
      "trust",
      `log of ${places[0]!.log.operator}, listed by ${where}; the bundle names no anchor, so ` +
        `the chain steps ask the policy's ${places.map((p) => registryLabel(p.registry)).join(", ")}`,
    ),
    places,
  };
}

function checkOptions(options: VerifyOptions): void {
  const c = options.confirmations;
  if (c !== undefined && (!Number.isSafeInteger(c) || c < 0))
    throw new TypeError(`confirmations must be a non-negative integer, got ${String(c)}`);
  if (!options.trust || typeof options.trust.fingerprint !== "string")
    throw new TypeError("a trust policy is required (DESIGN.md: every verdict is relative to one)");
}

interface ChainChecks {
  anchor: Check;
  confirmations: Check;
  signer: Check;
  /** The batch is not (or not yet visibly) anchored in the trusted registry. */
  pending: boolean;
  /** The policy's registry the verdict rests on, when the chain steps found one. */
  place?: Place;
}

/** The blocks required for a registry: the policy's and the caller's, the larger (at least 1). */
function depthFor(registry: TrustedRegistry, options: VerifyOptions): number {
  return Math.max(1, options.confirmations ?? 0, registry.confirmations);
}

async function chainChecks(
  b: ParsedBundle,
  signer: string | undefined,
  places: Place[],
  reads: ChainReads,
  options: VerifyOptions,
): Promise<ChainChecks> {
  if (places.length === 0) {
    const why = "not asked: the trust policy does not list this registry or log";
    return {
      anchor: skip("anchor", why),
      confirmations: skip("confirmations", why),
      signer: skip("signer", why),
      pending: false,
    };
  }
  let chainId: bigint;
  let latest: number;
  try {
    [chainId, latest] = await Promise.all([reads.chainId(), reads.latest()]);
  } catch (e) {
    const reason = `cannot read the chain: ${msg(e)}`;
    return {
      anchor: fail("anchor", "RPC_ERROR", reason),
      confirmations: skip("confirmations", "chain unreachable"),
      signer: skip("signer", "chain unreachable"),
      pending: false,
    };
  }
  const onChain = places.filter((p) => BigInt(p.registry.chainId) === chainId);
  if (onChain.length === 0) {
    const named = b.anchor
      ? `the bundle was anchored on chain ${b.anchor.chainId}`
      : `the trust policy has this log on chain ${places.map((p) => p.registry.chainId).join(", ")}`;
    const reason = `the RPC serves chain ${chainId}, ${named}`;
    return {
      anchor: fail("anchor", "WRONG_CHAIN", reason),
      confirmations: skip("confirmations", "wrong chain"),
      signer: skip("signer", "wrong chain"),
      pending: false,
    };
  }
  const signerAt = (place: Place, block: number): Promise<Check> =>
    reads
      .memoize(
        `signer|${place.registry.address.toLowerCase()}|${b.entry.log}|${signer}|${b.receipt.issuedAt}|${block}`,
        () => signerCheckFor(b, signer, reads, block, place.registry.address),
      )
      .catch((e: unknown) => fail("signer", "RPC_ERROR", msg(e)));

  if (b.batch === null) {
    // Accepted, not sealed: nothing to look for on-chain, but the receipt's signer can already
    // be checked against the trusted registry.
    const place = onChain[0]!;
    return {
      anchor: pendingAnchorCheck(b, "not sealed into a batch yet", options),
      confirmations: skip("confirmations", "not sealed into a batch yet"),
      signer: await signerAt(place, latest),
      pending: true,
      place,
    };
  }
  const header = b.batch;
  // Every bundle of a batch gets the same answer: computed once per run (header hash, state
  // reads, tx evidence), so 10,000 bundles of one batch cost one of each. An RPC failure
  // rejects the memoized promise (and is forgotten), so one dropped request does not turn every
  // later bundle of the batch into an error.
  const stateOf = (place: Place): Promise<AnchorState> => {
    const depth = depthFor(place.registry, options);
    const a = b.anchor;
    const key = [
      place.registry.address.toLowerCase(),
      header.logId,
      header.batchNo,
      header.firstSeq,
      header.count,
      header.eventsRoot,
      header.indexRoot,
      a ? `${a.txHash}|${a.blockNumber}` : "no-anchor",
      depth,
    ].join("|");
    return reads
      .memoize(`anchor|${key}`, () =>
        anchorState(header, place.registry.address, a, reads, latest, depth),
      )
      .catch((e: unknown): AnchorState => ({
        found: "error",
        anchor: fail("anchor", "RPC_ERROR", msg(e)),
        confirmations: skip("confirmations", "chain unreachable"),
      }));
  };
  if (b.anchor !== null) {
    const place = onChain[0]!;
    const state = await stateOf(place);
    const deep = latest - depthFor(place.registry, options) + 1;
    return {
      anchor: state.anchor,
      confirmations: state.confirmations,
      signer: await signerAt(place, deep >= 0 ? deep : latest),
      pending: false,
      place,
    };
  }
  // No anchor in the bundle (saved before its batch was anchored): the status it was saved with
  // says nothing; the trusted registries say whether the batch is anchored now.
  const states = await Promise.all(onChain.map(stateOf));
  const decisive = states.findIndex((s) => s.found !== "absent");
  if (decisive >= 0) {
    const place = onChain[decisive]!;
    const state = states[decisive]!;
    const deep = latest - depthFor(place.registry, options) + 1;
    return {
      anchor: state.anchor,
      confirmations: state.confirmations,
      signer:
        state.found === "error"
          ? skip("signer", "chain unreachable")
          : await signerAt(place, deep >= 0 ? deep : latest),
      pending: false,
      place,
    };
  }
  const place = onChain[0]!;
  return {
    anchor: pendingAnchorCheck(
      b,
      `batch ${header.batchNo} is not anchored yet in ${onChain.map((p) => registryLabel(p.registry)).join(", ")}`,
      options,
    ),
    confirmations: skip("confirmations", "not anchored yet"),
    signer: await signerAt(place, latest),
    pending: true,
    place,
  };
}

/**
 * A pending bundle's anchor step says whether the log is still within its promise: a receipt
 * whose anchorDeadline has passed without an anchor is evidence against the log (DESIGN.md
 * "Receipt"). Either way the step is skipped, not failed: nothing on-chain contradicts it.
 */
function pendingAnchorCheck(b: ParsedBundle, why: string, options: VerifyOptions): Check {
  const now = options.now ?? new Date();
  const deadline = Date.parse(b.receipt.anchorDeadline);
  const overdue = now.getTime() > deadline;
  return skip(
    "anchor",
    `${why}; anchorDeadline ${b.receipt.anchorDeadline} ` +
      (overdue ? "has PASSED: the log missed its promise" : "not reached yet"),
  );
}

interface AnchorState {
  /** anchored: the registry holds this header; absent: nothing for this batchNo; else a failure. */
  found: "anchored" | "absent" | "mismatch" | "error";
  anchor: Check;
  confirmations: Check;
}

/**
 * The registry's state for the header, `depth` blocks deep and (when not there yet) at the head.
 * The state `depth` blocks deep already holding the commitment means the anchoring block has at
 * least `depth` confirmations (commitments are never overwritten).
 */
async function anchorState(
  header: BatchHeader,
  contract: string,
  anchor: ParsedBundle["anchor"],
  reads: ChainReads,
  latest: number,
  depth: number,
): Promise<AnchorState> {
  const deep = latest - depth + 1;
  const local = batchHeaderHash(header);
  const where = `batch ${header.batchNo} of log ${header.logId} at ${contract}`;
  const held = `registry state holds the header hash of ${where}`;
  const stateReason = anchor ? held : `the bundle names no anchor; the trusted ${held}`;
  try {
    const atDeep =
      deep >= 0
        ? await reads.batchCommitment(contract, header.logId, header.batchNo, deep)
        : ZERO_HASH;
    if (atDeep === local) {
      return {
        found: "anchored",
        anchor: await withTxEvidence(header, anchor, contract, reads, latest, stateReason),
        confirmations: pass(
          "confirmations",
          `${depth} required: the registry state at block ${deep} (head ${latest}) already holds it` +
            (anchor
              ? `; anchoring block ${anchor.blockNumber} has ${latest - anchor.blockNumber + 1}`
              : ""),
        ),
      };
    }
    if (atDeep !== ZERO_HASH) return headerMismatch(where, atDeep, local);
    const atLatest = await reads.batchCommitment(contract, header.logId, header.batchNo, latest);
    if (atLatest === ZERO_HASH) {
      return {
        found: anchor ? "mismatch" : "absent",
        anchor: fail("anchor", "NOT_ANCHORED", `the registry holds no commitment for ${where}`),
        confirmations: skip("confirmations", "not anchored"),
      };
    }
    if (atLatest !== local) return headerMismatch(where, atLatest, local);
    return {
      found: "anchored",
      anchor: await withTxEvidence(header, anchor, contract, reads, latest, stateReason),
      confirmations: fail(
        "confirmations",
        "TOO_FEW_CONFIRMATIONS",
        `in the state at the latest block ${latest} but not ${depth} block(s) deep` +
          (deep >= 0 ? ` (block ${deep})` : ` (the chain has only ${latest + 1} blocks)`),
      ),
    };
  } catch (e) {
    if (e instanceof NotARegistry)
      return {
        found: "mismatch",
        anchor: fail("anchor", "NOT_ANCHORED", `no registry at ${contract}: ${e.message}`),
        confirmations: skip("confirmations", "not anchored"),
      };
    throw e;
  }
}

function headerMismatch(where: string, stored: string, local: string): AnchorState {
  return {
    found: "mismatch",
    anchor: fail(
      "anchor",
      "HEADER_MISMATCH",
      `the registry holds ${stored} for ${where}, the bundle's header hashes to ${local}`,
    ),
    confirmations: skip("confirmations", "header not anchored"),
  };
}

/**
 * The erasure step (DESIGN.md "Erasure in a bundle"). A bundle without content must carry the
 * bundle of the later event that logged the erasure; it is verified in full (same policy, same
 * chain) and must be of the same log, later, and name this seq. Without one, the content is
 * withheld, which is never reported as erased or verified.
 */
async function erasureCheck(
  b: ParsedBundle,
  session: VerifySession,
  options: VerifyOptions,
  nested: boolean,
): Promise<{
  check: Check;
  content: VerdictState["content"];
  pending: boolean;
  erasedBy?: number;
}> {
  if (b.event !== null)
    return {
      check: skip("erasure", "not erased: the bundle carries the event"),
      content: "present",
      pending: false,
    };
  if (b.erasure === undefined)
    return {
      check: skip(
        "erasure",
        "no erasure record: the content is withheld, and nothing shows that it was erased",
      ),
      content: "withheld",
      pending: false,
    };
  const invalid = (code: "ERASURE_INVALID" | "ERASURE_MISMATCH" | "RPC_ERROR", why: string) => ({
    check: fail("erasure", code, why),
    content: "erased" as const,
    pending: false,
  });
  if (nested) return invalid("ERASURE_INVALID", "an erasure record inside an erasure record");
  const verdict = await verifyAt(b.erasure, session, options, true);
  if (verdict.status === "error")
    return invalid("RPC_ERROR", `the erasure record could not be checked: ${verdict.code ?? ""}`);
  if (verdict.status === "failed" || verdict.status === "withheld" || verdict.status === "erased") {
    const failed = verdict.checks.find((c) => c.ok === false && c.code === verdict.code);
    return invalid(
      "ERASURE_INVALID",
      verdict.status === "failed"
        ? `the erasure record does not verify: ${verdict.code} at step ${failed?.step}: ${failed?.reason ?? ""}`
        : "the erasure record carries no event of its own",
    );
  }
  const parsed = parseBundle(b.erasure);
  if (!parsed.ok) return invalid("ERASURE_INVALID", parsed.reason);
  const e = parsed.bundle;
  if (e.entry.log !== b.entry.log)
    return invalid("ERASURE_MISMATCH", `the erasure record is of log ${e.entry.log}, not this one`);
  if (e.entry.seq <= b.entry.seq)
    return invalid(
      "ERASURE_MISMATCH",
      `the erasure record is seq ${e.entry.seq}, not an event logged after seq ${b.entry.seq}`,
    );
  const named = erasedSeqsIn(e.event!, b.entry.log);
  if (!named.includes(b.entry.seq))
    return invalid(
      "ERASURE_MISMATCH",
      `seq ${e.entry.seq} records the erasure of ${named.length > 0 ? `seq ${named.join(", ")}` : "nothing"}, not of seq ${b.entry.seq}`,
    );
  const pending = verdict.status === "pending";
  return {
    check: (pending ? skip : (step: "erasure", reason: string) => pass(step, reason))(
      "erasure",
      `erased: seq ${e.entry.seq} of this log (${e.entry.recorded}) records the erasure of seq ` +
        `${b.entry.seq}; its bundle ${pending ? "checks out but is not anchored yet" : "verified"}`,
    ),
    content: "erased",
    pending,
    erasedBy: e.entry.seq,
  };
}

/**
 * The anchoring transaction's receipt is extra evidence, not required: execution clients prune
 * old receipts (EIP-4444) and the state check above already proves the anchor. When the node
 * still has it, it must agree with the bundle (block, contract, emitted header).
 */
async function withTxEvidence(
  header: BatchHeader,
  anchor: ParsedBundle["anchor"],
  contract: string,
  reads: ChainReads,
  latest: number,
  stateReason: string,
): Promise<Check> {
  if (anchor === null)
    return pass("anchor", `${stateReason}; the state check is the proof (no transaction named)`);
  const txMismatch = (why: string): Check =>
    fail("anchor", "ANCHOR_TX_MISMATCH", `anchoring tx ${anchor.txHash}: ${why}`);
  if (anchor.blockNumber > latest)
    return txMismatch(`anchor block ${anchor.blockNumber} is above the chain head ${latest}`);
  let receipt;
  try {
    receipt = await reads.txReceipt(anchor.txHash);
  } catch (e) {
    if (!(e instanceof RpcUnavailableError)) throw e;
    receipt = null;
  }
  if (receipt === null) {
    // No receipt: pruned history (fine, the state is the proof) or a made-up txHash. If the
    // node still serves the claimed block, the transaction must be in it.
    const txs = await reads.blockTransactions(anchor.blockNumber);
    if (txs !== null && !txs.includes(anchor.txHash.toLowerCase()))
      return txMismatch(`not in block ${anchor.blockNumber}, which the node serves`);
    return pass(
      "anchor",
      `${stateReason}; anchoring tx receipt not available, state check suffices`,
    );
  }
  if (receipt.blockNumber !== anchor.blockNumber)
    return txMismatch(
      `mined in block ${receipt.blockNumber}, the bundle says ${anchor.blockNumber}`,
    );
  if (receipt.status !== 1) return txMismatch("reverted");
  // Not `receipt.to`: an anchorer may be a contract account (a multisig) calling the registry;
  // the event emitted by the registry's own address is what counts.
  const emitted = anchoredHeadersIn(receipt, contract);
  const same = emitted.some(
    (h) =>
      h.logId === header.logId &&
      h.batchNo === header.batchNo &&
      h.firstSeq === header.firstSeq &&
      h.count === header.count &&
      h.eventsRoot === header.eventsRoot &&
      h.indexRoot === header.indexRoot,
  );
  if (!same) return txMismatch("emits no BatchAnchored with this header");
  return pass(
    "anchor",
    `${stateReason}; anchoring tx in block ${receipt.blockNumber} emits the same header`,
  );
}

/** Step 6b: the recovered signer had a signerPeriod for this log covering issuedAt. */
function signerCheckFor(
  b: ParsedBundle,
  signer: string | undefined,
  reads: ChainReads,
  block: number,
  contract: string,
): Promise<Check> {
  return signerCheck(reads, contract, b.entry.log, signer, b.receipt.issuedAt, block);
}

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
import type { Bundle } from "../core/bundle.ts";
import {
  ChainReads,
  type ChainRpc,
  NotARegistry,
  RpcFailure,
  ZERO_HASH,
  anchoredHeadersIn,
  batchHeaderHash,
} from "./chain-reads.ts";
import {
  ReceiptSignatureCache,
  checkCommitment,
  checkEntry,
  checkInclusion,
  checkReceiptSignature,
  checkShape,
  msg,
} from "./offline-checks.ts";
import {
  type Check,
  VERIFIER_STEPS,
  type Verdict,
  fail,
  pass,
  skip,
  verdictOf,
} from "./verdict.ts";

export interface VerifyOptions {
  /**
   * Blocks the anchoring block must have on top of it, itself included: the commitment must be
   * in the registry's state at block `latest − confirmations + 1`. 0 and 1 both mean "in the
   * state at the latest block".
   */
  confirmations: number;
  /** Reserved for time-dependent checks (anchorDeadline); defaults to the current time. */
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

export async function verifyInSession(
  input: unknown,
  session: VerifySession,
  options: VerifyOptions,
): Promise<Verdict> {
  checkOptions(options);
  const shape = checkShape(input);
  if (!shape.ok)
    return verdictOf(
      [shape.check, ...VERIFIER_STEPS.slice(1).map((step) => skip(step, "bundle malformed"))],
      false,
    );
  const b = shape.bundle;
  const commitment = checkCommitment(b);
  const entry = checkEntry(b);
  const inclusion = checkInclusion(b, entry.leafHash);
  const receipt = checkReceiptSignature(b, session.signatures);
  const chain = await chainChecks(b, receipt.signer, session.reads, options);
  if (b.anchor === null) chain.anchor = pendingAnchorCheck(b, options.now ?? new Date());
  const checks: Check[] = [
    shape.check,
    commitment,
    entry.check,
    inclusion,
    chain.anchor,
    chain.confirmations,
    receipt.check,
    chain.signer,
  ];
  return verdictOf(checks, b.anchor === null, { seq: b.entry.seq, log: b.entry.log });
}

/**
 * A pending bundle's anchor step says whether the log is still within its promise: a receipt
 * whose anchorDeadline has passed without an anchor is evidence against the log (DESIGN.md
 * "Receipt"). Either way the step is skipped, not failed: the bundle claims no anchor.
 */
function pendingAnchorCheck(b: Bundle, now: Date): Check {
  const deadline = Date.parse(b.receipt.anchorDeadline);
  const overdue = now.getTime() > deadline;
  return skip(
    "anchor",
    `not anchored yet (status ${b.status}); anchorDeadline ${b.receipt.anchorDeadline} ` +
      (overdue ? "has PASSED: the log missed its promise" : "not reached yet"),
  );
}

function checkOptions(options: VerifyOptions): void {
  if (!Number.isSafeInteger(options.confirmations) || options.confirmations < 0)
    throw new TypeError(
      `confirmations must be a non-negative integer, got ${String(options.confirmations)}`,
    );
}

interface ChainChecks {
  anchor: Check;
  confirmations: Check;
  signer: Check;
}

async function chainChecks(
  b: Bundle,
  signer: string | undefined,
  reads: ChainReads,
  options: VerifyOptions,
): Promise<ChainChecks> {
  const anchor = b.anchor;
  if (anchor === null || b.batch === null) {
    const why = `not anchored yet (status ${b.status}): nothing to check on-chain`;
    return {
      anchor: skip("anchor", why),
      confirmations: skip("confirmations", why),
      signer: skip(
        "signer",
        signer
          ? `receipt signed by ${signer}; its registration is checked once the bundle names its chain`
          : "receipt invalid",
      ),
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
    };
  }
  if (chainId !== BigInt(anchor.chainId)) {
    const reason = `the RPC serves chain ${chainId}, the bundle was anchored on chain ${anchor.chainId}`;
    return {
      anchor: fail("anchor", "WRONG_CHAIN", reason),
      confirmations: skip("confirmations", "wrong chain"),
      signer: skip("signer", "wrong chain"),
    };
  }
  const depth = Math.max(1, options.confirmations);
  // The state `depth` blocks deep; state there already holding the commitment means the
  // anchoring block has at least `depth` confirmations (commitments are never overwritten).
  const deep = latest - depth + 1;
  // Every bundle of a batch gets the same answer: computed once per run (header hash, state
  // reads, tx evidence), so 10,000 bundles of one batch cost one of each.
  const h = b.batch;
  const anchorKey = [
    anchor.contract,
    h.logId,
    h.batchNo,
    h.firstSeq,
    h.count,
    h.eventsRoot,
    h.indexRoot,
    anchor.txHash,
    anchor.blockNumber,
    depth,
  ].join("|");
  const signerKey = [anchor.contract, b.entry.log, signer, b.receipt.issuedAt].join("|");
  // An RPC failure rejects the memoized promise (and is forgotten), so one dropped request does
  // not turn every later bundle of the batch into an error.
  const [state, signerCheck] = await Promise.all([
    reads
      .memoize(`anchor|${anchorKey}`, () => anchorState(b, reads, latest, deep, depth))
      .catch((e: unknown) => ({
        anchor: fail("anchor", "RPC_ERROR", msg(e)),
        confirmations: skip("confirmations", "chain unreachable"),
      })),
    reads
      .memoize(`signer|${signerKey}`, () =>
        signerCheckFor(b, signer, reads, deep >= 0 ? deep : latest),
      )
      .catch((e: unknown) => fail("signer", "RPC_ERROR", msg(e))),
  ]);
  return { ...state, signer: signerCheck };
}

async function anchorState(
  b: Bundle,
  reads: ChainReads,
  latest: number,
  deep: number,
  depth: number,
): Promise<{ anchor: Check; confirmations: Check }> {
  const anchor = b.anchor!;
  const header = b.batch!;
  const local = batchHeaderHash(header);
  const where = `batch ${header.batchNo} of log ${header.logId} at ${anchor.contract}`;
  try {
    const atDeep =
      deep >= 0
        ? await reads.batchCommitment(anchor.contract, header.logId, header.batchNo, deep)
        : ZERO_HASH;
    if (atDeep === local) {
      return {
        anchor: await withTxEvidence(
          b,
          reads,
          latest,
          `registry state holds the header hash of ${where}`,
        ),
        confirmations: pass(
          "confirmations",
          `${depth} required: the registry state at block ${deep} (head ${latest}) already ` +
            `holds it; anchoring block ${anchor.blockNumber} has ${latest - anchor.blockNumber + 1}`,
        ),
      };
    }
    if (atDeep !== ZERO_HASH) return headerMismatch(where, atDeep, local);
    const atLatest = await reads.batchCommitment(
      anchor.contract,
      header.logId,
      header.batchNo,
      latest,
    );
    if (atLatest === ZERO_HASH)
      return {
        anchor: fail("anchor", "NOT_ANCHORED", `the registry holds no commitment for ${where}`),
        confirmations: skip("confirmations", "not anchored"),
      };
    if (atLatest !== local) return headerMismatch(where, atLatest, local);
    return {
      anchor: await withTxEvidence(
        b,
        reads,
        latest,
        `registry state holds the header hash of ${where}`,
      ),
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
        anchor: fail("anchor", "NOT_ANCHORED", `no registry at ${anchor.contract}: ${e.message}`),
        confirmations: skip("confirmations", "not anchored"),
      };
    throw e;
  }
}

function headerMismatch(
  where: string,
  stored: string,
  local: string,
): { anchor: Check; confirmations: Check } {
  return {
    anchor: fail(
      "anchor",
      "HEADER_MISMATCH",
      `the registry holds ${stored} for ${where}, the bundle's header hashes to ${local}`,
    ),
    confirmations: skip("confirmations", "header not anchored"),
  };
}

/**
 * The anchoring transaction's receipt is extra evidence, not required: execution clients prune
 * old receipts (EIP-4444) and the state check above already proves the anchor. When the node
 * still has it, it must agree with the bundle (block, contract, emitted header).
 */
async function withTxEvidence(
  b: Bundle,
  reads: ChainReads,
  latest: number,
  stateReason: string,
): Promise<Check> {
  const anchor = b.anchor!;
  const header = b.batch!;
  const txMismatch = (why: string): Check =>
    fail("anchor", "ANCHOR_TX_MISMATCH", `anchoring tx ${anchor.txHash}: ${why}`);
  if (anchor.blockNumber > latest)
    return txMismatch(`anchor block ${anchor.blockNumber} is above the chain head ${latest}`);
  let receipt;
  try {
    receipt = await reads.txReceipt(anchor.txHash);
  } catch (e) {
    if (!(e instanceof RpcFailure)) throw e;
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
  const emitted = anchoredHeadersIn(receipt, anchor.contract);
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

/**
 * Step 6b: the recovered signer had a signerPeriod for this log covering issuedAt. Periods are
 * block timestamps in seconds; issuedAt is in milliseconds and is compared at second precision.
 */
async function signerCheckFor(
  b: Bundle,
  signer: string | undefined,
  reads: ChainReads,
  block: number,
): Promise<Check> {
  if (signer === undefined) return skip("signer", "receipt invalid");
  const anchor = b.anchor!;
  let period;
  try {
    period = await reads.signerPeriod(anchor.contract, b.entry.log, signer, block);
  } catch (e) {
    if (e instanceof NotARegistry)
      return fail(
        "signer",
        "SIGNER_NOT_REGISTERED",
        `no registry at ${anchor.contract}: ${e.message}`,
      );
    throw e;
  }
  if (period.validFrom === 0n && period.validUntil === 0n)
    return fail(
      "signer",
      "SIGNER_NOT_REGISTERED",
      `${signer} never was a receipt signer of log ${b.entry.log}`,
    );
  const issuedAt = BigInt(Math.floor(Date.parse(b.receipt.issuedAt) / 1000));
  const until = period.validUntil === 0n ? "now" : isoSeconds(period.validUntil);
  const range = `${isoSeconds(period.validFrom)} … ${until}`;
  // The log's first signer signs receipts before the log is registered (first start, the RPC
  // down at start, a development chain reset re-registering the log): its period is open at
  // the start. A signer rotated in later may not back-date receipts to before its rotation.
  const firstSigner =
    period.validFrom === (await reads.logRegisteredAt(anchor.contract, b.entry.log, block));
  const tooEarly = issuedAt < period.validFrom && !firstSigner;
  if (tooEarly || (period.validUntil !== 0n && issuedAt > period.validUntil))
    return fail(
      "signer",
      "SIGNER_NOT_VALID_AT_ISSUE",
      `receipt issued at ${b.receipt.issuedAt}, outside ${signer}'s period ${range}`,
    );
  return pass("signer", `${signer} was the log's registered receipt signer at issue (${range})`);
}

function isoSeconds(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}

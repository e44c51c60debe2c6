/**
 * Whether a receipt's signer was the log's registered receipt signer when it signed: the
 * registry's `signerPeriod` for (log, signer) must cover `issuedAt`. Shared by the bundle
 * verifier (step `signer`) and the receipt check (services/verifier/receipt-check.ts).
 */
import { type ChainReads, NotARegistry } from "./chain-reads.ts";
import { type Check, fail, pass, skip } from "./verdict.ts";

/**
 * Periods are block timestamps in seconds; `issuedAt` (ISO 8601, milliseconds) is compared at
 * second precision. `signer` undefined: the receipt's signature did not recover a signer.
 */
export async function signerCheck(
  reads: ChainReads,
  contract: string,
  logId: string,
  signer: string | undefined,
  issuedAt: string,
  block: number,
): Promise<Check> {
  if (signer === undefined) return skip("signer", "receipt invalid");
  let period;
  try {
    period = await reads.signerPeriod(contract, logId, signer, block);
  } catch (e) {
    if (e instanceof NotARegistry)
      return fail("signer", "SIGNER_NOT_REGISTERED", `no registry at ${contract}: ${e.message}`);
    throw e;
  }
  if (period.validFrom === 0n && period.validUntil === 0n)
    return fail(
      "signer",
      "SIGNER_NOT_REGISTERED",
      `${signer} never was a receipt signer of log ${logId}`,
    );
  const issued = BigInt(Math.floor(Date.parse(issuedAt) / 1000));
  const until = period.validUntil === 0n ? "now" : isoSeconds(period.validUntil);
  const range = `${isoSeconds(period.validFrom)} … ${until}`;
  // The log's first signer signs receipts before the log is registered (first start, the RPC
  // down at start, a development chain reset re-registering the log): its period is open at
  // the start. A signer rotated in later may not back-date receipts to before its rotation.
  const firstSigner = period.validFrom === (await reads.logRegisteredAt(contract, logId, block));
  const tooEarly = issued < period.validFrom && !firstSigner;
  if (tooEarly || (period.validUntil !== 0n && issued > period.validUntil))
    return fail(
      "signer",
      "SIGNER_NOT_VALID_AT_ISSUE",
      `receipt issued at ${issuedAt}, outside ${signer}'s period ${range}`,
    );
  return pass("signer", `${signer} was the log's registered receipt signer at issue (${range})`);
}

export function isoSeconds(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}

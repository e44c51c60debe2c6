/**
 * How an erasure is named (DESIGN.md "Erasure in a bundle"). Erasing an event deletes its body
 * and salt and logs a new event that names the erased seq in `entities[].what` as
 * `urn:veritrail:log:<logId>:seq:<seq>` (an IHE BALP Delete of a System Object). A bundle of an
 * erased event carries that later event's bundle as `erasure`, and a verifier checks it in full.
 */

const PREFIX = "urn:veritrail:log:";

/** The reference an erasure event uses for the erased event: log and seq, nothing else. */
export function erasedEntityReference(logId: string, seq: number): string {
  return `${PREFIX}${logId}:seq:${seq}`;
}

/**
 * The seqs of log `logId` that `event` records as erased: it must be a delete (`action` "D")
 * and name each in an entity's `what`. Empty for any other event.
 */
export function erasedSeqsIn(event: Record<string, unknown>, logId: string): number[] {
  if (event["action"] !== "D") return [];
  const entities = event["entities"];
  if (!Array.isArray(entities)) return [];
  const prefix = `${PREFIX}${logId}:seq:`;
  const seqs: number[] = [];
  for (const entity of entities) {
    const what = (entity as { what?: unknown } | null)?.what;
    if (typeof what !== "string" || !what.startsWith(prefix)) continue;
    const digits = what.slice(prefix.length);
    if (!/^(0|[1-9]\d{0,15})$/.test(digits)) continue;
    const seq = Number(digits);
    if (Number.isSafeInteger(seq)) seqs.push(seq);
  }
  return seqs;
}

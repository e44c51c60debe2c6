/**
 * LevelDB key layout. Every key is a short ASCII prefix plus fixed-width, lexicographically
 * ordered parts, so range scans in key order are scans in seq / batch / time order.
 *
 *   m:log                          log metadata (logId, secret)
 *   m:restore                      set by `veritrail restore`: reconcile with the chain first
 *   l:<fromBatchNo>                a range of batches anchored on-chain but lost locally (a
 *                                  restore from a backup older than the chain's head)
 *   e:<seq>                        entry (JCS text) — kept forever, even after erasure
 *   b:<seq>                        event body + salt, sealed under its epoch key (body-keys.ts) —
 *                                  deleted on erasure, and the key destroyed
 *   t:<seq>                        erasure tombstone (when, legal basis, who) of an erased body
 *   g:<firstSeq>                   receipt group (one signature over a group commit) + its leaves
 *   h:<firstSeq>                   receipt group header alone (signature, times, root; no leaves)
 *   r:<seq>                        an event's receipt: its group's firstSeq + its group audit path
 *   x:s:<subjectTag>:<seq>         index by subject
 *   x:o:<org>:<seq>                index by source organization
 *   x:t:<recordedMs>:<seq>         index by recorded time
 *   x:r:<org>:<requestId>          idempotency: (organization, requestId) -> seq
 *   k:<batchNo>                    batch record (header, state, anchor)
 *   q:<firstSeq>                   batch lookup by seq -> batchNo
 *   p:<batchNo>:<tileLevel>:<tile> stored Merkle nodes of a batch, in tiles (node-layout.ts)
 *   n:<batchNo>:<level>:<chunk>    stored Merkle levels of a batch, in chunks (batches sealed
 *                                  before tiles)
 *   i:<nodePath>                   completeness-index node (latest)
 *   j:<batchNo>:<nodePath>         completeness-index node as it was before batch <batchNo> (batches
 *                                  sealed before undo records were packed)
 *   u:<batchNo>:<nodePath>         completeness-index nodes as they were before batch <batchNo>,
 *                                  packed, from this path on (index-undo.ts)
 *   v:<subjectTag>                 a subject's history head (count, chain)
 *   s:sealing                      a batch whose index update is being written in slices
 *   s:undo-pruned                  undo records of batches up to this one are deleted
 *   a:<keyHash>                    API key record
 */

const SEQ_WIDTH = 12; // hex digits: 2^48 events
const BATCH_WIDTH = 12;
const MS_WIDTH = 14; // decimal milliseconds since the epoch, good past year 5000

export function seqPart(seq: number): string {
  return seq.toString(16).padStart(SEQ_WIDTH, "0");
}

export function parseSeqPart(part: string): number {
  return parseInt(part, 16);
}

export function batchPart(batchNo: number): string {
  return batchNo.toString(16).padStart(BATCH_WIDTH, "0");
}

export function msPart(ms: number): string {
  return Math.max(0, Math.floor(ms)).toString().padStart(MS_WIDTH, "0");
}

/** Free text (organization ids, request ids) as hex, so no separator can appear inside a part. */
export function textPart(text: string): string {
  return Buffer.from(text, "utf8").toString("hex");
}

/** A stored value of a batch's Merkle nodes: `<prefix><batchNo>:<level>:<index>`. */
function merkleValueKey(prefix: string, batchNo: number, level: number, index: number): string {
  return `${prefix}${batchPart(batchNo)}:${level.toString(16).padStart(2, "0")}:${index.toString(16).padStart(8, "0")}`;
}

export const K = {
  logMeta: "m:log",
  restoreMarker: "m:restore",
  lostRange: (fromBatchNo: number) => `l:${batchPart(fromBatchNo)}`,
  lostRangePrefix: "l:",
  entry: (seq: number) => `e:${seqPart(seq)}`,
  entryPrefix: "e:",
  body: (seq: number) => `b:${seqPart(seq)}`,
  bodyPrefix: "b:",
  tombstone: (seq: number) => `t:${seqPart(seq)}`,
  tombstonePrefix: "t:",
  group: (firstSeq: number) => `g:${seqPart(firstSeq)}`,
  groupPrefix: "g:",
  groupHeader: (firstSeq: number) => `h:${seqPart(firstSeq)}`,
  receiptPath: (seq: number) => `r:${seqPart(seq)}`,
  receiptPathPrefix: "r:",
  bySubject: (tagHex: string, seq: number) => `x:s:${tagHex.slice(2)}:${seqPart(seq)}`,
  bySubjectPrefix: (tagHex: string) => `x:s:${tagHex.slice(2)}:`,
  byOrg: (org: string, seq: number) => `x:o:${textPart(org)}:${seqPart(seq)}`,
  byOrgPrefix: (org: string) => `x:o:${textPart(org)}:`,
  byTime: (ms: number, seq: number) => `x:t:${msPart(ms)}:${seqPart(seq)}`,
  byTimePrefix: "x:t:",
  requestId: (org: string, requestId: string) => `x:r:${textPart(org)}:${textPart(requestId)}`,
  batch: (batchNo: number) => `k:${batchPart(batchNo)}`,
  batchPrefix: "k:",
  batchBySeq: (firstSeq: number) => `q:${seqPart(firstSeq)}`,
  batchBySeqPrefix: "q:",
  levelChunk: (batchNo: number, level: number, chunk: number) =>
    merkleValueKey("n:", batchNo, level, chunk),
  tile: (batchNo: number, tileLevel: number, tile: number) =>
    merkleValueKey("p:", batchNo, tileLevel, tile),
  indexNode: (path: string) => `i:${path}`,
  indexNodePrefix: "i:",
  indexUndo: (batchNo: number, path: string) => `j:${batchPart(batchNo)}:${path}`,
  indexUndoPrefix: (batchNo: number) => `j:${batchPart(batchNo)}:`,
  legacyUndoPrefix: "j:",
  indexUndoChunk: (batchNo: number, path: string) => `u:${batchPart(batchNo)}:${path}`,
  indexUndoChunkPrefix: (batchNo: number) => `u:${batchPart(batchNo)}:`,
  undoPruned: "s:undo-pruned",
  subjectHead: (tagHex: string) => `v:${tagHex.slice(2)}`,
  sealing: "s:sealing",
  apiKey: (keyHashHex: string) => `a:${keyHashHex}`,
  apiKeyPrefix: "a:",
} as const;

/** The smallest string greater than every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/**
 * What crosses between the regulator's audit (audit.ts) and its workers (audit-worker.ts): a
 * range's per-event values packed into three buffers (transferred, not cloned), everything else
 * a handful of small fields per range.
 */
import type { RangeInput } from "./audit-range.ts";
import { packValues, unpackValues } from "./index-wire.ts";

/** A RangeInput with its per-event values packed (index-wire.ts packValues). */
export interface PackedRange extends Omit<RangeInput, "entries" | "bodies" | "receiptPaths"> {
  entries: Uint8Array;
  bodies: Uint8Array;
  receiptPaths: Uint8Array;
}

export type ToAuditWorker =
  | { type: "range"; id: number; range: PackedRange }
  | { type: "shard"; id: number; shard: number; shards: number; events: Uint8Array }
  | { type: "heads"; id: number; shard: number; shards: number };

export function packRange(input: RangeInput): { range: PackedRange; transfer: ArrayBuffer[] } {
  const entries = packValues(input.entries);
  const bodies = packValues(input.bodies);
  const receiptPaths = packValues(input.receiptPaths);
  return {
    range: { ...input, entries, bodies, receiptPaths },
    transfer: [entries, bodies, receiptPaths].map((b) => b.buffer as ArrayBuffer),
  };
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The RangeInput a worker received (Uint8Arrays made Buffers again: the checks need them). */
export function unpackRange(range: PackedRange): RangeInput {
  return {
    ...range,
    entries: unpackValues(asBuffer(range.entries)) as Buffer[],
    bodies: unpackValues(asBuffer(range.bodies)),
    receiptPaths: unpackValues(asBuffer(range.receiptPaths)),
    groups: range.groups.map((g) => ({ keySeq: g.keySeq, raw: asBuffer(g.raw) })),
    groupHeaders: range.groupHeaders.map(([seq, raw]) => [
      seq,
      raw === null ? null : asBuffer(raw),
    ]),
  };
}

/**
 * What crosses between the regulator's audit (audit.ts) and its workers (audit-worker.ts): a
 * range's per-event values packed into three buffers as they are read (transferred, never
 * copied or cloned, and never one object per event that would live as long as the range), and a
 * handful of small fields per range.
 */
import type { RangeInput } from "./audit-range.ts";

const MISSING = 0xffffffff;

/**
 * Values appended one by one (undefined: absent) into one buffer of its own: a u32 count, then
 * per value its length (u32, MISSING when absent) and bytes (index-wire.ts packValues' layout).
 */
export class ValuePacker {
  private buf = Buffer.allocUnsafeSlow(64 * 1024);
  private at = 4;
  private count = 0;

  push(value: Uint8Array | undefined): void {
    const need = 4 + (value?.length ?? 0);
    if (this.at + need > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.at + need));
      this.buf.copy(grown, 0, 0, this.at);
      this.buf = grown;
    }
    this.buf.writeUInt32BE(value === undefined ? MISSING : value.length, this.at);
    this.at += 4;
    if (value !== undefined) {
      this.buf.set(value, this.at);
      this.at += value.length;
    }
    this.count++;
  }

  /** The packed values, in a buffer of their own (transferable). */
  take(): Buffer {
    this.buf.writeUInt32BE(this.count, 0);
    // Over a quarter unused: a right-sized copy, so a range in flight holds no slack.
    if (this.at < (this.buf.length * 3) / 4) {
      const own = Buffer.allocUnsafeSlow(this.at);
      this.buf.copy(own, 0, 0, this.at);
      return own;
    }
    return this.buf.subarray(0, this.at);
  }
}

/** Reads packed values by index; each value is a view made when asked (no copy). */
export class PackedValues {
  private readonly starts: Uint32Array;
  private readonly lengths: Uint32Array;
  readonly length: number;

  constructor(private readonly packed: Buffer) {
    this.length = packed.readUInt32BE(0);
    this.starts = new Uint32Array(this.length);
    this.lengths = new Uint32Array(this.length);
    let at = 4;
    for (let i = 0; i < this.length; i++) {
      const length = packed.readUInt32BE(at);
      at += 4;
      this.starts[i] = at;
      this.lengths[i] = length;
      if (length !== MISSING) at += length;
    }
  }

  get(i: number): Buffer | undefined {
    const length = this.lengths[i]!;
    if (length === MISSING) return undefined;
    return this.packed.subarray(this.starts[i]!, this.starts[i]! + length);
  }
}

export type ToAuditWorker =
  | { type: "range"; id: number; range: RangeInput }
  | { type: "shard"; id: number; shard: number; shards: number; events: Uint8Array }
  | { type: "heads"; id: number; shard: number; shards: number };

export const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The buffers of a range that move to the worker (and back when it is checked again). */
export function rangeTransfer(input: RangeInput): ArrayBuffer[] {
  return [input.entries, input.bodies, input.receiptPaths].map((b) => b.buffer as ArrayBuffer);
}

/** A RangeInput as a worker received it (Uint8Arrays made Buffers again: the checks need them). */
export function receivedRange(range: RangeInput): RangeInput {
  return {
    ...range,
    entries: asBuffer(range.entries),
    bodies: asBuffer(range.bodies),
    receiptPaths: asBuffer(range.receiptPaths),
    groups: range.groups.map((g) => ({ keySeq: g.keySeq, raw: asBuffer(g.raw) })),
    groupHeaders: range.groupHeaders.map(([seq, raw]) => [
      seq,
      raw === null ? null : asBuffer(raw),
    ]),
  };
}

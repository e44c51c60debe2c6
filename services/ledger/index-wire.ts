import type { Hex } from "../core/hex.ts";
import type { IndexReadKind } from "../store/index-records.ts";
import type { BatchOp } from "../store/ledger-store.ts";
import type { IndexedEvent, PreparedSize, UpdatePart } from "./index-updater.ts";

/**
 * What crosses between the request thread and the sealing worker, packed into single buffers:
 * a batch's update is up to ≈ 350,000 small ops, handed over a slice at a time, and a structured
 * clone of as many objects (or of 32-byte views, each of which drags its whole 8 KiB pool slab
 * along) would cost the request thread more than it saves.
 */

const PUT = 1;
const DEL = 2;
const MISSING = 0xffffffff;

/** Packs ops as they come (per op a type byte, key length (u16), key (latin1), value length (u32), value) into one growing buffer of its own. */
export class PackingSink {
  private buf = Buffer.allocUnsafeSlow(1 << 20);
  private at = 0;

  put(key: string, value: Uint8Array): void {
    this.reserve(7 + key.length + value.length);
    this.head(PUT, key);
    this.buf.writeUInt32BE(value.length, this.at);
    this.at += 4;
    this.buf.set(value, this.at);
    this.at += value.length;
  }

  del(key: string): void {
    this.reserve(7 + key.length);
    this.head(DEL, key);
    this.buf.writeUInt32BE(0, this.at);
    this.at += 4;
  }

  /** The packed ops in a buffer of their own (transferable); the sink starts over, empty. */
  take(): Buffer {
    const out = Buffer.allocUnsafeSlow(this.at);
    this.buf.copy(out, 0, 0, this.at);
    this.at = 0;
    return out;
  }

  private head(type: number, key: string): void {
    this.buf[this.at] = type;
    this.buf.writeUInt16BE(key.length, this.at + 1);
    this.at += 3;
    this.at += this.buf.write(key, this.at, "latin1");
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}

/** The ops a {@link PackingSink} packed; values are views into `packed` (no copies). */
export function unpackOps(packed: Buffer): BatchOp[] {
  const ops: BatchOp[] = [];
  let at = 0;
  while (at < packed.length) {
    const type = packed[at]!;
    const keyLength = packed.readUInt16BE(at + 1);
    at += 3;
    const key = packed.toString("latin1", at, at + keyLength);
    at += keyLength;
    const valueLength = packed.readUInt32BE(at);
    at += 4;
    if (type === PUT) ops.push({ type: "put", key, value: packed.subarray(at, at + valueLength) });
    else ops.push({ type: "del", key });
    at += valueLength;
  }
  return ops;
}

/** Values read from the store (undefined: absent), as one buffer of its own (transferable). */
export function packValues(values: ReadonlyArray<Buffer | undefined>): Buffer {
  let size = 4;
  for (const v of values) size += 4 + (v?.length ?? 0);
  const out = Buffer.allocUnsafeSlow(size);
  out.writeUInt32BE(values.length, 0);
  let at = 4;
  for (const v of values) {
    out.writeUInt32BE(v === undefined ? MISSING : v.length, at);
    at += 4;
    if (v !== undefined) at += v.copy(out, at);
  }
  return out;
}

export function unpackValues(packed: Buffer): Array<Buffer | undefined> {
  const n = packed.readUInt32BE(0);
  const out = new Array<Buffer | undefined>(n);
  let at = 4;
  for (let i = 0; i < n; i++) {
    const length = packed.readUInt32BE(at);
    at += 4;
    if (length === MISSING) out[i] = undefined;
    else {
      out[i] = packed.subarray(at, at + length);
      at += length;
    }
  }
  return out;
}

/** A batch's indexed events: subjects as an array of strings, seqs and leaf hashes packed. */
export interface PackedEvents {
  subjects: Hex[];
  seqs: Float64Array;
  leafHashes: Buffer;
}

export function packEvents(events: readonly IndexedEvent[]): PackedEvents {
  const seqs = new Float64Array(events.length);
  const leafHashes = Buffer.allocUnsafe(32 * events.length);
  events.forEach((e, i) => {
    seqs[i] = e.seq;
    leafHashes.set(e.leafHash, 32 * i);
  });
  return { subjects: events.map((e) => e.subject), seqs, leafHashes };
}

export function unpackEvents(packed: PackedEvents): IndexedEvent[] {
  const leafHashes = Buffer.from(
    packed.leafHashes.buffer,
    packed.leafHashes.byteOffset,
    packed.leafHashes.byteLength,
  );
  return packed.subjects.map((subject, i) => ({
    subject,
    seq: packed.seqs[i]!,
    leafHash: leafHashes.subarray(32 * i, 32 * (i + 1)),
  }));
}

/** Messages from the request thread to the worker. */
export type ToWorker =
  | { type: "init"; latestBatchNo: number; nodeCacheMax?: number; upperLevels?: number }
  | { type: "prepare"; id: number; batchNo: number; events: PackedEvents }
  | { type: "emit"; id: number; batchNo: number; part: UpdatePart; from: number; to: number }
  | { type: "committed"; batchNo: number }
  | { type: "values"; id: number; values: Uint8Array };

/** Messages from the worker to the request thread. */
export type FromWorker =
  /** Stored index values the worker does not hold: subject heads, or nodes by path key. */
  | { type: "read"; id: number; kind: IndexReadKind; ids: string[] }
  | {
      type: "prepared";
      id: number;
      root: Hex;
      size: PreparedSize;
      cachedNodes: { upper: number; deep: number };
      /** The worker's V8 heap (total size), bytes. */
      heapBytes: number;
      /** CPU time the worker thread has used (user + system), µs. */
      cpuMicros: number;
    }
  | { type: "emitted"; id: number; ops: Uint8Array }
  | { type: "failed"; id: number; message: string; stack?: string };

import { randomBytes } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import path from "node:path";

/**
 * The keys event bodies are encrypted under, kept outside LevelDB where deleting one is
 * reliable. LevelDB cannot forget a value on demand: a delete writes a marker, and the old value
 * stays in the write-ahead log and in table files until a compaction happens to rewrite them —
 * a manual compaction never rewrites files of the deepest level holding the key, so a body can
 * outlive its erasure indefinitely. So bodies only ever reach LevelDB encrypted, and erasing a
 * body destroys the key it was encrypted under; the ciphertext left in old table files is then
 * noise (docs/compliance.md "Erasure").
 *
 * One key per epoch of EPOCH_SEQS seqs, in a small file of fixed-size slots next to the tables:
 * erasing one body re-encrypts the other bodies of its epoch under a fresh key and overwrites the
 * old key's slot in place (pwrite + fsync), so no byte of the old key is left in any file.
 *
 * Slot layout (SLOT_BYTES): current generation (u32 BE) + current key (32 bytes), pending
 * generation (u32) + pending key (32), 8 bytes padding. Generation 0 is "no key". A pending key
 * exists only during an erasure (see `LedgerStore.eraseBody`); a crash leaves it for `open` to
 * settle.
 */
export const EPOCH_SEQS = 4_096;
export const BODY_KEYS_FILE = "VERITRAIL-BODY-KEYS";

const MAGIC = Buffer.from("VTBODYKEYS01", "latin1");
const HEADER_BYTES = 16;
const SLOT_BYTES = 80;
const KEY_BYTES = 32;

export interface BodyKey {
  generation: number;
  key: Buffer;
}

interface Slot {
  current: BodyKey | undefined;
  pending: BodyKey | undefined;
}

/**
 * Overwrites the keys of these epochs' slots with zeros: the key file's own when it is closed,
 * and the copies the regulator's audit hands out (sealed-body.ts EpochKeys) once they have served.
 */
export function wipeKeys(
  slots: Iterable<{ current?: BodyKey | undefined; pending?: BodyKey | undefined }>,
): void {
  for (const s of slots) {
    s.current?.key.fill(0);
    s.pending?.key.fill(0);
  }
}

export function epochOf(seq: number): number {
  return Math.floor(seq / EPOCH_SEQS);
}

export class BodyKeys {
  private constructor(
    private readonly file: FileHandle,
    private readonly slots: Slot[],
  ) {}

  /** Opens (or creates) the key file in `dir`, the LevelDB directory of the log. */
  static async open(dir: string): Promise<BodyKeys> {
    const file = await open(path.join(dir, BODY_KEYS_FILE), "a+").then(async (h) => {
      await h.close();
      return open(path.join(dir, BODY_KEYS_FILE), "r+");
    });
    try {
      const { size } = await file.stat();
      if (size === 0) {
        const header = Buffer.alloc(HEADER_BYTES);
        MAGIC.copy(header);
        await file.write(header, 0, HEADER_BYTES, 0);
        await file.sync();
      }
      const all = await file.readFile();
      if (all.length < HEADER_BYTES || !all.subarray(0, MAGIC.length).equals(MAGIC))
        throw new Error(`${BODY_KEYS_FILE} is not a body key file`);
      const slots: Slot[] = [];
      for (let at = HEADER_BYTES; at + SLOT_BYTES <= all.length; at += SLOT_BYTES)
        slots.push({ current: readKey(all, at), pending: readKey(all, at + 4 + KEY_BYTES) });
      all.fill(0);
      return new BodyKeys(file, slots);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    wipeKeys(this.slots);
    await this.file.close();
  }

  get epochs(): number {
    return this.slots.length;
  }

  /** Epochs whose erasure was interrupted (a pending key on disk). */
  get interrupted(): number[] {
    return this.slots.flatMap((s, i) => (s.pending ? [i] : []));
  }

  /** Makes sure every epoch up to and including that of `lastSeq` has a durable key. */
  async ensure(lastSeq: number): Promise<void> {
    const want = epochOf(lastSeq) + 1;
    if (this.slots.length >= want) return;
    const from = this.slots.length;
    const buf = Buffer.alloc((want - from) * SLOT_BYTES);
    const added: Slot[] = [];
    for (let i = 0; i < want - from; i++) {
      const current = { generation: 1, key: randomBytes(KEY_BYTES) };
      writeKey(buf, i * SLOT_BYTES, current);
      added.push({ current, pending: undefined });
    }
    await this.file.write(buf, 0, buf.length, HEADER_BYTES + from * SLOT_BYTES);
    await this.file.sync();
    buf.fill(0);
    // Only once durable: no body is ever encrypted under a key that a crash could lose.
    if (this.slots.length === from) this.slots.push(...added);
  }

  /** The key new bodies of `seq`'s epoch are encrypted under (`ensure` must have run). */
  current(seq: number): BodyKey {
    const slot = this.slots[epochOf(seq)];
    if (!slot?.current) throw new Error(`invariant violated: no body key for seq ${seq}`);
    return slot.current;
  }

  /** The generation of `seq`'s epoch key, if the epoch has one. */
  currentGeneration(seq: number): number | undefined {
    return this.slots[epochOf(seq)]?.current?.generation;
  }

  /** A copy of `epoch`'s keys (the regulator's audit hands them to its worker threads). */
  copyOf(epoch: number): { epoch: number; current?: BodyKey; pending?: BodyKey } {
    const slot = this.slots[epoch];
    const copy = (k: BodyKey | undefined) =>
      k ? { generation: k.generation, key: Buffer.from(k.key) } : undefined;
    const current = copy(slot?.current);
    const pending = copy(slot?.pending);
    return { epoch, ...(current ? { current } : {}), ...(pending ? { pending } : {}) };
  }

  /** The key of a generation of `seq`'s epoch, if it still exists. */
  find(seq: number, generation: number): Buffer | undefined {
    const slot = this.slots[epochOf(seq)];
    if (slot?.current?.generation === generation) return slot.current.key;
    if (slot?.pending?.generation === generation) return slot.pending.key;
    return undefined;
  }

  /** Writes a fresh pending key for `epoch` (durable before it encrypts anything). */
  async beginRotation(epoch: number): Promise<BodyKey> {
    const slot = this.slots[epoch];
    if (!slot?.current) throw new Error(`invariant violated: no body key for epoch ${epoch}`);
    const pending = { generation: slot.current.generation + 1, key: randomBytes(KEY_BYTES) };
    await this.writeSlot(epoch, slot.current, pending);
    slot.pending = pending;
    return pending;
  }

  /**
   * The pending key becomes the epoch's key and the old one is overwritten in place: from the
   * moment this resolves, no file holds the old key.
   */
  async finishRotation(epoch: number): Promise<void> {
    const slot = this.slots[epoch]!;
    const old = slot.current;
    await this.writeSlot(epoch, slot.pending, undefined);
    slot.current = slot.pending;
    slot.pending = undefined;
    old?.key.fill(0);
  }

  /** Drops a pending key that never encrypted a stored body (an interrupted erasure). */
  async abortRotation(epoch: number): Promise<void> {
    const slot = this.slots[epoch]!;
    await this.writeSlot(epoch, slot.current, undefined);
    slot.pending?.key.fill(0);
    slot.pending = undefined;
  }

  private async writeSlot(
    epoch: number,
    current: BodyKey | undefined,
    pending: BodyKey | undefined,
  ): Promise<void> {
    const buf = Buffer.alloc(SLOT_BYTES);
    if (current) writeKey(buf, 0, current);
    if (pending) writeKey(buf, 4 + KEY_BYTES, pending);
    await this.file.write(buf, 0, SLOT_BYTES, HEADER_BYTES + epoch * SLOT_BYTES);
    await this.file.sync();
    buf.fill(0);
  }
}

function readKey(buf: Buffer, at: number): BodyKey | undefined {
  const generation = buf.readUInt32BE(at);
  if (generation === 0) return undefined;
  return { generation, key: Buffer.from(buf.subarray(at + 4, at + 4 + KEY_BYTES)) };
}

function writeKey(buf: Buffer, at: number, k: BodyKey): void {
  buf.writeUInt32BE(k.generation, at);
  k.key.copy(buf, at + 4);
}

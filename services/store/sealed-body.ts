/**
 * Opening a stored event body (LedgerStore.openBody), as a pure function of the body and its
 * epoch's keys, so the regulator's audit can open bodies on its worker threads with a copy of the
 * keys of the seqs it hands them (LedgerStore.bodyKeysOf).
 *
 * A stored body is sealed with AES-256-GCM under its epoch's key (body-keys.ts): 0x01, the key's
 * generation (u32 BE), a random 96-bit nonce, the ciphertext, the 16-byte tag; the body's key
 * name is the associated data, so a body moved to another seq does not open. Bodies written
 * before (plain JSON, first byte `{`) are read as they are.
 */
import { createDecipheriv } from "node:crypto";
import { type BodyKey, epochOf } from "./body-keys.ts";
import { K } from "./keys.ts";
import { StoreCorruptError } from "./record-codec.ts";

export const SEALED_BODY = 0x01;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const SEALED_HEAD = 1 + 4 + NONCE_BYTES;

/** A stored body that cannot be opened (altered or truncated on disk). */
export class BodyUnreadable extends StoreCorruptError {
  constructor(
    readonly seq: number,
    reason: string,
  ) {
    super(K.body(seq), `it cannot be opened: ${reason}`);
  }
}

/** The keys of one epoch: the current one and, during an erasure, the pending one. */
export interface EpochKeys {
  epoch: number;
  current?: BodyKey;
  pending?: BodyKey;
}

/** Where a body's key is looked up: the live key file, or a copy of some epochs' keys. */
export interface BodyKeyLookup {
  find(seq: number, generation: number): Uint8Array | undefined;
  currentGeneration(seq: number): number | undefined;
}

/** A lookup over copied epoch keys (what the audit's workers are given). */
export function epochKeyLookup(epochs: readonly EpochKeys[]): BodyKeyLookup {
  const byEpoch = new Map(epochs.map((e) => [e.epoch, e]));
  return {
    find(seq, generation) {
      const e = byEpoch.get(epochOf(seq));
      if (e?.current?.generation === generation) return e.current.key;
      if (e?.pending?.generation === generation) return e.pending.key;
      return undefined;
    },
    currentGeneration: (seq) => byEpoch.get(epochOf(seq))?.current?.generation,
  };
}

/**
 * Whether a sealed body names a key generation older than its epoch's current one: re-keyed by an
 * erasure since it was read, so it must be read again (openSealedBody answers null for it).
 */
export function isStaleSealedBody(seq: number, raw: Buffer, keys: BodyKeyLookup): boolean {
  if (raw[0] !== SEALED_BODY || raw.length < SEALED_HEAD + TAG_BYTES) return false;
  const generation = raw.readUInt32BE(1);
  return (
    keys.find(seq, generation) === undefined && generation < (keys.currentGeneration(seq) ?? 0)
  );
}

/**
 * A stored body value as JSON text: opened with its epoch key, or as stored when written before
 * bodies were sealed. null when its key no longer exists (erased, or re-keyed since it was read);
 * throws BodyUnreadable when it does not open under the key it names (altered on disk).
 */
export function openSealedBody(seq: number, raw: Buffer, keys: BodyKeyLookup): Buffer | null {
  if (raw[0] !== SEALED_BODY) return raw;
  if (raw.length < SEALED_HEAD + TAG_BYTES) throw new BodyUnreadable(seq, "too short");
  const generation = raw.readUInt32BE(1);
  const key = keys.find(seq, generation);
  if (key === undefined) {
    // An older generation: re-keyed by an erasure since it was read. Any other: not ours.
    if (generation < (keys.currentGeneration(seq) ?? 0)) return null;
    throw new BodyUnreadable(seq, `it names key generation ${generation}, which never existed`);
  }
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(5, SEALED_HEAD));
  decipher.setAAD(Buffer.from(K.body(seq), "latin1"));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    const plain = decipher.update(raw.subarray(SEALED_HEAD, raw.length - TAG_BYTES));
    // GCM is a stream mode: final() only checks the tag and has nothing left to give.
    const rest = decipher.final();
    return rest.length === 0 ? plain : Buffer.concat([plain, rest]);
  } catch {
    throw new BodyUnreadable(seq, "it does not open under its key (altered on disk)");
  }
}

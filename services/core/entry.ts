import { z } from "zod";
import { hmacSha256, sha256 } from "./hash.ts";
import { type Hex, isHex32, toHex, utf8 } from "./hex.ts";
import { jcs } from "./jcs.ts";
import { leafHash } from "./merkle.ts";

/**
 * Version of the entry format new events get (DESIGN.md "Entry v2: log time and selective
 * disclosure"): `recorded` is the log's clock, and the commitment is over the event with its
 * staff identity behind per-field digests. Entries of version 1 (`recorded` as the writer sent
 * it, commitment over the event itself) keep verifying.
 */
export const ENTRY_VERSION = 2;
export type EntryVersion = 1 | 2;

const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const hex32 = z
  .string()
  .refine((v): boolean => isHex32(v), "must be 0x-prefixed lowercase hex of 32 bytes");

/** What the log commits to for one event: the leaf. Field names and shape are fixed by DESIGN.md. */
export const EntrySchema = z
  .object({
    v: z.union([z.literal(1), z.literal(2)]),
    log: hex32,
    seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    recorded: z.string().regex(RFC3339_MS_UTC, "must be RFC 3339 UTC with milliseconds"),
    commitment: hex32,
    subject: hex32.nullable(),
  })
  .strict();

export type Entry = {
  v: EntryVersion;
  log: Hex;
  seq: number;
  recorded: string;
  commitment: Hex;
  subject: Hex | null;
};

export const SALT_BYTES = 32;

/**
 * commitment = SHA-256(salt || JCS(event)). The per-event random salt makes the commitment
 * hiding: without it, a low-entropy event could be brute-forced from its hash, and erasing the
 * salt (crypto-shredding, GDPR Art. 17) leaves nothing to link the entry to a person.
 */
export function eventCommitment(salt: Uint8Array, event: unknown): Hex {
  return commitmentOfCanonical(salt, jcs(event));
}

/** The same commitment from an event already in JCS form (saves encoding it twice). */
export function commitmentOfCanonical(salt: Uint8Array, eventJcs: string): Hex {
  if (salt.length !== SALT_BYTES) throw new TypeError(`salt must be ${SALT_BYTES} bytes`);
  return toHex(sha256(salt, utf8(eventJcs)));
}

/**
 * How a log turns a patient identifier into the HMAC input of its subject tags; recorded in the
 * log's metadata when the log is created and never changed (the tags are in its entries).
 *
 * - `jcs`: JCS([system, value]) with an absent system as null — unambiguous: no two
 *   identifiers give one input. Every log created since issue 19.
 * - `pipe`: `system|value` (absent system: empty). Both parts may contain `|`, so
 *   {system "urn:a", value "b|PAT"} and {system "urn:a|b", value "PAT"} got one tag. Kept for
 *   the logs created with it, whose entries carry such tags.
 */
export type SubjectDerivation = "jcs" | "pipe";
export const SUBJECT_DERIVATIONS: readonly SubjectDerivation[] = ["jcs", "pipe"];

/** The HMAC input for a patient identifier under `derivation`. */
export function patientKey(
  patient: { system?: string | undefined; value: string },
  derivation: SubjectDerivation,
): string {
  return derivation === "jcs"
    ? jcs([patient.system ?? null, patient.value])
    : `${patient.system ?? ""}|${patient.value}`;
}

/**
 * subjectTag = HMAC-SHA256(logSecret, patientKey). Keyed, never a plain hash: a plain hash of a
 * record number is personal data (EDPB 02/2025) and can be reversed by enumeration.
 */
export function subjectTag(
  logSecret: Uint8Array,
  patient: { system?: string | undefined; value: string },
  derivation: SubjectDerivation,
): Hex {
  return toHex(hmacSha256(logSecret, utf8(patientKey(patient, derivation))));
}

export function encodeEntry(entry: Entry): string {
  return jcs(entry);
}

export function entryLeafHash(entry: Entry): Uint8Array {
  return leafHash(utf8(encodeEntry(entry)));
}

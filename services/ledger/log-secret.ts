import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { type Hex, fromHex, toHex } from "../core/hex.ts";

/**
 * The log secret at rest. It keys every subject tag (HMAC-SHA256(logSecret, patient)): whoever
 * reads it can test any patient identifier against the log, so in production it is never
 * stored in clear. It is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
 * operator's key material (LOG_SECRET_KEY, or the key of LOG_SECRET_KEYSTORE), with the logId as
 * additional data: a sealed secret copied into another log's metadata does not open.
 */
export interface SealedLogSecret {
  alg: typeof SEAL_ALG;
  /** Names the key material (not secret): a wrong key is told apart from a damaged record. */
  keyId: string;
  iv: Hex;
  /** Ciphertext followed by the 16-byte GCM tag. */
  sealed: Hex;
}

const SEAL_ALG = "A256GCM+HKDF-SHA256";
const WRAP_INFO = "veritrail/log-secret-wrap/1";
const KEY_ID_INFO = "veritrail/log-secret-key-id/1";

export class LogSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LogSecretError";
  }
}

function derive(keyMaterial: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", keyMaterial, Buffer.alloc(0), info, 32));
}

export function logSecretKeyId(keyMaterial: Uint8Array): string {
  return derive(keyMaterial, KEY_ID_INFO).subarray(0, 8).toString("hex");
}

export function sealLogSecret(
  secret: Uint8Array,
  keyMaterial: Uint8Array,
  logId: string,
): SealedLogSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", derive(keyMaterial, WRAP_INFO), iv);
  cipher.setAAD(Buffer.from(logId, "utf8"));
  const sealed = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
  return {
    alg: SEAL_ALG,
    keyId: logSecretKeyId(keyMaterial),
    iv: toHex(iv),
    sealed: toHex(sealed),
  };
}

export function openLogSecret(
  record: SealedLogSecret,
  keyMaterial: Uint8Array,
  logId: string,
): Uint8Array {
  if (record.alg !== SEAL_ALG)
    throw new LogSecretError(`the log secret is sealed with ${record.alg}, which is not known`);
  const keyId = logSecretKeyId(keyMaterial);
  if (keyId !== record.keyId)
    throw new LogSecretError(
      `the log secret is sealed under key ${record.keyId}; the configured key is ${keyId}`,
    );
  const data = Buffer.from(fromHex(record.sealed));
  try {
    const decipher = createDecipheriv(
      "aes-256-gcm",
      derive(keyMaterial, WRAP_INFO),
      fromHex(record.iv),
    );
    decipher.setAAD(Buffer.from(logId, "utf8"));
    decipher.setAuthTag(data.subarray(data.length - 16));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]);
  } catch {
    throw new LogSecretError("the sealed log secret does not open: the record is damaged");
  }
}

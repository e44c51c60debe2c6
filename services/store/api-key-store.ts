import { z } from "zod";
import { K, prefixEnd } from "./keys.ts";
import type { LedgerStore } from "./ledger-store.ts";
import { decodeJson } from "./record-codec.ts";

/** Roles of API keys (DESIGN.md "Access control"). */
export type ApiKeyRole = "admin" | "writer" | "auditor" | "patient";

/**
 * One API key as stored: never the secret, only its SHA-256 (`keyHash`, the record's key).
 * `scope` is the organization of a writer, the subjectTag of a patient, null otherwise.
 */
export interface ApiKeyRecord {
  id: string;
  keyHash: string;
  role: ApiKeyRole;
  scope: string | null;
  createdAt: string;
  revokedAt?: string;
}

const ApiKeyRecordSchema = z.object({
  id: z.string(),
  keyHash: z.string(),
  role: z.enum(["admin", "writer", "auditor", "patient"]),
  scope: z.string().nullable(),
  createdAt: z.string(),
  revokedAt: z.string().optional(),
});

/** API key records under `a:<keyHash>` in the log's LevelDB. */
export class ApiKeyStore {
  constructor(private readonly store: LedgerStore) {}

  async get(keyHash: string): Promise<ApiKeyRecord | undefined> {
    return this.store.getJson(K.apiKey(keyHash), ApiKeyRecordSchema);
  }

  async put(record: ApiKeyRecord): Promise<void> {
    await this.store.write([this.store.putJsonOp(K.apiKey(record.keyHash), record)], true);
  }

  /** Every record, in key-hash order (a handful per log; listing is an admin operation). */
  async list(): Promise<ApiKeyRecord[]> {
    const out: ApiKeyRecord[] = [];
    for await (const [k, v] of this.store.scan({
      gte: K.apiKeyPrefix,
      lt: prefixEnd(K.apiKeyPrefix),
    })) {
      out.push(decodeJson(k, v, ApiKeyRecordSchema));
    }
    return out;
  }
}

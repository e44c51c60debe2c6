import { randomBytes } from "node:crypto";
import { subjectTag } from "../core/entry.ts";
import { sha256 } from "../core/hash.ts";
import { fromHex, toHex, utf8 } from "../core/hex.ts";
import { ApiKeyStore, type ApiKeyRecord, type ApiKeyRole } from "../store/api-key-store.ts";
import { LedgerError } from "./errors.ts";
import type { Ledger } from "./ledger.ts";

export type { ApiKeyRole } from "../store/api-key-store.ts";
export const API_KEY_ROLES = ["admin", "writer", "auditor", "patient"] as const;

/** Who is calling: the key's id, role and scope (organization or subjectTag). */
export interface Principal {
  id: string;
  role: ApiKeyRole;
  scope: string | null;
}

/** A key as shown to admins: never the secret, never its hash. */
export interface ApiKeyView {
  id: string;
  role: ApiKeyRole;
  scope: string | null;
  createdAt: string;
  revokedAt?: string;
}

export type NewApiKey =
  | { role: "admin" }
  | { role: "auditor" }
  | { role: "writer"; organization: string }
  | { role: "patient"; patient: { system?: string | undefined; value: string } };

/** `vt_` + 32 random bytes, base64url: recognisable in secret scanners, 256 bits of entropy. */
const SECRET_PREFIX = "vt_";
const SECRET_RE = /^vt_[A-Za-z0-9_-]{43}$/;

function keyHash(secret: string): string {
  return toHex(sha256(utf8(secret))).slice(2);
}

function view(record: ApiKeyRecord): ApiKeyView {
  const out: ApiKeyView = {
    id: record.id,
    role: record.role,
    scope: record.scope,
    createdAt: record.createdAt,
  };
  if (record.revokedAt !== undefined) out.revokedAt = record.revokedAt;
  return out;
}

/**
 * API key use cases. Secrets are random 32 bytes shown once; only their SHA-256 is stored (a
 * fast hash is enough: the secret has full entropy, so there is nothing to brute-force). A
 * patient key is made from a patient identifier that is turned into the subjectTag at once and
 * never stored.
 */
export class ApiKeys {
  private constructor(
    private readonly keys: ApiKeyStore,
    private readonly logSecret: Uint8Array,
    private readonly now: () => Date,
  ) {}

  static forLedger(ledger: Ledger, now: () => Date = () => new Date()): ApiKeys {
    return new ApiKeys(new ApiKeyStore(ledger.store), fromHex(ledger.meta.logSecret), now);
  }

  /** Creates a key; the returned `secret` is the only copy there will ever be. */
  async create(request: NewApiKey): Promise<{ secret: string; key: ApiKeyView }> {
    let scope: string | null = null;
    if (request.role === "writer") scope = request.organization;
    if (request.role === "patient") scope = subjectTag(this.logSecret, request.patient);
    const secret = SECRET_PREFIX + randomBytes(32).toString("base64url");
    const record: ApiKeyRecord = {
      id: `key_${randomBytes(8).toString("hex")}`,
      keyHash: keyHash(secret),
      role: request.role,
      scope,
      createdAt: this.now().toISOString(),
    };
    await this.keys.put(record);
    return { secret, key: view(record) };
  }

  /** The principal of a live key, or undefined for an unknown, malformed or revoked secret. */
  async authenticate(secret: string): Promise<Principal | undefined> {
    if (!SECRET_RE.test(secret)) return undefined;
    const record = await this.keys.get(keyHash(secret));
    if (!record || record.revokedAt !== undefined) return undefined;
    return { id: record.id, role: record.role, scope: record.scope };
  }

  async list(): Promise<ApiKeyView[]> {
    const records = await this.keys.list();
    return records
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
      .map(view);
  }

  /** Revokes a key for good; revoking a revoked key is a conflict. */
  async revoke(id: string): Promise<ApiKeyView> {
    const record = (await this.keys.list()).find((r) => r.id === id);
    if (!record) throw new LedgerError("NOT_FOUND", `no API key ${id}`, "id");
    if (record.revokedAt !== undefined)
      throw new LedgerError("CONFLICT", `API key ${id} is already revoked`, "id");
    const revoked: ApiKeyRecord = { ...record, revokedAt: this.now().toISOString() };
    await this.keys.put(revoked);
    return view(revoked);
  }
}

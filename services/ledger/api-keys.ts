import { randomBytes } from "node:crypto";
import { sha256 } from "../core/hash.ts";
import { toHex, utf8 } from "../core/hex.ts";
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
 * Live principals by key hash, shared by every ApiKeys over one store, so authenticating a
 * request does not read LevelDB each time. Only live keys are kept (an unknown or revoked
 * secret always reaches the store, and random secrets cannot fill the cache); a revocation
 * drops its key, and `generation` keeps a lookup that raced with a revocation from caching
 * what it read before it.
 */
interface PrincipalCache {
  live: Map<string, Principal>;
  generation: number;
  /** The tail of this store's revocations (they run one at a time). */
  revocations: Promise<unknown>;
}

/** Far more live keys than a log has; past it the cache starts over rather than grow. */
const PRINCIPAL_CACHE_MAX = 10_000;
const principalCaches = new WeakMap<object, PrincipalCache>();

function principalCacheFor(store: object): PrincipalCache {
  let cache = principalCaches.get(store);
  if (!cache) {
    cache = { live: new Map(), generation: 0, revocations: Promise.resolve() };
    principalCaches.set(store, cache);
  }
  return cache;
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
    private readonly tagOf: (patient: { system?: string | undefined; value: string }) => string,
    private readonly now: () => Date,
    private readonly cache: PrincipalCache,
  ) {}

  static forLedger(ledger: Ledger, now: () => Date = () => new Date()): ApiKeys {
    return new ApiKeys(
      new ApiKeyStore(ledger.store),
      (patient) => ledger.subjectTagOf(patient),
      now,
      principalCacheFor(ledger.store),
    );
  }

  /** Creates a key; the returned `secret` is the only copy there will ever be. */
  async create(request: NewApiKey): Promise<{ secret: string; key: ApiKeyView }> {
    let scope: string | null = null;
    if (request.role === "writer") scope = request.organization;
    if (request.role === "patient") scope = this.tagOf(request.patient);
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
    const hash = keyHash(secret);
    const cached = this.cache.live.get(hash);
    if (cached) return { ...cached };
    const generation = this.cache.generation;
    const record = await this.keys.get(hash);
    if (!record || record.revokedAt !== undefined) return undefined;
    const principal: Principal = { id: record.id, role: record.role, scope: record.scope };
    if (generation === this.cache.generation) {
      if (this.cache.live.size >= PRINCIPAL_CACHE_MAX) this.cache.live.clear();
      this.cache.live.set(hash, principal);
    }
    return { ...principal };
  }

  async list(): Promise<ApiKeyView[]> {
    const records = await this.keys.list();
    return records
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
      .map(view);
  }

  /**
   * Revokes a key for good; revoking a revoked key is a conflict, and so is revoking the last
   * live admin key (nobody could create or revoke keys any more). Revocations of one store run
   * one at a time, so two concurrent ones cannot each leave the other's key as "the last".
   */
  revoke(id: string): Promise<ApiKeyView> {
    const run = this.cache.revocations.then(() => this.revokeNow(id));
    this.cache.revocations = run.catch(() => undefined);
    return run;
  }

  private async revokeNow(id: string): Promise<ApiKeyView> {
    const records = await this.keys.list();
    const record = records.find((r) => r.id === id);
    if (!record) throw new LedgerError("NOT_FOUND", `no API key ${id}`, "id");
    if (record.revokedAt !== undefined)
      throw new LedgerError("CONFLICT", `API key ${id} is already revoked`, "id");
    if (
      record.role === "admin" &&
      !records.some((r) => r.id !== id && r.role === "admin" && r.revokedAt === undefined)
    )
      throw new LedgerError(
        "CONFLICT",
        `API key ${id} is the last live admin key; create another admin key before revoking it`,
        "id",
      );
    const revoked: ApiKeyRecord = { ...record, revokedAt: this.now().toISOString() };
    // Forget the key before the write (lookups in flight must not cache it) and after it
    // (one that read the live record meanwhile may have).
    this.forget(record.keyHash);
    try {
      await this.keys.put(revoked);
    } finally {
      this.forget(record.keyHash);
    }
    return view(revoked);
  }

  private forget(hash: string): void {
    this.cache.generation++;
    this.cache.live.delete(hash);
  }
}

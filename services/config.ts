import { z } from "zod";

/**
 * The one config module (STYLE.md §7): every environment variable the service reads is
 * declared here, validated once at start-up, and nothing else reads process.env.
 */

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/**
 * PEER_LOGS: other institutions' Veritrail APIs anchored in the same registry, searched by
 * GET /v1/provenance. Comma-separated `name=url=auditorKey` entries; the name is what the trace
 * calls that log, the key an auditor key of that API (API keys are vt_… and hold no `=` or `,`).
 */
export interface PeerLog {
  name: string;
  url: string;
  auditorKey: string;
}

/** What a provenance trace calls the log of the service answering it. */
export const LOCAL_LOG_NAME = "local";

const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const PEER_KEY = /^[\x21-\x2b\x2d-\x3c\x3e-\x7e]{1,512}$/;

export const PeerLogsSchema = z.string().transform((value, ctx): PeerLog[] => {
  const peers: PeerLog[] = [];
  const entries = value.split(",").map((e) => e.trim());
  entries.forEach((entry, i) => {
    const first = entry.indexOf("=");
    const last = entry.lastIndexOf("=");
    const fail = (message: string) =>
      ctx.addIssue({ code: "custom", message: `entry ${i + 1}: ${message}` });
    if (first < 0 || last === first) {
      fail("must be name=url=auditorKey");
      return;
    }
    const name = entry.slice(0, first);
    const url = entry.slice(first + 1, last);
    const auditorKey = entry.slice(last + 1);
    if (!PEER_NAME.test(name)) fail("the name must be 1..64 letters, digits, . _ or -");
    else if (name === LOCAL_LOG_NAME) fail(`the name ${LOCAL_LOG_NAME} stands for this log`);
    else if (peers.some((p) => p.name === name)) fail(`the name ${name} is used twice`);
    if (!z.url({ protocol: /^https?$/ }).safeParse(url).success) fail("the url must be http(s)");
    if (!PEER_KEY.test(auditorKey)) fail("the auditor key must be printable, without = or ,");
    peers.push({ name, url, auditorKey });
  });
  return peers;
});

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

export const ConfigSchema = z.object({
  DATA_DIR: z.string().min(1).default("./data"),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: int(0, 65535).default(8080),
  /**
   * The service's public origin (and path prefix, behind a proxy), e.g. https://audit.example.org.
   * Every absolute URL the API answers with (FHIR fullUrl and paging links) starts with it;
   * request headers (Host, X-Forwarded-*) never make a URL. Default: http://HOST:PORT.
   */
  PUBLIC_URL: z
    .url({ protocol: /^https?$/ })
    .refine((u) => !/[?#@]/.test(u), "must not carry credentials, a query or a fragment")
    .transform((u) => u.replace(/\/+$/, ""))
    .optional(),
  /**
   * HTTP server timeouts (Node's http.Server): complete request headers must arrive within
   * HEADERS, the whole request (headers and body) within REQUEST; an idle keep-alive connection
   * is closed after KEEP_ALIVE. A client too slow is answered 408 and disconnected.
   */
  HTTP_HEADERS_TIMEOUT_MS: int(1_000, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(1_000, 3_600_000).default(60_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),

  /** A batch seals at this many events or after BATCH_MAX_WAIT_MS, whichever comes first. */
  BATCH_MAX_EVENTS: int(1, 1_000_000).default(10_000),
  BATCH_MAX_WAIT_MS: int(10, 3_600_000).default(2_000),
  /** Receipts promise anchoring within this many milliseconds of acceptance. */
  ANCHOR_DEADLINE_MS: int(1_000, 30 * 24 * 3_600_000).default(3_600_000),
  /** Upper bound on events in one group commit (one synced LevelDB write). */
  GROUP_COMMIT_MAX_EVENTS: int(1, 100_000).default(4_096),
  /**
   * Backpressure (services/ledger/ingest-gate.ts): at most this many acknowledged-but-unsealed
   * events, none of them acknowledged more than INGEST_MAX_UNSEALED_AGE_MS ago, and at most
   * INGEST_MAX_UNANCHORED_BATCHES sealed-but-unanchored batches; past any, a write waits up to INGEST_BACKPRESSURE_WAIT_MS for room and is then answered 503
   * OVERLOADED with Retry-After. The bounds keep the work ahead of a new event, and so its time
   * to anchor, well inside ANCHOR_DEADLINE_MS.
   */
  INGEST_MAX_UNSEALED_EVENTS: int(1, 10_000_000).default(50_000),
  /**
   * ... and while the oldest unsealed event was acknowledged more than this long ago (default:
   * 10 s, or two BATCH_MAX_WAIT_MS when that is longer).
   */
  INGEST_MAX_UNSEALED_AGE_MS: int(100, 3_600_000).default(10_000),
  INGEST_MAX_UNANCHORED_BATCHES: int(1, 1_000_000).default(256),
  INGEST_BACKPRESSURE_WAIT_MS: int(0, 60_000).default(1_000),
  /**
   * Memory of the sealing worker (services/ledger/index-worker.ts): completeness-index nodes
   * below the upper 16 levels it keeps in memory (≈ 120 bytes each: 65 in a slab, the rest
   * its heap), and its V8 heap limit (old generation). Both bound the service's memory whatever
   * the size of the log. The worker needs ≈ 20 MB of heap to run, ≈ 40 bytes per cached node
   * and ≈ 2 KB per subject of a batch (BATCH_MAX_EVENTS); a worker that runs out of heap is
   * replaced, and a batch that overruns it twice is sealed on the request thread.
   */
  INDEX_NODE_CACHE_MAX: int(0, 50_000_000).default(250_000),
  SEAL_WORKER_HEAP_MB: int(32, 16_384).default(96),
  /**
   * Size of LevelDB's table files, MB. LevelDB maps the tables it holds open (at least 64) into
   * memory, so up to 64 × this counts in the service's RSS as mapped file pages.
   */
  STORE_TABLE_FILE_MB: int(1, 64).default(2),
  /**
   * Batch records kept in memory for proofs (services/ledger/batch-cache.ts, ≈ 1 KB each): a
   * proof whose batch is cached reads its Merkle path at once, in the same round as its entry,
   * body and receipt. The default holds every batch of 20,000,000 events in full batches.
   */
  BATCH_CACHE_RECORDS: int(0, 1_000_000).default(2_048),

  /** development: a local chain that may be reset (redeploy + re-anchor); production: never. */
  CHAIN_MODE: z.enum(["development", "production"]).default("development"),
  RPC_URL: z.url().optional(),
  CONTRACT_ADDRESS: z
    .string()
    .regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte address")
    .optional(),
  CONFIRMATIONS: int(0, 1_000).default(1),
  /**
   * The operator name recorded on-chain when the service registers its log on a development
   * chain (trust policies quote it on every verdict). In production the registry's admin
   * registers the log, with scripts/register-log.ts --operator.
   */
  LOG_OPERATOR: z
    .string()
    .trim()
    .min(1)
    .refine((s) => new TextEncoder().encode(s).length <= 128, "must be at most 128 bytes of UTF-8")
    .default("Veritrail development log"),
  /** Anchor loop tuning (services/anchoring/anchor-tuning.ts); the defaults suit a dev chain and most L2s. */
  /** Backoff after an RPC error: exponential from MIN to MAX, with jitter. */
  ANCHOR_RETRY_MIN_MS: int(10, 600_000).default(250),
  ANCHOR_RETRY_MAX_MS: int(10, 3_600_000).default(30_000),
  /** An anchor transaction not mined after this long is replaced (same nonce, higher fee). */
  ANCHOR_TX_TIMEOUT_MS: int(1_000, 3_600_000).default(30_000),
  /** After this long, a transaction the node no longer knows counts as dropped and is resent. */
  ANCHOR_DROP_CHECK_MS: int(100, 3_600_000).default(3_000),
  /** Poll period while anchor transactions are in flight or waiting for CONFIRMATIONS. */
  ANCHOR_POLL_MS: int(10, 60_000).default(100),
  /** Anchor transactions in flight at once (consecutive nonces). */
  ANCHOR_MAX_IN_FLIGHT: int(1, 256).default(8),
  /** The latest this many anchored batches are re-checked against reorgs, every INTERVAL. */
  ANCHOR_RECHECK_DEPTH: int(0, 10_000).default(16),
  ANCHOR_RECHECK_INTERVAL_MS: int(100, 3_600_000).default(5_000),
  /** Fixed gas limit of anchorBatch (its gas does not depend on the batch size; ~57k used). */
  ANCHOR_GAS_LIMIT: int(60_000, 10_000_000).default(150_000),
  /** Per JSON-RPC request; an RPC that accepts but never answers counts as down after this. */
  RPC_TIMEOUT_MS: int(100, 600_000).default(10_000),
  ANCHORER_KEYSTORE: z.string().min(1).optional(),
  ANCHORER_KEYSTORE_PASSWORD: z.string().optional(),
  ANCHORER_PRIVATE_KEY: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte hex key")
    .optional(),
  /**
   * The key that seals the log secret (which keys every subject tag) at rest: 32 bytes as 0x-hex,
   * or an encrypted JSON keystore whose private key is used. Required in production; without it
   * in development the secret stays in clear under DATA_DIR (said at start).
   */
  LOG_SECRET_KEY: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte hex key")
    .optional(),
  LOG_SECRET_KEYSTORE: z.string().min(1).optional(),
  LOG_SECRET_KEYSTORE_PASSWORD: z.string().optional(),
  RECEIPT_KEYSTORE: z.string().min(1).optional(),
  RECEIPT_KEYSTORE_PASSWORD: z.string().optional(),
  RECEIPT_PRIVATE_KEY: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte hex key")
    .optional(),

  /** Largest request body the API reads, in bytes (413 beyond). */
  MAX_BODY_BYTES: int(1_024, 64 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Most events accepted in one POST /v1/events (413 beyond). */
  MAX_EVENTS_PER_REQUEST: int(1, 100_000).default(1_000),
  /**
   * Requests per minute with one live API key (1,000/s on average: 4 × a large hospital's peak
   * of 250 events/s sent one by one), and from one IP address without a live key (no key, or
   * an unknown or revoked one: pages, health checks, failed logins). See api/rate-limit.ts.
   */
  RATE_LIMIT_PER_MINUTE: int(1, 10_000_000).default(60_000),
  RATE_LIMIT_PER_IP_PER_MINUTE: int(1, 10_000_000).default(600),
  /**
   * Reverse proxies in front of the service whose X-Forwarded-For is believed (Express's
   * "trust proxy" hop count): the client address that per-IP limits count. 0: none, the
   * connection's own address.
   */
  TRUST_PROXY: int(0, 10).default(0),
  /**
   * Browser pages on other origins that may read this API with a key: the regulator console
   * served by another institution's API, verifying several logs at once. Comma-separated
   * origins (scheme://host[:port]); GET and HEAD only, keys in the Authorization header (never
   * cookies). None by default: only pages of this service's own origin.
   */
  CORS_ORIGINS: z
    .string()
    .transform((value, ctx): string[] => {
      const origins: string[] = [];
      for (const part of value
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== "")) {
        let url: URL | undefined;
        try {
          url = new URL(part);
        } catch {
          url = undefined;
        }
        if (!url || !/^https?:$/.test(url.protocol) || url.origin !== part.replace(/\/$/, "")) {
          ctx.addIssue({
            code: "custom",
            message: `${JSON.stringify(part)} is not an origin (scheme://host[:port], no path)`,
          });
          continue;
        }
        origins.push(url.origin);
      }
      return origins;
    })
    .default([]),
  /** Patient-facing output: show staff names or only role and organization (GDPR C-579/21). */
  PATIENT_VIEW_STAFF_NAMES: bool.default(false),
  /** Other Veritrail APIs searched by GET /v1/provenance (PeerLogsSchema); none by default. */
  PEER_LOGS: PeerLogsSchema.default([]),
  /** Per request to a peer API (a peer that never answers is reported as unreadable). */
  PEER_TIMEOUT_MS: int(100, 600_000).default(10_000),
  /** Largest answer read from a peer API (a page of events, a proof); beyond it the peer is unreadable. */
  PEER_MAX_RESPONSE_BYTES: int(64 * 1024, 256 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Everything read from one peer for one trace (all pages) must arrive within this. */
  PEER_TOTAL_TIMEOUT_MS: int(1_000, 3_600_000).default(60_000),
  /** Start a local Hardhat node when no RPC_URL is given (npm start's embedded default). */
  EMBEDDED_CHAIN: bool.default(true),
  /** Port of the embedded Hardhat node (always bound to 127.0.0.1). */
  EMBEDDED_CHAIN_PORT: int(1, 65535).default(8545),
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: Array<{ variable: string; message: string }>) {
    super(
      `invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(ConfigSchema.shape)
      .filter((k) => env[k] !== undefined && env[k] !== "")
      .map((k) => [k, env[k]]),
  );
  const parsed = ConfigSchema.safeParse(known);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ variable: String(i.path[0] ?? "?"), message: i.message })),
    );
  }
  const c = parsed.data;
  const issues: Array<{ variable: string; message: string }> = [];
  if (c.ANCHORER_KEYSTORE && c.ANCHORER_KEYSTORE_PASSWORD === undefined)
    issues.push({
      variable: "ANCHORER_KEYSTORE_PASSWORD",
      message: "required with ANCHORER_KEYSTORE",
    });
  if (c.RECEIPT_KEYSTORE && c.RECEIPT_KEYSTORE_PASSWORD === undefined)
    issues.push({
      variable: "RECEIPT_KEYSTORE_PASSWORD",
      message: "required with RECEIPT_KEYSTORE",
    });
  if (c.LOG_SECRET_KEYSTORE && c.LOG_SECRET_KEYSTORE_PASSWORD === undefined)
    issues.push({
      variable: "LOG_SECRET_KEYSTORE_PASSWORD",
      message: "required with LOG_SECRET_KEYSTORE",
    });
  if (c.LOG_SECRET_KEYSTORE && c.LOG_SECRET_KEY)
    issues.push({
      variable: "LOG_SECRET_KEY",
      message: "set either LOG_SECRET_KEYSTORE or LOG_SECRET_KEY, not both",
    });
  // A bound below one batch would leave sealing to the timer (one partial batch per wait).
  if (c.INGEST_MAX_UNSEALED_EVENTS < Math.max(c.BATCH_MAX_EVENTS, c.MAX_EVENTS_PER_REQUEST))
    issues.push({
      variable: "INGEST_MAX_UNSEALED_EVENTS",
      message: `must be at least BATCH_MAX_EVENTS (${c.BATCH_MAX_EVENTS}) and MAX_EVENTS_PER_REQUEST (${c.MAX_EVENTS_PER_REQUEST})`,
    });
  if (c.HTTP_HEADERS_TIMEOUT_MS > c.HTTP_REQUEST_TIMEOUT_MS)
    issues.push({
      variable: "HTTP_HEADERS_TIMEOUT_MS",
      message: `must not exceed HTTP_REQUEST_TIMEOUT_MS (${c.HTTP_REQUEST_TIMEOUT_MS})`,
    });
  if (c.PUBLIC_URL === undefined && c.PORT !== 0) c.PUBLIC_URL = defaultPublicUrl(c.HOST, c.PORT);
  // The age bound must leave a partial batch its full wait (BATCH_MAX_WAIT_MS) and then some:
  // its default follows a longer wait; a value set below two waits is refused.
  if (c.INGEST_MAX_UNSEALED_AGE_MS < 2 * c.BATCH_MAX_WAIT_MS) {
    if ("INGEST_MAX_UNSEALED_AGE_MS" in known)
      issues.push({
        variable: "INGEST_MAX_UNSEALED_AGE_MS",
        message: `must be at least twice BATCH_MAX_WAIT_MS (${2 * c.BATCH_MAX_WAIT_MS})`,
      });
    else c.INGEST_MAX_UNSEALED_AGE_MS = 2 * c.BATCH_MAX_WAIT_MS;
  }
  if (c.CHAIN_MODE === "production") {
    if (!c.RPC_URL) issues.push({ variable: "RPC_URL", message: "required in production mode" });
    if (!c.CONTRACT_ADDRESS)
      issues.push({ variable: "CONTRACT_ADDRESS", message: "required in production mode" });
    if (!c.ANCHORER_KEYSTORE && !c.ANCHORER_PRIVATE_KEY)
      issues.push({
        variable: "ANCHORER_KEYSTORE",
        message:
          "an anchorer key (keystore or ANCHORER_PRIVATE_KEY) is required in production mode",
      });
    if (!c.RECEIPT_KEYSTORE && !c.RECEIPT_PRIVATE_KEY)
      issues.push({
        variable: "RECEIPT_KEYSTORE",
        message: "a receipt key (keystore or RECEIPT_PRIVATE_KEY) is required in production mode",
      });
    if (!c.LOG_SECRET_KEYSTORE && !c.LOG_SECRET_KEY)
      issues.push({
        variable: "LOG_SECRET_KEY",
        message:
          "a key sealing the log secret at rest (LOG_SECRET_KEYSTORE or LOG_SECRET_KEY) is required in production mode",
      });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return c;
}

/**
 * http://HOST:PORT, as PUBLIC_URL's default. A wildcard bind address names no host a client
 * could use, so links then say localhost; set PUBLIC_URL for anything reached from elsewhere.
 */
export function defaultPublicUrl(host: string, port: number): string {
  const name = host === "0.0.0.0" || host === "::" ? "localhost" : host;
  return `http://${name.includes(":") ? `[${name}]` : name}:${port}`;
}

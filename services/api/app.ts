import { fileURLToPath } from "node:url";
import cors from "cors";
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
} from "express";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { ApiKeys } from "../ledger/api-keys.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { AccessPolicy } from "../ledger/access.ts";
import type { AnchoringStatus, LogStatus } from "../ledger/log-status.ts";
import { StorageUnavailableError } from "../ledger/errors.ts";
import { EventQueries } from "../ledger/queries.ts";
import { authenticate } from "./auth.ts";
import { ApiError, answerErrorsAsFhir, errorHandler } from "./errors.ts";
import { ApiMetrics } from "./metrics.ts";
import { registerFhirRoutes } from "./fhir.ts";
import { checkHostHeader } from "./host-header.ts";
import { observeRequests } from "./observe.ts";
import { rateLimits } from "./rate-limit.ts";
import { securityHeaders } from "./security-headers.ts";
import { type AuditRouteOptions, registerAuditRoutes } from "./routes/audit.ts";
import { registerBatchRoutes } from "./routes/batches.ts";
import { registerComplianceRoutes } from "./routes/compliance.ts";
import { registerEventRoutes } from "./routes/events.ts";
import { registerApiKeyRoutes } from "./routes/api-keys.ts";
import { registerOpsRoutes } from "./routes/ops.ts";
import { registerPatientRoutes } from "./routes/patient.ts";
import { registerProvenanceRoutes } from "./routes/provenance.ts";
import { registerStatusRoutes } from "./routes/status.ts";
import { type BundleVerifier, registerVerifyRoutes } from "./routes/verify.ts";

/**
 * What /readyz, /metrics and /v1/status need from the anchor loop: `AnchorLoop.status()` fits
 * (declared structurally so the API does not depend on the loop's other fields).
 */
export type AnchorStatus = AnchoringStatus;

/** The settings the API reads (a subset of the validated service config). */
export type ApiConfig = Pick<
  Config,
  | "MAX_BODY_BYTES"
  | "MAX_EVENTS_PER_REQUEST"
  | "RATE_LIMIT_PER_MINUTE"
  | "RATE_LIMIT_PER_IP_PER_MINUTE"
  | "TRUST_PROXY"
  | "PATIENT_VIEW_STAFF_NAMES"
> &
  /** Other origins whose pages may read the API (GET) with a key; none when absent. */
  Partial<Pick<Config, "CORS_ORIGINS">> &
  /** Absolute URLs in answers start with PUBLIC_URL; without it, the address the request came to. */
  Partial<Pick<Config, "PUBLIC_URL">> &
  /** GET /v1/provenance's peer logs; none when absent. */
  Partial<
    Pick<
      Config,
      "PEER_LOGS" | "PEER_TIMEOUT_MS" | "PEER_MAX_RESPONSE_BYTES" | "PEER_TOTAL_TIMEOUT_MS"
    >
  >;

export interface AppOptions {
  ledger: Ledger;
  apiKeys: ApiKeys;
  logger: Logger;
  config: ApiConfig;
  /** The anchor loop's status, when one runs; /readyz answers 503 while it reports an alarm. */
  statusProvider?: () => AnchorStatus;
  /** POST /v1/verify: the verifier bound to the service's chain; absent → 503 UNAVAILABLE. */
  verifier?: BundleVerifier;
  /**
   * This log's own trust policy document, served at /.well-known/veritrail-trust.json (503 while
   * there is none: the log not registered yet, or no chain).
   */
  trustPolicyDocument?: () => Promise<unknown>;
  /** Directory of the static pages (verify.html, patient.html, dist/); default `web/`. */
  webDir?: string;
  /** Include prom-client's process metrics (off in tests: they are global to the process). */
  processMetrics?: boolean;
  /** POST /v1/audit: the chain to compare headers with (local replay only without it). */
  audit?: AuditRouteOptions;
  /**
   * The trust policy (veritrail-trust/1) this service publishes for verifiers, shown by
   * GET /v1/status and `veritrail status`: its fingerprint, issuer and file. Absent → null.
   */
  trustPolicy?: () => LogStatus["trust"];
}

/** What the route modules share. */
export interface ApiContext {
  ledger: Ledger;
  apiKeys: ApiKeys;
  queries: EventQueries;
  /** What each caller may do and see: every route asks it (services/ledger/access.ts). */
  access: AccessPolicy;
  config: ApiConfig;
  metrics: ApiMetrics;
  statusProvider: (() => AnchorStatus) | undefined;
  trustPolicy: (() => LogStatus["trust"]) | undefined;
  verifier: BundleVerifier | undefined;
  trustPolicyDocument: (() => Promise<unknown>) | undefined;
  webDir: string;
  authenticate: RequestHandler;
}

/** FHIR interactions: /fhir/*, and provenance asked for as FHIR. */
function isFhirRequest(req: Request): boolean {
  return (
    req.path === "/fhir" ||
    req.path.startsWith("/fhir/") ||
    (req.path === "/v1/provenance" && req.query["format"] === "fhir")
  );
}

const DEFAULT_WEB_DIR = fileURLToPath(new URL("../../web/", import.meta.url));

/**
 * The Express app: thin routes over the ledger's use cases (STYLE.md §6), bearer API keys with
 * roles and scopes, one error format, rate limits per key and per address, metrics and redacted
 * access logs.
 */
export function createApp(opts: AppOptions): Express {
  const metrics = new ApiMetrics(opts.statusProvider, {
    defaults: opts.processMetrics ?? false,
    backlog: () => opts.ledger.backlog(),
    workerHeapBytes: () => opts.ledger.subjectIndex.workerHeapBytes,
    workerCpuSeconds: () => opts.ledger.subjectIndex.workerCpuSeconds,
    workerStatus: () => opts.ledger.subjectIndex.workerStatus,
  });
  opts.ledger.onSealed(() => metrics.batchesSealed.inc());
  metrics.watchStorage(
    () => opts.ledger.storageHealth(),
    () => opts.ledger.storageFreeBytes(),
  );
  metrics.watchLostRanges(
    () => opts.ledger.lostRanges(),
    () => opts.ledger.restorePending !== undefined,
  );
  const queries = new EventQueries(opts.ledger);
  const ctx: ApiContext = {
    ledger: opts.ledger,
    apiKeys: opts.apiKeys,
    queries,
    access: new AccessPolicy({
      patientStaffNames: opts.config.PATIENT_VIEW_STAFF_NAMES,
      nextSeq: () => opts.ledger.nextSeq,
      isInScope: (seq, scope) => queries.isInScope(seq, scope),
    }),
    config: opts.config,
    metrics,
    statusProvider: opts.statusProvider,
    trustPolicy: opts.trustPolicy,
    verifier: opts.verifier,
    trustPolicyDocument: opts.trustPolicyDocument,
    webDir: opts.webDir ?? DEFAULT_WEB_DIR,
    authenticate: authenticate(opts.apiKeys),
  };

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");
  if (opts.config.TRUST_PROXY > 0) app.set("trust proxy", opts.config.TRUST_PROXY);
  app.use(observeRequests(opts.logger, metrics));
  // The checks below run before any route: under /fhir their errors are OperationOutcomes too.
  app.use((req, res, next) => {
    if (isFhirRequest(req)) answerErrorsAsFhir(res);
    next();
  });
  app.use(checkHostHeader());
  app.use(rateLimits(opts.apiKeys, opts.config));
  app.use(
    securityHeaders({
      contentSecurityPolicy: {
        directives: {
          // The verify and patient pages check bundles against an RPC endpoint the user picks
          // (often http://127.0.0.1:8545 or a node of their own), so fetches may go anywhere.
          connectSrc: ["'self'", "http:", "https:"],
          // Upgrading would turn a user's http RPC URL into an https one that does not exist.
          upgradeInsecureRequests: null,
        },
      },
    }),
  );

  // The regulator console served by another log's API reads this one with an auditor key
  // (several logs at once): only the origins configured, only reads, the key in a header.
  const corsOrigins = opts.config.CORS_ORIGINS ?? [];
  if (corsOrigins.length > 0)
    app.use(
      "/v1",
      cors({
        origin: corsOrigins,
        methods: ["GET", "HEAD"],
        allowedHeaders: ["authorization"],
        credentials: false,
        maxAge: 600,
      }),
    );
  // Answers under /v1 carry health data or secrets: no shared or browser cache may keep them.
  app.use("/v1", (_req, res, next) => {
    res.setHeader("Cache-Control", "no-store");
    next();
  });
  registerOpsRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerBatchRoutes(app, ctx);
  registerStatusRoutes(app, ctx);
  registerApiKeyRoutes(app, ctx);
  registerVerifyRoutes(app, ctx);
  registerPatientRoutes(app, ctx);
  registerAuditRoutes(app, ctx, opts.audit);
  registerComplianceRoutes(app, ctx);
  registerProvenanceRoutes(app, ctx, {
    peers: opts.config.PEER_LOGS ?? [],
    peerLimits: {
      timeoutMs: opts.config.PEER_TIMEOUT_MS ?? 10_000,
      ...(opts.config.PEER_MAX_RESPONSE_BYTES !== undefined
        ? { maxResponseBytes: opts.config.PEER_MAX_RESPONSE_BYTES }
        : {}),
      ...(opts.config.PEER_TOTAL_TIMEOUT_MS !== undefined
        ? { totalTimeoutMs: opts.config.PEER_TOTAL_TIMEOUT_MS }
        : {}),
    },
  });
  registerFhirRoutes(app, ctx);

  app.use(() => {
    throw new ApiError("NOT_FOUND", "no such route");
  });
  // A closed database is not a bug: a shutdown in progress (the caller may retry elsewhere), or
  // the reopen that ends a storage failure (the caller retries here in a moment).
  app.use(((err, _req, _res, next) => {
    if (err instanceof ApiError || ctx.queries.isOpen()) {
      next(err);
      return;
    }
    const storage = opts.ledger.storageHealth();
    next(
      storage.state === "failed"
        ? new StorageUnavailableError(storage)
        : new ApiError("UNAVAILABLE", "the ledger is not open; retry later"),
    );
  }) as ErrorRequestHandler);
  app.use(errorHandler(opts.logger, (e) => metrics.storeCorrupt.inc({ record: e.kind })));
  return app;
}

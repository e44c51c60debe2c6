import type { ErrorRequestHandler, Response } from "express";
import type { Logger } from "pino";
import type { FieldIssue } from "../core/event.ts";
import {
  IdempotencyConflictError,
  LedgerError,
  type LedgerErrorCode,
  StorageUnavailableError,
  StoreCorruptError,
} from "../ledger/errors.ts";
import { IngestOverloadedError } from "../ledger/ingest-gate.ts";

/** Every error code the API answers with; the HTTP status is fixed per code. */
export const API_ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  MALFORMED_REQUEST: 400,
  BAD_CURSOR: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  IDEMPOTENCY_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_EVENTS: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  /** A stored record does not decode (services/store/record-codec.ts): named by its key. */
  STORE_CORRUPT: 500,
  UNAVAILABLE: 503,
  /** Ingest is at its backlog bound (services/ledger/ingest-gate.ts); Retry-After says when. */
  OVERLOADED: 503,
  /** The disk refuses writes (store/storage-failure.ts); Retry-After says when to try again. */
  STORAGE_UNAVAILABLE: 503,
  /** A restored copy is being compared with the chain before it accepts events. */
  RESTORE_PENDING: 503,
} as const;

export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

/**
 * The one error shape: `{ "error": { "code", "message", "field"?, "issues"? } }`; an
 * IDEMPOTENCY_CONFLICT also names the `requestId` and the `seq` it already stands for.
 */
export interface ErrorBody {
  error: {
    code: ApiErrorCode;
    message: string;
    field?: string;
    issues?: FieldIssue[];
    requestId?: string;
    seq?: number;
  };
}

/** At most this many field issues are listed in one answer. */
export const MAX_LISTED_ISSUES = 20;

/** A caller's mistake the API answers with a 4xx (or 503 when it cannot serve right now). */
export class ApiError extends Error {
  /** Sent as `Retry-After` (whole seconds) with a 503 the caller should retry. */
  retryAfterSeconds?: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly field?: string,
    readonly issues?: FieldIssue[],
    /** Named in the body next to the message (IDEMPOTENCY_CONFLICT: requestId and seq). */
    readonly extra?: { requestId?: string; seq?: number },
  ) {
    super(message);
    this.name = "ApiError";
  }

  get status(): number {
    return API_ERROR_STATUS[this.code];
  }

  /** A 400 from field issues; the first one names the field and the message. */
  static fromIssues(issues: FieldIssue[]): ApiError {
    const first = issues[0];
    return new ApiError(
      "VALIDATION_FAILED",
      first?.message ?? "invalid request",
      first?.field ?? "$",
      issues.slice(0, MAX_LISTED_ISSUES),
    );
  }

  body(): ErrorBody {
    const error: ErrorBody["error"] = { code: this.code, message: this.message };
    if (this.field !== undefined) error.field = this.field;
    if (this.issues !== undefined) error.issues = this.issues;
    if (this.extra?.requestId !== undefined) error.requestId = this.extra.requestId;
    if (this.extra?.seq !== undefined) error.seq = this.extra.seq;
    return { error };
  }
}

const LEDGER_CODES: Record<LedgerErrorCode, ApiErrorCode> = {
  VALIDATION_FAILED: "VALIDATION_FAILED",
  NOT_FOUND: "NOT_FOUND",
  FORBIDDEN: "FORBIDDEN",
  CONFLICT: "CONFLICT",
  IDEMPOTENCY_CONFLICT: "IDEMPOTENCY_CONFLICT",
  UNAVAILABLE: "UNAVAILABLE",
  BAD_CURSOR: "BAD_CURSOR",
  OVERLOADED: "OVERLOADED",
  RESTORE_PENDING: "RESTORE_PENDING",
};

/**
 * Errors raised while Express read the request: body-parser's (`type` names what went wrong),
 * the decompression stream's (zlib/brotli/zstd errors that body-parser passes on with status
 * 400 and no type), and the router's URIError for a path segment that is not percent-encoding.
 */
function fromRequestReading(error: unknown): ApiError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { type, status, expose, code } = error as {
    type?: unknown;
    status?: unknown;
    expose?: unknown;
    code?: unknown;
  };
  switch (type) {
    case "entity.too.large":
      return new ApiError("PAYLOAD_TOO_LARGE", "request body is too large");
    case "encoding.unsupported": {
      const encoding = (error as { encoding?: unknown }).encoding;
      return typeof encoding === "string"
        ? new ApiError(
            "UNSUPPORTED_MEDIA_TYPE",
            `Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported (identity, gzip, deflate, br)`,
          )
        : new ApiError("UNSUPPORTED_MEDIA_TYPE", "only UTF-8 bodies are accepted");
    }
    case "charset.unsupported":
      return new ApiError("UNSUPPORTED_MEDIA_TYPE", "only UTF-8 bodies are accepted");
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
    case "stream.not.readable":
    case "entity.verify.failed":
      return new ApiError("MALFORMED_JSON", "request body could not be read");
    default:
      break;
  }
  if (status !== 400) return fromHttpError(status, expose);
  if (error instanceof URIError)
    return new ApiError(
      "VALIDATION_FAILED",
      "the URL path is not valid percent-encoding (RFC 3986 §2.1)",
      "path",
    );
  if (type === undefined && typeof code === "string" && "errno" in error)
    return new ApiError(
      "MALFORMED_JSON",
      "the request body is not valid data for its Content-Encoding",
    );
  return fromHttpError(status, expose);
}

/** Other http-errors that are the caller's (static files: 403 on `..`, 404, 416 ranges). */
function fromHttpError(status: unknown, expose: unknown): ApiError | undefined {
  if (typeof status === "number" && status >= 400 && status < 500 && expose === true) {
    if (status === 404) return new ApiError("NOT_FOUND", "not found");
    if (status === 403) return new ApiError("FORBIDDEN", "forbidden");
    return new ApiError("VALIDATION_FAILED", "bad request");
  }
  return undefined;
}

/** 409 IDEMPOTENCY_CONFLICT naming the request's field, the requestId and the original seq. */
export function idempotencyConflict(error: IdempotencyConflictError, field: string): ApiError {
  return new ApiError("IDEMPOTENCY_CONFLICT", error.message, field, undefined, {
    requestId: error.requestId,
    ...(error.seq !== undefined ? { seq: error.seq } : {}),
  });
}

/** A full disk frees up on an operator's time scale: a retry every few seconds is plenty. */
const STORAGE_RETRY_AFTER_SECONDS = 5;
/** Reconciling a restored copy takes a few chain reads (longer while the RPC is down). */
const RESTORE_RETRY_AFTER_SECONDS = 2;

/** Maps any thrown value to the API error it stands for; unknown errors become INTERNAL. */
export function toApiError(error: unknown): { error: ApiError; unexpected: boolean } {
  if (error instanceof ApiError) return { error, unexpected: false };
  if (error instanceof IdempotencyConflictError)
    return { error: idempotencyConflict(error, "requestId"), unexpected: false };
  if (error instanceof LedgerError) {
    const apiError = new ApiError(LEDGER_CODES[error.code], error.message, error.field);
    if (error instanceof IngestOverloadedError)
      apiError.retryAfterSeconds = Math.ceil(error.retryAfterMs / 1000);
    else if (error.code === "RESTORE_PENDING")
      apiError.retryAfterSeconds = RESTORE_RETRY_AFTER_SECONDS;
    return { error: apiError, unexpected: false };
  }
  if (error instanceof StorageUnavailableError) {
    const storage = new ApiError("STORAGE_UNAVAILABLE", error.message);
    storage.retryAfterSeconds = STORAGE_RETRY_AFTER_SECONDS;
    return { error: storage, unexpected: false };
  }
  // Our fault, not the caller's, and named: the operator restores the record from a backup
  // (the audit lists every damaged one), the caller learns that retrying will not help.
  if (error instanceof StoreCorruptError)
    return { error: new ApiError("STORE_CORRUPT", error.message), unexpected: false };
  const parserError = fromRequestReading(error);
  if (parserError) return { error: parserError, unexpected: false };
  return { error: new ApiError("INTERNAL", "internal error"), unexpected: true };
}

export function sendError(res: Response, error: ApiError): void {
  if (error.code === "UNAUTHENTICATED" && !res.hasHeader("WWW-Authenticate"))
    res.setHeader("WWW-Authenticate", 'Bearer realm="veritrail"');
  if (error.retryAfterSeconds !== undefined)
    res.setHeader("Retry-After", String(error.retryAfterSeconds));
  if (res.locals[FHIR_ERRORS] === true) {
    res
      .status(error.status)
      .type(FHIR_JSON)
      .send(JSON.stringify(operationOutcomeOf(error)));
    return;
  }
  res.status(error.status).json(error.body());
}

// ---- FHIR errors ------------------------------------------------------------------------------

export const FHIR_JSON = "application/fhir+json";

/** res.locals flag: this request is a FHIR interaction, so its errors are OperationOutcomes. */
const FHIR_ERRORS = "fhirErrors";

/** Marks the request's errors to be answered as FHIR OperationOutcome (set before auth runs). */
export function answerErrorsAsFhir(res: Response): void {
  res.locals[FHIR_ERRORS] = true;
}

/** Veritrail's error codes, as carried in OperationOutcome.issue.details. */
export const API_ERROR_CODE_SYSTEM = "https://veritrail.dev/fhir/CodeSystem/api-error";

/**
 * The FHIR issue type (http://hl7.org/fhir/issue-type, R4) of each error code. 401 is `login`
 * and 403 `forbidden`: both are the specific children of `security` in that code system.
 */
const ISSUE_TYPE: Record<ApiErrorCode, string> = {
  VALIDATION_FAILED: "invalid",
  MALFORMED_JSON: "structure",
  MALFORMED_REQUEST: "structure",
  BAD_CURSOR: "invalid",
  UNAUTHENTICATED: "login",
  FORBIDDEN: "forbidden",
  NOT_FOUND: "not-found",
  REQUEST_TIMEOUT: "timeout",
  CONFLICT: "conflict",
  IDEMPOTENCY_CONFLICT: "conflict",
  PAYLOAD_TOO_LARGE: "too-costly",
  TOO_MANY_EVENTS: "too-costly",
  UNSUPPORTED_MEDIA_TYPE: "not-supported",
  RATE_LIMITED: "throttled",
  HEADERS_TOO_LARGE: "too-costly",
  INTERNAL: "exception",
  STORE_CORRUPT: "exception",
  UNAVAILABLE: "transient",
  OVERLOADED: "throttled",
  STORAGE_UNAVAILABLE: "transient",
  RESTORE_PENDING: "transient",
};

/** Field issue codes with a more specific FHIR issue type than their error's. */
const FIELD_ISSUE_TYPE: Record<string, string> = {
  // An unknown search parameter: the server does not support it (R4 search §3.1.1.5).
  unknown_field: "not-supported",
  required: "required",
};

export interface OperationOutcome {
  resourceType: "OperationOutcome";
  issue: Array<{
    severity: "fatal" | "error";
    code: string;
    details: { coding: Array<{ system: string; code: string }>; text: string };
    diagnostics: string;
    expression?: string[];
  }>;
}

/**
 * An API error as a FHIR R4 OperationOutcome: one issue per field issue (else one for the
 * error), `diagnostics` naming the field or search parameter, `expression` the field itself.
 */
export function operationOutcomeOf(error: ApiError): OperationOutcome {
  const severity = error.code === "INTERNAL" || error.code === "STORE_CORRUPT" ? "fatal" : "error";
  const details = {
    coding: [{ system: API_ERROR_CODE_SYSTEM, code: error.code }],
    text: error.message,
  };
  const fields: Array<{ field?: string; code?: string; message: string }> =
    error.issues !== undefined && error.issues.length > 0
      ? error.issues
      : [{ ...(error.field !== undefined ? { field: error.field } : {}), message: error.message }];
  return {
    resourceType: "OperationOutcome",
    issue: fields.map((f) => {
      const named = f.field !== undefined && f.field !== "$";
      return {
        severity,
        code:
          (f.code !== undefined ? FIELD_ISSUE_TYPE[f.code] : undefined) ?? ISSUE_TYPE[error.code],
        details,
        diagnostics:
          named && !f.message.includes(f.field!) ? `${f.field}: ${f.message}` : f.message,
        ...(named ? { expression: [f.field!] } : {}),
      };
    }),
  };
}

/**
 * The last middleware. Only real bugs reach the INTERNAL branch; they are logged without their
 * message (a message can quote input, and input can carry patient identifiers) but with the
 * stack frames and the request id, so they can be found.
 */
export function errorHandler(
  logger: Logger,
  onStoreCorrupt: (error: StoreCorruptError) => void = () => undefined,
): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const { error, unexpected } = toApiError(err);
    if (err instanceof StoreCorruptError) {
      onStoreCorrupt(err);
      logger.error(
        {
          reqId: res.locals["requestId"] as string | undefined,
          record: err.kind,
          key: err.shownKey,
        },
        "stored record is corrupt",
      );
    }
    if (unexpected) {
      const stack = err instanceof Error ? (err.stack ?? "").split("\n").slice(1).join("\n") : "";
      logger.error(
        {
          reqId: res.locals["requestId"] as string | undefined,
          errType: err instanceof Error ? err.name : typeof err,
          stack,
        },
        "unexpected error",
      );
    }
    sendError(res, error);
  };
}

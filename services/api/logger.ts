import { type DestinationStream, type Logger, pino } from "pino";

/**
 * Paths pino censors if they ever reach a log call. The API logs only chosen fields (see
 * observe.ts); this is the second line of defence for code that logs an object whole.
 */
export const REDACTED_PATHS = [
  "authorization",
  "*.authorization",
  "headers",
  "*.headers",
  "body",
  "*.body",
  "query",
  "*.query",
  "url",
  "*.url",
  "ip",
  "*.ip",
  "remoteAddress",
  "*.remoteAddress",
  "patient",
  "*.patient",
  "secret",
  "*.secret",
];

/** The service's JSON logger (pino) with the redaction above. */
export function createApiLogger(opts: { level: string }, destination?: DestinationStream): Logger {
  return pino(
    { level: opts.level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } },
    destination,
  );
}

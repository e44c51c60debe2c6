import { pino, type DestinationStream, type Logger } from "pino";

/**
 * The service's JSON logger. Redaction is a second line of defence: code logs route templates,
 * ids and counts, never bodies or patient data; these paths cover the fields that must never
 * appear even if someone logs a request or an event by mistake.
 */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "authorization",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "privateKey",
  "*.privateKey",
  "logSecret",
  "*.logSecret",
  "patient",
  "*.patient",
  "event",
  "*.event",
  "body",
  "*.body",
  "query",
  "*.query",
  "ip",
  "*.ip",
  "remoteAddress",
  "*.remoteAddress",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "veritrail" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

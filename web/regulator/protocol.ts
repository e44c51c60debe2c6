/**
 * Messages between the regulator console (web/regulator.ts) and its verification worker
 * (web/regulator/worker.ts): one worker per log, which reads the log's export (from the API with
 * an auditor key, or from a dropped file), verifies every bundle against the chain and the trust
 * policy, keeps the facts and answers the page's questions about them. Only figures cross back:
 * never a bundle in bulk, never a patient identifier.
 */
import type { Check, VerdictStatus } from "../../services/verifier/verdict.ts";
import type { FigureQuery, Figures } from "./figures.ts";

export type Source =
  /** GET {api}/v1/status and /v1/export with the auditor key (held in memory only). */
  | { kind: "api"; api: string; key: string; logId: string }
  /** A dropped NDJSON export (`veritrail export`, GET /v1/export). */
  | { kind: "file"; file: File };

export interface StartMessage {
  type: "start";
  /** The log's place in the console (figures and proof links name it). */
  index: number;
  source: Source;
  /** The RPC of each chain the policy lists, by chain id. */
  rpcByChain: Record<string, string>;
  /** The veritrail-trust/1 document (parsed JSON) the page loaded. */
  trust: unknown;
  /** Extra confirmations the regulator asks for (the policy's per registry apply anyway). */
  confirmations: number;
  /** Verifier workers for this log (the page shares the cores among its logs). */
  verifiers: number;
}

export type ToWorker =
  | StartMessage
  | { type: "figures"; id: number; query: FigureQuery }
  | { type: "proof"; id: number; seq: number }
  | { type: "result"; id: number };

/** Why a run could not verify anything: each its own message on the page. */
export type RunErrorKind =
  | "key-rejected"
  | "not-auditor"
  | "api-unreachable"
  | "api-error"
  | "wrong-log"
  | "rpc-unreachable"
  | "not-ndjson"
  | "policy"
  /** A worker of the page itself failed (a bug, or the browser ran out of memory). */
  | "worker";

export interface Progress {
  /** Bundles read and verified so far. */
  verified: number;
  /** Bundles the log holds (API: from /v1/status), when known. */
  total: number | null;
  /** Bytes read and the file's size (file sources). */
  bytesRead: number;
  bytesTotal: number | null;
  failed: number;
  elapsedMs: number;
}

export interface RunSummary {
  logId: string | null;
  operator: string | null;
  /** Bundles verified, the time it took, and the chain head the run read. */
  bundles: number;
  durationMs: number;
  head: number | null;
  /** Codes of failed verdicts that say the bundle is not from a log the policy trusts. */
  untrusted: { registry: number; unknownLog: number; example: string | null };
  /** Chain reads sent (eth_call), to show one state read per batch. */
  chainCalls: number;
  /** The RPC could not be read for some bundles (RPC_ERROR verdicts). */
  rpcErrors: number;
  /** Total of the log per /v1/status, when read from the API. */
  logEvents: number | null;
}

export type FromWorker =
  | { type: "progress"; progress: Progress }
  | { type: "done"; summary: RunSummary; progress: Progress }
  | { type: "error"; kind: RunErrorKind; message: string }
  | { type: "figures"; id: number; figures: Figures }
  | {
      type: "proof";
      id: number;
      seq: number;
      /** The bundle as read again (file: its bytes; API: GET /v1/events/{seq}/proof). */
      bundle: unknown;
      status: VerdictStatus;
      code?: string;
      checks: Check[];
    }
  | { type: "proof-error"; id: number; seq: number; message: string }
  | { type: "result"; id: number; result: LogResult };

/** One log's part of the verification result the page exports as JSON. */
export interface LogResult {
  source: string;
  logId: string | null;
  operator: string | null;
  bundles: number;
  durationMs: number;
  chainHead: number | null;
  counts: Record<VerdictStatus, number> & { byCode: Record<string, number> };
  /** Every bundle that did not verify, with the failed step's reason. */
  failures: Array<{
    seq: number | null;
    line: number;
    status: VerdictStatus;
    code?: string;
    step?: string;
    reason?: string;
  }>;
  /** Every bundle's verdict, in export order: [seq, status, code?]. */
  verdicts: Array<[number | null, VerdictStatus, string?]>;
}

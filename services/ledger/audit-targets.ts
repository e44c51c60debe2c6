import { LedgerStore } from "../store/ledger-store.ts";
import { type AuditOptions, type AuditReport, auditLog } from "./audit.ts";
import type { Ledger } from "./ledger.ts";

/**
 * What the regulator's audit (audit.ts) runs on, so that neither the API nor the CLI touches
 * the store: the service's own open ledger (POST /v1/audit), or a log directory that no service
 * holds open (`veritrail audit`).
 */

/** POST /v1/audit: the audit of the ledger this service has open. */
export function auditOpenLedger(ledger: Ledger, opts: AuditOptions = {}): Promise<AuditReport> {
  return auditLog(ledger.store, opts);
}

/** A log directory that cannot be opened for the audit; `locked`: a running service holds it. */
export class AuditOpenError extends Error {
  constructor(
    readonly location: string,
    readonly locked: boolean,
    options?: { cause?: unknown },
  ) {
    super(`cannot open ${location}`, options);
    this.name = "AuditOpenError";
  }
}

/** `veritrail audit`: one log directory, opened for the audit and closed after it. */
export class LogDirectoryAudit {
  private constructor(private readonly store: LedgerStore) {}

  static async open(location: string): Promise<LogDirectoryAudit> {
    try {
      return new LogDirectoryAudit(await LedgerStore.open(location));
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      throw new AuditOpenError(location, cause?.code === "LEVEL_LOCKED", { cause: e });
    }
  }

  /** The log's id, when its metadata is there (the audit reports it missing otherwise). */
  async logId(): Promise<string | undefined> {
    return (await this.store.getMeta())?.logId;
  }

  run(opts: AuditOptions = {}): Promise<AuditReport> {
    return auditLog(this.store, opts);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

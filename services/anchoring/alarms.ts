/**
 * The anchoring alarms: what stops the loop, and which of them an operator can clear on-chain
 * (the loop then clears them by itself). Exposed by /readyz and /metrics.
 */

export type AnchorAlarmCode =
  | "FORK_DETECTED"
  | "CONTRACT_MISSING"
  | "LOG_NOT_REGISTERED"
  | "ANCHORER_MISMATCH"
  | "CHAIN_ID_CHANGED"
  | "NO_ADMIN_KEY"
  | "ANCHOR_REJECTED"
  | "RESTORE_CONFLICT"
  | "LOST_BATCHES_UNANCHORED"
  /** A batch record does not decode (services/store/record-codec.ts): restore it. */
  | "STORE_CORRUPT";

export interface AnchorAlarm {
  code: AnchorAlarmCode;
  message: string;
  /**
   * An operator can fix the cause on-chain (register the log, deploy the registry, rotate the
   * anchorer to this key): the loop keeps re-checking every retryMaxMs and clears the alarm by
   * itself. A fork never clears: the loop stops.
   */
  recoverable: boolean;
  batchNo?: number;
  at: string;
}

const RECOVERABLE_ALARMS: ReadonlySet<AnchorAlarmCode> = new Set([
  "CONTRACT_MISSING",
  "LOG_NOT_REGISTERED",
  "ANCHORER_MISMATCH",
  "LOST_BATCHES_UNANCHORED",
  "STORE_CORRUPT",
]);

/** Raised inside a cycle to stop the loop with an alarm. */
export class AlarmRaised extends Error {
  constructor(readonly alarm: AnchorAlarm) {
    super(alarm.message);
    this.name = "AlarmRaised";
  }
}

export function alarmError(code: AnchorAlarmCode, message: string, batchNo?: number): AlarmRaised {
  return new AlarmRaised({
    code,
    message,
    recoverable: RECOVERABLE_ALARMS.has(code),
    ...(batchNo !== undefined ? { batchNo } : {}),
    at: new Date().toISOString(),
  });
}

/** The alarm a reconcile decision names (reconcile.ts `RaiseAlarm`), ready to throw. */
export function alarmOf(decision: {
  code: AnchorAlarmCode;
  message: string;
  batchNo?: number;
}): AlarmRaised {
  return alarmError(decision.code, decision.message, decision.batchNo);
}

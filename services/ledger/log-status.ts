import { z } from "zod";
import type { BatchRecord } from "../store/batch-record.ts";
import type { Ledger } from "./ledger.ts";
import { lostRangeOfBatch, lostRangesReport } from "./lost-ranges.ts";

/**
 * The operator's view of one log (GET /v1/status, `veritrail status`): how far events have got
 * (accepted → sealed → anchored), the anchoring backlog, alarms, and the trust policy the
 * service publishes. Counts and addresses only: nothing about any event's content.
 */

const Count = z.number().int().nonnegative();

export const LogStatusSchema = z.object({
  log: z.object({
    id: z.string().describe("The logId (bytes32, 0x-hex)."),
    receiptSigner: z.string().describe("Address that signs this log's receipts."),
  }),
  events: z.object({
    accepted: Count.describe("Events acknowledged: seqs 0 … accepted−1."),
    sealed: Count.describe("Events in sealed batches: seqs 0 … sealed−1."),
    anchored: Count.describe("Events in batches anchored with the required confirmations."),
  }),
  batches: z.object({
    sealed: Count.describe("Batches sealed: 0 … sealed−1."),
    anchored: Count.describe("Batches anchored with the required confirmations: 0 … anchored−1."),
  }),
  backlog: z.object({
    unsealedEvents: Count.describe("Accepted events waiting for their batch to seal."),
    unanchoredBatches: Count.describe("Sealed batches not anchored (with confirmations) yet."),
    oldestUnanchoredMs: Count.describe(
      "Age of the oldest sealed batch that is not anchored; 0 when none.",
    ),
  }),
  anchoring: z
    .object({
      state: z.string().describe("running, backoff (retrying after an RPC error), alarm, stopped"),
      contract: z.string().nullable().describe("The registry anchored into."),
      chainId: z.number().int().nullable(),
      inFlight: Count.describe("Anchoring transactions sent, not yet confirmed."),
      lastError: z.string().nullable().describe("The last RPC error while in backoff."),
      receiptSignerRegistered: z
        .boolean()
        .nullable()
        .describe("Whether the registry lists this log's receipt signer (null until checked)."),
    })
    .nullable()
    .describe("null when this service runs no anchor loop."),
  alarms: z
    .array(z.object({ code: z.string(), message: z.string(), recoverable: z.boolean() }))
    .describe("Conditions that stop anchoring until an operator acts (also 503 on /readyz)."),
  storage: z
    .object({
      state: z.enum(["ok", "failed"]).describe("failed: the disk refuses writes (ingest 503)"),
      failures: Count.describe("Times the disk refused a write since the service started."),
      reason: z.string().optional().describe("ENOSPC, EDQUOT, EIO, EROFS or IO_ERROR"),
      since: z.number().int().optional().describe("When writes started failing (ms epoch)."),
    })
    .describe("Whether the ledger can write (docs/operations.md, a full disk)."),
  restorePending: z
    .boolean()
    .describe("A restored copy is being compared with the chain; ingest waits (503)."),
  lost: z
    .object({
      events: Count,
      batches: Count,
      ranges: z.array(
        z.object({
          fromBatchNo: Count,
          batches: Count,
          firstSeq: Count,
          count: Count,
          detectedAt: z.string(),
          restoredFrom: z.string().describe("When the backup restored from was taken."),
        }),
      ),
    })
    .describe(
      "Batches the chain holds that this ledger lost when it was restored from an older backup.",
    ),
  trust: z
    .object({
      fingerprint: z.string().describe("SHA-256(JCS(policy)) of the veritrail-trust/1 policy."),
      issuer: z.string().nullable(),
      file: z.string().nullable(),
    })
    .nullable()
    .describe("The trust policy this service publishes for verifiers; null when none is set."),
});

export type LogStatus = z.infer<typeof LogStatusSchema>;

/** What the anchor loop reports about itself (`AnchorLoop.status()` fits). */
export interface AnchoringStatus {
  state: string;
  lagBatches: number;
  lagMs: number;
  anchoredThrough?: number;
  inFlight?: number;
  lastError?: string;
  alarm?: { code: string; message: string; recoverable?: boolean };
  contract?: string;
  chainId?: number;
  receiptSignerRegistered?: boolean;
  /** The latest reorg deeper than CONFIRMATIONS; an alarm until `reanchoredAt` is set. */
  deepReorg?: { detectedAt: string; fromBatchNo: number; batches: number; reanchoredAt?: string };
  deepReorgs?: number;
}

type StatusLedger = Pick<
  Ledger,
  | "logId"
  | "signerAddress"
  | "nextSeq"
  | "sealedThrough"
  | "listBatches"
  | "getBatch"
  | "lostRanges"
  | "storageHealth"
  | "restorePending"
>;

const SCAN_PAGE = 256;

/**
 * Batches are anchored in batchNo order, so the anchored ones are a prefix: [0, n). The anchor
 * loop knows n; without one (a replica, a test) the last anchored batch is found from the end.
 */
async function anchoredBatchCount(ledger: StatusLedger): Promise<number> {
  let from: number | undefined;
  for (;;) {
    const page = await ledger.listBatches({
      ...(from === undefined ? {} : { fromBatchNo: from }),
      limit: SCAN_PAGE,
      reverse: true,
    });
    const anchored = page.find((r) => r.state === "anchored");
    if (anchored) return anchored.header.batchNo + 1;
    const last = page.at(-1);
    if (!last || last.header.batchNo === 0) return 0;
    from = last.header.batchNo - 1;
  }
}

async function endSeqOf(ledger: StatusLedger, batches: number): Promise<number> {
  if (batches === 0) return 0;
  // The batch before may be one a restore lost (on-chain, not here): its range says where.
  const lost = lostRangeOfBatch(ledger.lostRanges(), batches - 1);
  if (lost) return lost.firstSeq + lost.count;
  const record: BatchRecord = await ledger.getBatch(batches - 1);
  return record.header.firstSeq + record.header.count;
}

export async function logStatus(
  ledger: StatusLedger,
  anchoring: AnchoringStatus | undefined,
  trust: LogStatus["trust"] = null,
): Promise<LogStatus> {
  const [last] = await ledger.listBatches({ limit: 1, reverse: true });
  const sealedBatches = last ? last.header.batchNo + 1 : 0;
  const anchoredBatches = Math.min(
    sealedBatches,
    anchoring?.anchoredThrough ?? (await anchoredBatchCount(ledger)),
  );
  const accepted = ledger.nextSeq;
  const sealed = ledger.sealedThrough;
  return {
    log: { id: ledger.logId, receiptSigner: ledger.signerAddress },
    events: { accepted, sealed, anchored: await endSeqOf(ledger, anchoredBatches) },
    batches: { sealed: sealedBatches, anchored: anchoredBatches },
    backlog: {
      unsealedEvents: Math.max(0, accepted - sealed),
      unanchoredBatches: sealedBatches - anchoredBatches,
      oldestUnanchoredMs:
        anchoring?.lagMs ??
        (anchoredBatches < sealedBatches
          ? Math.max(0, Date.now() - Date.parse((await ledger.getBatch(anchoredBatches)).sealedAt))
          : 0),
    },
    anchoring: anchoring
      ? {
          state: anchoring.state,
          contract: anchoring.contract ?? null,
          chainId: anchoring.chainId ?? null,
          inFlight: anchoring.inFlight ?? 0,
          lastError: anchoring.lastError ?? null,
          receiptSignerRegistered: anchoring.receiptSignerRegistered ?? null,
        }
      : null,
    alarms: anchoring?.alarm
      ? [
          {
            code: anchoring.alarm.code,
            message: anchoring.alarm.message,
            recoverable: anchoring.alarm.recoverable ?? false,
          },
        ]
      : [],
    storage: (() => {
      const h = ledger.storageHealth();
      return h.state === "failed"
        ? { state: h.state, failures: h.failures, reason: h.reason, since: h.since }
        : { state: h.state, failures: h.failures };
    })(),
    restorePending: ledger.restorePending !== undefined,
    lost: lostRangesReport(ledger.lostRanges()),
    trust,
  };
}

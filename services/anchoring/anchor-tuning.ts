import type { Config } from "../config.ts";

/** How the anchor loop paces itself (services/config.ts: CONFIRMATIONS, ANCHOR_*). */
export interface AnchorTuning {
  confirmations: number;
  /** Idle re-check period (the loop also wakes on every sealed batch). */
  tickMs?: number;
  /** Poll period while transactions are in flight or waiting for confirmations. */
  pollMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** A transaction not mined after this long is replaced (same nonce, higher fee). */
  txTimeoutMs?: number;
  /** After this long, a transaction the node no longer knows counts as dropped and is resent. */
  dropCheckMs?: number;
  /** Anchor transactions in flight at once (consecutive nonces). */
  maxInFlight?: number;
  /** How many of the latest anchored batches are re-checked against reorgs. */
  recheckDepth?: number;
  recheckIntervalMs?: number;
  gasLimit?: bigint;
}

const DEFAULTS = {
  tickMs: 1_000,
  pollMs: 100,
  retryMinMs: 250,
  retryMaxMs: 30_000,
  txTimeoutMs: 30_000,
  dropCheckMs: 3_000,
  maxInFlight: 8,
  recheckDepth: 16,
  recheckIntervalMs: 5_000,
  gasLimit: 150_000n,
} as const;

/** The tuning given, every unset (or undefined) setting at its default. */
export function withDefaults(tuning: AnchorTuning): Required<AnchorTuning> {
  const given = Object.fromEntries(
    Object.keys(DEFAULTS)
      .concat("confirmations")
      .map((key) => [key, tuning[key as keyof AnchorTuning]])
      .filter(([, v]) => v !== undefined),
  ) as Partial<AnchorTuning>;
  return { ...DEFAULTS, confirmations: tuning.confirmations, ...given };
}

/** The loop's tuning from the validated config (services/config.ts, ANCHOR_* and friends). */
export function anchorLoopTuning(
  config: Pick<
    Config,
    | "CONFIRMATIONS"
    | "ANCHOR_RETRY_MIN_MS"
    | "ANCHOR_RETRY_MAX_MS"
    | "ANCHOR_TX_TIMEOUT_MS"
    | "ANCHOR_DROP_CHECK_MS"
    | "ANCHOR_POLL_MS"
    | "ANCHOR_MAX_IN_FLIGHT"
    | "ANCHOR_RECHECK_DEPTH"
    | "ANCHOR_RECHECK_INTERVAL_MS"
    | "ANCHOR_GAS_LIMIT"
    | "RPC_TIMEOUT_MS"
  >,
): Omit<Required<AnchorTuning>, "tickMs"> & {
  /** The chain session's RPC timeout (ChainSessionOptions.requestTimeoutMs). */
  requestTimeoutMs: number;
} {
  return {
    confirmations: config.CONFIRMATIONS,
    retryMinMs: config.ANCHOR_RETRY_MIN_MS,
    retryMaxMs: Math.max(config.ANCHOR_RETRY_MIN_MS, config.ANCHOR_RETRY_MAX_MS),
    txTimeoutMs: config.ANCHOR_TX_TIMEOUT_MS,
    dropCheckMs: config.ANCHOR_DROP_CHECK_MS,
    pollMs: config.ANCHOR_POLL_MS,
    maxInFlight: config.ANCHOR_MAX_IN_FLIGHT,
    recheckDepth: config.ANCHOR_RECHECK_DEPTH,
    recheckIntervalMs: config.ANCHOR_RECHECK_INTERVAL_MS,
    gasLimit: BigInt(config.ANCHOR_GAS_LIMIT),
    requestTimeoutMs: config.RPC_TIMEOUT_MS,
  };
}

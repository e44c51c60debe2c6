import { LedgerError } from "./errors.ts";

/**
 * Backpressure in front of the group committer. A receipt promises anchoring by its
 * `anchorDeadline`; if events are acknowledged faster than they are sealed and anchored, the
 * backlog, and with it the time from acknowledgement to anchor, grows without bound, and the
 * promise is eventually broken for every receipt in it. So the log admits an event only while
 * the work ahead of it is bounded:
 *
 * - acknowledged-but-unsealed events (plus those admitted and being written) ≤ maxUnsealedEvents:
 *   the time a new event waits for its batch is at most that many events' sealing;
 * - the oldest acknowledged-but-unsealed event was acknowledged ≤ maxUnsealedAgeMs ago: the
 *   backlog drains in order, so its age is what a new event will wait to be sealed, whatever
 *   the sealing rate of the moment (a busy machine, a large index);
 * - sealed-but-unanchored batches ≤ maxUnanchoredBatches: one transaction per batch, so this
 *   bounds the anchoring work ahead of a new batch, e.g. while the chain is unreachable.
 *
 * Past a bound a caller waits up to `waitMs` for sealing or anchoring to make room (callers are
 * admitted in arrival order) and is then refused with {@link IngestOverloadedError}, which says
 * when to retry. Nothing is acknowledged that the log is not on course to anchor in time.
 */
export interface IngestLimits {
  maxUnsealedEvents: number;
  maxUnsealedAgeMs: number;
  maxUnanchoredBatches: number;
  waitMs: number;
}

/** What the gate reads of the log each time it decides. */
export interface BacklogProbe {
  /** Acknowledged events not sealed yet. */
  unsealedEvents: () => number;
  /** Time since the oldest acknowledged-but-unsealed event was acknowledged (0: none). */
  oldestUnsealedMs: () => number;
  /** Sealed batches not anchored yet (0 when no anchor loop runs). */
  unanchoredBatches: () => number;
}

/** The bound that was hit. */
export type BacklogBound = "unsealed-events" | "unsealed-age" | "unanchored-batches";

/** The typed error of an in-process caller; the API answers it with 503 and Retry-After. */
export class IngestOverloadedError extends LedgerError {
  constructor(
    readonly bound: BacklogBound,
    readonly retryAfterMs: number,
    message: string,
  ) {
    super("OVERLOADED", message);
    this.name = "IngestOverloadedError";
  }
}

export interface IngestGateStatus {
  unsealedEvents: number;
  /** Admitted, not acknowledged yet (being written). */
  admittingEvents: number;
  unanchoredBatches: number;
  /** Callers waiting for room now. */
  waiting: number;
  /** A bound is reached (or callers wait): readiness degrades. */
  saturated: boolean;
  /** Callers refused since start. */
  refused: number;
  limits: IngestLimits;
}

interface Waiter {
  events: number;
  admit: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** Waiting callers also re-check the backlog this often (a safety net; seals and anchors wake them). */
const RECHECK_MS = 50;
const MAX_RETRY_AFTER_S = 60;

export class IngestGate {
  private admitting = 0;
  private readonly waiters: Waiter[] = [];
  private recheck: NodeJS.Timeout | null = null;
  private refusedCount = 0;
  /** Sealing rate estimate (events/ms), for Retry-After. */
  private sealRate = 0;
  private lastSealAt = 0;

  constructor(
    readonly limits: IngestLimits,
    private readonly probe: BacklogProbe,
  ) {}

  /**
   * Resolves when `events` more may be admitted (the caller must call the returned release once
   * they are acknowledged or failed); rejects with IngestOverloadedError after `waitMs`.
   */
  async admit(events: number): Promise<() => void> {
    if (this.waiters.length === 0 && this.fits(events) === undefined) return this.take(events);
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        events,
        admit: () => resolve(this.take(events)),
        reject,
        timer: setTimeout(() => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          this.refusedCount++;
          reject(this.overloaded(events));
          this.wake();
        }, this.limits.waitMs),
      };
      this.waiters.push(waiter);
      this.armRecheck();
    });
  }

  /** Anchoring made progress: admit who fits now. */
  progress(): void {
    this.wake();
  }

  /** Sealing made progress (`events` were sealed): admit who fits now. */
  sealed(events: number): void {
    const now = Date.now();
    if (this.lastSealAt > 0 && now > this.lastSealAt) {
      const rate = events / (now - this.lastSealAt);
      this.sealRate = this.sealRate === 0 ? rate : 0.7 * this.sealRate + 0.3 * rate;
    }
    this.lastSealAt = now;
    this.wake();
  }

  status(): IngestGateStatus {
    const unsealedEvents = this.probe.unsealedEvents();
    const unanchoredBatches = this.probe.unanchoredBatches();
    return {
      unsealedEvents,
      admittingEvents: this.admitting,
      unanchoredBatches,
      waiting: this.waiters.length,
      saturated:
        this.waiters.length > 0 ||
        unsealedEvents + this.admitting >= this.limits.maxUnsealedEvents ||
        this.probe.oldestUnsealedMs() > this.limits.maxUnsealedAgeMs ||
        unanchoredBatches >= this.limits.maxUnanchoredBatches,
      refused: this.refusedCount,
      limits: this.limits,
    };
  }

  /** Refuses every waiting caller (the ledger is closing). */
  close(): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error("ledger is closed"));
    }
    if (this.recheck) clearInterval(this.recheck);
    this.recheck = null;
  }

  /** The bound `events` more would pass, if any. A lone call larger than the bound still goes. */
  private fits(events: number): BacklogBound | undefined {
    if (this.probe.unanchoredBatches() >= this.limits.maxUnanchoredBatches)
      return "unanchored-batches";
    const ahead = this.probe.unsealedEvents() + this.admitting;
    if (ahead > 0 && ahead + events > this.limits.maxUnsealedEvents) return "unsealed-events";
    if (this.probe.oldestUnsealedMs() > this.limits.maxUnsealedAgeMs) return "unsealed-age";
    return undefined;
  }

  private take(events: number): () => void {
    this.admitting += events;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.admitting -= events;
    };
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.events) === undefined) {
      const w = this.waiters.shift()!;
      clearTimeout(w.timer);
      w.admit();
    }
    if (this.waiters.length === 0 && this.recheck) {
      clearInterval(this.recheck);
      this.recheck = null;
    }
  }

  private armRecheck(): void {
    if (this.recheck) return;
    this.recheck = setInterval(() => this.wake(), RECHECK_MS);
    this.recheck.unref();
  }

  private overloaded(events: number): IngestOverloadedError {
    const bound = this.fits(events) ?? "unsealed-events";
    if (bound === "unanchored-batches") {
      return new IngestOverloadedError(
        bound,
        5_000,
        `${this.probe.unanchoredBatches()} sealed batches are waiting to be anchored (bound ${this.limits.maxUnanchoredBatches}); retry later`,
      );
    }
    if (bound === "unsealed-age") {
      const ageMs = this.probe.oldestUnsealedMs();
      return new IngestOverloadedError(
        bound,
        Math.min(MAX_RETRY_AFTER_S * 1000, Math.max(1_000, ageMs - this.limits.maxUnsealedAgeMs)),
        `the oldest of ${this.probe.unsealedEvents()} acknowledged events waiting to be sealed was acknowledged ${(ageMs / 1000).toFixed(1)} s ago (bound ${(this.limits.maxUnsealedAgeMs / 1000).toFixed(1)} s); retry later`,
      );
    }
    const excess =
      this.probe.unsealedEvents() + this.admitting + events - this.limits.maxUnsealedEvents;
    const drainMs = this.sealRate > 0 ? excess / this.sealRate : 1_000;
    const retryAfterMs = Math.min(MAX_RETRY_AFTER_S * 1000, Math.max(1_000, drainMs));
    return new IngestOverloadedError(
      bound,
      retryAfterMs,
      `${this.probe.unsealedEvents()} acknowledged events are waiting to be sealed (bound ${this.limits.maxUnsealedEvents}); retry later`,
    );
  }
}

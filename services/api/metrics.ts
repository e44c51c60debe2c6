import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { BacklogStatus, StorageHealth } from "../ledger/ledger.ts";
import type { SealWorkerStatus } from "../ledger/subject-index-store.ts";
import type { AnchorStatus } from "./app.ts";

/**
 * Prometheus metrics of one app (its own registry, so apps in one process do not collide).
 * Labels are route templates, methods and status codes only: never a URL, a query string or
 * anything a caller sent (DESIGN.md "Never on-chain, never in logs").
 */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<"method" | "route" | "status">;
  readonly httpDuration: Histogram<"method" | "route" | "status">;
  readonly eventsIngested: Counter;
  readonly duplicateEvents: Counter;
  readonly batchesSealed: Counter;
  readonly ingestRefused: Counter<"bound">;
  readonly storeCorrupt: Counter<"record">;

  constructor(
    statusProvider: (() => AnchorStatus) | undefined,
    opts: {
      defaults?: boolean;
      backlog?: () => BacklogStatus;
      workerHeapBytes?: () => number | undefined;
      /** Sealing workers restarted after a loss, and batches sealed on the request thread instead. */
      workerStatus?: () => SealWorkerStatus | undefined;
      /** CPU time the sealing worker thread has used (s), when there is one. */
      workerCpuSeconds?: () => number | undefined;
    } = {},
  ) {
    const registers = [this.registry];
    if (opts.defaults) collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: "veritrail_http_requests_total",
      help: "HTTP requests by method, route template and status",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.httpDuration = new Histogram({
      name: "veritrail_http_request_duration_seconds",
      help: "HTTP request duration by method, route template and status",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.eventsIngested = new Counter({
      name: "veritrail_events_ingested_total",
      help: "Events accepted (new, not duplicates) through the API",
      registers,
    });
    this.duplicateEvents = new Counter({
      name: "veritrail_events_duplicate_total",
      help: "Events answered with an earlier receipt (same organization and requestId)",
      registers,
    });
    this.batchesSealed = new Counter({
      name: "veritrail_batches_sealed_total",
      help: "Batches sealed since the process started",
      registers,
    });
    this.ingestRefused = new Counter({
      name: "veritrail_ingest_refused_total",
      help: "Writes answered 503 OVERLOADED because the backlog stayed at its bound (by bound)",
      labelNames: ["bound"],
      registers,
    });
    this.storeCorrupt = new Counter({
      name: "veritrail_store_corrupt_total",
      help: "Requests answered 500 STORE_CORRUPT: a stored record that does not decode, by record kind (alarm: restore it; veritrail audit lists them all)",
      labelNames: ["record"],
      registers,
    });
    const backlog = opts.backlog;
    if (backlog) {
      new Gauge({
        name: "veritrail_unsealed_events",
        help: "Acknowledged events not sealed into a batch yet",
        registers,
        collect() {
          this.set(backlog().unsealedEvents);
        },
      });
      new Gauge({
        name: "veritrail_unsealed_age_seconds",
        help: "Time since the oldest acknowledged-but-unsealed event was acknowledged",
        registers,
        collect() {
          this.set(backlog().oldestUnsealedMs / 1000);
        },
      });
      new Gauge({
        name: "veritrail_ingest_backlog_limit",
        help: "Backpressure bounds: acknowledged-but-unsealed events and sealed-but-unanchored batches",
        labelNames: ["bound"],
        registers,
        collect() {
          const { limits } = backlog();
          this.set({ bound: "unsealed-events" }, limits.maxUnsealedEvents);
          this.set({ bound: "unanchored-batches" }, limits.maxUnanchoredBatches);
        },
      });
      new Gauge({
        name: "veritrail_ingest_waiting",
        help: "Writes waiting for room under the backlog bound",
        registers,
        collect() {
          this.set(backlog().waiting);
        },
      });
      new Gauge({
        name: "veritrail_ingest_saturated",
        help: "1 while ingest is at its backlog bound (writes are held back or refused)",
        registers,
        collect() {
          this.set(backlog().saturated ? 1 : 0);
        },
      });
    }
    const workerHeap = opts.workerHeapBytes;
    if (workerHeap)
      new Gauge({
        name: "veritrail_seal_worker_heap_bytes",
        help: "V8 heap of the sealing worker thread after its last batch",
        registers,
        collect() {
          const bytes = workerHeap();
          if (bytes !== undefined) this.set(bytes);
        },
      });
    const workerStatus = opts.workerStatus;
    if (workerStatus) {
      new Gauge({
        name: "veritrail_seal_worker_restarts",
        help: "Sealing workers started since the process started because one was lost (out of heap, crashed)",
        registers,
        collect() {
          const s = workerStatus();
          if (s) this.set(s.restarts);
        },
      });
      new Gauge({
        name: "veritrail_seal_worker_local_batches",
        help: "Batches whose index update was prepared on the request thread after it lost the sealing worker twice",
        registers,
        collect() {
          const s = workerStatus();
          if (s) this.set(s.localBatches);
        },
      });
    }
    const workerCpu = opts.workerCpuSeconds;
    new Gauge({
      name: "veritrail_thread_cpu_seconds",
      help: "CPU time (user + system) used since start by the request thread and the sealing worker thread",
      labelNames: ["thread"],
      registers,
      collect() {
        const { user, system } = process.threadCpuUsage();
        this.set({ thread: "main" }, (user + system) / 1e6);
        const worker = workerCpu?.();
        if (worker !== undefined) this.set({ thread: "seal-worker" }, worker);
      },
    });
    const status = () => statusProvider?.();
    new Gauge({
      name: "veritrail_batches_anchored",
      help: "Batches anchored with the required confirmations (batches [0, n) are anchored)",
      registers,
      collect() {
        const s = status();
        if (s?.anchoredThrough !== undefined) this.set(s.anchoredThrough);
      },
    });
    new Gauge({
      name: "veritrail_anchor_lag_batches",
      help: "Sealed batches not yet anchored",
      registers,
      collect() {
        const s = status();
        if (s) this.set(s.lagBatches);
      },
    });
    new Gauge({
      name: "veritrail_anchor_lag_seconds",
      help: "Age of the oldest sealed batch not yet anchored",
      registers,
      collect() {
        const s = status();
        if (s) this.set(s.lagMs / 1000);
      },
    });
    new Gauge({
      name: "veritrail_anchor_deep_reorg",
      help: "1 from a reorg deeper than CONFIRMATIONS (confirmed anchors gone) until every batch it took is anchored again",
      registers,
      collect() {
        const s = status();
        if (s) this.set(s.deepReorg && s.deepReorg.reanchoredAt === undefined ? 1 : 0);
      },
    });
    new Gauge({
      name: "veritrail_anchor_deep_reorgs",
      help: "Reorgs deeper than CONFIRMATIONS seen since the process started",
      registers,
      collect() {
        const s = status();
        if (s) this.set(s.deepReorgs ?? 0);
      },
    });
    new Gauge({
      name: "veritrail_anchor_alarm",
      help: "1 while the anchor loop is stopped by an alarm",
      registers,
      collect() {
        const s = status();
        if (s) this.set(s.alarm ? 1 : 0);
      },
    });
  }

  /**
   * The ledger's disk: an alarm gauge while it refuses writes (by reason: ENOSPC, EDQUOT, EIO,
   * EROFS, IO_ERROR), the failures since start, and the free bytes of its file system.
   */
  watchStorage(health: () => StorageHealth, freeBytes: () => Promise<number | undefined>): void {
    const registers = [this.registry];
    new Gauge({
      name: "veritrail_storage_failed",
      help: "1 while the ledger's disk refuses writes and ingest answers 503 STORAGE_UNAVAILABLE",
      labelNames: ["reason"],
      registers,
      collect() {
        const h = health();
        this.reset();
        this.set(
          { reason: h.state === "failed" ? h.reason : "none" },
          h.state === "failed" ? 1 : 0,
        );
      },
    });
    new Gauge({
      name: "veritrail_storage_failures",
      help: "Times the ledger's disk refused a write since the process started",
      registers,
      collect() {
        this.set(health().failures);
      },
    });
    new Gauge({
      name: "veritrail_storage_free_bytes",
      help: "Bytes available to the service on the file system of its ledger",
      registers,
      async collect() {
        const free = await freeBytes();
        if (free !== undefined) this.set(free);
      },
    });
  }

  /** Events lost in a restore (the chain proves them) and whether a restore is pending. */
  watchLostRanges(
    ranges: () => ReadonlyArray<{ count: number; batches: number }>,
    restorePending: () => boolean,
  ): void {
    const registers = [this.registry];
    new Gauge({
      name: "veritrail_events_lost",
      help: "Events anchored on-chain but lost from this ledger in a restore from an older backup",
      registers,
      collect() {
        this.set(ranges().reduce((n, r) => n + r.count, 0));
      },
    });
    new Gauge({
      name: "veritrail_batches_lost",
      help: "Batches anchored on-chain but lost from this ledger in a restore from an older backup",
      registers,
      collect() {
        this.set(ranges().reduce((n, r) => n + r.batches, 0));
      },
    });
    new Gauge({
      name: "veritrail_restore_pending",
      help: "1 while a restored ledger waits to be compared with the chain (ingest answers 503)",
      registers,
      collect() {
        this.set(restorePending() ? 1 : 0);
      },
    });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }
}

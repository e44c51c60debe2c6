/** Callers waiting until a batch is anchored (tests, `veritrail` commands, benchmarks). */
export class AnchoredWaiters {
  private readonly waiters = new Set<{
    batchNo: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }>();

  /**
   * Resolves once `resolveThrough` reaches `batchNo`; rejects on `rejectAll` or after
   * `timeoutMs` with the message `describeTimeout` gives then.
   */
  add(batchNo: number, timeoutMs: number, describeTimeout: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter = {
        batchNo,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(describeTimeout()));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Batches [0, batchNo] are anchored. */
  resolveThrough(batchNo: number): void {
    for (const w of this.waiters) {
      if (w.batchNo <= batchNo) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  rejectAll(error: Error): void {
    for (const w of this.waiters) w.reject(error);
    this.waiters.clear();
  }
}

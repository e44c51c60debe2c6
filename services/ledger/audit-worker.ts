/**
 * A worker of the regulator's audit (audit.ts): checks the seq ranges the replay hands it
 * (audit-range.ts `checkRange`: bodies opened, entries, bodies, leaves, the batch's tree, receipt
 * groups and paths), and rebuilds the history heads and completeness index of the subject
 * shards it owns. Messages are handled one at a time, in the order they arrive: a shard's batches
 * are folded in batch order.
 */
import { parentPort } from "node:worker_threads";
import { type RangeInput, SubjectShard, checkRange } from "./audit-range.ts";
import { type ToAuditWorker, rangeTransfer, receivedRange } from "./audit-wire.ts";
import { invariant } from "./errors.ts";

const port = parentPort;
invariant(port !== null, "audit-worker.ts runs as a worker thread");

const shards = new Map<number, SubjectShard>();
const shardOf = (shard: number, count: number) => {
  let s = shards.get(shard);
  if (!s) shards.set(shard, (s = new SubjectShard(shard, count)));
  return s;
};

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

async function handle(m: ToAuditWorker): Promise<void> {
  if (m.type === "range") {
    const input: RangeInput = receivedRange(m.range);
    const result = checkRange(input);
    if (result.needHeaders)
      // Checked again with more headers: the range's buffers go back for that.
      port!.postMessage(
        {
          id: m.id,
          result,
          back: { entries: input.entries, bodies: input.bodies, receiptPaths: input.receiptPaths },
        },
        rangeTransfer(input),
      );
    else
      port!.postMessage(
        { id: m.id, result },
        result.shardEvents.map((b) => b.buffer as ArrayBuffer),
      );
  } else if (m.type === "shard") {
    const subtree = await shardOf(m.shard, m.shards).apply(asBuffer(m.events));
    port!.postMessage({ id: m.id, subtree });
  } else {
    const heads = shardOf(m.shard, m.shards).packedHeads();
    port!.postMessage({ id: m.id, heads }, [heads.buffer as ArrayBuffer]);
  }
}

let queue: Promise<void> = Promise.resolve();
port.on("message", (m: ToAuditWorker) => {
  queue = queue.then(() =>
    handle(m).catch((error: unknown) => {
      port.postMessage({ id: m.id, error: error instanceof Error ? error.message : String(error) });
    }),
  );
});

/**
 * The sealing worker: computes each batch's completeness-index update (subject heads, sparse
 * Merkle tree hashing and node encoding: most of a seal's CPU time) on a second core, so sealing
 * keeps up with ingest instead of taking turns with it on the request thread. LevelDB stays with
 * the request thread (one writer, one handle): the worker asks it for the values it does not
 * hold, keeps the prepared update, and hands its ops over a slice at a time as the sealer writes
 * them (subject-index-store.ts).
 */
import { getHeapStatistics } from "node:v8";
import { parentPort } from "node:worker_threads";
import type { IndexReadKind, IndexReads } from "../store/index-records.ts";
import { invariant } from "./errors.ts";
import { IndexUpdater } from "./index-updater.ts";
import {
  type FromWorker,
  PackingSink,
  type ToWorker,
  unpackEvents,
  unpackValues,
} from "./index-wire.ts";

const port = parentPort;
invariant(port !== null, "index-worker.ts runs as a worker thread");

let nextReadId = 0;
const pendingReads = new Map<number, (values: Array<Buffer | undefined>) => void>();
let updater: IndexUpdater | undefined;
const sink = new PackingSink();

const send = (message: FromWorker, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);

function read(kind: IndexReadKind, ids: readonly string[]): Promise<Array<Buffer | undefined>> {
  if (ids.length === 0) return Promise.resolve([]);
  const id = nextReadId++;
  return new Promise((resolve) => {
    pendingReads.set(id, resolve);
    send({ type: "read", id, kind, ids: ids as string[] });
  });
}

/** The store's answers, asked of the request thread (it holds the database). */
const reads: IndexReads = {
  heads: (subjects) => read("heads", subjects),
  nodes: (pathKeys) => read("nodes", pathKeys),
};

/** This thread's CPU time (user + system), µs. */
function threadCpuMicros(): number {
  const { user, system } = process.threadCpuUsage();
  return user + system;
}

function failed(id: number, error: unknown): void {
  const e = error instanceof Error ? error : new Error(String(error));
  send({ type: "failed", id, message: e.message, ...(e.stack ? { stack: e.stack } : {}) });
}

port.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "init":
      updater = new IndexUpdater(reads, message.latestBatchNo, {
        ...(message.nodeCacheMax !== undefined ? { nodeCacheMax: message.nodeCacheMax } : {}),
        ...(message.upperLevels !== undefined ? { upperLevels: message.upperLevels } : {}),
      });
      break;
    case "values": {
      const resolve = pendingReads.get(message.id);
      pendingReads.delete(message.id);
      const v = message.values;
      resolve?.(unpackValues(Buffer.from(v.buffer, v.byteOffset, v.byteLength)));
      break;
    }
    case "committed":
      updater!.committed(message.batchNo);
      break;
    case "prepare": {
      const { id, batchNo } = message;
      updater!.prepare(batchNo, unpackEvents(message.events)).then(
        ({ root, size }) =>
          send({
            type: "prepared",
            id,
            root,
            size,
            cachedNodes: updater!.cachedNodes,
            heapBytes: getHeapStatistics().total_heap_size,
            cpuMicros: threadCpuMicros(),
          }),
        (error: unknown) => failed(id, error),
      );
      break;
    }
    case "emit": {
      const { id } = message;
      try {
        updater!.emit(message.batchNo, message.part, message.from, message.to, sink);
        const packed = sink.take();
        send({ type: "emitted", id, ops: packed }, [packed.buffer as ArrayBuffer]);
      } catch (error) {
        failed(id, error);
      }
      break;
    }
  }
});

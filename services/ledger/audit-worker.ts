/**
 * A worker of the regulator's audit (audit.ts): runs `checkEvents` (leaf hashes, entry form,
 * body commitments) on the ranges the replay hands it, so the audit uses every core.
 */
import { parentPort } from "node:worker_threads";
import { checkEvents } from "./audit.ts";
import { invariant } from "./errors.ts";
import { unpackValues } from "./index-wire.ts";

const port = parentPort;
invariant(port !== null, "audit-worker.ts runs as a worker thread");

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

port.on(
  "message",
  (m: {
    id: number;
    logId: string | null;
    seqs: number[];
    entries: Uint8Array;
    bodies: Uint8Array;
  }) => {
    try {
      const entries = unpackValues(asBuffer(m.entries)) as Buffer[];
      const bodies = unpackValues(asBuffer(m.bodies));
      const checked = checkEvents(m.logId, m.seqs, entries, bodies);
      port.postMessage({ id: m.id, ...checked }, [checked.leaves.buffer as ArrayBuffer]);
    } catch (error) {
      port.postMessage({ id: m.id, error: error instanceof Error ? error.message : String(error) });
    }
  },
);

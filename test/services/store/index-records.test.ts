/**
 * The completeness index's records on a real LevelDB directory: the updater computes a batch's
 * update from what the store hands it (LedgerStore.indexReads) and emits its records through
 * store/index-records.ts. The records are byte for byte those the sealer wrote before the store
 * owned their encodings (test/vectors/store/index-records.json, captured from that code), and
 * records written by that code are read back by the new reads: the format is unchanged.
 */
import { expect } from "chai";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { type Hex, toHex } from "../../../services/core/hex.ts";
import { EMPTY_ROOT, type NodeReader, smtNodeHash } from "../../../services/core/subject-index.ts";
import { UNDO_CHUNK_NODES } from "../../../services/store/index-undo.ts";
import * as records from "../../../services/store/index-records.ts";
import type { BatchOp, LedgerStore } from "../../../services/store/ledger-store.ts";
import { StoreCorruptError } from "../../../services/store/record-codec.ts";
import { BatchOpSink, IndexUpdater } from "../../../services/ledger/index-updater.ts";
import { storeOnDisk } from "../../support/store-on-disk.ts";

interface VectorBatch {
  batchNo: number;
  root: Hex;
  size: { nodes: number; heads: number };
  ops: Array<["put", string, string] | ["del", string]>;
}
const VECTORS = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "../../vectors/store/index-records.json"), "utf8"),
) as { undoChunkNodes: number; batches: VectorBatch[] };

const sha = (text: string) => createHash("sha256").update(text).digest();

/** The events of vector batch `b` (see the vector file's description). */
function eventsOf(b: number) {
  let seq = 0;
  for (let i = 0; i < b; i++) seq += 30 + 10 * i;
  return Array.from({ length: 30 + 10 * b }, (_, i) => ({
    subject: toHex(sha(`subject-${(i * 7 + b * 5) % (12 + b * 8)}`)),
    seq: seq + i,
    leafHash: new Uint8Array(sha(`leaf-${seq + i}`)),
  }));
}

const asVector = (ops: BatchOp[]) =>
  ops.map((o) => (o.type === "put" ? ["put", o.key, o.value.toString("hex")] : ["del", o.key]));

const asOps = (ops: VectorBatch["ops"]): BatchOp[] =>
  ops.map((o) =>
    o[0] === "put"
      ? { type: "put", key: o[1], value: Buffer.from(o[2], "hex") }
      : { type: "del", key: o[1] },
  );

describe("store/index-records (LevelDB on disk)", () => {
  const disk = storeOnDisk("index-records");
  let store: LedgerStore;
  beforeEach(() => {
    store = disk.store;
  });

  it("the vectors were taken with today's packing", () => {
    expect(VECTORS.undoChunkNodes).to.equal(UNDO_CHUNK_NODES);
    expect(VECTORS.batches.map((b) => b.ops.length)).to.deep.equal([45, 71, 30]);
  });

  it("each batch's records are the bytes the sealer wrote before, read back from disk", async () => {
    const updater = new IndexUpdater(store.indexReads, -1, { upperLevels: 2, nodeCacheMax: 4 });
    for (const vector of VECTORS.batches) {
      const { root, size } = await updater.prepare(vector.batchNo, eventsOf(vector.batchNo));
      const sink = new BatchOpSink();
      for (const part of ["undo", "nodes", "heads"] as const)
        updater.emit(vector.batchNo, part, 0, Infinity, sink);
      expect(root).to.equal(vector.root);
      expect(size).to.deep.equal(vector.size);
      expect(asVector(sink.ops)).to.deep.equal(vector.ops);
      // The next batch reads what the earlier code wrote, not what this one emitted.
      await store.write(asOps(vector.ops));
      updater.committed(vector.batchNo);
    }
  });

  it("reads the index at an earlier batch from records the earlier code wrote", async () => {
    for (const vector of VECTORS.batches) await store.write(asOps(vector.ops));
    const last = VECTORS.batches.length - 1;
    for (const vector of VECTORS.batches) {
      const reader: NodeReader = (p) =>
        store.indexNodeAt(records.pathKey(p), vector.batchNo, () => last, -1);
      const top = await reader("");
      expect(toHex(top === undefined ? EMPTY_ROOT : smtNodeHash(top))).to.equal(vector.root);
    }
  });

  it("subject heads: written as JSON under the subject tag, read back, corrupt ones named", async () => {
    const subject = toHex(sha("subject-0"));
    const head = { count: 3, chain: toHex(sha("chain")) };
    const sink = new BatchOpSink();
    records.putSubjectHead(sink, subject, records.encodeSubjectHead(head));
    expect(asVector(sink.ops)).to.deep.equal([
      [
        "put",
        `v:${subject.slice(2)}`,
        Buffer.from(`{"count":3,"chain":"${head.chain}"}`).toString("hex"),
      ],
    ]);
    await store.write(sink.ops);
    const [stored, absent] = await store.indexReads.heads([subject, toHex(sha("nobody"))]);
    expect(absent).to.equal(undefined);
    expect(records.decodeSubjectHead(subject, stored!)).to.deep.equal(head);
    expect(() => records.decodeSubjectHead(subject, Buffer.from('{"count":-1}')))
      .to.throw(StoreCorruptError)
      .with.property("shownKey", "v:<subject>");
  });

  it("nodes and undo records go where the layout says; a removed node is deleted", () => {
    const ops: string[] = [];
    const sink: records.OpSink = {
      put: (key, value) => ops.push(`put ${key} ${Buffer.from(value).toString("hex")}`),
      del: (key) => ops.push(`del ${key}`),
    };
    const node = new Uint8Array(65).fill(7);
    records.putIndexNode(sink, records.pathKey("01"), node);
    records.putIndexNode(sink, records.pathKey("1"), undefined);
    records.putUndoChunk(sink, 18, [
      { key: records.pathKey("01"), before: undefined },
      { key: records.pathKey("1"), before: new Uint8Array([9]) },
    ]);
    expect(ops).to.deep.equal([
      `put i:${records.pathKey("01")} ${"07".repeat(65)}`,
      `del i:${records.pathKey("1")}`,
      `put u:000000000012:${records.pathKey("01")} ` +
        `${(records.pathKey("01").length / 2).toString(16).padStart(2, "0")}${records.pathKey("01")}00` +
        `${(records.pathKey("1").length / 2).toString(16).padStart(2, "0")}${records.pathKey("1")}0109`,
    ]);
  });
});

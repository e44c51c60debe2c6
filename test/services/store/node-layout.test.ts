import { expect } from "chai";
import { Wallet } from "ethers";
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { sha256Of } from "../../../services/core/hash.ts";
import { utf8 } from "../../../services/core/hex.ts";
import {
  buildTree,
  inclusionProofNodeIds,
  leafHash,
  verifyInclusionHex,
} from "../../../services/core/merkle.ts";
import { type AuditReport, auditLog } from "../../../services/ledger/audit.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import {
  type NodeLayout,
  TILE_HEIGHT,
  nodeLayoutOf,
  nodeReads,
  nodeValues,
} from "../../../services/store/node-layout.ts";
import { K } from "../../../services/store/keys.ts";
import { patientEvent } from "../../support/anchored-log.ts";

function leaves(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => sha256Of(utf8(`leaf ${i}`)));
}

/** Resolves `ids` the way a reader does: through the locations, in the stored values. */
function readBack(
  size: number,
  layout: NodeLayout,
  ids: ReturnType<typeof inclusionProofNodeIds>,
  values: Map<string, Buffer>,
): Buffer[] {
  const reads = nodeReads(7, size, ids, layout);
  expect(new Set(reads.keys).size).to.equal(reads.keys.length);
  return ids.map((_, i) => {
    const key = reads.keys[reads.value[i]!]!;
    const offset = reads.offset[i]!;
    const value = values.get(key);
    expect(value, `value ${key}`).to.not.equal(undefined);
    expect(value!.length).to.be.at.least(offset + 32);
    return value!.subarray(offset, offset + 32);
  });
}

describe("store/node-layout: where a batch's Merkle nodes are stored", function () {
  this.timeout(120_000);

  it("property: every audit path resolves to the tree's own nodes, in tiles of any height and level chunks of any size", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3_000 }),
        fc.oneof(
          fc.integer({ min: 1, max: 9 }).map((height): NodeLayout => ({ kind: "tiles", height })),
          fc
            .integer({ min: 1, max: 300 })
            .map((chunkNodes): NodeLayout => ({ kind: "levels", chunkNodes })),
        ),
        fc.array(fc.nat(), { minLength: 1, maxLength: 12 }),
        (size, layout, picks) => {
          const tree = buildTree(leaves(size));
          const values = new Map(nodeValues(7, tree.levels, layout).map((v) => [v.key, v.value]));
          for (const pick of [0, size - 1, ...picks.map((p) => p % size)]) {
            const ids = inclusionProofNodeIds(pick, size);
            const got = readBack(size, layout, ids, values);
            ids.forEach((id, k) =>
              expect(Buffer.from(tree.levels[id.level]![id.index]!).equals(got[k]!)).to.equal(true),
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("tiles store each node below the root once, and leaf 0's path is one read per 7 levels (two in 16,384 leaves)", () => {
    for (const size of [1, 2, 3, 127, 128, 129, 1_000, 10_000, 16_384]) {
      const tree = buildTree(leaves(size));
      const values = nodeValues(0, tree.levels, { kind: "tiles", height: TILE_HEIGHT });
      const belowRoot = tree.levels.slice(0, -1).reduce((n, level) => n + level.length, 0);
      expect(
        values.reduce((n, v) => n + v.value.length, 0),
        `size ${size}`,
      ).to.equal(32 * belowRoot);
      expect(new Set(values.map((v) => v.key)).size).to.equal(values.length);
      for (const v of values) expect(v.value.length).to.be.at.most(32 * (2 ** 8 - 2));
      const { keys } = nodeReads(0, size, inclusionProofNodeIds(0, size), {
        kind: "tiles",
        height: TILE_HEIGHT,
      });
      expect(keys.length, `size ${size}`).to.equal(Math.ceil((tree.levels.length - 1) / 7));
    }
  });

  it("a batch record without tileHeight is read as level chunks", () => {
    expect(nodeLayoutOf({})).to.deep.equal({ kind: "levels", chunkNodes: 256 });
    expect(nodeLayoutOf({ tileHeight: 7 })).to.deep.equal({ kind: "tiles", height: 7 });
  });
});

describe("ledger/node-layout: tiles and level chunks in a real log (LevelDB)", function () {
  this.timeout(120_000);
  let dir: string;
  let ledger: Ledger;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "veritrail-node-layout-"));
    ledger = await Ledger.open({
      location: dir,
      receiptSigner: new Wallet("0x" + "45".repeat(32)),
      batchMaxEvents: 1_000,
      batchMaxWaitMs: 60_000,
      anchorDeadlineMs: 3_600_000,
      groupCommitMaxEvents: 600,
    });
    await ledger.ingest(Array.from({ length: 2_500 }, (_, i) => patientEvent(`MRN-${i % 40}`)));
    await ledger.sealPending();
  });

  after(async () => {
    await ledger?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function levelsOf(record: BatchRecord): Promise<ReadonlyArray<readonly Uint8Array[]>> {
    const { firstSeq, count } = record.header;
    const seqs = Array.from({ length: count }, (_, i) => firstSeq + i);
    const entries = await ledger.store.getEntriesJcs(seqs);
    return buildTree(entries.map((e) => leafHash(utf8(e!)))).levels;
  }

  async function expectProofs(record: BatchRecord, step: number): Promise<void> {
    const { firstSeq, count, eventsRoot } = record.header;
    for (let seq = firstSeq; seq < firstSeq + count; seq += step) {
      const bundle = await ledger.prove(seq);
      const leaf = leafHash(utf8((await ledger.store.getEntryJcs(seq))!));
      verifyInclusionHex(seq - firstSeq, count, leaf, bundle.inclusion, eventsRoot);
    }
  }

  /** Applies the writes, audits, then restores every key touched. */
  async function auditWith(writes: Array<{ key: string; value?: Buffer }>): Promise<AuditReport> {
    const store = ledger.store;
    const originals = await store.getManyRaw(writes.map((w) => w.key));
    await store.write(
      writes.map((w) =>
        w.value === undefined
          ? { type: "del" as const, key: w.key }
          : { type: "put" as const, key: w.key, value: w.value },
      ),
    );
    try {
      return await auditLog(store);
    } finally {
      await store.write(
        writes.map((w, i) =>
          originals[i] === undefined
            ? { type: "del" as const, key: w.key }
            : { type: "put" as const, key: w.key, value: originals[i]! },
        ),
      );
    }
  }

  it("seals in tiles, serves proofs from them and audits clean", async () => {
    const records = await ledger.listBatches({ limit: 10 });
    expect(records.map((r) => r.tileHeight)).to.deep.equal([TILE_HEIGHT, TILE_HEIGHT, TILE_HEIGHT]);
    for (const r of records) await expectProofs(r, 37);
    expect((await auditLog(ledger.store)).findings).to.deep.equal([]);
  });

  it("a batch stored as level chunks (sealed before tiles) still proves and audits clean", async () => {
    const record = await ledger.getBatch(1);
    const levels = await levelsOf(record);
    const tiles = nodeValues(1, levels, nodeLayoutOf(record));
    const chunks = nodeValues(1, levels, { kind: "levels", chunkNodes: 256 });
    const { tileHeight: _, ...legacy } = record;
    await ledger.store.write([
      ...tiles.map((t) => ({ type: "del" as const, key: t.key })),
      ...chunks.map((c) => ({ type: "put" as const, key: c.key, value: c.value })),
      ledger.store.putJsonOp(K.batch(1), legacy),
    ]);
    try {
      await expectProofs(await ledger.getBatch(1), 13);
      expect((await auditLog(ledger.store)).findings).to.deep.equal([]);
      const chunk = chunks[3]!;
      const flipped = Buffer.from(chunk.value);
      flipped[40] = flipped[40]! ^ 0x01;
      const r = await auditWith([{ key: chunk.key, value: flipped }]);
      expect(r.findings.map((f) => [f.kind, f.batchNo])).to.deep.equal([
        ["STORED_LEVELS_MISMATCH", 1],
      ]);
    } finally {
      await ledger.store.write([
        ...chunks.map((c) => ({ type: "del" as const, key: c.key })),
        ...tiles.map((t) => ({ type: "put" as const, key: t.key, value: t.value })),
        ledger.store.putJsonOp(K.batch(1), record),
      ]);
    }
    expect((await auditLog(ledger.store)).findings).to.deep.equal([]);
  });

  it("the audit reports a changed or missing tile, and a record whose tileHeight is not a height", async () => {
    const record = await ledger.getBatch(2);
    const tiles = nodeValues(2, await levelsOf(record), nodeLayoutOf(record));
    const flipped = Buffer.from(tiles[1]!.value);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x80;
    const changed = await auditWith([{ key: tiles[1]!.key, value: flipped }]);
    expect(changed.findings.map((f) => [f.kind, f.batchNo])).to.deep.equal([
      ["STORED_LEVELS_MISMATCH", 2],
    ]);
    expect(changed.findings[0]!.message).to.contain("differ");
    const missing = await auditWith([{ key: tiles[tiles.length - 1]!.key }]);
    expect(missing.findings.map((f) => f.kind)).to.deep.equal(["STORED_LEVELS_MISMATCH"]);
    expect(missing.findings[0]!.message).to.contain("missing");
    for (const tileHeight of [0, -7, 1.5, 33, "7"]) {
      const r = await auditWith([
        {
          key: K.batch(2),
          value: Buffer.from(JSON.stringify({ ...record, tileHeight }), "utf8"),
        },
      ]);
      expect(
        r.findings.map((f) => f.kind),
        `tileHeight ${JSON.stringify(tileHeight)}`,
      ).to.include("BATCH_MALFORMED");
    }
    expect((await auditLog(ledger.store)).findings).to.deep.equal([]);
  });
});

import { expect } from "chai";
import fc from "fast-check";
import { BatchRecordCache } from "../../../services/store/batch-cache.ts";
import type { BatchRecord } from "../../../services/store/batch-record.ts";

/** A record of batch `batchNo` holding seqs [firstSeq, firstSeq + count). */
function record(batchNo: number, firstSeq: number, count: number, state = "sealed"): BatchRecord {
  return {
    header: { batchNo, firstSeq, count } as BatchRecord["header"],
    state: state as BatchRecord["state"],
    sealedAt: "2026-01-01T00:00:00.000Z",
  };
}

describe("store/batch-cache", () => {
  it("property: finds a cached batch by number and by any seq of its range, never another's, within its bound", () => {
    fc.assert(
      fc.property(
        // Batch sizes (a log's consecutive batches), then the order they are read in.
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.integer({ min: 1, max: 16 }),
        (sizes, reads, max) => {
          const all: BatchRecord[] = [];
          let seq = 0;
          sizes.forEach((count, batchNo) => {
            all.push(record(batchNo, seq, count));
            seq += count;
          });
          const cache = new BatchRecordCache(max);
          const used: number[] = [];
          for (const r of reads) {
            const b = all[r % all.length]!;
            cache.put({ ...b, header: { ...b.header } });
            used.push(b.header.batchNo);
            expect(cache.size).to.be.at.most(max);
          }
          // The `max` most recently used are all there.
          const recent = [...new Set([...used].reverse())].slice(0, max);
          for (const batchNo of recent)
            expect(cache.get(batchNo)?.header.batchNo).to.equal(batchNo);
          for (let s = 0; s < seq; s++) {
            const found = cache.forSeq(s);
            if (found === undefined) continue;
            const { firstSeq, count } = found.header;
            expect(s).to.be.within(firstSeq, firstSeq + count - 1);
          }
          expect(cache.forSeq(seq)).to.equal(undefined);
        },
      ),
    );
  });

  it("evicts the least recently used: a lookup by seq counts as a use", () => {
    const cache = new BatchRecordCache(2);
    cache.put(record(0, 0, 10));
    cache.put(record(1, 10, 10));
    expect(cache.forSeq(3)?.header.batchNo).to.equal(0);
    cache.put(record(2, 20, 10));
    expect(cache.get(1)).to.equal(undefined);
    expect(cache.forSeq(15)).to.equal(undefined);
    expect(cache.forSeq(9)?.header.batchNo).to.equal(0);
    expect(cache.forSeq(29)?.header.batchNo).to.equal(2);
  });

  it("takes a record read again, drops one being written, and freezes what it holds", () => {
    const cache = new BatchRecordCache(4);
    cache.put(record(0, 0, 10, "sealed"));
    cache.put(record(1, 10, 10, "sealed"));
    cache.put(record(0, 0, 10, "anchored"));
    const held = cache.forSeq(5)!;
    expect(held.state).to.equal("anchored");
    expect(() => {
      (held as { state: string }).state = "sealed";
    }).to.throw(TypeError);
    expect(() => {
      (held.header as { count: number }).count = 1;
    }).to.throw(TypeError);
    cache.delete(0);
    expect(cache.get(0)).to.equal(undefined);
    expect(cache.forSeq(5)).to.equal(undefined);
    expect(cache.forSeq(15)?.header.batchNo).to.equal(1);
    cache.clear();
    expect(cache.size).to.equal(0);
    expect(cache.forSeq(15)).to.equal(undefined);
  });

  it("holds nothing with a bound of 0", () => {
    const cache = new BatchRecordCache(0);
    cache.put(record(0, 0, 10));
    expect(cache.size).to.equal(0);
    expect(cache.forSeq(0)).to.equal(undefined);
  });
});

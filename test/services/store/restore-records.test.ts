/**
 * A restore's records on a real LevelDB directory: the marker `veritrail restore` leaves and the
 * lost ranges reconciliation records. The bytes are spelled out as the ledger wrote them before
 * the store owned these records (JSON text of the record under `m:restore` / `l:<fromBatchNo>`),
 * so reading old data and writing new data are both checked against the format on disk.
 */
import { expect } from "chai";
import type { LedgerStore } from "../../../services/store/ledger-store.ts";
import { StoreCorruptError } from "../../../services/store/record-codec.ts";
import type { LostRange, RestoreMarker } from "../../../services/store/restore-records.ts";
import { storeOnDisk } from "../../support/store-on-disk.ts";

const MARKER_TEXT =
  '{"restoredAt":"2026-05-04T10:00:00.000Z","backup":{"createdAt":"2026-05-01T09:00:00.000Z","headSeq":120,"lastSealedBatchNo":2,"lastAnchoredBatchNo":1,"manifestSha256":"' +
  "ab".repeat(32) +
  '"}}';

function lostRange(fromBatchNo: number, firstSeq: number): LostRange {
  return {
    fromBatchNo,
    batches: 2,
    firstSeq,
    count: 80,
    detectedAt: "2026-05-04T10:00:01.000Z",
    cause: "restore",
    restoredFrom: {
      createdAt: "2026-05-01T09:00:00.000Z",
      headSeq: firstSeq,
      manifestSha256: "ab".repeat(32),
    },
    chain: { chainId: 31337, contract: `0x${"12".repeat(20)}`, blockNumber: 77 },
    anchors: [
      {
        batchNo: fromBatchNo,
        firstSeq,
        count: 40,
        txHash: `0x${"cd".repeat(32)}`,
        blockNumber: 70,
      },
    ],
  };
}

/** A lost range's record as the ledger wrote it: its JSON text, fields in this order. */
const lostRangeText = (r: LostRange) =>
  `{"fromBatchNo":${r.fromBatchNo},"batches":2,"firstSeq":${r.firstSeq},"count":80,` +
  `"detectedAt":"2026-05-04T10:00:01.000Z","cause":"restore","restoredFrom":{"createdAt":"2026-05-01T09:00:00.000Z","headSeq":${r.firstSeq},"manifestSha256":"${"ab".repeat(32)}"},` +
  `"chain":{"chainId":31337,"contract":"0x${"12".repeat(20)}","blockNumber":77},` +
  `"anchors":[{"batchNo":${r.fromBatchNo},"firstSeq":${r.firstSeq},"count":40,"txHash":"0x${"cd".repeat(32)}","blockNumber":70}]}`;

describe("store/restore-records (LevelDB on disk)", () => {
  const disk = storeOnDisk("restore-records");
  let store: LedgerStore;
  beforeEach(() => {
    store = disk.store;
  });

  /** Every record whose key is not the log's own bookkeeping, as text. */
  async function records(): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for await (const [k, v] of store.scan({ gte: "l:", lt: "n:" })) out.push([k, v.toString()]);
    return out;
  }

  it("reads a marker and lost ranges written as before, in batch order", async () => {
    const later = lostRange(10, 400);
    const earlier = lostRange(3, 120);
    await store.write([
      { type: "put", key: "m:restore", value: Buffer.from(MARKER_TEXT) },
      { type: "put", key: "l:00000000000a", value: Buffer.from(lostRangeText(later)) },
      { type: "put", key: "l:000000000003", value: Buffer.from(lostRangeText(earlier)) },
    ]);
    expect(await store.getRestoreMarker()).to.deep.equal(JSON.parse(MARKER_TEXT) as RestoreMarker);
    expect(await store.getLostRanges()).to.deep.equal([earlier, later]);
  });

  it("ending a restore drops the marker and writes the lost range's bytes as before", async () => {
    await store.write([{ type: "put", key: "m:restore", value: Buffer.from(MARKER_TEXT) }]);
    const lost = lostRange(3, 120);
    await store.completeRestore(lost);
    expect(await records()).to.deep.equal([["l:000000000003", lostRangeText(lost)]]);
    expect(await store.getRestoreMarker()).to.equal(undefined);
  });

  it("ending a restore that lost nothing only drops the marker", async () => {
    await store.write([{ type: "put", key: "m:restore", value: Buffer.from(MARKER_TEXT) }]);
    await store.completeRestore(undefined);
    expect(await records()).to.deep.equal([]);
    expect(await store.getLostRanges()).to.deep.equal([]);
  });

  it("a marker or lost range that does not decode is a StoreCorruptError naming its key", async () => {
    await store.write([
      { type: "put", key: "m:restore", value: Buffer.from('{"restoredAt":1}') },
      { type: "put", key: "l:000000000003", value: Buffer.from("{") },
    ]);
    for (const read of [() => store.getRestoreMarker(), () => store.getLostRanges()]) {
      const error = await read().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(StoreCorruptError);
    }
    const error = (await store.getLostRanges().catch((e: unknown) => e)) as StoreCorruptError;
    expect(error.key).to.equal("l:000000000003");
  });
});

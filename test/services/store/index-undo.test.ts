import { expect } from "chai";
import fc from "fast-check";
import { encodeNodePath } from "../../../services/core/subject-index.ts";
import {
  type UndoRecord,
  encodeUndoChunk,
  findUndo,
  undoChunkRecords,
} from "../../../services/store/index-undo.ts";

const pathKey = (path: string) => Buffer.from(encodeNodePath(path)).toString("hex");
const node = fc.uint8Array({ minLength: 65, maxLength: 65 });
/** Distinct node paths (as `i:` keys name them) with a stored node or none, in key order. */
const records = fc
  .uniqueArray(fc.tuple(fc.stringMatching(/^[01]{0,40}$/), fc.option(node, { nil: undefined })), {
    selector: ([path]) => path,
    maxLength: 300,
  })
  .map((list) =>
    list
      .map(([path, before]): UndoRecord => ({ key: pathKey(path), before }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
  );

describe("store/index-undo (packed undo records)", () => {
  it("round-trips every record in order, a node or none", () => {
    fc.assert(
      fc.property(records, (list) => {
        const back = [...undoChunkRecords(encodeUndoChunk(list))].map((r) => ({
          key: r.key,
          before: r.before === undefined ? undefined : new Uint8Array(r.before),
        }));
        expect(back).to.deep.equal(list);
      }),
    );
  });

  it("finds each record's value and no path it does not hold", () => {
    fc.assert(
      fc.property(records, fc.stringMatching(/^[01]{0,40}$/), (list, other) => {
        const chunk = encodeUndoChunk(list);
        for (const r of list) {
          const found = findUndo(chunk, r.key);
          expect(found.found, r.key).to.equal(true);
          if (found.found)
            expect(found.before && new Uint8Array(found.before)).to.deep.equal(r.before);
        }
        const key = pathKey(other);
        if (!list.some((r) => r.key === key))
          expect(findUndo(chunk, key)).to.deep.equal({ found: false });
      }),
    );
  });

  it("tells a node that was absent before the batch from a node the batch did not change", () => {
    const chunk = encodeUndoChunk([
      { key: pathKey("0"), before: undefined },
      { key: pathKey("01"), before: new Uint8Array(65).fill(3) },
    ]);
    expect(findUndo(chunk, pathKey("0"))).to.deep.equal({ found: true, before: undefined });
    expect(findUndo(chunk, pathKey("1"))).to.deep.equal({ found: false });
    expect(findUndo(chunk, pathKey("01")).found).to.equal(true);
  });
});

/**
 * Short version of bench/reliability scenario (h): a backup taken under load, the machine lost,
 * the backup restored; the restored service and `veritrail audit` against the chain report
 * exactly the batches anchored after the backup as lost, and nothing else.
 */
import { expect } from "chai";
import { runBackupRestore } from "../../bench/reliability/scenarios/backup-restore.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: backup under load, loss, restore (short)", function () {
  this.timeout(240_000);
  it("restores a backup taken under load; the service and the audit report exactly the lost range", async () => {
    const result = await runBackupRestore({
      beforeMs: 3_000,
      afterMs: 3_000,
      writers: 4,
      batchMaxEvents: 64,
    });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

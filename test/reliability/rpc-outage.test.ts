/** Short version of bench/reliability scenario (b): one RPC outage under load. */
import { expect } from "chai";
import { runRpcOutage } from "../../bench/reliability/scenarios/rpc-outage.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: RPC outage under load (short)", function () {
  this.timeout(180_000);
  it("keeps ingesting while the RPC is cut and anchors the backlog once it is back", async () => {
    const result = await runRpcOutage({
      outages: 1,
      outageMs: 4_000,
      writers: 4,
      anchorTimeoutMs: 60_000,
      batchMaxEvents: 64,
      batchMaxWaitMs: 100,
    });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

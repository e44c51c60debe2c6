/** Short version of bench/reliability scenario (c): one dev chain reset under the service. */
import { expect } from "chai";
import { runChainReset } from "../../bench/reliability/scenarios/chain-reset.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: dev chain reset (short)", function () {
  this.timeout(180_000);
  it("re-anchors every batch on a fresh dev chain", async () => {
    const result = await runChainReset({ resets: 1, eventsPerRound: 100, anchorTimeoutMs: 60_000 });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

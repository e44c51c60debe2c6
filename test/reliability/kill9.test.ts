/** Short version of bench/reliability scenario (a): two SIGKILLs under load. */
import { expect } from "chai";
import { runKill9 } from "../../bench/reliability/scenarios/kill9.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: kill -9 under load (short)", function () {
  this.timeout(180_000);
  it("keeps every acknowledged event present, unchanged and provable across SIGKILLs", async () => {
    const result = await runKill9({
      cycles: 2,
      writers: 4,
      minRunMs: 300,
      maxRunMs: 1_200,
      maxEventsPerCycle: 300,
      anchorTimeoutMs: 45_000,
    });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

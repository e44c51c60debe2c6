/** Short version of bench/reliability scenario (e): a few thousand generated bad requests. */
import { expect } from "chai";
import { runBadRequests } from "../../bench/reliability/scenarios/bad-requests.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: bad requests (short)", function () {
  this.timeout(180_000);
  it("answers every bad request without a 5xx and stores nothing", async () => {
    const result = await runBadRequests({ requests: 3_000, concurrency: 16 });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

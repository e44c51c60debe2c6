/** Short version of bench/reliability scenario (f): the privacy scan on a small run. */
import { expect } from "chai";
import { runPrivacyScan } from "../../bench/reliability/scenarios/privacy.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: privacy scan (short)", function () {
  this.timeout(180_000);
  it("finds no patient identifier on-chain, in receipts, logs or metrics; patients see no staff identity and their history verifies as complete", async () => {
    const result = await runPrivacyScan({ events: 120, patients: 20 });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

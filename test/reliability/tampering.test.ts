/** Short version of bench/reliability scenario (d): 150 random byte-level tamperings. */
import { expect } from "chai";
import { runTampering } from "../../bench/reliability/scenarios/tampering.ts";
import { renderResults, scenarioPassed } from "../../bench/reliability/result.ts";

describe("reliability: tampering with LevelDB values (short)", function () {
  this.timeout(180_000);
  it("reports every single-byte change of a body, an entry or any batch-record field, with typed errors only", async () => {
    const result = await runTampering({ tamperings: 150, events: 80 });
    expect(scenarioPassed(result), renderResults([result])).to.equal(true);
  });
});

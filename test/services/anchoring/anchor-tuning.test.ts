import { expect } from "chai";
import { anchorLoopTuning, withDefaults } from "../../../services/anchoring/anchor-tuning.ts";
import { loadConfig } from "../../../services/config.ts";

const DEFAULTS = loadConfig({});

describe("anchor tuning", () => {
  it("takes its tuning from the config (ANCHOR_* variables)", () => {
    const tuning = anchorLoopTuning(
      loadConfig({
        CONFIRMATIONS: "4",
        ANCHOR_RETRY_MIN_MS: "100",
        ANCHOR_RETRY_MAX_MS: "50",
        ANCHOR_TX_TIMEOUT_MS: "45000",
        ANCHOR_MAX_IN_FLIGHT: "3",
        ANCHOR_GAS_LIMIT: "90000",
        RPC_TIMEOUT_MS: "2500",
      }),
    );
    expect(tuning).to.deep.include({
      confirmations: 4,
      retryMinMs: 100,
      retryMaxMs: 100,
      txTimeoutMs: 45_000,
      maxInFlight: 3,
      gasLimit: 90_000n,
      requestTimeoutMs: 2_500,
      dropCheckMs: DEFAULTS.ANCHOR_DROP_CHECK_MS,
    });
    expect(() => loadConfig({ ANCHOR_MAX_IN_FLIGHT: "0" })).to.throw(/ANCHOR_MAX_IN_FLIGHT/);
  });

  it("fills unset settings with the defaults; undefined counts as unset", () => {
    const tuning = withDefaults({ confirmations: 2, pollMs: undefined, maxInFlight: 3 });
    expect(tuning).to.deep.include({ confirmations: 2, pollMs: 100, maxInFlight: 3 });
    expect(tuning).to.deep.include({ txTimeoutMs: 30_000, gasLimit: 150_000n });
    expect(Object.values(tuning).every((v) => v !== undefined)).to.equal(true);
    expect(Object.keys(tuning)).to.have.length(11);
  });

  it("the config's defaults are the loop's: a service without ANCHOR_* runs as a bare loop", () => {
    const { requestTimeoutMs: _timeout, ...fromConfig } = anchorLoopTuning(DEFAULTS);
    const { tickMs: _tick, ...bare } = withDefaults({ confirmations: DEFAULTS.CONFIRMATIONS });
    expect(fromConfig).to.deep.equal(bare);
  });
});

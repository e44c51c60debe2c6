import { expect } from "chai";
import { ConfigError, loadConfig } from "../../services/config.ts";

describe("config: PEER_LOGS (GET /v1/provenance's peer APIs)", () => {
  it("defaults to no peers; parses name=url=auditorKey entries (a URL may hold = in its query)", () => {
    expect(loadConfig({}).PEER_LOGS).to.deep.equal([]);
    expect(
      loadConfig({
        PEER_LOGS: "lab=http://10.0.0.2:8080=vt_abc, hie=https://hie.example/?x=1=vt_def",
      }).PEER_LOGS,
    ).to.deep.equal([
      { name: "lab", url: "http://10.0.0.2:8080", auditorKey: "vt_abc" },
      { name: "hie", url: "https://hie.example/?x=1", auditorKey: "vt_def" },
    ]);
  });

  it("refuses bad entries at start-up, naming the variable and the entry, never the key", () => {
    const bad = [
      "lab",
      "lab=http://x",
      "=http://x=vt_a",
      "local=http://x=vt_a",
      "lab=ftp://x=vt_a",
      "lab=http://x=vt a",
      "lab=http://x=vt_a,lab=http://y=vt_b",
    ];
    for (const value of bad) {
      let error: unknown;
      try {
        loadConfig({ PEER_LOGS: value });
      } catch (e) {
        error = e;
      }
      expect(error, value).to.be.instanceOf(ConfigError);
      const issues = (error as ConfigError).issues;
      expect(issues[0]!.variable, value).to.equal("PEER_LOGS");
      expect(issues[0]!.message, value).to.match(/^entry \d+: /);
      expect(issues[0]!.message, value).to.not.include("vt_");
    }
  });
});

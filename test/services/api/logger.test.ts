import { expect } from "chai";
import { createApiLogger } from "../../../services/api/logger.ts";

describe("api logger", () => {
  it("censors headers, bodies, query strings, URLs, IPs, patients and secrets even when logged whole", () => {
    const lines: string[] = [];
    const logger = createApiLogger({ level: "info" }, { write: (l: string) => void lines.push(l) });
    logger.info(
      {
        req: {
          headers: { authorization: "Bearer vt_SECRET" },
          url: "/v1/events?organization=org:x",
          query: { type: "x" },
          ip: "10.1.2.3",
          body: { patient: { value: "MRN-LOG-1" } },
        },
        patient: { value: "MRN-LOG-2" },
        secret: "vt_SECRET2",
        route: "/v1/events",
      },
      "whole object",
    );
    expect(lines).to.have.length(1);
    const text = lines[0]!;
    for (const leaked of [
      "vt_SECRET",
      "organization=",
      "10.1.2.3",
      "MRN-LOG-1",
      "MRN-LOG-2",
      '"type":"x"',
    ])
      expect(text).to.not.include(leaked);
    expect(text).to.include('"route":"/v1/events"');
    expect(text).to.include("[redacted]");
  });

  it("respects the level", () => {
    const lines: string[] = [];
    const logger = createApiLogger({ level: "warn" }, { write: (l: string) => void lines.push(l) });
    logger.info("quiet");
    logger.warn("loud");
    expect(lines).to.have.length(1);
  });
});

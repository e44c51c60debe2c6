import { expect } from "chai";
import express from "express";
import helmet, { type HelmetOptions } from "helmet";
import { securityHeaders } from "../../../services/api/security-headers.ts";
import { startServer } from "../../../services/api/server.ts";

/** The headers one GET to an app with `middleware` answers with (Date and framing left out). */
async function headersOf(middleware: express.RequestHandler): Promise<Record<string, string>> {
  const app = express();
  app.disable("x-powered-by");
  app.use(middleware);
  app.get("/", (_req, res) => {
    res.end("ok");
  });
  const server = await startServer(app, { host: "127.0.0.1", port: 0 });
  try {
    const res = await fetch(server.url + "/");
    const out: Record<string, string> = {};
    res.headers.forEach((value, name) => {
      if (!["date", "connection", "keep-alive", "content-length"].includes(name)) out[name] = value;
    });
    return out;
  } finally {
    await server.close();
  }
}

describe("api security headers", () => {
  const configs: Array<[string, HelmetOptions]> = [
    ["helmet's defaults", {}],
    [
      "the service's CSP (any RPC endpoint, no upgrade)",
      {
        contentSecurityPolicy: {
          directives: { connectSrc: ["'self'", "http:", "https:"], upgradeInsecureRequests: null },
        },
      },
    ],
    ["HSTS and frame options off", { strictTransportSecurity: false, frameguard: false }],
  ];
  for (const [name, options] of configs)
    it(`the same headers as helmet itself: ${name}`, async () => {
      const expected = await headersOf(helmet(options));
      expect(Object.keys(expected)).to.include("content-security-policy");
      expect(await headersOf(securityHeaders(options))).to.deep.equal(expected);
    });

  it("a configuration helmet refuses is refused when the app is built", () => {
    expect(() =>
      securityHeaders({
        contentSecurityPolicy: { directives: { defaultSrc: ["'self'; script-src *"] } },
      }),
    ).to.throw();
  });
});

import { expect } from "chai";
import express from "express";
import { startServer } from "../../../services/api/server.ts";

describe("api server", () => {
  it("listens on port 0 and closes gracefully: a request in flight finishes, new ones are refused", async () => {
    const app = express();
    let release: () => void = () => undefined;
    const started = new Promise<void>((resolveStarted) => {
      app.get("/slow", async (_req, res) => {
        resolveStarted();
        await new Promise<void>((r) => (release = r));
        res.json({ done: true });
      });
    });
    const server = await startServer(app, { host: "127.0.0.1", port: 0 });
    expect(server.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const inFlight = fetch(`${server.url}/slow`).then(async (r) => ({
      status: r.status,
      body: await r.json(),
    }));
    await started;
    let closed = false;
    const closing = server.close(5_000).then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).to.equal(false);
    let refused = false;
    try {
      await fetch(`${server.url}/slow`);
    } catch {
      refused = true;
    }
    expect(refused).to.equal(true);
    release();
    expect(await inFlight).to.deep.equal({ status: 200, body: { done: true } });
    await closing;
    expect(closed).to.equal(true);
  });

  it("close() resolves promptly with idle keep-alive connections open", async () => {
    const app = express();
    app.get("/", (_req, res) => {
      res.json({ ok: true });
    });
    const server = await startServer(app, { host: "127.0.0.1", port: 0 });
    expect((await fetch(server.url)).status).to.equal(200);
    const t0 = Date.now();
    await server.close(5_000);
    expect(Date.now() - t0).to.be.lessThan(2_000);
  });
});

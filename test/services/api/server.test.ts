import { expect } from "chai";
import express from "express";
import { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import { startServer } from "../../../services/api/server.ts";
import { ConfigError, loadConfig } from "../../../services/config.ts";

/** Writes `bytes`, then waits for the server to answer and close; resolves with what it said. */
function slowClient(
  url: string,
  bytes: string,
  waitMs: number,
): Promise<{ answer: string; closedAfterMs: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = net.connect(Number(port), hostname, () => socket.write(bytes));
    let answer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after ${waitMs} ms; got ${JSON.stringify(answer)}`));
    }, waitMs);
    socket.on("data", (d: Buffer) => (answer += d.toString("utf8")));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ answer, closedAfterMs: Date.now() - t0 });
    });
  });
}

describe("api server", () => {
  it("requests and responses are created with the app's prototypes (Express's swap is a no-op)", async () => {
    const app = express();
    app.post("/echo", express.json(), (req, res) => {
      res.status(201).json({ body: req.body as unknown, ip: req.ip, path: req.path });
    });
    const running = await startServer(app, { host: "127.0.0.1", port: 0 });
    const created: Array<[boolean, boolean, boolean]> = [];
    // Before the app: what Node built, before Express touched it.
    running.server.prependListener("request", (req: IncomingMessage, res: ServerResponse) =>
      created.push([
        Object.getPrototypeOf(req) === app.request,
        Object.getPrototypeOf(res) === app.response,
        req instanceof IncomingMessage && res instanceof ServerResponse,
      ]),
    );
    try {
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${running.url}/echo`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ n: i }),
        });
        expect(res.status).to.equal(201);
        expect(await res.json()).to.deep.equal({ body: { n: i }, ip: "127.0.0.1", path: "/echo" });
      }
      expect(created).to.deep.equal([
        [true, true, true],
        [true, true, true],
      ]);
    } finally {
      await running.close();
    }
  });

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

  describe("timeouts (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS)", () => {
    const timeouts = {
      HTTP_HEADERS_TIMEOUT_MS: 1_000,
      HTTP_REQUEST_TIMEOUT_MS: 2_000,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 500,
    };
    const app = express();
    app.post("/echo", express.raw({ type: () => true }), (req, res) => {
      res.json({ bytes: (req.body as Buffer).length });
    });
    app.get("/", (_req, res) => {
      res.json({ ok: true });
    });

    it("a body shorter than its Content-Length → 408 with the envelope, connection closed", async () => {
      const server = await startServer(app, { host: "127.0.0.1", port: 0, timeouts });
      try {
        const { answer, closedAfterMs } = await slowClient(
          server.url,
          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten b",
          8_000,
        );
        expect(answer).to.match(/^HTTP\/1\.1 408 /);
        expect(answer).to.include('"code":"REQUEST_TIMEOUT"');
        expect(closedAfterMs).to.be.within(1_500, 5_000);
      } finally {
        await server.close(100);
      }
    });

    it("headers that never finish → 408 after the headers timeout", async () => {
      const server = await startServer(app, { host: "127.0.0.1", port: 0, timeouts });
      try {
        const { answer, closedAfterMs } = await slowClient(
          server.url,
          "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1",
          8_000,
        );
        expect(answer).to.match(/^HTTP\/1\.1 408 /);
        expect(closedAfterMs).to.be.within(500, 4_000);
      } finally {
        await server.close(100);
      }
    });

    it("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
      const server = await startServer(app, { host: "127.0.0.1", port: 0, timeouts });
      try {
        const { answer, closedAfterMs } = await slowClient(
          server.url,
          "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
          5_000,
        );
        expect(answer).to.match(/^HTTP\/1\.1 200 /);
        expect(closedAfterMs).to.be.within(300, 3_000);
      } finally {
        await server.close(100);
      }
    });

    it("the defaults bound a slow body (60 s), not Node's 5 minutes; config validates them", () => {
      const c = loadConfig({});
      expect(c.HTTP_HEADERS_TIMEOUT_MS).to.equal(10_000);
      expect(c.HTTP_REQUEST_TIMEOUT_MS).to.equal(60_000);
      expect(c.HTTP_KEEP_ALIVE_TIMEOUT_MS).to.equal(5_000);
      expect(() =>
        loadConfig({ HTTP_HEADERS_TIMEOUT_MS: "30000", HTTP_REQUEST_TIMEOUT_MS: "20000" }),
      ).to.throw(ConfigError, /HTTP_HEADERS_TIMEOUT_MS/);
      expect(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: "10" })).to.throw(
        ConfigError,
        /HTTP_REQUEST_TIMEOUT_MS/,
      );
    });
  });
});

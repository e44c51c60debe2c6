/**
 * A peer API's answers are bounded: size per answer, time per request and per trace, and no
 * redirect to another origin (the auditor key would go with it). The peers here are plain HTTP
 * servers that misbehave in one way each; the log over them is the module under test.
 */
import { expect } from "chai";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readTransferLogs } from "../../../services/ledger/provenance.ts";
import { apiTransferLog } from "../../../services/peers/api-transfer-log.ts";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: Handler): Promise<{ url: string; server: Server; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.url} ${req.headers.authorization ?? "-"}`);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, hits };
}

const EMPTY_PAGE = JSON.stringify({ events: [], nextCursor: null });

describe("provenance: peer answers bounded in size and time, no cross-origin redirects", function () {
  this.timeout(30_000);
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
  const start = async (handler: Handler) => {
    const s = await serve(handler);
    servers.push(s.server);
    return s;
  };

  it("a redirect to another origin is not followed and the key is not sent there", async () => {
    const other = await start((_req, res) => res.end(EMPTY_PAGE));
    const peer = await start((req, res) => {
      res.writeHead(302, { location: `${other.url}${req.url}` }).end();
    });
    const read = await readTransferLogs([apiTransferLog("peer", peer.url, "vt_key", {})]);
    expect(read.unreadable).to.have.length(1);
    expect(read.unreadable[0]!.message).to.match(/redirected to another origin/);
    expect(other.hits).to.deep.equal([]);
  });

  it("a redirect within the peer's origin is followed", async () => {
    const peer = await start((req, res) => {
      if (req.url!.startsWith("/v1/")) res.writeHead(307, { location: `/moved${req.url}` }).end();
      else res.writeHead(200, { "content-type": "application/json" }).end(EMPTY_PAGE);
    });
    const read = await readTransferLogs([apiTransferLog("peer", peer.url, "vt_key", {})]);
    expect(read.unreadable).to.deep.equal([]);
    expect(peer.hits.filter((h) => h.startsWith("/moved/")).length).to.equal(2);
    expect(peer.hits.every((h) => h.endsWith("Bearer vt_key"))).to.equal(true);
  });

  it("an answer over the size bound is cut off at once, not read to the end", async () => {
    const peer = await start((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"events":[');
      const chunk = `${JSON.stringify({ seq: 1, event: null })},`.repeat(1_000);
      // Endless: a megabyte every few milliseconds until the client goes away.
      const timer = setInterval(() => {
        if (!res.write(chunk)) return;
      }, 1);
      res.on("close", () => clearInterval(timer));
    });
    const t0 = Date.now();
    const read = await readTransferLogs([
      apiTransferLog("peer", peer.url, "vt_key", { timeoutMs: 20_000, maxResponseBytes: 1 << 20 }),
    ]);
    expect(read.unreadable[0]!.message).to.match(/over 1048576 bytes/);
    expect(Date.now() - t0).to.be.lessThan(5_000);
  });

  it("a declared Content-Length over the bound is refused before reading", async () => {
    const peer = await start((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": 10_000_000 });
      res.write("{");
    });
    const read = await readTransferLogs([
      apiTransferLog("peer", peer.url, "vt_key", { maxResponseBytes: 1 << 20 }),
    ]);
    expect(read.unreadable[0]!.message).to.match(/over 1048576 bytes/);
  });

  it("a peer that pages forever is cut off by the per-trace time bound", async () => {
    let n = 0;
    const peer = await start((_req, res) => {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ events: [], nextCursor: `c${n++}` }));
    });
    const t0 = Date.now();
    const read = await readTransferLogs([
      apiTransferLog("peer", peer.url, "vt_key", { timeoutMs: 5_000, totalTimeoutMs: 1_000 }),
    ]);
    expect(read.unreadable[0]!.message).to.match(/no answer in time/);
    expect(Date.now() - t0).to.be.within(900, 4_000);
    expect(n).to.be.greaterThan(1);
  });
});

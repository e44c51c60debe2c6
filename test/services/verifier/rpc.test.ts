import { expect } from "chai";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { RpcUnavailableError, connectRpc, redactRpcUrl } from "../../../services/verifier/rpc.ts";
import { freePort } from "../../support/hardhat-node.ts";

async function serve(
  handler: http.RequestListener,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v3/secret-api-key?token=abc`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("verifier rpc", () => {
  it("redactRpcUrl keeps scheme, host and port only (RPC URLs carry API keys)", () => {
    expect(redactRpcUrl("https://eth.example.org/v3/0123456789abcdef?key=x")).to.equal(
      "https://eth.example.org",
    );
    expect(redactRpcUrl("http://127.0.0.1:8545")).to.equal("http://127.0.0.1:8545");
    expect(redactRpcUrl("not a url")).to.equal("<invalid URL>");
  });

  it("pins the chain id the endpoint reports", async () => {
    const site = await serve((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: "0x2105" }));
    });
    try {
      const provider = await connectRpc(site.url);
      expect((await provider.getNetwork()).chainId).to.equal(8453n);
      provider.destroy();
    } finally {
      await site.close();
    }
  });

  it("fails fast with RpcUnavailableError, without the secret part of the URL", async () => {
    const closed = `http://127.0.0.1:${await freePort()}/secret-api-key`;
    const refused = await rejection(connectRpc(closed));
    expect(refused).to.be.instanceOf(RpcUnavailableError);
    expect(refused.message).to.match(/cannot reach the RPC at http:\/\/127\.0\.0\.1:\d+:/);
    expect(refused.message).not.to.include("secret");

    const site = await serve((_req, res) => {
      res.statusCode = 502;
      res.end("<html>bad gateway</html>");
    });
    try {
      const bad = await rejection(connectRpc(site.url));
      expect(bad).to.be.instanceOf(RpcUnavailableError);
      expect(bad.message).not.to.include("secret");
    } finally {
      await site.close();
    }

    const slow = await serve(() => undefined);
    try {
      const started = Date.now();
      const timedOut = await rejection(connectRpc(slow.url, { timeoutMs: 300 }));
      expect(timedOut).to.be.instanceOf(RpcUnavailableError);
      expect(Date.now() - started).to.be.lessThan(5_000);
    } finally {
      slow.close().catch(() => undefined);
    }
  });
});

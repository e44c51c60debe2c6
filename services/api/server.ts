import {
  IncomingMessage,
  STATUS_CODES,
  type Server,
  ServerResponse,
  createServer,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Express } from "express";
import type { Config } from "../config.ts";
import type { ApiErrorCode } from "./errors.ts";

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080 (the real port when 0 was asked for). */
  url: string;
  server: Server;
  /** Stops accepting; requests in flight finish first (connections are cut after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/** The server's timeouts (config: HTTP_HEADERS_TIMEOUT_MS, …); defaults are the config's. */
export type ServerTimeouts = Partial<
  Pick<Config, "HTTP_HEADERS_TIMEOUT_MS" | "HTTP_REQUEST_TIMEOUT_MS" | "HTTP_KEEP_ALIVE_TIMEOUT_MS">
>;

const DEFAULT_TIMEOUTS = {
  HTTP_HEADERS_TIMEOUT_MS: 10_000,
  HTTP_REQUEST_TIMEOUT_MS: 60_000,
  HTTP_KEEP_ALIVE_TIMEOUT_MS: 5_000,
};

/** How often Node looks for requests past their headers/request timeout (its default is 30 s). */
const TIMEOUT_CHECK_MS = 1_000;

/**
 * Answers an HTTP message Node's parser refused (bad request line or header syntax, headers too
 * large, a request not received in time) with the API's error envelope instead of Node's bare
 * status line, then closes the connection: after a parse error the stream cannot be trusted.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable || error.code === "ECONNRESET" || error.code === "EPIPE") {
    socket.destroy();
    return;
  }
  const [status, code, message]: [number, ApiErrorCode, string] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "HEADERS_TOO_LARGE", "request headers are too large"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "REQUEST_TIMEOUT", "the request was not received in time"]
        : [400, "MALFORMED_REQUEST", "the HTTP request is malformed"];
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      "Content-Type: application/json; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Cache-Control: no-store\r\nConnection: close\r\n\r\n" +
      body,
  );
}

/**
 * The request and response classes of `app`'s server: Node's own, creating objects whose
 * prototype is already the app's (`app.request`, `app.response`). Express gives every request
 * and response its app's prototype with Object.setPrototypeOf, which changes the objects'
 * hidden classes after Node built them and leaves V8's property caches across Node's HTTP code
 * and Express generic; on an object that has that prototype already the call changes nothing.
 * A one-route app over loopback spent ≈ 100 µs of request-thread CPU per POST before, ≈ 55 µs
 * after (64 connections, three runs each).
 */
function appMessageClasses(app: Express): {
  IncomingMessage: typeof IncomingMessage;
  ServerResponse: typeof ServerResponse;
} {
  // Reflect.construct runs Node's constructor with `new.target` = the function below, so the
  // object is created with that function's `prototype`, the app's.
  function AppRequest(...args: ConstructorParameters<typeof IncomingMessage>): IncomingMessage {
    return Reflect.construct(IncomingMessage, args, AppRequest) as IncomingMessage;
  }
  AppRequest.prototype = app.request;
  function AppResponse(...args: ConstructorParameters<typeof ServerResponse>): ServerResponse {
    return Reflect.construct(ServerResponse, args, AppResponse) as ServerResponse;
  }
  AppResponse.prototype = app.response;
  return {
    IncomingMessage: AppRequest as unknown as typeof IncomingMessage,
    ServerResponse: AppResponse as unknown as typeof ServerResponse,
  };
}

export async function startServer(
  app: Express,
  opts: { host: string; port: number; timeouts?: ServerTimeouts },
): Promise<RunningServer> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const server = createServer(
    {
      // A slow client (headers or a body trickling in, or shorter than its Content-Length) is
      // answered 408 and cut off instead of holding a connection for Node's 5-minute default.
      headersTimeout: timeouts.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: timeouts.HTTP_REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      // The app checks Host itself and answers a missing or malformed one with its envelope.
      requireHostHeader: false,
      ...appMessageClasses(app),
    },
    app,
  );
  server.keepAliveTimeout = timeouts.HTTP_KEEP_ALIVE_TIMEOUT_MS;
  server.on("clientError", answerClientError);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    server,
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close((err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        });
        // Keep-alive sockets with no request in flight would otherwise hold close() open.
        server.closeIdleConnections();
      }),
  };
}

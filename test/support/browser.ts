/**
 * Headless Chromium (Debian's package, installed by scripts/ensure-chromium.sh) for the page
 * tests, with the flags this closed network needs, and a page that records every request URL
 * and every console or page error so a test can assert on them.
 */
import { stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { type Browser, type Page, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export interface ObservedPage {
  browser: Browser;
  page: Page;
  requests: string[];
  consoleErrors: string[];
}

export async function openObservedPage(opts: { proxy?: string } = {}): Promise<ObservedPage> {
  if (!(await stat(CHROMIUM).catch(() => undefined)))
    throw new Error(`no ${CHROMIUM}: run scripts/ensure-chromium.sh first`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Every request, loopback included (Playwright adds <-loopback> to the bypass rules).
    ...(opts.proxy !== undefined ? { proxy: { server: opts.proxy } } : {}),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(`${m.location().url}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(e.message));
  return { browser, page, requests, consoleErrors };
}

/** One request as it left the browser: what a server (or an eavesdropper) would receive. */
export interface SentRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string;
}

export interface InterceptingProxy {
  /** The proxy's URL, for openObservedPage({ proxy }). */
  url: string;
  /** Requests to an allowed origin: passed on, in the order they arrived. */
  sent: SentRequest[];
  /** Requests to any other origin (and every CONNECT): refused here, never passed on. */
  refused: SentRequest[];
  /** Chromium's own background requests (see chromiumOwn): cut too, kept apart. */
  browserOwn: SentRequest[];
  close(): Promise<void>;
}

/**
 * Requests Chromium makes for itself, whatever page is open (Debian's build: component and
 * extension updates, Google account and autofill services): to Google's hosts only. None of
 * the pages under test names such a host.
 */
export function chromiumOwn(url: string): boolean {
  const host = url.startsWith("https://") || url.startsWith("http://") ? new URL(url).hostname : "";
  return /(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)$/.test(host);
}

/**
 * The browser's only way out: an HTTP proxy on 127.0.0.1 that every request of the page, its
 * workers and their workers goes through (Chromium's network stack, not a per-page hook, so a
 * nested worker cannot bypass it). A request to an origin `allowed` accepts is recorded with
 * its headers and body and passed on; any other is recorded as refused and answered 403 (the
 * page sees a network error where nothing answers, as without the proxy).
 * `control` is an origin the proxy answers itself from `files` (path → [type, body]), so a test
 * can show the interception sees every kind of request.
 */
export async function startInterceptingProxy(
  allowed: (origin: string) => boolean,
  control?: { origin: string; files: Record<string, [string, string]> },
): Promise<InterceptingProxy> {
  const sent: SentRequest[] = [];
  const refused: SentRequest[] = [];
  const browserOwn: SentRequest[] = [];
  const refuse = (entry: SentRequest) => {
    (chromiumOwn(entry.url) ? browserOwn : refused).push(entry);
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let url: URL;
      try {
        url = new URL(req.url ?? "");
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (control && url.origin === control.origin) {
        const file = control.files[url.pathname];
        res
          .writeHead(file ? 200 : 404, { "content-type": file?.[0] ?? "text/plain" })
          .end(file?.[1] ?? "not found");
        return;
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers))
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
      const entry = { url: url.href, method: req.method ?? "", headers, body: body.toString() };
      if (!allowed(url.origin)) {
        refuse(entry);
        // An answer, not a cut connection: Chromium retries a request whose connection closed.
        res.writeHead(403, { "content-type": "text/plain", connection: "close" });
        res.end("refused by the test's proxy");
        return;
      }
      sent.push(entry);
      delete headers["proxy-connection"];
      const upstream = http.request(
        url,
        { method: req.method, headers: { ...headers, connection: "close" } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          // An answer cut upstream is cut for the page too.
          answer.on("aborted", () => req.socket.destroy());
        },
      );
      // Nothing listening (an unreachable API or RPC): the page sees a network error.
      upstream.on("error", () => req.socket.destroy());
      res.on("close", () => upstream.destroy());
      upstream.end(body);
    });
  });
  server.on("connect", (req, socket) => {
    refuse({ url: `https://${req.url ?? ""}`, method: "CONNECT", headers: {}, body: "" });
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    refused,
    browserOwn,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

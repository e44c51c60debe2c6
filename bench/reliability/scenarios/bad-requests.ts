/**
 * (e) Bad requests: generated with fast-check — malformed JSON, wrong types, unknown fields,
 * wrong content types, bodies over MAX_BODY_BYTES, bad paths, seqs, batch numbers, cursors and
 * limits, wrong methods, bad keys, path segments that are not percent-encoding, compressed
 * bodies that do not decompress, malformed and foreign Host headers, malformed HTTP, and slow
 * clients (a body shorter than its Content-Length, headers that never end, a body trickled in)
 * — against the running service. None may get a 5xx, every request gets an answer (a slow one
 * a 408 after HTTP_REQUEST_TIMEOUT_MS), the process must stay up, no answer may build a URL from
 * the Host it was sent, and the stored log must be unchanged: nothing after the last good
 * event, and a sample of stored events byte-identical before and after.
 *
 * Every generated body is invalid by construction (a field of the wrong JSON type, an unknown
 * key under a strict schema, a non-JSON text, …), so no request may store anything.
 */
import fc from "fast-check";
import net from "node:net";
import zlib from "node:zlib";
import { freePort } from "../../../test/support/hardhat-node.ts";
import { Load, WRITER_ORG, call, createKey, writerEvent } from "../client.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess } from "../service-process.ts";
import { withTempDir } from "../workspace.ts";

export interface BadRequestsOptions {
  requests: number;
  concurrency: number;
  log?: (message: string) => void;
}

export const BAD_REQUESTS_DEFAULTS: BadRequestsOptions = { requests: 100_000, concurrency: 32 };

/** Small, so that "over the limit" bodies are cheap to send by the thousand. */
const MAX_BODY_BYTES = 64 * 1024;

interface BadRequest {
  kind: string;
  method: string;
  path: string;
  key: "writer" | "admin" | "auditor" | "none" | "malformed";
  contentType?: string;
  contentEncoding?: string;
  body?: string | Uint8Array<ArrayBuffer>;
  /** Sent over a raw socket as given (a Host or HTTP syntax fetch would not send). */
  raw?: RawRequest;
  /** The answer must not contain this (a foreign Host must never make a URL). */
  mustNotEcho?: string;
}

/** Raw HTTP/1.1 bytes: `head` is the request line and headers without the blank line. */
interface RawRequest {
  head: string;
  body?: Uint8Array;
  /** After sending, go silent (the server must time the request out). */
  stall?: boolean;
  /** Send the body one byte at a time, this many ms apart. */
  trickleMs?: number;
}

/** The service's request timeouts in this scenario, short so slow clients are cheap to test. */
const HEADERS_TIMEOUT_MS = 1_000;
const REQUEST_TIMEOUT_MS = 2_000;

type Json = ReturnType<typeof JSON.parse>;

const jsonType = (v: unknown): string =>
  Array.isArray(v) ? "array" : v === null ? "null" : typeof v;

/** A JSON value whose type differs from `original`'s (never null: some fields are nullable). */
function otherTypeThan(original: unknown): fc.Arbitrary<Json> {
  return fc
    .oneof(
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.string({ maxLength: 20 }),
      fc.boolean(),
      fc.array(fc.integer(), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
    )
    .filter((v) => jsonType(v) !== jsonType(original));
}

const event = writerEvent("bad-template");
const TOP_FIELDS = Object.keys(event);
const AGENT_FIELDS = Object.keys(event.agents[0]!);

const seqLike = fc.oneof(
  fc.constantFrom(
    "-1",
    "1.5",
    "1e3",
    "0x10",
    "NaN",
    "Infinity",
    "%00",
    "%2e%2e",
    "99999999999999999999",
    "%201",
    "1%20",
    "+1",
    "01",
  ),
  // Not a digit string (that is a valid seq), and not a dot segment: the client's URL parser
  // turns `/v1/events/.` into `/v1/events/`, the list route.
  fc
    .string({ minLength: 1, maxLength: 30 })
    .filter((segment) => !/^[0-9]+$/.test(segment) && segment !== "." && segment !== "..")
    .map(encodeURIComponent),
  fc.integer({ min: 1_000_000_000, max: Number.MAX_SAFE_INTEGER }).map(String),
);

const bodies: Record<
  string,
  fc.Arbitrary<Omit<BadRequest, "key"> & { key?: BadRequest["key"] }>
> = {
  malformedJson: fc
    .oneof(
      fc.string({ maxLength: 200 }),
      fc.constantFrom(
        "{",
        "[",
        '{"a":',
        "{'a':1}",
        "[1,]",
        "\u0000",
        "{}}",
        '{"recorded":}',
        "nul",
      ),
      fc.jsonValue().map((v) => JSON.stringify(v).slice(0, -1) + "\u0001"),
    )
    .filter((text) => {
      try {
        JSON.parse(text);
        return false;
      } catch {
        return true;
      }
    })
    .map((body) => ({
      kind: "malformed JSON",
      method: "POST",
      path: "/v1/events",
      contentType: "application/json",
      body,
    })),
  wrongType: fc
    .constantFrom(...TOP_FIELDS)
    .chain((field) =>
      otherTypeThan((event as Record<string, unknown>)[field]).map((value) => ({
        ...event,
        [field]: value,
      })),
    )
    .map((e) => ({
      kind: "wrong type",
      method: "POST",
      path: "/v1/events",
      contentType: "application/json",
      body: JSON.stringify(e),
    })),
  wrongNestedType: fc
    .constantFrom(...AGENT_FIELDS)
    .chain((field) =>
      otherTypeThan((event.agents[0] as Record<string, unknown>)[field]).map((value) => ({
        ...event,
        agents: [{ ...event.agents[0], [field]: value }, ...event.agents.slice(1)],
      })),
    )
    .map((e) => ({
      kind: "wrong type",
      method: "POST",
      path: "/v1/events",
      contentType: "application/json",
      body: JSON.stringify(e),
    })),
  unknownField: fc
    .tuple(
      fc
        .string({ minLength: 1, maxLength: 12 })
        .filter((k) => !TOP_FIELDS.includes(k) && k !== "__proto__"),
      fc.jsonValue({ maxDepth: 2 }),
      fc.boolean(),
    )
    .map(([k, v, nested]) =>
      nested
        ? { ...event, source: { ...event.source, [`x-${k}`]: v } }
        : { ...event, [`x-${k}`]: v },
    )
    .map((e) => ({
      kind: "unknown field",
      method: "POST",
      path: "/v1/events",
      contentType: "application/json",
      body: JSON.stringify(e),
    })),
  wrongContentType: fc
    .constantFrom(
      "text/plain",
      "application/xml",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/json; charset=latin1",
      "application/octet-stream",
      "application/x-ndjson",
      "application/fhir+json",
      "",
    )
    // Pretty-printed: as NDJSON every line is a fragment; as FHIR it is no AuditEvent.
    .map((contentType) => ({
      kind: "wrong content type",
      method: "POST",
      path: "/v1/events",
      contentType,
      body: JSON.stringify(event, null, 2),
    })),
  hugeBody: fc.integer({ min: MAX_BODY_BYTES + 1, max: MAX_BODY_BYTES * 4 }).map((size) => ({
    kind: "huge body",
    method: "POST",
    path: "/v1/events",
    contentType: "application/json",
    body: `[${'"x",'.repeat(Math.ceil(size / 4))}"x"]`,
  })),
  badSeq: fc
    .tuple(seqLike, fc.constantFrom("", "/proof"))
    .map(([seq, tail]) => ({ kind: "bad seq", method: "GET", path: `/v1/events/${seq}${tail}` })),
  badBatch: seqLike.map((n) => ({ kind: "bad batch", method: "GET", path: `/v1/batches/${n}` })),
  badQuery: fc
    .tuple(
      fc.constantFrom(
        "cursor",
        "limit",
        "from",
        "to",
        "organization",
        "purpose",
        "type",
        "unknown",
      ),
      fc.string({ maxLength: 40 }),
    )
    .map(([name, value]) => ({
      kind: "bad cursor/query",
      method: "GET",
      path: `/v1/events?${name}=${encodeURIComponent(value || "~")}&limit=${name === "limit" ? "x" : "0"}`,
    })),
  badPath: fc
    .array(fc.string({ minLength: 1, maxLength: 10 }).map(encodeURIComponent), {
      minLength: 1,
      maxLength: 4,
    })
    .map((parts) => ({
      kind: "bad path",
      method: fc.sample(fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"), 1)[0]!,
      path: `/v1/${parts.join("/")}`,
    })),
  wrongMethod: fc
    .tuple(
      fc.constantFrom("PUT", "PATCH", "DELETE"),
      fc.constantFrom("/v1/events", "/v1/events/0", "/v1/batches", "/v1/verify", "/healthz"),
    )
    .map(([method, path]) => ({ kind: "wrong method", method, path })),
  badKeyBody: fc
    .dictionary(
      fc.constantFrom("role", "organization", "subjectTag", "scope", "x"),
      fc.jsonValue({ maxDepth: 1 }),
      { maxKeys: 4 },
    )
    .filter((d) => jsonType(d.role) !== "string" || d.role === "admin" || "x" in d || "scope" in d)
    .map((d) => ({
      kind: "bad key request",
      method: "POST",
      path: "/v1/keys",
      contentType: "application/json",
      body: JSON.stringify(d),
      key: "admin" as const,
    })),
  badVerify: fc.jsonValue({ maxDepth: 3 }).map((v) => ({
    kind: "bad bundle",
    method: "POST",
    path: "/v1/verify",
    contentType: "application/json",
    body: JSON.stringify(v),
  })),
  badAuth: fc.constantFrom<BadRequest["key"]>("none", "malformed").map((key) => ({
    kind: "bad key",
    method: "POST",
    path: "/v1/events",
    contentType: "application/json",
    body: JSON.stringify(event),
    key,
  })),
};

/** A percent sign not followed by two hex digits, or an escape that is not UTF-8. */
const badEscape = fc.oneof(
  fc.constantFrom(
    "%",
    "%f",
    "%zz",
    "%%",
    "%ff",
    "%c0%af",
    "%E0%A4%A",
    "%80",
    "%ed%a0%80",
    "%fe%ff",
  ),
  fc.integer({ min: 0x80, max: 0xff }).map((b) => `%${b.toString(16)}`),
  fc
    .string({ minLength: 0, maxLength: 1 })
    .filter((c) => !/[0-9A-Fa-f]/.test(c))
    .map((c) => `%${encodeURIComponent(c)}`.replace(/%25/g, "%")),
);

const compressedTargets = ["/v1/events", "/v1/keys", "/v1/verify"] as const;
const eventBytes = Buffer.from(JSON.stringify(event));

/** A Host value that is not RFC 3986 host[:port]. */
const malformedHost = fc.oneof(
  fc.constantFrom(
    "a b",
    "[::1",
    "::1]",
    "x:99999",
    "x:-1",
    "%%",
    "%zz.example",
    "user@example.com",
    "example.com:80:80",
    "example.com/path",
    "exa\u00e9mple.com",
    "[not-an-ip]",
    "host\u0001name",
  ),
  // A space inside the value (the parser trims leading and trailing whitespace, so " x" would
  // arrive as the valid host "x").
  fc
    .string({ minLength: 1, maxLength: 30 })
    .map((t) => `x${t}\u0020x`)
    .filter((t) => !/[\r\n]/.test(t)),
);

const rawRoutes = [
  "/fhir/AuditEvent",
  "/v1/events",
  "/v1/batches",
  "/healthz",
  "/v1/keys",
] as const;

/** The kinds only a raw socket can send; also percent-escapes and compressed bodies. */
const edges: Record<string, fc.Arbitrary<BadRequest>> = {
  percentEscape: fc
    .tuple(
      fc.constantFrom(
        ["GET", "/v1/events/", ""],
        ["GET", "/v1/events/", "/proof"],
        ["GET", "/v1/batches/", ""],
        ["DELETE", "/v1/keys/", ""],
        ["POST", "/v1/events/", "/erasure"],
        ["GET", "/fhir/AuditEvent/", ""],
      ),
      badEscape,
      fc.constantFrom<BadRequest["key"]>("none", "writer", "admin", "auditor"),
    )
    .map(([[method, prefix, suffix], escape, key]) => ({
      kind: "percent-escape",
      method: method!,
      path: `${prefix}${escape}${suffix}`,
      key,
    })),
  brokenCompression: fc
    .tuple(
      fc.constantFrom(...compressedTargets),
      fc.constantFrom("gzip", "deflate", "br", "x-gzip"),
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 64 }).map((b) => new Uint8Array(b)),
        fc
          .integer({ min: 1, max: 30 })
          .map((n) => new Uint8Array(zlib.gzipSync(eventBytes).subarray(0, n))),
        fc
          .integer({ min: 1, max: 30 })
          .map((n) => new Uint8Array(zlib.deflateSync(eventBytes).subarray(0, n))),
      ),
    )
    .map(([path, encoding, body]) => ({
      kind: "broken compressed body",
      method: "POST",
      path,
      key: path === "/v1/keys" ? ("admin" as const) : ("writer" as const),
      contentType: "application/json",
      contentEncoding: encoding,
      body,
    })),
  badHost: fc.tuple(fc.constantFrom(...rawRoutes), malformedHost).map(([path, host]) => ({
    kind: "bad Host",
    method: "GET",
    path,
    key: "auditor" as const,
    raw: { head: `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAUTH\r\nConnection: close` },
  })),
  foreignHost: fc
    .tuple(
      fc.constantFrom("evil.example.com", "attacker.test:8443", "[2001:db8::1]:80"),
      fc.constantFrom("/fhir/AuditEvent?_count=2", "http://evil.example.com/fhir/AuditEvent"),
    )
    .map(([host, target]) => ({
      kind: "foreign Host",
      method: "GET",
      path: target,
      key: "auditor" as const,
      mustNotEcho: host.replace(/:\d+$/, "").replace(/^\[|\]$/g, ""),
      raw: {
        head: `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-Host: ${host}\r\nAUTH\r\nConnection: close`,
      },
    })),
  malformedHttp: fc
    .constantFrom(
      "GET /healthz HTTP/9.Q\r\nHost: x",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here",
      "GE T /healthz HTTP/1.1\r\nHost: x",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1",
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6",
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3",
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}`,
    )
    .map((head) => ({
      kind: "malformed HTTP",
      method: "RAW",
      path: head.split(" ")[1] ?? "",
      key: "none" as const,
      raw: { head: `${head}\r\nConnection: close` },
    })),
};

const SLOW_CLIENT_KINDS = ["short body", "endless headers", "trickled body"] as const;

/** Slow clients: each costs HTTP_REQUEST_TIMEOUT_MS of a worker, so they are drawn rarely. */
const slowClient: fc.Arbitrary<BadRequest> = fc
  .constantFrom(...SLOW_CLIENT_KINDS)
  .map((how) => slowClientRequest(how));

function slowClientRequest(how: (typeof SLOW_CLIENT_KINDS)[number]): BadRequest {
  const head = `POST /v1/events HTTP/1.1\r\nHost: x\r\nAUTH\r\nContent-Type: application/json\r\nContent-Length: ${eventBytes.length}`;
  return {
    kind: `slow client (${how})`,
    method: "POST",
    path: "/v1/events",
    key: "writer" as const,
    raw:
      how === "short body"
        ? { head, body: eventBytes.subarray(0, 10), stall: true }
        : how === "endless headers"
          ? { head: "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1", stall: true }
          : { head, body: eventBytes.subarray(0, 40), trickleMs: 100 },
  };
}

const badRequest: fc.Arbitrary<BadRequest> = fc
  .oneof(
    ...[...Object.values(bodies), ...Object.values(edges)].map((arbitrary) => ({
      arbitrary: arbitrary as fc.Arbitrary<Omit<BadRequest, "key"> & { key?: BadRequest["key"] }>,
      weight: 20,
    })),
    { arbitrary: slowClient, weight: 1 },
  )
  .chain((r) =>
    r.key
      ? fc.constant({ ...r, key: r.key })
      : fc
          .constantFrom<BadRequest["key"]>("writer", "writer", "writer", "none")
          .map((key) => ({ ...r, key })),
  );

/** Kinds that may be answered 2xx: a verdict for a junk bundle, a FHIR search with a foreign Host. */
const EXPECTED_2XX = new Set(["bad bundle", "foreign Host"]);

/** The kinds this scenario must have sent at least once (the rest are drawn often anyway). */
const EDGE_KINDS = {
  "percent-escape": true,
  "broken compressed body": true,
  "bad Host": true,
  "foreign Host": true,
  "malformed HTTP": true,
  "slow client (short body)": true,
  "slow client (endless headers)": true,
  "slow client (trickled body)": true,
};

/**
 * One request over a raw socket: `AUTH` in the head becomes the Authorization header (or goes).
 * Resolves with the answer's status and text once the server has answered and closed.
 */
function rawExchange(
  base: string,
  raw: RawRequest,
  key: string | undefined,
): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  const head = raw.head.replace(/\r\nAUTH/, key ? `\r\nAuthorization: Bearer ${key}` : "");
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let trickle: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 15 s to ${raw.head.split("\r\n")[0]!.slice(0, 60)}`));
    }, 15_000);
    socket.on("connect", () => {
      socket.write(Buffer.from(`${head}\r\n${raw.stall && !raw.body ? "" : "\r\n"}`, "latin1"));
      const body = raw.body;
      if (body === undefined) return;
      if (raw.trickleMs === undefined) {
        socket.write(body);
        return;
      }
      let at = 0;
      trickle = setInterval(() => {
        if (at < body.length && !socket.destroyed) socket.write(body.subarray(at, ++at));
      }, raw.trickleMs);
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      if (trickle) clearInterval(trickle);
      const text = Buffer.concat(chunks).toString("utf8");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1]);
      if (Number.isNaN(status))
        reject(new Error(`closed without an answer: ${raw.head.slice(0, 60)}`));
      else resolve({ status, text });
    });
  });
}

export async function runBadRequests(opts: BadRequestsOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "bad requests",
    `${opts.requests.toLocaleString("en")} requests`,
  );
  const log = opts.log ?? (() => undefined);
  await withTempDir("bad", async (dataDir) => {
    let service: ServiceProcess | undefined;
    try {
      service = await ServiceProcess.start({
        DATA_DIR: dataDir,
        PORT: String(await freePort()),
        EMBEDDED_CHAIN_PORT: String(await freePort()),
        MAX_BODY_BYTES: String(MAX_BODY_BYTES),
        BATCH_MAX_WAIT_MS: "200",
        HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        // The bad requests come from one address, a third of them without a key: limits as low
        // as the defaults would answer most of them 429 and test the limiter instead of the
        // handlers (the limits have tests of their own).
        RATE_LIMIT_PER_MINUTE: "10000000",
        RATE_LIMIT_PER_IP_PER_MINUTE: "10000000",
        LOG_LEVEL: "warn",
      });
      const base = service.baseUrl;
      const adminKey = service.adminKey!;
      const writerKey = await createKey(base, adminKey, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const good = new Load(() => base, writerKey, {
        concurrency: 4,
        maxMs: 60_000,
        maxEvents: 50,
        runId: "good",
      });
      await good.finished();
      const nextSeq = good.acked.length;
      const sample = Array.from({ length: Math.min(20, nextSeq) }, (_, i) =>
        Math.floor((i * nextSeq) / 20),
      );
      const snapshot = async (): Promise<string[]> =>
        Promise.all(
          [...sample, nextSeq - 1, nextSeq].map(async (seq) => {
            const got = await call(base, writerKey, "GET", `/v1/events/${seq}`);
            return `${got.status} ${got.text}`;
          }),
        );
      const before = await snapshot();
      const auditorKey = await createKey(base, adminKey, { role: "auditor" });
      const keyFor = (key: BadRequest["key"]): string | undefined =>
        key === "writer"
          ? writerKey
          : key === "admin"
            ? adminKey
            : key === "auditor"
              ? auditorKey
              : key === "malformed"
                ? "vt_not-a-key"
                : undefined;
      const statuses = new Map<number, number>();
      const fiveHundreds: string[] = [];
      // Some generated requests are harmless reads (a verdict for a junk bundle, an empty page).
      const answered2xx = new Map<string, number>();
      const examples2xx: string[] = [];
      let networkErrors = 0;
      const networkExamples: string[] = [];
      const kinds = new Map<string, number>();
      const slowNot408: string[] = [];
      const echoed: string[] = [];
      let sent = 0;
      const chunk = 1_000;
      while (sent < opts.requests) {
        const batch = fc.sample(badRequest, Math.min(chunk, opts.requests - sent));
        // Slow clients are drawn rarely (weight 1 in ~400): with a few thousand requests one of
        // their kinds could go unsent, so the first chunk starts with one of each.
        if (sent === 0)
          batch.splice(0, SLOW_CLIENT_KINDS.length, ...SLOW_CLIENT_KINDS.map(slowClientRequest));
        let next = 0;
        const worker = async (): Promise<void> => {
          for (let i = next++; i < batch.length; i = next++) {
            const r = batch[i]!;
            const key = keyFor(r.key);
            try {
              let status: number;
              let text: string;
              if (r.raw) {
                ({ status, text } = await rawExchange(base, r.raw, key));
              } else {
                const response = await fetch(base + r.path, {
                  method: r.method,
                  headers: {
                    ...(key ? { authorization: `Bearer ${key}` } : {}),
                    ...(r.contentType !== undefined ? { "content-type": r.contentType } : {}),
                    ...(r.contentEncoding !== undefined
                      ? { "content-encoding": r.contentEncoding }
                      : {}),
                  },
                  ...(r.body !== undefined && r.method !== "GET" ? { body: r.body } : {}),
                  signal: AbortSignal.timeout(15_000),
                });
                status = response.status;
                text = await response.text();
              }
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
              kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
              if (status < 300) answered2xx.set(r.kind, (answered2xx.get(r.kind) ?? 0) + 1);
              if (status < 300 && !EXPECTED_2XX.has(r.kind) && examples2xx.length < 3)
                examples2xx.push(`${r.method} ${r.path.slice(0, 60)}`);
              if (status >= 500)
                fiveHundreds.push(`${status} ${r.kind}: ${r.method} ${r.path.slice(0, 80)}`);
              if (r.kind.startsWith("slow client") && status !== 408)
                slowNot408.push(`${status} ${r.kind}`);
              if (r.mustNotEcho !== undefined && text.includes(r.mustNotEcho))
                echoed.push(`${r.kind}: ${r.mustNotEcho} in the answer to ${r.path}`);
            } catch (error) {
              networkErrors++;
              if (networkExamples.length < 3) networkExamples.push(`${r.kind}: ${String(error)}`);
            }
          }
        };
        await Promise.all(Array.from({ length: opts.concurrency }, worker));
        sent += batch.length;
        if (sent % 10_000 === 0 || sent === opts.requests)
          log(`bad requests: ${sent}/${opts.requests}`);
        if (service.exited) break;
      }
      const health = await call(base, undefined, "GET", "/healthz").catch(() => undefined);
      const after = await snapshot();
      const histogram = [...statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(" ");
      report.check(
        "no 5xx",
        fiveHundreds.length === 0,
        fiveHundreds.length
          ? fiveHundreds.slice(0, 3).join("; ")
          : `${histogram}; 2xx by kind: ${[...answered2xx].map(([k, n]) => `${k} ${n}`).join(", ")}${examples2xx.length ? ` (e.g. ${examples2xx.join(", ")})` : ""}`,
      );
      report.check(
        "no crash: every request answered, service healthy after",
        !service.exited && health?.status === 200 && networkErrors === 0 && sent === opts.requests,
        `${sent} sent, ${networkErrors} without an answer${networkExamples.length ? ` (${networkExamples.join("; ")})` : ""}, /healthz ${health?.status ?? "down"}`,
      );
      const slow = [...kinds].filter(([k]) => k.startsWith("slow client"));
      report.check(
        `slow clients are answered 408 within HTTP_REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms here)`,
        slowNot408.length === 0 && slow.length > 0,
        slowNot408.length
          ? slowNot408.slice(0, 3).join("; ")
          : slow.map(([k, n]) => `${k} ${n}`).join(", "),
      );
      report.check(
        "no answer builds a URL from the Host it was sent (PUBLIC_URL only)",
        echoed.length === 0 && (kinds.get("foreign Host") ?? 0) > 0,
        echoed.length
          ? echoed.slice(0, 3).join("; ")
          : `${kinds.get("foreign Host") ?? 0} requests with a foreign Host / X-Forwarded-Host`,
      );
      report.check(
        "every kind of bad input was sent",
        [...Object.keys(EDGE_KINDS)].every((k) => (kinds.get(k) ?? 0) > 0),
        [...kinds]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(", "),
      );
      const unchanged = before.every((b, i) => b === after[i]);
      report.check(
        "stored data unchanged (nextSeq and sampled events byte-identical)",
        unchanged && before.at(-1)!.startsWith("404"),
        unchanged ? `nextSeq ${nextSeq}; ${sample.length + 1} events identical` : "differs",
      );
    } finally {
      await service?.kill("SIGTERM", 10_000);
    }
  });
  return report.finish();
}

/**
 * Malformed input at the edges of the API: percent-escapes in path parameters, compressed
 * bodies that do not decompress, malformed Host headers and HTTP messages Node's parser refuses.
 * Each is a 4xx with the error envelope (an OperationOutcome under /fhir), never a 500; absolute
 * URLs come from PUBLIC_URL, never from the request's headers.
 */
import { expect } from "chai";
import net from "node:net";
import zlib from "node:zlib";
import { HOSPITAL_ORG } from "../../fixtures/events.ts";
import { PATIENT_1, type TestApi, eventFor, startTestApi } from "./harness.ts";

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: unknown;
}

/** One HTTP/1.1 exchange over a raw socket: the bytes are sent as given, nothing normalised. */
export function rawHttp(
  url: string,
  bytes: string | Buffer,
  timeoutMs = 10_000,
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no answer in time"));
    }, timeoutMs);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (length && Buffer.concat(chunks).length >= end + 4 + Number(length[1])) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = text.slice(end + 4);
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body, json });
    });
    socket.write(bytes);
  });
}

function request(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, "Connection: close"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body) lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([
    Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1"),
    body ?? Buffer.alloc(0),
  ]);
}

function errorCode(answer: RawAnswer): string | undefined {
  const j = answer.json as
    | {
        error?: { code?: string };
        issue?: Array<{ details?: { coding?: Array<{ code?: string }> } }>;
      }
    | undefined;
  return j?.error?.code ?? j?.issue?.[0]?.details?.coding?.[0]?.code;
}

describe("api: malformed input is a 4xx with the error envelope", function () {
  let api: TestApi;
  let host: string;
  before(async () => {
    api = await startTestApi({ config: { PUBLIC_URL: "https://audit.example.org/veritrail/" } });
    host = new URL(api.url).host;
    await api.ledger.ingest([eventFor(HOSPITAL_ORG, PATIENT_1), eventFor(HOSPITAL_ORG, PATIENT_1)]);
  });
  after(async () => {
    await api.close();
  });

  describe("percent-escapes in path parameters", () => {
    const routes: Array<[string, string]> = [
      ["GET", "/v1/events/%ff"],
      ["GET", "/v1/events/%ff/proof"],
      ["GET", "/v1/events/%E0%A4%A/proof"],
      ["GET", "/v1/batches/%c0%af"],
      ["DELETE", "/v1/keys/%ff"],
      ["POST", "/v1/events/%ff/erasure"],
      ["GET", "/fhir/AuditEvent/%ff"],
      ["GET", "/fhir/AuditEvent/%"],
    ];
    for (const [method, path] of routes) {
      for (const key of ["none", "admin", "auditor"] as const) {
        it(`${method} ${path} (${key === "none" ? "no key" : key}) → 400 naming path`, async () => {
          const headers: Record<string, string> = { Host: host };
          if (key !== "none") headers["Authorization"] = `Bearer ${api.secrets[key]}`;
          const answer = await rawHttp(api.url, request(method, path, headers));
          expect(answer.status, answer.body).to.equal(400);
          expect(errorCode(answer)).to.equal("VALIDATION_FAILED");
          if (path.startsWith("/fhir")) {
            expect(answer.json).to.have.property("resourceType", "OperationOutcome");
            expect(answer.json).to.have.nested.property("issue[0].expression[0]", "path");
          } else {
            expect(answer.json).to.have.nested.property("error.field", "path");
          }
        });
      }
    }
  });

  describe("compressed bodies", () => {
    const event = Buffer.from(JSON.stringify(eventFor(HOSPITAL_ORG, PATIENT_1)));
    const broken: Array<[string, Buffer]> = [
      ["gzip", Buffer.from("this is not gzip")],
      ["gzip", zlib.gzipSync(event).subarray(0, 20)],
      ["deflate", Buffer.from("this is not deflate")],
      ["deflate", zlib.deflateSync(event).subarray(0, 12)],
      ["br", Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01])],
      ["gzip", Buffer.alloc(0)],
    ];
    const targets: Array<[string, "writer" | "admin"]> = [
      ["/v1/events", "writer"],
      ["/v1/keys", "admin"],
      ["/v1/verify", "writer"],
    ];
    for (const [route, key] of targets) {
      for (const [encoding, body] of broken) {
        it(`POST ${route} with a broken ${encoding} body (${body.length} bytes) → 400`, async () => {
          const before = api.ledger.nextSeq;
          const answer = await rawHttp(
            api.url,
            request(
              "POST",
              route,
              {
                Host: host,
                Authorization: `Bearer ${api.secrets[key]}`,
                "Content-Type": "application/json",
                "Content-Encoding": encoding,
              },
              body,
            ),
          );
          expect(answer.status, answer.body).to.equal(400);
          expect(errorCode(answer)).to.equal("MALFORMED_JSON");
          expect(api.ledger.nextSeq).to.equal(before);
        });
      }
    }

    it("an unknown Content-Encoding → 415 naming it", async () => {
      const answer = await rawHttp(
        api.url,
        request(
          "POST",
          "/v1/events",
          {
            Host: host,
            Authorization: `Bearer ${api.secrets.writer}`,
            "Content-Type": "application/json",
            "Content-Encoding": "x-squash",
          },
          event,
        ),
      );
      expect(answer.status).to.equal(415);
      expect((answer.json as { error: { message: string } }).error.message).to.include("x-squash");
    });

    it("a valid gzip body is accepted (201)", async () => {
      const answer = await rawHttp(
        api.url,
        request(
          "POST",
          "/v1/events",
          {
            Host: host,
            Authorization: `Bearer ${api.secrets.writer}`,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
          },
          zlib.gzipSync(event),
        ),
      );
      expect(answer.status, answer.body).to.equal(201);
    });
  });

  describe("the Host header", () => {
    const malformed = [
      "a b",
      "[::1",
      "x:99999",
      "%%",
      "exa mple.com:80",
      "user@example.com",
      "example.com:80:80",
      "example.com/path",
      "\u00e9xample.com",
    ];
    for (const bad of malformed) {
      for (const path of ["/fhir/AuditEvent", "/v1/events", "/healthz"]) {
        it(`Host ${JSON.stringify(bad)} on GET ${path} → 400 naming Host`, async () => {
          const answer = await rawHttp(
            api.url,
            request("GET", path, { Host: bad, Authorization: `Bearer ${api.secrets.auditor}` }),
          );
          expect(answer.status, answer.body).to.equal(400);
          expect(errorCode(answer)).to.equal("VALIDATION_FAILED");
        });
      }
    }

    it("two Host headers, or none on HTTP/1.1 → 400 with the envelope", async () => {
      const two = await rawHttp(
        api.url,
        `GET /healthz HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n`,
      );
      expect(two.status).to.equal(400);
      expect(two.json).to.have.nested.property("error.field", "Host");
      const none = await rawHttp(api.url, `GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n`);
      expect(none.status).to.equal(400);
      expect(none.json).to.have.nested.property("error.field", "Host");
      const http10 = await rawHttp(api.url, `GET /healthz HTTP/1.0\r\n\r\n`);
      expect(http10.status).to.equal(200);
    });

    it("valid hosts are accepted: names, IPv4, IPv6 literals, ports, an empty Host", async () => {
      for (const good of [
        "example.org",
        "127.0.0.1:8080",
        "[::1]:80",
        "[fe80::1%25eth0]",
        "x-y.z.",
        "",
      ]) {
        const answer = await rawHttp(api.url, request("GET", "/healthz", { Host: good }));
        expect(answer.status, `${good}: ${answer.body}`).to.equal(200);
      }
    });

    it("absolute URLs come from PUBLIC_URL, never from Host or the request target", async () => {
      for (const target of [
        "/fhir/AuditEvent?_count=1",
        "http://evil.example.com/fhir/AuditEvent?_count=1",
      ]) {
        const answer = await rawHttp(
          api.url,
          request("GET", target, {
            Host: "evil.example.com",
            "X-Forwarded-Host": "evil.example.com",
            "X-Forwarded-Proto": "https",
            Authorization: `Bearer ${api.secrets.auditor}`,
          }),
        );
        expect(answer.status, answer.body).to.equal(200);
        expect(answer.body).to.not.include("evil.example.com");
        const bundle = answer.json as {
          link: Array<{ relation: string; url: string }>;
          entry: Array<{ fullUrl: string }>;
        };
        expect(bundle.link.find((l) => l.relation === "self")!.url).to.equal(
          "https://audit.example.org/veritrail/fhir/AuditEvent?_count=1",
        );
        const next = bundle.link.find((l) => l.relation === "next")!.url;
        expect(next).to.match(
          /^https:\/\/audit\.example\.org\/veritrail\/fhir\/AuditEvent\?_count=1&_cursor=/,
        );
        expect(bundle.entry[0]!.fullUrl).to.equal(
          "https://audit.example.org/veritrail/fhir/AuditEvent/0",
        );
      }
    });
  });

  describe("HTTP messages Node's parser refuses", () => {
    it("a malformed request line → 400 MALFORMED_REQUEST with the envelope", async () => {
      const answer = await rawHttp(api.url, "GET /healthz HTTP/9.Q\r\nHost: x\r\n\r\n");
      expect(answer.status).to.equal(400);
      expect(errorCode(answer)).to.equal("MALFORMED_REQUEST");
    });

    it("a header line without a colon → 400 MALFORMED_REQUEST", async () => {
      const answer = await rawHttp(
        api.url,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n",
      );
      expect(answer.status).to.equal(400);
      expect(errorCode(answer)).to.equal("MALFORMED_REQUEST");
    });

    it("headers over Node's limit → 431 HEADERS_TOO_LARGE", async () => {
      const answer = await rawHttp(
        api.url,
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
      );
      expect(answer.status).to.equal(431);
      expect(errorCode(answer)).to.equal("HEADERS_TOO_LARGE");
    });
  });
});

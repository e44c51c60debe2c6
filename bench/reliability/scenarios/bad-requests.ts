/**
 * (e) Bad requests: generated with fast-check — malformed JSON, wrong types, unknown fields,
 * wrong content types, bodies over MAX_BODY_BYTES, bad paths, seqs, batch numbers, cursors and
 * limits, wrong methods, bad keys — against the running service. None may get a 5xx, the
 * process must stay up, and the stored log must be unchanged: nothing after the last good
 * event, and a sample of stored events byte-identical before and after.
 *
 * Every generated body is invalid by construction (a field of the wrong JSON type, an unknown
 * key under a strict schema, a non-JSON text, …), so no request may store anything.
 */
import fc from "fast-check";
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
  key: "writer" | "admin" | "none" | "malformed";
  contentType?: string;
  body?: string;
}

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

const badRequest: fc.Arbitrary<BadRequest> = fc
  .oneof(...Object.values(bodies))
  .chain((r) =>
    r.key
      ? fc.constant({ ...r, key: r.key })
      : fc
          .constantFrom<BadRequest["key"]>("writer", "writer", "writer", "none")
          .map((key) => ({ ...r, key })),
  );

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
      const keyFor = (key: BadRequest["key"]): string | undefined =>
        key === "writer"
          ? writerKey
          : key === "admin"
            ? adminKey
            : key === "malformed"
              ? "vt_not-a-key"
              : undefined;
      const statuses = new Map<number, number>();
      const fiveHundreds: string[] = [];
      // Some generated requests are harmless reads (a verdict for a junk bundle, an empty page).
      const answered2xx = new Map<string, number>();
      const examples2xx: string[] = [];
      let networkErrors = 0;
      let sent = 0;
      const chunk = 1_000;
      while (sent < opts.requests) {
        const batch = fc.sample(badRequest, Math.min(chunk, opts.requests - sent));
        let next = 0;
        const worker = async (): Promise<void> => {
          for (let i = next++; i < batch.length; i = next++) {
            const r = batch[i]!;
            const key = keyFor(r.key);
            try {
              const response = await fetch(base + r.path, {
                method: r.method,
                headers: {
                  ...(key ? { authorization: `Bearer ${key}` } : {}),
                  ...(r.contentType !== undefined ? { "content-type": r.contentType } : {}),
                },
                ...(r.body !== undefined && r.method !== "GET" ? { body: r.body } : {}),
                signal: AbortSignal.timeout(15_000),
              });
              await response.arrayBuffer();
              statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
              if (response.status < 300)
                answered2xx.set(r.kind, (answered2xx.get(r.kind) ?? 0) + 1);
              if (response.status < 300 && r.kind !== "bad bundle" && examples2xx.length < 3)
                examples2xx.push(`${r.method} ${r.path.slice(0, 60)}`);
              if (response.status >= 500)
                fiveHundreds.push(
                  `${response.status} ${r.kind}: ${r.method} ${r.path.slice(0, 80)}`,
                );
            } catch {
              networkErrors++;
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
        `${sent} sent, ${networkErrors} without an answer, /healthz ${health?.status ?? "down"}`,
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

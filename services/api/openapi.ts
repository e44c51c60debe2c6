import {
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  type RouteConfig,
} from "@asteasolutions/zod-to-openapi";
import { TrustPolicySchema } from "../core/trust-policy.ts";
import { z as plainZod } from "zod";
import { BundleSchema } from "../core/bundle.ts";
import { EntrySchema } from "../core/entry.ts";
import { NativeEventSchema } from "../core/event.ts";
import { FhirAuditEventSchema } from "../core/fhir-audit-event.ts";
import { ReceiptSchema } from "../core/receipt.ts";
import { LogStatusSchema } from "../ledger/log-status.ts";
import type { ApiConfig } from "./app.ts";
import { API_ERROR_STATUS } from "./errors.ts";
import { auditRouteDocs } from "./routes/audit.ts";
import { patientRouteDocs } from "./routes/patient.ts";
import { provenanceRouteDocs } from "./routes/provenance.ts";
import {
  BatchNoParams,
  ErasureBody,
  ExportQuery,
  FhirAuditEventSearchQuery,
  KeyIdParams,
  ReportQuery,
  ListBatchesQuery,
  ListEventsQuery,
  NewKeyBody,
  SeqParams,
} from "./schemas.ts";

type OpenApiDocument = ReturnType<OpenApiGeneratorV31["generateDocument"]>;
type Json = Record<string, unknown>;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Core schemas are built before any zod extension runs, so they go in as JSON Schema. */
function jsonSchemaOf(schema: plainZod.ZodType, io: "input" | "output"): Json {
  const out = plainZod.toJSONSchema(schema, { io, unrepresentable: "any" }) as Json;
  delete out["$schema"];
  return out;
}

const ERROR_SCHEMA: Json = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", enum: Object.keys(API_ERROR_STATUS) },
        message: { type: "string" },
        field: {
          type: "string",
          description: "Path of the offending field, e.g. [2].agents[0].requestor",
        },
        requestId: {
          type: "string",
          description: "IDEMPOTENCY_CONFLICT: the requestId that is already used",
        },
        seq: {
          type: "integer",
          description: "IDEMPOTENCY_CONFLICT: the seq of the event stored under that requestId",
        },
        issues: {
          type: "array",
          items: {
            type: "object",
            properties: {
              field: { type: "string" },
              code: { type: "string" },
              message: { type: "string" },
            },
          },
        },
      },
    },
  },
};

const KEY_VIEW: Json = {
  type: "object",
  required: ["id", "role", "scope", "createdAt"],
  properties: {
    id: { type: "string" },
    role: { type: "string", enum: ["admin", "writer", "auditor", "patient"] },
    scope: {
      type: ["string", "null"],
      description: "Organization (writer) or subjectTag (patient).",
    },
    createdAt: { type: "string", format: "date-time" },
    revokedAt: { type: "string", format: "date-time" },
  },
};

const EVENT_VIEW: Json = {
  type: "object",
  required: ["seq", "entry", "event", "erased"],
  properties: {
    seq: { type: "integer" },
    entry: ref("Entry"),
    event: {
      description:
        "The native event (null once erased). Patients get agents without staff identities unless PATIENT_VIEW_STAFF_NAMES is set.",
      oneOf: [ref("NativeEvent"), { type: "null" }],
    },
    erased: { type: "boolean" },
  },
};

const BATCH_RECORD: Json = {
  type: "object",
  required: ["header", "state", "sealedAt"],
  properties: {
    header: {
      type: "object",
      properties: {
        logId: { type: "string" },
        batchNo: { type: "integer" },
        firstSeq: { type: "integer" },
        count: { type: "integer" },
        eventsRoot: { type: "string" },
        indexRoot: { type: "string" },
      },
    },
    state: { type: "string", enum: ["sealed", "submitted", "anchored"] },
    sealedAt: { type: "string", format: "date-time" },
    tileHeight: {
      type: "integer",
      description:
        "How the batch's Merkle nodes are stored (levels per tile); absent on batches sealed before tiles. Not part of the anchored header.",
    },
    submission: { type: "object" },
    anchor: { type: "object" },
  },
};

function json(description: string, schema: Json) {
  return { description, content: { "application/json": { schema } } };
}

function errors(...codes: Array<keyof typeof API_ERROR_STATUS>) {
  const out: Record<number, ReturnType<typeof json>> = {};
  for (const code of codes) {
    const status = API_ERROR_STATUS[code];
    const prev = out[status]?.description;
    out[status] = json(prev ? `${prev}, ${code}` : code, ref("Error"));
  }
  return out;
}

/** Errors of the /fhir routes: FHIR R4 OperationOutcome (application/fhir+json). */
function fhirErrors(...codes: Array<keyof typeof API_ERROR_STATUS>) {
  const out: Record<number, { description: string; content: Record<string, { schema: Json }> }> =
    {};
  for (const code of codes) {
    const status = API_ERROR_STATUS[code];
    const prev = out[status]?.description;
    out[status] = {
      description: prev ? `${prev}, ${code}` : code,
      content: { "application/fhir+json": { schema: ref("OperationOutcome") } },
    };
  }
  return out;
}

const OPERATION_OUTCOME: Json = {
  type: "object",
  description:
    "FHIR R4 OperationOutcome. issue.code is from http://hl7.org/fhir/issue-type (invalid, required, not-supported, login, forbidden, not-found, throttled, …); issue.details.coding carries Veritrail's error code; issue.expression names the offending parameter.",
  required: ["resourceType", "issue"],
  properties: {
    resourceType: { const: "OperationOutcome" },
    issue: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        required: ["severity", "code"],
        properties: {
          severity: { enum: ["fatal", "error", "warning", "information"] },
          code: { type: "string" },
          details: {
            type: "object",
            properties: {
              coding: {
                type: "array",
                items: {
                  type: "object",
                  properties: { system: { type: "string" }, code: { type: "string" } },
                },
              },
              text: { type: "string" },
            },
          },
          diagnostics: { type: "string" },
          expression: { type: "array", items: { type: "string" } },
        },
      },
    },
  },
};

const BEARER = [{ bearerAuth: [] }];

/** The OpenAPI 3.1 document, generated from the zod schemas the routes validate with. */
export function buildOpenApiDocument(config: ApiConfig): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "An API key (vt_…) created by an admin with POST /v1/keys.",
  });
  registry.registerComponent("schemas", "Error", ERROR_SCHEMA);
  registry.registerComponent("schemas", "OperationOutcome", OPERATION_OUTCOME);
  registry.registerComponent("schemas", "NativeEvent", jsonSchemaOf(NativeEventSchema, "input"));
  registry.registerComponent(
    "schemas",
    "FhirAuditEvent",
    jsonSchemaOf(FhirAuditEventSchema, "input"),
  );
  registry.registerComponent("schemas", "Entry", jsonSchemaOf(EntrySchema, "output"));
  registry.registerComponent("schemas", "Receipt", jsonSchemaOf(ReceiptSchema, "output"));
  registry.registerComponent("schemas", "ProofBundle", jsonSchemaOf(BundleSchema, "output"));
  registry.registerComponent("schemas", "TrustPolicy", jsonSchemaOf(TrustPolicySchema, "input"));
  registry.registerComponent("schemas", "EventView", EVENT_VIEW);
  registry.registerComponent("schemas", "ApiKey", KEY_VIEW);
  registry.registerComponent("schemas", "BatchRecord", BATCH_RECORD);
  registry.registerComponent("schemas", "LogStatus", jsonSchemaOf(LogStatusSchema, "output"));

  const authErrors = errors("UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED");
  const paths: RouteConfig[] = [
    {
      method: "post",
      path: "/v1/events",
      summary: "Log events (writer; its own organization only)",
      description: `One native event, an array or NDJSON of native events, or a FHIR R4 AuditEvent / Bundle (batch or collection) of AuditEvents. At most ${config.MAX_EVENTS_PER_REQUEST} events and ${config.MAX_BODY_BYTES} bytes per request. All events are validated before any is stored.`,
      security: BEARER,
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: { oneOf: [ref("NativeEvent"), { type: "array", items: ref("NativeEvent") }] },
            },
            "application/x-ndjson": {
              schema: { type: "string", description: "One native event per line." },
            },
            "application/fhir+json": {
              schema: {
                oneOf: [
                  ref("FhirAuditEvent"),
                  {
                    type: "object",
                    required: ["resourceType", "type", "entry"],
                    properties: {
                      resourceType: { const: "Bundle" },
                      type: { enum: ["batch", "collection"] },
                      entry: {
                        type: "array",
                        items: { type: "object", properties: { resource: ref("FhirAuditEvent") } },
                      },
                    },
                  },
                ],
              },
            },
          },
        },
      },
      responses: {
        201: json("Receipts, in request order; `duplicate` marks an earlier answer re-issued.", {
          type: "object",
          properties: {
            receipts: {
              type: "array",
              items: {
                type: "object",
                properties: { duplicate: { type: "boolean" }, receipt: ref("Receipt") },
              },
            },
          },
        }),
        ...errors("VALIDATION_FAILED", "MALFORMED_JSON"),
        ...authErrors,
        ...errors(
          "IDEMPOTENCY_CONFLICT",
          "PAYLOAD_TOO_LARGE",
          "TOO_MANY_EVENTS",
          "UNSUPPORTED_MEDIA_TYPE",
        ),
        503: {
          ...json(
            "Nothing was stored; retry after the Retry-After header's seconds. OVERLOADED: the log is at its backlog bound (unsealed events or unanchored batches). STORAGE_UNAVAILABLE: the ledger's disk refuses writes (full, quota, I/O error); writes resume by themselves once it takes them again. RESTORE_PENDING: a restored copy is being compared with the chain. UNAVAILABLE: the ledger is closed.",
            ref("Error"),
          ),
          headers: {
            "Retry-After": {
              description:
                "Seconds to wait before retrying (OVERLOADED, STORAGE_UNAVAILABLE and RESTORE_PENDING answers)",
              schema: { type: "integer", minimum: 1 },
            },
          },
        },
      },
    },
    {
      method: "get",
      path: "/v1/events",
      summary: "List events (writer: own organization; auditor: all; patient: own)",
      security: BEARER,
      request: { query: ListEventsQuery },
      responses: {
        200: json("A page of events in log order.", {
          type: "object",
          properties: {
            events: { type: "array", items: ref("EventView") },
            nextCursor: { type: ["string", "null"] },
          },
        }),
        ...errors("VALIDATION_FAILED", "BAD_CURSOR"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/events/{seq}",
      summary: "One event (writer: own organization; auditor; patient: own)",
      security: BEARER,
      request: { params: SeqParams },
      responses: {
        200: json("The event.", ref("EventView")),
        ...errors("VALIDATION_FAILED", "NOT_FOUND"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/events/{seq}/proof",
      summary: "The veritrail-proof/1 bundle of one event",
      description:
        "`status` says how far the event has got: unsealed, sealed, submitted or anchored; `anchor` is null until anchored.",
      security: BEARER,
      request: { params: SeqParams },
      responses: {
        200: json("The proof bundle.", ref("ProofBundle")),
        ...errors("VALIDATION_FAILED", "NOT_FOUND"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/batches",
      summary: "List batches (admin, auditor, writer)",
      security: BEARER,
      request: { query: ListBatchesQuery },
      responses: {
        200: json("Batches in batchNo order.", {
          type: "object",
          properties: {
            batches: { type: "array", items: ref("BatchRecord") },
            nextFrom: { type: ["string", "null"] },
          },
        }),
        ...errors("VALIDATION_FAILED"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/batches/{batchNo}",
      summary: "One batch (admin, auditor, writer)",
      security: BEARER,
      request: { params: BatchNoParams },
      responses: {
        200: json("The batch.", ref("BatchRecord")),
        ...errors("VALIDATION_FAILED", "NOT_FOUND"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/status",
      summary:
        "The log's status: events accepted, sealed, anchored; backlog; alarms (admin, auditor)",
      description:
        "Counts and addresses only, never event data. `veritrail status` prints it; `veritrail status --wait` polls it until every event accepted so far is anchored.",
      security: BEARER,
      responses: {
        200: json("The status.", ref("LogStatus")),
        ...authErrors,
      },
    },
    {
      method: "post",
      path: "/v1/keys",
      summary: "Create an API key (admin); the secret is shown once",
      security: BEARER,
      request: {
        body: { required: true, content: { "application/json": { schema: NewKeyBody } } },
      },
      responses: {
        201: json("The new key and its secret.", {
          type: "object",
          properties: { secret: { type: "string" }, key: ref("ApiKey") },
        }),
        ...errors("VALIDATION_FAILED", "MALFORMED_JSON", "UNSUPPORTED_MEDIA_TYPE"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/keys",
      summary: "List API keys (admin)",
      security: BEARER,
      responses: {
        200: json("All keys, without secrets.", {
          type: "object",
          properties: { keys: { type: "array", items: ref("ApiKey") } },
        }),
        ...authErrors,
      },
    },
    {
      method: "delete",
      path: "/v1/keys/{id}",
      summary: "Revoke an API key (admin)",
      security: BEARER,
      request: { params: KeyIdParams },
      responses: {
        200: json("The revoked key.", { type: "object", properties: { key: ref("ApiKey") } }),
        ...errors("VALIDATION_FAILED", "NOT_FOUND", "CONFLICT"),
        ...authErrors,
      },
    },
    {
      method: "post",
      path: "/v1/verify",
      summary: "Verify a proof bundle against the configured chain (any role)",
      description:
        "Runs the standalone verifier (the same code as the CLI and the browser page), relative to the trust policy sent with the bundle ({ bundle, trust }) or else this log's own (GET /.well-known/veritrail-trust.json). A bundle anchored in a registry or log the policy does not list fails with UNTRUSTED_REGISTRY or UNKNOWN_LOG. A bundle can always be verified without this server, against a chain and a policy of the holder's choosing.",
      security: BEARER,
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: {
                oneOf: [
                  ref("ProofBundle"),
                  {
                    type: "object",
                    required: ["bundle"],
                    properties: { bundle: ref("ProofBundle"), trust: ref("TrustPolicy") },
                  },
                ],
              },
            },
          },
        },
      },
      responses: {
        200: json(
          "The verdict: status verified, erased, withheld, pending, failed or error, with one check per step and the policy it is relative to.",
          {
            type: "object",
            required: ["ok", "status", "checks"],
            properties: {
              ok: { type: "boolean" },
              status: { enum: ["verified", "erased", "withheld", "pending", "failed", "error"] },
              code: { type: "string" },
              seq: { type: "integer" },
              log: { type: "string" },
              erasedBy: { type: "integer" },
              trust: {
                type: "object",
                properties: {
                  fingerprint: { type: "string" },
                  issuer: { type: "string" },
                  operator: { type: "string" },
                  registry: { type: "object" },
                },
              },
              checks: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    step: { type: "string" },
                    ok: { oneOf: [{ type: "boolean" }, { const: "skipped" }] },
                    code: { type: "string" },
                    reason: { type: "string" },
                  },
                },
              },
            },
          },
        ),
        ...errors(
          "MALFORMED_JSON",
          "VALIDATION_FAILED",
          "PAYLOAD_TOO_LARGE",
          "UNSUPPORTED_MEDIA_TYPE",
          "UNAVAILABLE",
        ),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/.well-known/veritrail-trust.json",
      summary: "This log's own trust policy (no key; a convenience, never adopted silently)",
      description:
        "The veritrail-trust/1 policy describing this log: its registry, its log and the operator name recorded on-chain, as written to DATA_DIR/trust.json. Header X-Veritrail-Trust-Fingerprint. Verifiers should rely on the policy their regulator publishes.",
      responses: {
        200: json("The policy document.", ref("TrustPolicy")),
        ...errors("UNAVAILABLE"),
      },
    },
    {
      method: "post",
      path: "/v1/events/{seq}/erasure",
      summary: "Erase an event's body and salt (admin; GDPR Art. 17 crypto-shredding)",
      description:
        "Deletes the event body and its salt in one synced write with a tombstone, and destroys the key the body was sealed under, so no file of the log holds it in a form anyone can open (docs/compliance.md); the entry and every proof stay. The erasure is logged as a new event naming the seq only. Answers only once all of that is on disk.",
      security: BEARER,
      request: {
        params: SeqParams,
        body: { required: true, content: { "application/json": { schema: ErasureBody } } },
      },
      responses: {
        201: json("The tombstone and the receipt of the logged erasure event.", {
          type: "object",
          properties: {
            tombstone: { type: "object" },
            receipt: ref("Receipt"),
            residue: {
              enum: ["none", "plaintext-until-compaction"],
              description:
                "none: nothing of the body is left in a form anyone can open; plaintext-until-compaction: the body was written (by an earlier version) before bodies were sealed, and LevelDB keeps its plain text until a compaction rewrites those files.",
            },
          },
        }),
        ...errors("VALIDATION_FAILED", "MALFORMED_JSON", "NOT_FOUND", "CONFLICT"),
        ...errors("UNSUPPORTED_MEDIA_TYPE"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/reports/disclosures",
      summary: "HIPAA §164.528 accounting of disclosures (patient: own; auditor: ?subject=)",
      description:
        "Disclosures in the period (default: six years) with date, recipient, description, purpose and proof URL; TPO, to-the-individual and the other §164.528(a)(1) exclusions are left out by purpose code.",
      security: BEARER,
      request: { query: ReportQuery },
      responses: {
        200: {
          description: "The report as JSON, or RFC 4180 CSV with format=csv.",
          content: {
            "application/json": { schema: { type: "object" } },
            "text/csv": { schema: { type: "string" } },
          },
        },
        ...errors("VALIDATION_FAILED", "BAD_CURSOR"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/reports/accesses",
      summary: "Access report: every logged access to a patient's data (patient: own; auditor)",
      security: BEARER,
      request: { query: ReportQuery },
      responses: {
        200: {
          description: "The report as JSON, or RFC 4180 CSV with format=csv.",
          content: {
            "application/json": { schema: { type: "object" } },
            "text/csv": { schema: { type: "string" } },
          },
        },
        ...errors("VALIDATION_FAILED", "BAD_CURSOR"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/v1/export",
      summary: "Export proof bundles as NDJSON (auditor)",
      description:
        "Streams one veritrail-proof/1 bundle per line; check the file with `veritrail verify export.ndjson --rpc <url>`.",
      security: BEARER,
      request: { query: ExportQuery },
      responses: {
        200: {
          description: "NDJSON, one bundle per line.",
          content: { "application/x-ndjson": { schema: { type: "string" } } },
        },
        ...errors("VALIDATION_FAILED"),
        ...authErrors,
      },
    },
    {
      method: "get",
      path: "/fhir/AuditEvent",
      summary: "FHIR R4 AuditEvent search (auditor; patient: own)",
      description:
        "A searchset Bundle of BALP AuditEvents; the next link carries the paging cursor. Erased events are left out. Errors (unknown or bad parameters, auth) are OperationOutcome resources.",
      security: BEARER,
      request: { query: FhirAuditEventSearchQuery },
      responses: {
        200: {
          description: "FHIR Bundle (searchset).",
          content: { "application/fhir+json": { schema: { type: "object" } } },
        },
        ...fhirErrors("VALIDATION_FAILED", "BAD_CURSOR"),
        ...fhirErrors("UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED"),
      },
    },
    {
      method: "get",
      path: "/fhir/AuditEvent/{seq}",
      summary: "One FHIR R4 AuditEvent by seq (auditor; patient: own)",
      security: BEARER,
      request: { params: SeqParams },
      responses: {
        200: {
          description: "The AuditEvent.",
          content: { "application/fhir+json": { schema: ref("FhirAuditEvent") } },
        },
        ...fhirErrors("VALIDATION_FAILED", "NOT_FOUND"),
        ...fhirErrors("UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED"),
      },
    },
    {
      method: "get",
      path: "/healthz",
      summary: "Liveness",
      responses: {
        200: json("The process is up.", {
          type: "object",
          properties: { status: { const: "ok" } },
        }),
        ...errors("RATE_LIMITED"),
      },
    },
    {
      method: "get",
      path: "/readyz",
      summary:
        "Readiness: LevelDB open and writable, ingest backlog, anchoring lag, anchor alarm, restore and lost ranges",
      responses: {
        200: json("Ready.", { type: "object" }),
        503: json(
          "Not ready: the ledger is closed, its disk refuses writes (STORAGE_UNAVAILABLE: full, quota, I/O error; `checks.storage` says which and since when), a restored copy is still being compared with the chain (RESTORE_PENDING), ingest is at its backlog bound (new events are being refused), or the anchor loop raised an alarm. `checks.lost` lists batches the chain holds that a restore lost.",
          ref("Error"),
        ),
        ...errors("RATE_LIMITED"),
      },
    },
    {
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics",
      responses: {
        200: {
          description: "Prometheus text format.",
          content: { "text/plain": { schema: { type: "string" } } },
        },
        ...errors("RATE_LIMITED"),
      },
    },
  ];
  for (const docs of [patientRouteDocs(), auditRouteDocs(), provenanceRouteDocs()]) {
    for (const [name, schema] of Object.entries(docs.schemas))
      registry.registerComponent("schemas", name, schema);
    paths.push(...docs.paths);
  }
  for (const p of paths) registry.registerPath(p);
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "Veritrail API",
      version: "1",
      description:
        "Tamper-evident audit ledger for health data. Errors are { error: { code, message, field? } }; under /fhir (and GET /v1/provenance?format=fhir) they are FHIR R4 OperationOutcome resources.",
    },
    servers: [{ url: "/" }],
  });
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

function schemaSummary(schema: unknown): string {
  if (schema === undefined) return "";
  const text = JSON.stringify(schema, null, 2);
  return `<pre>${escapeHtml(text.length > 4000 ? `${text.slice(0, 4000)}\n…` : text)}</pre>`;
}

/** The /docs page: the OpenAPI document rendered server-side (no scripts, no CDN). */
export function renderDocsPage(doc: OpenApiDocument): string {
  const sections: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item as Record<string, Json>)) {
      const params = (op["parameters"] as Json[] | undefined) ?? [];
      const body = (
        op["requestBody"] as { content?: Record<string, { schema?: unknown }> } | undefined
      )?.content;
      const responses =
        (op["responses"] as Record<string, { description?: string }> | undefined) ?? {};
      sections.push(`<section><h2><code>${method.toUpperCase()} ${escapeHtml(path)}</code></h2>
<p>${escapeHtml(String(op["summary"] ?? ""))}</p>${op["description"] ? `<p>${escapeHtml(String(op["description"]))}</p>` : ""}
${op["security"] ? "<p><em>Requires a bearer API key.</em></p>" : ""}
${params.length ? `<h3>Parameters</h3><ul>${params.map((p) => `<li><code>${escapeHtml(String(p["name"]))}</code> (${escapeHtml(String(p["in"]))}${p["required"] ? ", required" : ""}) ${escapeHtml(String(p["description"] ?? ""))}</li>`).join("")}</ul>` : ""}
${
  body
    ? `<h3>Body</h3>${Object.entries(body)
        .map(([type, c]) => `<h4>${escapeHtml(type)}</h4>${schemaSummary(c.schema)}`)
        .join("")}`
    : ""
}
<h3>Responses</h3><ul>${Object.entries(responses)
        .map(
          ([status, r]) =>
            `<li><code>${escapeHtml(status)}</code> ${escapeHtml(r.description ?? "")}</li>`,
        )
        .join("")}</ul>
</section>`);
    }
  }
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .map(
      ([name, s]) =>
        `<section id="schema-${escapeHtml(name)}"><h2>${escapeHtml(name)}</h2>${schemaSummary(s)}</section>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Veritrail API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}pre{background:#f5f5f5;padding:.5rem;overflow:auto;max-height:24rem}section{border-top:1px solid #ddd}</style>
</head><body><h1>Veritrail API</h1><p>${escapeHtml(String(doc.info.description ?? ""))}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>
${sections.join("\n")}
<h1>Schemas</h1>
${schemas}
</body></html>`;
}

import type { RouteConfig } from "@asteasolutions/zod-to-openapi";
import type { Express, RequestHandler } from "express";
import { LOCAL_LOG_NAME, type PeerLog } from "../../config.ts";
import { ledgerTransferLog, traceAcrossLogs } from "../../ledger/provenance.ts";
import { type PeerLimits, apiTransferLog } from "../../peers/api-transfer-log.ts";
import type { ApiContext } from "../app.ts";
import { authorize, principalOf } from "../auth.ts";
import { API_ERROR_STATUS, ApiError, FHIR_JSON, answerErrorsAsFhir } from "../errors.ts";
import { toFhirProvenanceBundle } from "../fhir-provenance.ts";
import { z } from "../openapi-zod.ts";
import { parseRequest } from "../schemas.ts";

export const ProvenanceQuery = z.strictObject({
  dataHash: z
    .string()
    .regex(/^0x[0-9a-f]{64}$/, {
      message: "dataHash must be 0x and 64 lowercase hex digits (transfer.dataHash)",
    })
    .optional()
    .openapi({ description: "The data item: the transfer.dataHash its transfers carry." }),
  reference: z
    .string()
    .min(1, { message: "reference must not be empty" })
    .max(1024, { message: "reference must be at most 1024 characters" })
    .optional()
    .openapi({
      description:
        "A transfer.reference of one of the item's transfers; the item is that transfer's data hash. With dataHash, dataHash names the item.",
    }),
  format: z.enum(["json", "fhir"]).default("json").openapi({
    description:
      "json (default): the trace with proof bundles; fhir: a FHIR R4 collection Bundle of Provenance resources (errors then come as OperationOutcome).",
  }),
});

export interface ProvenanceRouteOptions {
  /** Other institutions' APIs anchored in the same registry (config PEER_LOGS). */
  peers: PeerLog[];
  /** How much of a peer is read, for how long (PEER_TIMEOUT_MS, PEER_MAX_RESPONSE_BYTES, …). */
  peerLimits: PeerLimits;
}

/**
 * GET /v1/provenance: one data item's chain of custody across this log and the peer logs, every
 * hop with the veritrail-proof/1 bundles of its export and its import, plus the unmatched
 * transfers (services/ledger/provenance.ts). What the caller sees of it is the access policy's
 * (services/ledger/access.ts: a writer sees the other organization's side only when it names
 * the writer's organization). The answer is trusted no more than
 * the service: `veritrail provenance` re-verifies every bundle against the chain.
 */
export function registerProvenanceRoutes(
  app: Express,
  ctx: ApiContext,
  opts: ProvenanceRouteOptions,
): void {
  // Decided before authentication, so a FHIR client's 401 is an OperationOutcome too.
  const fhirErrors: RequestHandler = (req, res, next) => {
    if (req.query["format"] === "fhir") answerErrorsAsFhir(res);
    next();
  };
  app.get(
    "/v1/provenance",
    fhirErrors,
    ctx.authenticate,
    authorize(ctx.access, "provenance:read"),
    async (req, res) => {
      const principal = principalOf(res);
      const q = parseRequest(ProvenanceQuery, { ...req.query });
      if (q.dataHash === undefined && q.reference === undefined)
        throw new ApiError(
          "VALIDATION_FAILED",
          "dataHash or reference is required (the data item to trace)",
          "dataHash",
        );
      const answer = await traceAcrossLogs({
        local: ledgerTransferLog(LOCAL_LOG_NAME, ctx.ledger, ctx.queries),
        peers: opts.peers.map((p) => apiTransferLog(p.name, p.url, p.auditorKey, opts.peerLimits)),
        query: {
          ...(q.dataHash !== undefined ? { dataHash: q.dataHash } : {}),
          ...(q.reference !== undefined ? { reference: q.reference } : {}),
        },
        scope: (trace) => ctx.access.provenance(principal, trace, q.dataHash !== undefined),
      });
      if (q.format === "fhir") {
        res.type(FHIR_JSON).send(JSON.stringify(toFhirProvenanceBundle(answer)));
        return;
      }
      res.json(answer);
    },
  );
}

// ---- OpenAPI --------------------------------------------------------------------------------

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const TRANSFER_SIDE: Record<string, unknown> = {
  type: "object",
  required: ["log", "logId", "seq", "organization", "recorded", "bundle"],
  properties: {
    log: { type: "string", description: `"${LOCAL_LOG_NAME}" or the peer's name in PEER_LOGS.` },
    logId: { type: "string" },
    seq: { type: "integer" },
    organization: { type: "string", description: "source.organization of the event." },
    recorded: { type: "string", format: "date-time" },
    bundle: ref("ProofBundle"),
  },
};

const WITHHELD_SIDE: Record<string, unknown> = {
  type: "object",
  required: ["withheld"],
  properties: { withheld: { const: true } },
  description:
    "A side of the hop the caller may not see: a writer sees the other organization's event only when it names the writer's organization (the recipient of an export, the source agent of an import).",
};

const PROVENANCE_TRACE: Record<string, unknown> = {
  type: "object",
  required: ["dataHash", "reference", "hops", "custody", "unmatched", "logs", "complete"],
  properties: {
    dataHash: { type: ["string", "null"] },
    reference: { type: ["string", "null"] },
    hops: {
      type: "array",
      description: "Matched export → import pairs in the order the exports were recorded.",
      items: {
        type: "object",
        required: ["reference", "dataHash", "from", "to"],
        properties: {
          reference: { type: "string" },
          dataHash: { type: "string" },
          from: { oneOf: [ref("TransferSide"), ref("WithheldSide")] },
          to: { oneOf: [ref("TransferSide"), ref("WithheldSide")] },
        },
      },
    },
    custody: {
      type: "array",
      items: { type: "string" },
      description: "Organizations in custody order.",
    },
    unmatched: {
      type: "array",
      items: {
        type: "object",
        required: ["kind", "reason", "reference", "dataHash", "side"],
        properties: {
          kind: { enum: ["export", "import"] },
          reason: {
            enum: ["NOT_IMPORTED", "NO_SUCH_EXPORT", "DATA_HASH_MISMATCH", "RECIPIENT_MISMATCH"],
          },
          reference: { type: "string" },
          dataHash: { type: "string" },
          recipient: { type: "string", description: "An export's intended recipient." },
          side: ref("TransferSide"),
        },
      },
    },
    logs: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "peer", "readable"],
        properties: {
          name: { type: "string" },
          peer: { type: "boolean" },
          readable: { type: "boolean" },
          error: { type: "string" },
        },
      },
    },
    complete: {
      type: "boolean",
      description: "False when a peer log could not be read.",
    },
  },
};

export function provenanceRouteDocs(): {
  paths: RouteConfig[];
  schemas: Record<string, Record<string, unknown>>;
} {
  const error = (...codes: Array<keyof typeof API_ERROR_STATUS>) =>
    Object.fromEntries(
      codes.map((code) => [
        API_ERROR_STATUS[code],
        {
          description: `${code} (OperationOutcome with format=fhir)`,
          content: {
            "application/json": { schema: ref("Error") },
            "application/fhir+json": { schema: { type: "object" } },
          },
        },
      ]),
    );
  return {
    schemas: {
      TransferSide: TRANSFER_SIDE,
      WithheldSide: WITHHELD_SIDE,
      ProvenanceTrace: PROVENANCE_TRACE,
    },
    paths: [
      {
        method: "get",
        path: "/v1/provenance",
        summary:
          "Chain of custody of one data item across this log and the peer logs (auditor; writer: its organization's transfers)",
        description:
          "Matches each Import (DCM 110107) to the Export (DCM 110106) with the same transfer reference and data hash whose recipient is the importing organization, in this log and in the logs of PEER_LOGS (other Veritrail APIs, read with auditor keys). Every hop carries the veritrail-proof/1 bundle of both sides; exports never imported and imports that match no export are listed in `unmatched`. A peer that cannot be read is listed in `logs` and makes `complete` false. Check the answer without trusting this server with `veritrail provenance`.",
        security: [{ bearerAuth: [] }],
        request: { query: ProvenanceQuery },
        responses: {
          200: {
            description:
              "The trace (JSON), or with format=fhir a FHIR R4 collection Bundle: one Provenance per hop and an OperationOutcome with a warning per unmatched transfer.",
            content: {
              "application/json": { schema: ref("ProvenanceTrace") },
              "application/fhir+json": { schema: { type: "object" } },
            },
          },
          ...error("VALIDATION_FAILED"),
          ...error("UNAUTHENTICATED"),
          ...error("FORBIDDEN"),
          ...error("RATE_LIMITED"),
          ...error("UNAVAILABLE"),
        },
      },
    ],
  };
}

import type { RouteConfig } from "@asteasolutions/zod-to-openapi";
import type { Express } from "express";
import type { Hex } from "../../core/hex.ts";
import { patientHistory } from "../../ledger/patient-history.ts";
import type { ApiContext } from "../app.ts";
import { authorize, principalOf } from "../auth.ts";
import { API_ERROR_STATUS } from "../errors.ts";
import { z } from "../openapi-zod.ts";
import { parseRequest } from "../schemas.ts";

export const PatientHistoryQuery = z.strictObject({
  subject: z
    .string()
    .regex(/^0x[0-9a-f]{64}$/, {
      message: "subject must be a subjectTag: 0x and 64 lowercase hex digits",
    })
    .optional()
    .openapi({
      description:
        "The patient's subjectTag. Required for an auditor; a patient key may omit it or name only its own.",
    }),
});

/**
 * GET /v1/patient/history: the patient's events up to the latest anchored batch, each with its
 * proof bundle, and the completeness proof at that batch (DESIGN.md "Per-patient completeness");
 * events accepted after that batch come in `notYetCovered`. Patient keys see their own history
 * (staff names per PATIENT_VIEW_STAFF_NAMES); auditors name a subject and see staff names.
 * The whole history is one answer, not paged: the completeness proof covers the list as a whole.
 */
export function registerPatientRoutes(app: Express, ctx: ApiContext): void {
  app.get(
    "/v1/patient/history",
    ctx.authenticate,
    authorize(ctx.access, "history:read"),
    async (req, res) => {
      const principal = principalOf(res);
      const q = parseRequest(PatientHistoryQuery, { ...req.query });
      const subject = ctx.access.subjectFor(principal, q.subject);
      res.json(
        await patientHistory(ctx.ledger, subject as Hex, {
          staffIdentity: ctx.access.staffIdentityFor(principal),
        }),
      );
    },
  );
}

const PATIENT_HISTORY_SCHEMA = {
  type: "object",
  required: ["format", "subjectTag", "asOf", "proof", "events", "notYetCovered"],
  properties: {
    format: { type: "string", const: "veritrail-patient-history/1" },
    subjectTag: { type: "string" },
    asOf: {
      description: "The latest anchored batch (header and anchor); null while none is anchored.",
      oneOf: [
        {
          type: "object",
          required: ["batch", "anchor"],
          properties: { batch: { type: "object" }, anchor: { type: "object" } },
        },
        { type: "null" },
      ],
    },
    proof: {
      description:
        "Subject-index proof under asOf.batch.indexRoot: { siblings: [0x…], leaf: { key, valueHash } | null }.",
      oneOf: [{ type: "object" }, { type: "null" }],
    },
    events: {
      type: "array",
      description: "Every event of the subject up to the end of the asOf batch, by seq.",
      items: { $ref: "#/components/schemas/PatientHistoryEvent" },
    },
    notYetCovered: {
      type: "array",
      description: "Events accepted after the asOf batch: not covered by the proof yet.",
      items: { $ref: "#/components/schemas/PatientHistoryEvent" },
    },
  },
};

const PATIENT_HISTORY_EVENT_SCHEMA = {
  type: "object",
  required: ["seq", "recorded", "event", "erased", "bundle"],
  properties: {
    seq: { type: "integer" },
    recorded: { type: "string", format: "date-time" },
    event: {
      description:
        "The event as the caller may see it (staff identity per PATIENT_VIEW_STAFF_NAMES for patient keys); null once erased or withheld.",
      oneOf: [{ type: "object" }, { type: "null" }],
    },
    erased: { type: "boolean" },
    withheld: {
      type: "boolean",
      const: true,
      description:
        "Present when the event exists but is withheld from this caller whole: an entry v1 event cannot hide staff identity field by field. Its bundle has event and salt null; its entry still proves when it was logged.",
    },
    bundle: { $ref: "#/components/schemas/ProofBundle" },
  },
};

function errorResponses(...codes: Array<keyof typeof API_ERROR_STATUS>) {
  const out: Record<number, { description: string; content: Record<string, unknown> }> = {};
  for (const code of codes) {
    const status = API_ERROR_STATUS[code];
    const prev = out[status]?.description;
    out[status] = {
      description: prev ? `${prev}, ${code}` : code,
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    };
  }
  return out;
}

/** The OpenAPI description of the route above (buildOpenApiDocument registers it). */
export function patientRouteDocs(): {
  paths: RouteConfig[];
  schemas: Record<string, Record<string, unknown>>;
} {
  return {
    schemas: {
      PatientHistory: PATIENT_HISTORY_SCHEMA,
      PatientHistoryEvent: PATIENT_HISTORY_EVENT_SCHEMA,
    },
    paths: [
      {
        method: "get",
        path: "/v1/patient/history",
        summary: "A patient's complete history with proofs (patient; auditor with ?subject=)",
        description:
          "Every event of the subject up to the latest anchored batch, each with its veritrail-proof/1 bundle, and the subject-index proof at that batch, so a verifier can check the list is complete against the on-chain indexRoot (services/verifier/completeness.ts, the /patient page). Events accepted later are listed under notYetCovered. Not paged.",
        security: [{ bearerAuth: [] }],
        request: { query: PatientHistoryQuery },
        responses: {
          200: {
            description: "The history.",
            content: {
              "application/json": { schema: { $ref: "#/components/schemas/PatientHistory" } },
            },
          },
          ...errorResponses("VALIDATION_FAILED", "UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED"),
        },
      },
    ],
  };
}

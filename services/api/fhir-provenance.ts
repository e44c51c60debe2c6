import { PURPOSE_OF_USE_CODES, SYSTEM, displayOf } from "../core/codes.ts";
import type { NativeEvent } from "../core/event.ts";
import type { UnmatchedReason } from "../core/transfer.ts";
import { invariant } from "../ledger/errors.ts";
import { type ScopedHop, type ScopedTrace, isWithheld } from "../ledger/provenance.ts";

/**
 * GET /v1/provenance?format=fhir: a provenance trace (services/ledger/provenance.ts) as FHIR R4
 * Provenance resources in a collection Bundle.
 */

export interface FhirProvenance {
  resourceType: "Provenance";
  id: string;
  target: Array<{ reference?: string; identifier?: { system: string; value: string } }>;
  /** From the export to the import; a withheld side's time is left out. */
  occurredPeriod: { start?: string; end?: string };
  recorded: string;
  activity: { coding: Array<{ system: string; code: string; display: string }> };
  agent: Array<{
    type: { coding: Array<{ system: string; code: string; display: string }> };
    who: { identifier: { system: string; value: string }; display: string };
  }>;
  /** Why the data was disclosed: the export's purposes of use (v3 ActReason), when recorded. */
  reason?: Array<{ coding: Array<{ system: string; code: string; display?: string }> }>;
  entity: Array<{
    role: "source";
    what: { identifier: { system: string; value: string } };
  }>;
  extension: Array<{ url: string; valueString: string }>;
}

export const TRANSFER_REFERENCE_SYSTEM = "urn:veritrail:transfer";
export const ORGANIZATION_SYSTEM = "urn:veritrail:organization";
export const PROOF_EXTENSION = "https://veritrail.dev/fhir/StructureDefinition/proof";

const orgRef = (organization: string) => ({
  identifier: { system: ORGANIZATION_SYSTEM, value: organization },
  display: organization,
});

/**
 * One FHIR R4 Provenance per hop: the transferred data (the export's data references, else the
 * transfer reference) is the target; the sender is the custodian that released it and the
 * recipient the custodian that received it; the proof of each side is named in an extension
 * (`log:seq`), so a reader can fetch and verify both bundles. A side withheld from the caller
 * (services/ledger/access.ts) contributes nothing: no custodian, time, purpose or proof.
 */
export function toFhirProvenance(hop: ScopedHop): FhirProvenance {
  const from = isWithheld(hop.from) ? undefined : hop.from;
  const to = isWithheld(hop.to) ? undefined : hop.to;
  const named = to ?? from;
  invariant(named !== undefined, "a hop shows at least one side");
  const exported = (from?.bundle.event ?? null) as NativeEvent | null;
  const whats = (exported?.entities ?? []).flatMap((e) => (e.what ? [e.what] : []));
  const custodian = (organization: string) => ({
    type: {
      coding: [
        { system: SYSTEM.provenanceParticipantType, code: "custodian", display: "Custodian" },
      ],
    },
    who: orgRef(organization),
  });
  const purposes = exported?.purposeOfUse ?? [];
  const visible = [from, to].flatMap((s) => (s === undefined ? [] : [s]));
  return {
    resourceType: "Provenance",
    id: `${named.logId.slice(2, 18)}-${named.seq}`,
    target:
      whats.length > 0
        ? whats.map((reference) => ({ reference }))
        : [{ identifier: { system: TRANSFER_REFERENCE_SYSTEM, value: hop.reference } }],
    occurredPeriod: {
      ...(from ? { start: from.recorded } : {}),
      ...(to ? { end: to.recorded } : {}),
    },
    recorded: named.recorded,
    activity: {
      coding: [
        {
          system: SYSTEM.iso21089Lifecycle,
          code: "disclose",
          display: "Disclose Record Lifecycle Event",
        },
      ],
    },
    agent: visible.map((s) => custodian(s.organization)),
    ...(purposes.length > 0
      ? {
          reason: purposes.map((code) => {
            const display = displayOf(PURPOSE_OF_USE_CODES, code);
            return {
              coding: [{ system: SYSTEM.actReason, code, ...(display ? { display } : {}) }],
            };
          }),
        }
      : {}),
    entity: [
      {
        role: "source",
        what: { identifier: { system: TRANSFER_REFERENCE_SYSTEM, value: hop.reference } },
      },
    ],
    extension: [
      ...visible.map((s) => ({ url: PROOF_EXTENSION, valueString: `${s.logId}:${s.seq}` })),
      { url: `${PROOF_EXTENSION}-data-hash`, valueString: hop.dataHash },
    ],
  };
}

/** Where an unmatched transfer's own reason is explained (codes of `UnmatchedReason`). */
export const UNMATCHED_CODE_SYSTEM = "https://veritrail.dev/fhir/CodeSystem/unmatched-transfer";

const UNMATCHED_TEXT: Record<UnmatchedReason, string> = {
  NOT_IMPORTED: "exported, no matching import was found in the logs searched",
  NO_SUCH_EXPORT: "imported, no export with this transfer reference was found",
  DATA_HASH_MISMATCH: "imported, but the data hash differs from the export with this reference",
  RECIPIENT_MISMATCH: "imported by an organization other than the export's recipient",
};

export interface FhirOperationOutcomeIssue {
  severity: "fatal" | "error" | "warning" | "information";
  code: string;
  details?: { coding: Array<{ system: string; code: string }>; text?: string };
  diagnostics?: string;
  expression?: string[];
}

/**
 * The trace as a FHIR R4 `collection` Bundle: one Provenance per matched hop, in custody order,
 * then (when any transfer is unmatched) one OperationOutcome with a warning per unmatched
 * export or import, naming its reason and the `log:seq` of its proof. FHIR JSON has no empty
 * arrays, so a trace with nothing in it is a Bundle without `entry`.
 */
export function toFhirProvenanceBundle(trace: ScopedTrace, now = new Date()) {
  const entry: Array<{ resource: FhirProvenance | Record<string, unknown> }> = trace.hops.map(
    (hop) => ({ resource: toFhirProvenance(hop) }),
  );
  if (trace.unmatched.length > 0) {
    const issue: FhirOperationOutcomeIssue[] = trace.unmatched.map((u) => ({
      severity: "warning",
      code:
        u.reason === "NOT_IMPORTED" || u.reason === "NO_SUCH_EXPORT"
          ? "not-found"
          : "business-rule",
      details: {
        coding: [{ system: UNMATCHED_CODE_SYSTEM, code: u.reason }],
        text: UNMATCHED_TEXT[u.reason],
      },
      diagnostics:
        `${u.kind} by ${u.side.organization} (${u.side.log} seq ${u.side.seq}, proof ` +
        `${u.side.logId}:${u.side.seq}): reference ${u.reference}, data hash ${u.dataHash}`,
    }));
    entry.push({ resource: { resourceType: "OperationOutcome", issue } });
  }
  return {
    resourceType: "Bundle" as const,
    type: "collection" as const,
    timestamp: now.toISOString(),
    ...(entry.length > 0 ? { entry } : {}),
  };
}

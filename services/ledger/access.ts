import { SYSTEM } from "../core/codes.ts";
import {
  type EventView,
  type FieldSalts,
  presentEvent,
  withoutStaffIdentity,
} from "../core/disclosure.ts";
import type { Entry } from "../core/entry.ts";
import type { Hex } from "../core/hex.ts";
import type { StoredBody } from "../store/ledger-store.ts";
import type { NativeEvent } from "../core/event.ts";
import type { ApiKeyRole, Principal } from "./api-keys.ts";
import { LedgerError } from "./errors.ts";
import type { StoredEvent } from "./ledger.ts";
import {
  type ProvenanceTrace,
  type ScopedHop,
  type ScopedTrace,
  type TransferSide,
  type UnmatchedTransfer,
  WITHHELD_SIDE,
  custodyOf,
} from "./provenance.ts";
import type { EventFilter } from "./queries.ts";

/**
 * The access policy (DESIGN.md "Access control"): every route asks it, and only it, what a
 * caller may do and see. A question is a principal (the API key's role and scope) and a request;
 * the answer is a refusal, or a filter the read is confined to, or the form of the answer (the
 * patient-facing redaction). Routes parse, ask, call the use case and shape the answer; no route
 * spells out a rule of its own (two copies of a rule are how a hole slips in).
 *
 * - Roles decide which operations a key may use at all (403 FORBIDDEN otherwise).
 * - Scope decides what it sees: a writer its organization's events, a patient its subject's.
 *   An event outside the scope is answered exactly like an event that does not exist (404 with
 *   the same message), so a scoped key cannot learn which seqs exist elsewhere.
 * - Patient-facing output leaves out staff identity (who, user name, alt id, network address)
 *   unless PATIENT_VIEW_STAFF_NAMES says otherwise (GDPR Art. 15 as read in CJEU C-579/21: the
 *   dates, organizations, roles and purposes are owed, the identities of staff normally are not).
 * - Provenance: a writer sees a transfer's other side only when that side names the writer's
 *   organization (the recipient of an export, the source of an import).
 */

/** What a route does, named once; ALLOWED_ROLES says which roles may. */
export type Operation =
  | "events:write"
  | "events:read"
  | "batches:read"
  | "status:read"
  | "bundles:verify"
  | "keys:manage"
  | "history:read"
  | "reports:read"
  | "fhir:read"
  | "export:read"
  | "provenance:read"
  | "audit:run"
  | "events:erase";

export const ALLOWED_ROLES: Readonly<Record<Operation, readonly ApiKeyRole[]>> = {
  "events:write": ["writer"],
  "events:read": ["writer", "auditor", "patient"],
  // Batch records hold headers and anchoring state, no event data.
  "batches:read": ["admin", "auditor", "writer"],
  // Counts, addresses and alarms of the whole log: for its operators and auditors.
  "status:read": ["admin", "auditor"],
  "bundles:verify": ["admin", "auditor", "writer", "patient"],
  "keys:manage": ["admin"],
  "history:read": ["patient", "auditor"],
  "reports:read": ["patient", "auditor"],
  "fhir:read": ["patient", "auditor"],
  "export:read": ["auditor"],
  "provenance:read": ["auditor", "writer"],
  "audit:run": ["auditor"],
  "events:erase": ["admin"],
};

export interface AccessPolicyOptions {
  /** PATIENT_VIEW_STAFF_NAMES: patients are shown staff identities. */
  patientStaffNames: boolean;
  /** Seqs [0, nextSeq()) exist. */
  nextSeq: () => number;
  /** Whether `seq` is in the organization's / subject's index (erased events included). */
  isInScope: (seq: number, scope: { organization?: string; subject?: string }) => Promise<boolean>;
}

/** Where a principal's reads are confined to. */
export type ReadScope =
  | { kind: "all" }
  | { kind: "organization"; organization: string }
  | { kind: "subject"; subject: string };

/** A list filter with the names of the request fields that carried its scope parts. */
export interface RequestedFilter {
  filter: EventFilter;
  /** The request field that named `filter.organization` (for the 403 naming it). */
  organizationField?: string;
  /** The request field that named `filter.subject`. */
  subjectField?: string;
}

export class AccessPolicy {
  constructor(private readonly opts: AccessPolicyOptions) {}

  /** Refuses (403 FORBIDDEN) a role that may not use `operation` at all. */
  permit(principal: Principal, operation: Operation): void {
    if (!ALLOWED_ROLES[operation].includes(principal.role))
      throw new LedgerError("FORBIDDEN", `role ${principal.role} may not use this route`);
  }

  /** The organization a writer writes for; every event it logs must name it. */
  checkWrite(principal: Principal, organizations: ReadonlyArray<{ value: string; field: string }>) {
    this.permit(principal, "events:write");
    const own = this.ownOrganization(principal);
    for (const o of organizations)
      if (o.value !== own)
        throw new LedgerError(
          "FORBIDDEN",
          `this key writes only for its own organization; ${o.field} names another`,
          o.field,
        );
  }

  readScope(principal: Principal): ReadScope {
    switch (principal.role) {
      case "auditor":
        return { kind: "all" };
      case "writer":
        return { kind: "organization", organization: this.ownOrganization(principal) };
      case "patient":
        return { kind: "subject", subject: this.ownSubject(principal) };
      default:
        throw new LedgerError("FORBIDDEN", `role ${principal.role} may not read events`);
    }
  }

  /**
   * A list filter confined to the caller's scope: a writer's list is its organization's, a
   * patient's its subject's. Naming another scope is refused (403 naming the field): it is a
   * request the key can never be granted, not a search that finds nothing.
   */
  listFilter(principal: Principal, requested: RequestedFilter): EventFilter {
    const scope = this.readScope(principal);
    const filter: EventFilter = { ...requested.filter };
    if (scope.kind === "organization") {
      if (filter.organization !== undefined && filter.organization !== scope.organization)
        throw new LedgerError(
          "FORBIDDEN",
          "a writer may only list its own organization's events",
          requested.organizationField ?? "organization",
        );
      filter.organization = scope.organization;
    }
    if (scope.kind === "subject") {
      if (filter.subject !== undefined && filter.subject !== scope.subject)
        throw new LedgerError(
          "FORBIDDEN",
          "a patient key may only read its own events",
          requested.subjectField ?? "subject",
        );
      filter.subject = scope.subject;
    }
    return filter;
  }

  /**
   * The subject a subject-centred read (history, reports) is about: a patient's own (naming
   * another is 403), or the one an auditor names (required: 400 without it).
   */
  subjectFor(principal: Principal, requested: string | undefined, field = "subject"): string {
    const scope = this.readScope(principal);
    if (scope.kind === "subject") {
      if (requested !== undefined && requested !== scope.subject)
        throw new LedgerError("FORBIDDEN", "a patient key reads only its own history", field);
      return scope.subject;
    }
    if (scope.kind === "organization")
      throw new LedgerError("FORBIDDEN", "a writer key may not read a patient's history");
    if (requested === undefined)
      throw new LedgerError("VALIDATION_FAILED", `${field} is required (a subjectTag)`, field);
    return requested;
  }

  /**
   * Refuses a read of one event the caller may not see with the very answer a missing event
   * gets (404, same message): a scoped key learns nothing about seqs outside its scope.
   */
  async checkEvent(principal: Principal, seq: number): Promise<void> {
    const scope = this.readScope(principal);
    const visible =
      seq < this.opts.nextSeq() &&
      (scope.kind === "all" ||
        (await this.opts.isInScope(
          seq,
          scope.kind === "organization"
            ? { organization: scope.organization }
            : { subject: scope.subject },
        )));
    if (!visible) throw noSuchEvent(seq);
  }

  /** Whether this caller is shown staff identity: patients only per PATIENT_VIEW_STAFF_NAMES. */
  staffIdentityFor(principal: Principal): StaffIdentity {
    return principal.role === "patient" && !this.opts.patientStaffNames ? "withhold" : "disclose";
  }

  /** One event as the caller is shown it (see `redactEvent`). */
  eventFor(principal: Principal, event: NativeEvent): EventView {
    return redactEvent(event, this.staffIdentityFor(principal));
  }

  /** One stored event as the caller is shown it. */
  storedEventView(principal: Principal, stored: StoredEvent) {
    return {
      seq: stored.seq,
      entry: stored.entry,
      event: stored.event === null ? null : this.eventFor(principal, stored.event),
      erased: stored.event === null,
    };
  }

  /**
   * What a caller may see of a provenance trace. Auditors: all of it. A writer: the hops its
   * organization sent or received and the unmatched transfers that are its own or that name it
   * (an export addressed to it, an import naming it as the source). Of a hop's other side it sees
   * the event only when that side names its organization; otherwise the side is withheld and the
   * hop's existence (the match status) is all it learns. The item's data hash is shown only when
   * the writer asked by it or sees a transfer that carries it.
   */
  provenance(principal: Principal, trace: ProvenanceTrace, askedByDataHash: boolean): ScopedTrace {
    this.permit(principal, "provenance:read");
    if (principal.role === "auditor") return trace;
    const org = this.ownOrganization(principal);
    const hops: ScopedHop[] = [];
    for (const hop of trace.hops) {
      const sent = hop.from.organization === org;
      const received = hop.to.organization === org;
      if (!sent && !received) continue;
      hops.push({
        ...hop,
        from: sent || namesOrganization(hop.from, "export", org) ? hop.from : WITHHELD_SIDE,
        to: received || namesOrganization(hop.to, "import", org) ? hop.to : WITHHELD_SIDE,
      });
    }
    const unmatched: UnmatchedTransfer[] = trace.unmatched.filter(
      (u) => u.side.organization === org || namesOrganization(u.side, u.kind, org),
    );
    const sees = hops.length > 0 || unmatched.length > 0;
    return {
      ...trace,
      dataHash: askedByDataHash || sees ? trace.dataHash : null,
      hops,
      custody: custodyOf(hops),
      unmatched,
    };
  }

  /** A writer's organization (the one its events must name). */
  ownOrganization(principal: Principal): string {
    if (principal.role !== "writer" || principal.scope === null)
      throw new LedgerError("FORBIDDEN", `role ${principal.role} has no organization`);
    return principal.scope;
  }

  private ownSubject(principal: Principal): string {
    if (principal.role !== "patient" || principal.scope === null)
      throw new LedgerError("FORBIDDEN", `role ${principal.role} has no subject`);
    return principal.scope;
  }
}

/** Whether an answer shows staff identity (who, user name, alt id, network address) or not. */
export type StaffIdentity = "disclose" | "withhold";

/**
 * The one redaction of patient-facing output (events, reports, FHIR resources, histories):
 * the event without its agents' staff identity when it is withheld, the event itself otherwise.
 */
export function redactEvent(event: NativeEvent, staffIdentity: StaffIdentity): EventView {
  return staffIdentity === "withhold" ? withoutStaffIdentity(event) : event;
}

/** What a bundle carries of a stored event: the event as shown, its salt, its disclosures. */
export interface BundleContent {
  event: Record<string, unknown> | null;
  salt: Hex | null;
  /** Entry v2 only: the field salts of the redactable values shown in clear. */
  disclosures?: FieldSalts;
  /** True when the event exists but the caller is not shown it (an entry v1 event, below). */
  withheld: boolean;
}

/**
 * The same redaction for proof bundles. Entry v2: each staff-identity value either in clear with
 * its field salt in `disclosures`, or, when withheld, as `{"_sd": digest}` — the bundle still
 * verifies (DESIGN.md "Entry v2"). Entry v1 commits to the event as a whole: no field can be
 * left out without breaking the commitment, so when staff identity is withheld the event and
 * salt are withheld entirely (the entry, its inclusion and its anchor still prove that an event
 * was logged at that seq and when).
 */
export function bundleContent(
  entry: Entry,
  body: StoredBody | undefined,
  staffIdentity: StaffIdentity,
): BundleContent {
  if (body === undefined) return { event: null, salt: null, withheld: false };
  const event = body.event as Record<string, unknown>;
  const salt = body.salt as Hex;
  if (entry.v === 1)
    return staffIdentity === "withhold"
      ? { event: null, salt: null, withheld: true }
      : { event, salt, withheld: false };
  const shown = presentEvent(event, body.fieldSalts ?? {}, () => staffIdentity === "withhold");
  return { event: shown.event, salt, disclosures: shown.disclosures, withheld: false };
}

/** The answer for a seq that does not exist — and for one the caller may not see. */
export function noSuchEvent(seq: number): LedgerError {
  return new LedgerError("NOT_FOUND", `no event at seq ${seq}`, "seq");
}

/**
 * Whether a transfer side names `organization` as its counterparty: an export whose recipient
 * it is, or an import whose source agent (DCM 110153 Source Role ID, BALP
 * PrivacyDisclosure.Recipient) acts for it.
 */
function namesOrganization(
  side: TransferSide,
  kind: "export" | "import",
  organization: string,
): boolean {
  const event = side.bundle.event as NativeEvent | null;
  if (event === null) return false;
  if (kind === "export") return event.recipient?.organization === organization;
  return event.agents.some(
    (a) =>
      a.organization === organization &&
      a.type?.system === SYSTEM.dcm &&
      a.type.code === SOURCE_ROLE_ID,
  );
}

const SOURCE_ROLE_ID = "110153";

/**
 * Code systems and value sets the event model validates against.
 *
 * Sources: HL7 FHIR R4 AuditEvent bindings, HL7 terminology (v3-ActReason purpose-of-use
 * hierarchy, object-role, audit-entity-type, security-source-type, restful-interaction,
 * iso-21089-lifecycle, v3-ParticipationType), DICOM PS3.16 CID 400/401/402 (the "DCM" audit
 * codes) and the IHE BALP implementation guide (BasicAuditEntityType).
 *
 * A value set here is "closed" when Veritrail rejects any system it does not list (the event
 * type and purpose of use: a reviewer must be able to read every event) and "extensible" when
 * a system we do not know is accepted as is, but a system we do know must use one of its
 * codes, so a typo such as DCM 110160 is caught instead of being anchored forever.
 */

export const SYSTEM = {
  auditEventType: "http://terminology.hl7.org/CodeSystem/audit-event-type",
  dcm: "http://dicom.nema.org/resources/ontology/DCM",
  restfulInteraction: "http://hl7.org/fhir/restful-interaction",
  iso21089Lifecycle: "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle",
  actReason: "http://terminology.hl7.org/CodeSystem/v3-ActReason",
  objectRole: "http://terminology.hl7.org/CodeSystem/object-role",
  auditEntityType: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
  securitySourceType: "http://terminology.hl7.org/CodeSystem/security-source-type",
  participationType: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
  provenanceParticipantType: "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
  confidentiality: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
  balpEntityType: "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
  networkType: "http://hl7.org/fhir/network-type",
} as const;

/** code → display */
export type CodeTable = Readonly<Record<string, string>>;

export interface ValueSet {
  readonly name: string;
  /** Closed: codings from systems not listed are rejected. */
  readonly closed: boolean;
  readonly systems: Readonly<Record<string, CodeTable>>;
}

/** audit-event-type: R4 defines `rest`; the rest of AuditEvent.type comes from DICOM CID 400. */
export const AUDIT_EVENT_TYPE_CODES: CodeTable = { rest: "Restful Operation" };

/** DICOM PS3.16 CID 400 "Audit Event ID". */
export const DCM_EVENT_ID_CODES: CodeTable = {
  "110100": "Application Activity",
  "110101": "Audit Log Used",
  "110102": "Begin Transferring DICOM Instances",
  "110103": "DICOM Instances Accessed",
  "110104": "DICOM Instances Transferred",
  "110105": "DICOM Study Deleted",
  "110106": "Export",
  "110107": "Import",
  "110108": "Network Entry",
  "110109": "Order Record",
  "110110": "Patient Record",
  "110111": "Procedure Record",
  "110112": "Query",
  "110113": "Security Alert",
  "110114": "User Authentication",
};

/** DICOM PS3.16 CID 401 "Audit Event Type Code" (used as AuditEvent.subtype). */
export const DCM_EVENT_TYPE_CODES: CodeTable = {
  "110120": "Application Start",
  "110121": "Application Stop",
  "110122": "Login",
  "110123": "Logout",
  "110124": "Attach",
  "110125": "Detach",
  "110126": "Node Authentication",
  "110127": "Emergency Override Started",
  "110128": "Network Configuration",
  "110129": "Security Configuration",
  "110130": "Hardware Configuration",
  "110131": "Software Configuration",
  "110132": "Use of Restricted Function",
  "110133": "Audit Recording Stopped",
  "110134": "Audit Recording Started",
  "110135": "Object Security Attributes Changed",
  "110136": "Security Roles Changed",
  "110137": "User security Attributes Changed",
  "110138": "Emergency Override Stopped",
  "110139": "Remote Service Operation Started",
  "110140": "Remote Service Operation Stopped",
  "110141": "Local Service Operation Started",
  "110142": "Local Service Operation Stopped",
};

/** DICOM PS3.16 CID 402 "Audit Active Participant Role ID" (used as AuditEvent.agent.type). */
export const DCM_PARTICIPANT_ROLE_CODES: CodeTable = {
  "110150": "Application",
  "110151": "Application Launcher",
  "110152": "Destination Role ID",
  "110153": "Source Role ID",
  "110154": "Destination Media",
  "110155": "Source Media",
};

/** http://hl7.org/fhir/restful-interaction (FHIR R4). */
export const RESTFUL_INTERACTION_CODES: CodeTable = {
  read: "read",
  vread: "vread",
  update: "update",
  patch: "patch",
  delete: "delete",
  history: "history",
  "history-instance": "history-instance",
  "history-type": "history-type",
  "history-system": "history-system",
  create: "create",
  search: "search",
  "search-type": "search-type",
  "search-system": "search-system",
  capabilities: "capabilities",
  transaction: "transaction",
  batch: "batch",
  operation: "operation",
};

/** ISO 21089 record lifecycle events; BALP PrivacyDisclosure requires `disclose`. */
export const ISO_21089_LIFECYCLE_CODES: CodeTable = {
  access: "Access/View Record Lifecycle Event",
  hold: "Add Legal Hold Record Lifecycle Event",
  amend: "Amend (Update) Record Lifecycle Event",
  archive: "Archive Record Lifecycle Event",
  attest: "Attest Record Lifecycle Event",
  decrypt: "Decrypt Record Lifecycle Event",
  deidentify: "De-Identify (Anononymize) Record Lifecycle Event",
  deprecate: "Deprecate Record Lifecycle Event",
  destroy: "Destroy/Delete Record Lifecycle Event",
  disclose: "Disclose Record Lifecycle Event",
  encrypt: "Encrypt Record Lifecycle Event",
  extract: "Extract Record Lifecycle Event",
  link: "Link Record Lifecycle Event",
  merge: "Merge Record Lifecycle Event",
  originate: "Originate/Retain Record Lifecycle Event",
  pseudonymize: "Pseudonymize Record Lifecycle Event",
  reactivate: "Re-activate Record Lifecycle Event",
  receive: "Receive/Retain Record Lifecycle Event",
  reidentify: "Re-identify Record Lifecycle Event",
  unhold: "Remove Legal Hold Record Lifecycle Event",
  report: "Report (Output) Record Lifecycle Event",
  restore: "Restore Record Lifecycle Event",
  transform: "Transform/Translate Record Lifecycle Event",
  transmit: "Transmit Record Lifecycle Event",
  unlink: "Unlink Record Lifecycle Event",
  unmerge: "Unmerge Record Lifecycle Event",
  verify: "Verify Record Lifecycle Event",
};

/**
 * v3 ActReason, the purpose-of-use part (value set v3-PurposeOfUse /
 * ActHealthInformationManagementReason and the consent-override reasons). `LEGAL` is the
 * older ActInformationPrivacyReason code some systems still send; `HLEGAL` is current.
 */
export const PURPOSE_OF_USE_CODES: CodeTable = {
  BIORCH: "biomedical research",
  BTG: "break the glass",
  CAREMGT: "care management",
  CLINTRCH: "clinical trial research",
  CLINTRCHNPC: "clinical trial research without patient care",
  CLINTRCHPC: "clinical trial research with patient care",
  CLINTRL: "clinical trial",
  CLMATTCH: "claim attachment",
  COC: "coordination of care",
  COVAUTH: "coverage authorization",
  COVERAGE: "coverage under policy or program",
  DISASTER: "disaster",
  DONAT: "donation",
  DSRCH: "disease specific healthcare research",
  ELIGDTRM: "eligibility determination",
  ELIGVER: "eligibility verification",
  ENROLLM: "enrollment",
  ERTREAT: "emergency room treatment",
  ETREAT: "Emergency Treatment",
  FAMRQT: "family requested",
  FRAUD: "fraud",
  GOV: "government",
  HACCRED: "health accreditation",
  HCOMPL: "health compliance",
  HDECD: "decedent",
  HDIRECT: "directory",
  HDM: "healthcare delivery management",
  HLEGAL: "legal",
  HMARKT: "healthcare marketing",
  HOPERAT: "healthcare operations",
  HOUTCOMS: "health outcome measure",
  HPAYMT: "healthcare payment",
  HPRGRP: "health program reporting",
  HQUALIMP: "health quality improvement",
  HRESCH: "healthcare research",
  HSYSADMIN: "health system administration",
  HTEST: "test health data",
  LABELING: "labeling",
  LEGAL: "legal",
  MEMADMIN: "member administration",
  METAMGT: "metadata management",
  MILCDM: "military command",
  MILDCRG: "military discharge",
  OVRER: "emergency treatment override",
  OVRINCOMP: "incompetency override",
  OVRPJ: "professional judgment override",
  OVRPS: "public safety override",
  OVRTPS: "third party safety override",
  PATADMIN: "patient administration",
  PATRQT: "patient requested",
  PATSFTY: "patient safety",
  PERFMSR: "performance measure",
  POARCH: "population origins or ancestry healthcare research",
  POPHLTH: "population health",
  PRECLINTRCH: "preclinical trial research",
  PUBHLTH: "public health",
  PWATRNY: "power of attorney",
  RECORDMGT: "records management",
  REMITADV: "remittance advice",
  SUPNWK: "support network",
  SYSDEV: "system development",
  THREAT: "threat",
  TRAIN: "training",
  TRANSRCH: "translational healthcare research",
  TREAT: "treatment",
};

/** Purpose of use that records an override of access control (HL7 "break the glass"). */
export const BREAK_GLASS_PURPOSE = "BTG";

/** object-role (R4 AuditEvent.entity.role). `1` Patient is reserved for the patient entity. */
export const OBJECT_ROLE_CODES: CodeTable = {
  "1": "Patient",
  "2": "Location",
  "3": "Report",
  "4": "Domain Resource",
  "5": "Master file",
  "6": "User",
  "7": "List",
  "8": "Doctor",
  "9": "Subscriber",
  "10": "Guarantor",
  "11": "Security User Entity",
  "12": "Security User Group",
  "13": "Security Resource",
  "14": "Security Granularity Definition",
  "15": "Practitioner",
  "16": "Data Destination",
  "17": "Data Repository",
  "18": "Schedule",
  "19": "Customer",
  "20": "Job",
  "21": "Job Stream",
  "22": "Table",
  "23": "Routing Criteria",
  "24": "Query",
};

/** audit-entity-type (R4 AuditEvent.entity.type). */
export const AUDIT_ENTITY_TYPE_CODES: CodeTable = {
  "1": "Person",
  "2": "System Object",
  "3": "Organization",
  "4": "Other",
};

/** IHE BALP BasicAuditEntityType: the X-Request-Id transaction entity. */
export const BALP_ENTITY_TYPE_CODES: CodeTable = {
  XrequestId: "transport specific unique identifier where http X-Request-Id is used",
};

/** security-source-type (R4 AuditEvent.source.type). */
export const SECURITY_SOURCE_TYPE_CODES: CodeTable = {
  "1": "User Device",
  "2": "Data Interface",
  "3": "Web Server",
  "4": "Application Server",
  "5": "Database Server",
  "6": "Security Server",
  "7": "Network Device",
  "8": "Network Router",
  "9": "Other",
};

/** v3-ParticipationType codes that occur as AuditEvent.agent.type (BALP uses IRCP, AUT, INF, CST). */
export const PARTICIPATION_TYPE_CODES: CodeTable = {
  ADM: "admitter",
  ATND: "attender",
  AUT: "author (originator)",
  AUTHEN: "authenticator",
  CALLBCK: "callback contact",
  CON: "consultant",
  CST: "custodian",
  DEV: "device",
  DIR: "direct target",
  DIST: "distributor",
  ENT: "data entry person",
  ESC: "escort",
  IND: "indirect target",
  INF: "informant",
  IRCP: "information recipient",
  LA: "legal authenticator",
  NOT: "ugent notification contact",
  NRD: "non-reuseable device",
  PPRF: "primary performer",
  PRCP: "primary information recipient",
  PRF: "performer",
  REF: "referrer",
  REFB: "Referred By",
  REFT: "Referred to",
  RESP: "responsible party",
  SPRF: "secondary performer",
  TRANS: "Transcriber",
  VRF: "verifier",
  WIT: "witness",
};

/** provenance-participant-type (used by BALP for the custodian agent). */
export const PROVENANCE_PARTICIPANT_TYPE_CODES: CodeTable = {
  enterer: "Enterer",
  performer: "Performer",
  author: "Author",
  verifier: "Verifier",
  legal: "Legal Authenticator",
  attester: "Attester",
  informant: "Informant",
  custodian: "Custodian",
  assembler: "Assembler",
  composer: "Composer",
};

/** v3-Confidentiality (security labels). */
export const CONFIDENTIALITY_CODES: CodeTable = {
  U: "unrestricted",
  L: "low",
  M: "moderate",
  N: "normal",
  R: "restricted",
  V: "very restricted",
};

/** R4 AuditEvent.agent.network.type (a `code`, not a Coding, in R4). */
export const NETWORK_TYPE_CODES: CodeTable = {
  "1": "Machine Name",
  "2": "IP Address",
  "3": "Telephone Number",
  "4": "Email address",
  "5": "URI",
};

export const EVENT_TYPE_VS: ValueSet = {
  name: "event type",
  closed: true,
  systems: { [SYSTEM.auditEventType]: AUDIT_EVENT_TYPE_CODES, [SYSTEM.dcm]: DCM_EVENT_ID_CODES },
};

export const EVENT_SUBTYPE_VS: ValueSet = {
  name: "event subtype",
  closed: false,
  systems: {
    [SYSTEM.restfulInteraction]: RESTFUL_INTERACTION_CODES,
    [SYSTEM.iso21089Lifecycle]: ISO_21089_LIFECYCLE_CODES,
    [SYSTEM.dcm]: DCM_EVENT_TYPE_CODES,
  },
};

export const AGENT_TYPE_VS: ValueSet = {
  name: "agent type",
  closed: false,
  systems: {
    [SYSTEM.dcm]: DCM_PARTICIPANT_ROLE_CODES,
    [SYSTEM.participationType]: PARTICIPATION_TYPE_CODES,
    [SYSTEM.provenanceParticipantType]: PROVENANCE_PARTICIPANT_TYPE_CODES,
  },
};

/** Agent roles are mostly local (OAuth scopes, SNOMED CT roles): nothing known to check. */
export const AGENT_ROLE_VS: ValueSet = { name: "agent role", closed: false, systems: {} };

export const SOURCE_TYPE_VS: ValueSet = {
  name: "source type",
  closed: false,
  systems: { [SYSTEM.securitySourceType]: SECURITY_SOURCE_TYPE_CODES },
};

export const ENTITY_TYPE_VS: ValueSet = {
  name: "entity type",
  closed: false,
  systems: {
    [SYSTEM.auditEntityType]: AUDIT_ENTITY_TYPE_CODES,
    [SYSTEM.balpEntityType]: BALP_ENTITY_TYPE_CODES,
  },
};

export const ENTITY_ROLE_VS: ValueSet = {
  name: "entity role",
  closed: false,
  systems: { [SYSTEM.objectRole]: OBJECT_ROLE_CODES },
};

export const SECURITY_LABEL_VS: ValueSet = {
  name: "security label",
  closed: false,
  systems: { [SYSTEM.confidentiality]: CONFIDENTIALITY_CODES },
};

/** Data categories are institution-defined (LOINC document classes, FHIR resource types…). */
export const DATA_CATEGORY_VS: ValueSet = { name: "data category", closed: false, systems: {} };

export type CodeCheck =
  { ok: true } | { ok: false; code: "unknown_system" | "unknown_code"; message: string };

/** Checks one (system, code) pair against a value set; see the file comment for closed/extensible. */
export function checkCode(vs: ValueSet, system: string, code: string): CodeCheck {
  const table = Object.hasOwn(vs.systems, system) ? vs.systems[system] : undefined;
  if (table === undefined) {
    if (!vs.closed) return { ok: true };
    const known = Object.keys(vs.systems).join(", ");
    return {
      ok: false,
      code: "unknown_system",
      message: `${vs.name} system ${system} is not accepted (known: ${known})`,
    };
  }
  if (Object.hasOwn(table, code)) return { ok: true };
  return {
    ok: false,
    code: "unknown_code",
    message: `unknown ${vs.name} code ${code} in ${system}`,
  };
}

export function isPurposeOfUse(code: string): boolean {
  return Object.hasOwn(PURPOSE_OF_USE_CODES, code);
}

export function displayOf(table: CodeTable, code: string): string | undefined {
  return Object.hasOwn(table, code) ? table[code] : undefined;
}

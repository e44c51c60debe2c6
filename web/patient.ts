/**
 * The patient page (web/patient.html): fetches GET /v1/patient/history with the key the patient
 * pastes, then checks it in the browser with the standalone verifier against the RPC URL the
 * patient gives (services/verifier/completeness.ts): every event's proof bundle, the anchor of
 * the batch the history is complete as of, and the completeness proof. Bundled by
 * scripts/build-web.ts into web/dist/patient.js, served at /assets/patient.js.
 *
 * The page talks to this service (for the history) and the RPC (for verification), nothing
 * else. Every value from the history reaches the page through textContent only. The key is
 * neither stored nor put in the address.
 */
import { PURPOSE_OF_USE_CODES, displayOf } from "../services/core/codes.ts";
import { type HistoryVerdict, verifyPatientHistory } from "../services/verifier/completeness.ts";
import { connectRpc } from "../services/verifier/rpc.ts";
import { mountTrustPolicy, trustLine } from "./trust-policy.ts";

interface Coding {
  code?: string;
  display?: string;
}

interface AgentView {
  organization?: string;
  requestor?: boolean;
  role?: Coding[];
  type?: Coding;
  purposeOfUse?: string[];
  who?: { value?: string; display?: string };
  userName?: string;
}

interface EventView {
  action?: string;
  outcome?: number;
  purposeOfUse?: string[];
  subtype?: Coding[];
  source?: { organization?: string };
  agents?: AgentView[];
}

interface HistoryEvent {
  seq: number;
  recorded: string;
  event: EventView | null;
  erased: boolean;
  /** The event exists but is withheld whole (an entry v1 event; its date is still proven). */
  withheld?: boolean;
}

interface History {
  asOf: { batch: { batchNo: number }; anchor: { blockNumber: number } } | null;
  events: HistoryEvent[];
  notYetCovered: HistoryEvent[];
}

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

const form = element<HTMLFormElement>("history-form");
const keyField = element<HTMLInputElement>("key");
const rpcField = element<HTMLInputElement>("rpc");
const confirmationsField = element<HTMLInputElement>("confirmations");
const button = element<HTMLButtonElement>("show");
const busy = element<HTMLSpanElement>("busy");
const summary = element<HTMLDivElement>("summary");
const summaryTitle = element<HTMLHeadingElement>("summary-title");
const summaryDetail = element<HTMLParagraphElement>("summary-detail");
const summaryTrust = element<HTMLParagraphElement>("summary-trust");
const trust = mountTrustPolicy(element<HTMLElement>("trust"));
const findingsList = element<HTMLUListElement>("findings");
const timeline = element<HTMLTableElement>("timeline");
const later = element<HTMLTableElement>("later");
const laterTitle = element<HTMLHeadingElement>("later-title");

const ACTIONS: Record<string, string> = {
  C: "Created",
  R: "Read",
  U: "Updated",
  D: "Deleted",
  E: "Executed",
};

const OUTCOMES: Record<number, string> = {
  0: "Success",
  4: "Minor failure",
  8: "Serious failure",
  12: "Major failure",
};

function when(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

/** The agent who asked for the data (the requestor), else the first one. */
function requestor(e: EventView): AgentView | undefined {
  return e.agents?.find((a) => a.requestor === true) ?? e.agents?.[0];
}

function codingText(c: Coding | undefined): string {
  return c?.display ?? c?.code ?? "";
}

function purposeText(e: EventView): string {
  const codes = e.purposeOfUse?.length ? e.purposeOfUse : (requestor(e)?.purposeOfUse ?? []);
  return codes.map((c) => displayOf(PURPOSE_OF_USE_CODES, c) ?? c).join(", ") || "—";
}

function columns(h: HistoryEvent): string[] {
  if (h.event === null)
    return [
      when(h.recorded),
      h.withheld === true
        ? "(details withheld: logged before staff identity could be hidden on its own)"
        : "(erased on request)",
      "",
      "",
      "",
      "",
    ];
  const e = h.event;
  const agent = requestor(e);
  const staff = agent?.userName ?? agent?.who?.display;
  const role = [codingText(agent?.role?.[0]) || codingText(agent?.type), staff]
    .filter((x) => x)
    .join(" — ");
  const verb = ACTIONS[e.action ?? ""] ?? e.action ?? "";
  const detail = codingText(e.subtype?.[0]);
  // "Read · read" says nothing twice; a subtype that differs (search, disclose) is kept.
  const action =
    detail && detail.toLowerCase() !== verb.toLowerCase() ? `${verb} · ${detail}` : verb;
  return [
    when(h.recorded),
    agent?.organization ?? e.source?.organization ?? "",
    role || "—",
    purposeText(e),
    action,
    OUTCOMES[e.outcome ?? -1] ?? String(e.outcome ?? ""),
  ];
}

function fillRows(
  table: HTMLTableElement,
  events: HistoryEvent[],
  results: HistoryVerdict["events"],
  failedSeqs: Set<number>,
): void {
  const tbody = table.tBodies[0]!;
  tbody.replaceChildren();
  events.forEach((h, i) => {
    const status = results[i]?.verdict.status;
    const ok = (status === "verified" || status === "erased") && !failedSeqs.has(h.seq);
    const pending = status === "pending" && !failedSeqs.has(h.seq);
    const row = document.createElement("tr");
    row.dataset["seq"] = String(h.seq);
    row.dataset["ok"] = ok ? "true" : pending ? "pending" : "false";
    if (h.erased) row.className = "erased";
    const mark = document.createElement("td");
    mark.className = "mark";
    mark.textContent = ok ? "✓" : pending ? "…" : "✗";
    mark.title = ok
      ? "Proven genuine against the chain"
      : pending
        ? "Accepted, receipt verified, not yet anchored"
        : `Not valid${results[i]?.verdict.code ? ` (${results[i]!.verdict.code})` : ""}`;
    row.append(mark);
    columns(h).forEach((text, c) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (c === 0) td.className = "when";
      row.append(td);
    });
    tbody.append(row);
  });
  table.hidden = events.length === 0;
}

function showSummary(
  status: string,
  title: string,
  detail: string,
  findings: string[] = [],
  trustText = "",
) {
  summary.hidden = false;
  summary.dataset["status"] = status;
  summaryTitle.textContent = title;
  summaryDetail.textContent = detail;
  summaryTrust.textContent = trustText;
  summaryTrust.hidden = trustText === "";
  findingsList.replaceChildren(
    ...findings.map((f) => {
      const li = document.createElement("li");
      li.textContent = f;
      return li;
    }),
  );
  document.body.dataset["verdict"] = status;
}

function headline(v: HistoryVerdict, h: History): { title: string; detail: string } {
  const n = h.events.length;
  const accesses = `${n} access${n === 1 ? "" : "es"}`;
  switch (v.status) {
    case "verified":
      if (n === 0)
        return {
          title: `✓ No access to your data has been logged up to batch ${v.asOf!.batchNo}`,
          detail:
            `Batch ${v.asOf!.batchNo} is anchored in block ${v.asOf!.blockNumber}, and the ` +
            `blockchain confirms that the log holds no access to your data up to it.`,
        };
      return {
        title: `✓ Complete as of batch ${v.asOf!.batchNo}, anchored in block ${v.asOf!.blockNumber}`,
        detail:
          `${accesses} to your data, each proven genuine, and the blockchain confirms nothing ` +
          `was left out up to that batch.`,
      };
    case "pending":
      return {
        title: "… Nothing anchored yet",
        detail:
          "The service has not anchored a batch on the blockchain yet, so completeness cannot be " +
          "proven. Check again later.",
      };
    case "failed":
      if (v.code === "UNTRUSTED_REGISTRY" || v.code === "UNKNOWN_LOG")
        return {
          title: `✗ Not from a log you trust (${v.code})`,
          detail:
            "This history is anchored in a registry or log that your trust policy does not list. " +
            "Anyone can deploy a registry, so it proves nothing. Keep this page and contact the " +
            "data protection officer or your regulator.",
        };
      return {
        title: `✗ This history does not check out (${v.code ?? "failed"})`,
        detail:
          "The list you were shown is not what the blockchain commits to: an access may have " +
          "been left out or altered. Keep this page and contact the data protection officer.",
      };
    case "error":
      return {
        title: "! Could not check",
        detail: "The RPC endpoint could not be read. Check the URL and try again.",
      };
  }
}

async function run(): Promise<void> {
  const key = keyField.value.trim();
  const rpc = rpcField.value.trim();
  const confirmations = Number(confirmationsField.value);
  delete document.body.dataset["verdict"];
  timeline.hidden = true;
  later.hidden = true;
  laterTitle.hidden = true;
  if (key === "") {
    showSummary("error", "! No key", "Paste the access key you were given.");
    return;
  }
  if (!Number.isSafeInteger(confirmations) || confirmations < 0) {
    showSummary("error", "! Confirmations", "Confirmations must be a whole number, 0 or more.");
    return;
  }
  const policy = trust.current();
  if (!policy) {
    showSummary(
      "no-policy",
      "! No trust policy",
      "Load the trust policy of your regulator or health authority first (above): it says " +
        "which hospitals' logs, on which registry, count. Without it nothing can be proven.",
    );
    return;
  }
  button.disabled = true;
  busy.textContent = "Fetching your history…";
  try {
    const res = await fetch("/v1/patient/history", {
      headers: { authorization: `Bearer ${key}` },
      cache: "no-store",
    });
    if (res.status === 401 || res.status === 403) {
      showSummary("unauthorized", "✗ Key not accepted", "The key is not valid or was revoked.");
      return;
    }
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
      showSummary(
        "error",
        "! The service answered an error",
        body.error?.message ?? `HTTP ${res.status}`,
      );
      return;
    }
    const raw = (await res.json()) as unknown;
    const history = raw as History;
    busy.textContent = `Checking ${history.events.length + history.notYetCovered.length} proofs against the chain…`;
    let provider;
    try {
      provider = await connectRpc(rpc, { timeoutMs: 15_000 });
    } catch (e) {
      showSummary("error", "! Could not reach the RPC", e instanceof Error ? e.message : String(e));
      return;
    }
    let verdict: HistoryVerdict;
    try {
      verdict = await verifyPatientHistory(raw, provider, { trust: policy, confirmations });
    } finally {
      provider.destroy();
    }
    const failedSeqs = new Set(
      verdict.findings.flatMap((f) => (f.seq !== undefined ? [f.seq] : [])),
    );
    fillRows(timeline, history.events, verdict.events, failedSeqs);
    fillRows(later, history.notYetCovered, verdict.notYetCovered, failedSeqs);
    laterTitle.hidden = later.hidden;
    const { title, detail } = headline(verdict, history);
    const findings =
      verdict.status === "verified" ? [] : verdict.findings.map((f) => `${f.code}: ${f.message}`);
    showSummary(verdict.status, title, detail, findings, trustLine(verdict.trust));
  } catch (e) {
    showSummary("error", "! Something went wrong", e instanceof Error ? e.message : String(e));
  } finally {
    button.disabled = false;
    busy.textContent = "";
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  void run();
});

const fragment = new URLSearchParams(location.hash.slice(1));
const presetRpc = fragment.get("rpc");
if (presetRpc) rpcField.value = presetRpc;

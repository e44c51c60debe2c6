/**
 * The regulator console (web/regulator.html): verifies whole logs in the browser and shows who
 * accessed what. Each log is read and verified by its own worker (web/regulator/worker.ts):
 * from its API with an auditor key (kept in this page's memory and the worker's, never stored,
 * never put in the address) or from a dropped NDJSON export. The page asks the workers for
 * figures (web/regulator/figures.ts), merges them for "all logs", draws them with Chart.js and
 * shows each as a table that its CSV button exports as is.
 *
 * Every value from a bundle reaches the page through textContent only: an export is untrusted
 * input. The page talks to the logs' APIs and the RPC (through the workers), nothing else.
 */
import type { Check } from "../services/verifier/verdict.ts";
import type { TrustPolicy } from "../services/core/trust-policy.ts";
import { ConsoleCharts } from "./regulator/charts.ts";
import { type FigureQuery, type Figures, mergeFigures } from "./regulator/figures.ts";
import type {
  FromWorker,
  LogResult,
  Progress,
  RunErrorKind,
  RunSummary,
  Source,
  ToWorker,
} from "./regulator/protocol.ts";
import {
  type FigureTable,
  batchesTable,
  compareTable,
  countsTable,
  csvOf,
  eventListTable,
  failuresTable,
  perDayTable,
  staffTable,
  transferLines,
  transfersTable,
  verdictsTable,
} from "./regulator/tables.ts";
import {
  DEFAULT_WORKING_HOURS,
  type WorkingHours,
  clockTimeText,
  isTimeZone,
  parseClockTime,
} from "./regulator/zone-clock.ts";
import { mountTrustPolicy } from "./trust-policy.ts";
import { STEP_NAMES, el, element } from "./dom.ts";

/** Rows of a list drawn on the page; the CSV has them all. */
const LIST_LIMIT = 200;
const WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/** Saves text as a file, made in this browser (a blob: URL; nothing is uploaded). */
function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const form = element<HTMLFormElement>("connect-form");
const rpcFields = element<HTMLDivElement>("rpc-fields");
const sourcesBody = element<HTMLTableElement>("log-sources").tBodies[0]!;
const noLogs = element<HTMLParagraphElement>("no-logs");
const filesInput = element<HTMLInputElement>("export-files");
const dropzone = element<HTMLDivElement>("dropzone");
const fileList = element<HTMLUListElement>("file-list");
const confirmationsField = element<HTMLInputElement>("confirmations");
const verifyButton = element<HTMLButtonElement>("verify");
const stopButton = element<HTMLButtonElement>("stop");
const formMessage = element<HTMLSpanElement>("form-message");
const runsSection = element<HTMLElement>("runs");
const results = element<HTMLElement>("results");
const fromDay = element<HTMLInputElement>("from-day");
const toDay = element<HTMLInputElement>("to-day");
const scopeSelect = element<HTMLSelectElement>("scope");
const verifiedOnly = element<HTMLInputElement>("verified-only");
const organizationsBox = element<HTMLFieldSetElement>("organizations");
const zoneField = element<HTMLInputElement>("zone");
const zones = element<HTMLDataListElement>("zones");
const hoursStart = element<HTMLInputElement>("hours-start");
const hoursEnd = element<HTMLInputElement>("hours-end");
const weekdays = element<HTMLSpanElement>("weekdays");
const hoursMessage = element<HTMLParagraphElement>("hours-message");
const thresholdField = element<HTMLInputElement>("threshold");
const proofDialog = element<HTMLDialogElement>("proof-dialog");

const trust = mountTrustPolicy(element<HTMLElement>("trust"), {
  onChange: (policy) => renderSources(policy),
});

// ---- sources ---------------------------------------------------------------------------------

/** Dropped exports waiting for "Verify". */
let files: File[] = [];

function renderSources(policy: TrustPolicy | undefined): void {
  sourcesBody.replaceChildren();
  rpcFields.replaceChildren();
  const chains = [...new Set((policy?.registries ?? []).map((r) => r.chainId))];
  if (chains.length === 0) chains.push(31337);
  for (const chainId of chains) {
    const id = `rpc-${chainId}`;
    const label = el("label", { for: id }, `RPC URL of chain ${chainId} `);
    label.append(el("span", { class: "hint" }, "A node of the chain you trust."));
    const input = el("input", {
      id,
      type: "url",
      "data-chain": String(chainId),
      value: "http://127.0.0.1:8545",
      spellcheck: "false",
    });
    const box = el("div");
    box.append(label, input);
    rpcFields.append(box);
  }
  const logs = policy?.logs ?? [];
  noLogs.hidden = logs.length > 0 || policy === undefined;
  logs.forEach((log, i) => {
    const tr = el("tr", { "data-log-id": log.logId });
    const api = el("input", {
      type: "url",
      class: "api",
      "aria-label": `API of ${log.operator}`,
      value: log.api ?? location.origin,
      spellcheck: "false",
    });
    const key = el("input", {
      type: "password",
      class: "key",
      id: `key-${i}`,
      "aria-label": `Auditor key for ${log.operator}`,
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "vt_… (leave empty to skip this log)",
    });
    const logCell = el("td", { class: "mono" }, `${log.logId.slice(0, 10)}…`);
    logCell.title = log.logId;
    const apiCell = el("td");
    apiCell.append(api);
    const keyCell = el("td");
    keyCell.append(key);
    tr.append(el("td", {}, log.operator), logCell, apiCell, keyCell);
    sourcesBody.append(tr);
  });
}

function renderFiles(): void {
  fileList.replaceChildren(
    ...files.map((f, i) => {
      const li = el("li", {}, `${f.name} (${(f.size / 1024 / 1024).toFixed(1)} MB) `);
      const remove = el("button", { type: "button", class: "link" }, "remove");
      remove.addEventListener("click", () => {
        files.splice(i, 1);
        renderFiles();
      });
      li.append(remove);
      return li;
    }),
  );
}

/** Adds dropped or chosen exports; the same file chosen again is not counted twice. */
function addFiles(list: FileList | null | undefined): void {
  const same = (a: File, b: File) =>
    a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  for (const f of list ? Array.from(list) : []) if (!files.some((g) => same(f, g))) files.push(f);
  renderFiles();
}

filesInput.addEventListener("change", () => {
  addFiles(filesInput.files);
  filesInput.value = "";
});
dropzone.addEventListener("dragover", (e) => {
  e.preventDefault();
  dropzone.classList.add("dragging");
});
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
dropzone.addEventListener("drop", (e) => {
  e.preventDefault();
  dropzone.classList.remove("dragging");
  addFiles(e.dataTransfer?.files);
});

// ---- runs ------------------------------------------------------------------------------------

interface RunView {
  index: number;
  label: string;
  operator: string | null;
  worker: Worker;
  state: "verifying" | "done" | "error";
  summary?: RunSummary;
  box: HTMLElement;
  bar: HTMLProgressElement;
  text: HTMLParagraphElement;
  notes: HTMLUListElement;
}

let runs: RunView[] = [];
let policyAtStart: TrustPolicy | undefined;
let nextRequest = 1;
const pending = new Map<number, (msg: FromWorker) => void>();

function ask<T extends FromWorker>(run: RunView, message: ToWorker & { id: number }): Promise<T> {
  return new Promise((resolve) => {
    pending.set(message.id, (m) => resolve(m as T));
    run.worker.postMessage(message);
  });
}

const ERROR_TITLES: Record<RunErrorKind, string> = {
  "key-rejected": "Key not accepted",
  "not-auditor": "Not an auditor key",
  "api-unreachable": "API unreachable",
  "api-error": "The API answered with an error",
  "wrong-log": "The API serves another log",
  "rpc-unreachable": "RPC unreachable",
  "not-ndjson": "Not an export",
  policy: "Trust policy not usable",
  worker: "Verification stopped",
};

function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

function progressText(p: Progress): string {
  const seconds = (p.elapsedMs / 1000).toFixed(1);
  const of = p.total !== null ? ` of ${formatCount(p.total)}` : "";
  const failed = p.failed > 0 ? `, ${formatCount(p.failed)} not valid` : "";
  return `${formatCount(p.verified)}${of} bundles verified${failed} — ${seconds} s`;
}

function startRun(
  index: number,
  label: string,
  operator: string | null,
  source: Source,
  verifiers: number,
): RunView {
  const worker = new Worker("/assets/regulator-worker.js", { type: "module" });
  const box = el("div", { class: "run", "data-state": "verifying", "data-run": String(index) });
  const title = el("h3", {}, label);
  const bar = el("progress", { max: "1", "aria-label": `Progress of ${label}` });
  const text = el("p", { class: "run-text" }, "Starting…");
  const notes = el("ul", { class: "run-notes" });
  box.append(title, bar, text, notes);
  runsSection.append(box);
  const run: RunView = {
    index,
    label,
    operator,
    worker,
    state: "verifying",
    box,
    bar,
    text,
    notes,
  };
  worker.addEventListener("message", (e: MessageEvent<FromWorker>) => onWorkerMessage(run, e.data));
  worker.addEventListener("error", (e) => {
    fail(run, "worker", `the verification worker stopped: ${e.message}`);
  });
  const rpcByChain: Record<string, string> = {};
  for (const input of Array.from(rpcFields.querySelectorAll<HTMLInputElement>("input[data-chain]")))
    rpcByChain[input.dataset["chain"]!] = input.value.trim();
  const message: ToWorker = {
    type: "start",
    index,
    source,
    rpcByChain,
    trust: trustDocumentAtStart,
    confirmations: Math.max(0, Math.floor(Number(confirmationsField.value) || 0)),
    verifiers,
  };
  worker.postMessage(message);
  return run;
}

/** The policy document as loaded (each worker parses and applies it itself). */
let trustDocumentAtStart: unknown;

function fail(run: RunView, kind: RunErrorKind, message: string): void {
  run.state = "error";
  run.box.dataset["state"] = "error";
  run.box.dataset["error"] = kind;
  run.text.replaceChildren(el("strong", {}, `${ERROR_TITLES[kind]}: `), message);
  run.bar.hidden = true;
  void settle();
}

function note(run: RunView, kind: string, text: string): void {
  run.notes.append(el("li", { "data-note": kind }, text));
}

function onWorkerMessage(run: RunView, msg: FromWorker): void {
  switch (msg.type) {
    case "progress":
      showProgress(run, msg.progress);
      return;
    case "done": {
      run.state = "done";
      run.summary = msg.summary;
      if (msg.summary.operator) run.operator = msg.summary.operator;
      showProgress(run, msg.progress);
      run.box.dataset["state"] = "done";
      run.box.dataset["bundles"] = String(msg.summary.bundles);
      run.box.dataset["durationMs"] = String(msg.summary.durationMs);
      run.text.textContent =
        `${formatCount(msg.summary.bundles)} bundles verified in ${(msg.summary.durationMs / 1000).toFixed(1)} s` +
        ` (${formatCount(msg.summary.chainCalls)} chain reads, head block ${msg.summary.head ?? "?"})` +
        (msg.progress.failed > 0 ? ` — ${formatCount(msg.progress.failed)} not valid` : "");
      const u = msg.summary.untrusted;
      if (u.registry > 0)
        note(
          run,
          "untrusted-registry",
          `${formatCount(u.registry)} bundle(s) are anchored in a registry your trust policy does not list (UNTRUSTED_REGISTRY): ${u.example ?? ""}. They are not counted as verified.`,
        );
      if (u.unknownLog > 0)
        note(
          run,
          "unknown-log",
          `${formatCount(u.unknownLog)} bundle(s) are of a log your trust policy does not list (UNKNOWN_LOG). They are not counted as verified.`,
        );
      if (msg.summary.rpcErrors > 0)
        note(
          run,
          "rpc-errors",
          `${formatCount(msg.summary.rpcErrors)} bundle(s) could not be checked: the RPC stopped answering (RPC_ERROR). Verify again.`,
        );
      if (msg.summary.logEvents !== null && msg.summary.logEvents !== msg.summary.bundles)
        note(
          run,
          "count-mismatch",
          `The API reports ${formatCount(msg.summary.logEvents)} events in the log, its export held ${formatCount(msg.summary.bundles)}.`,
        );
      void settle();
      return;
    }
    case "error":
      fail(run, msg.kind, msg.message);
      return;
    default: {
      const resolve = pending.get(msg.id);
      pending.delete(msg.id);
      resolve?.(msg);
    }
  }
}

function showProgress(run: RunView, p: Progress): void {
  if (p.total !== null && p.total > 0) run.bar.value = Math.min(1, p.verified / p.total);
  else if (p.bytesTotal !== null && p.bytesTotal > 0)
    run.bar.value = Math.min(1, p.bytesRead / p.bytesTotal);
  run.box.dataset["verified"] = String(p.verified);
  run.text.textContent = progressText(p);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  formMessage.textContent = "";
  const policy = trust.current();
  if (!policy) {
    formMessage.textContent =
      "Load a trust policy first: every verdict is relative to the registries and logs it lists.";
    return;
  }
  const apiSources: Array<{ label: string; operator: string; source: Source }> = [];
  for (const tr of Array.from(sourcesBody.rows)) {
    const key = tr.querySelector<HTMLInputElement>("input.key")!.value.trim();
    if (key === "") continue;
    const api = tr.querySelector<HTMLInputElement>("input.api")!.value.trim();
    const logId = tr.dataset["logId"]!;
    const log = policy.logs.find((l) => l.logId === logId)!;
    let origin: string;
    try {
      origin = new URL(api).origin;
    } catch {
      formMessage.textContent = `The API URL of ${log.operator} is not a URL.`;
      return;
    }
    apiSources.push({
      label: `${log.operator} — ${origin}`,
      operator: log.operator,
      source: { kind: "api", api, key, logId },
    });
  }
  if (apiSources.length === 0 && files.length === 0) {
    formMessage.textContent = "Paste an auditor key for at least one log, or drop an export.";
    return;
  }
  for (const r of runs) r.worker.terminate();
  runs = [];
  pending.clear();
  runsSection.replaceChildren();
  results.hidden = true;
  document.body.dataset["console"] = "verifying";
  verifyButton.disabled = true;
  stopButton.hidden = false;
  policyAtStart = policy;
  trustDocumentAtStart = trust.document();
  // The cores go to the logs: each log's worker gets this many verifiers (at least one);
  // ?verifiers=N in the address sets it (benchmarks compare 1 with more).
  const cores = Math.max(1, navigator.hardwareConcurrency || 2);
  const asked = Number(new URLSearchParams(location.search).get("verifiers"));
  const verifiers =
    Number.isSafeInteger(asked) && asked >= 1 && asked <= 64
      ? asked
      : Math.max(1, Math.floor(cores / (apiSources.length + files.length)));
  apiSources.forEach((s, i) => runs.push(startRun(i, s.label, s.operator, s.source, verifiers)));
  files.forEach((f, i) =>
    runs.push(startRun(apiSources.length + i, f.name, null, { kind: "file", file: f }, verifiers)),
  );
  files = [];
  renderFiles();
});

// Stopping ends the workers (and their verifiers, and their requests): nothing is kept.
stopButton.addEventListener("click", () => {
  for (const r of runs) {
    r.worker.terminate();
    if (r.state === "verifying") {
      r.state = "error";
      r.box.dataset["state"] = "error";
      r.box.dataset["error"] = "stopped";
      r.text.textContent = `Stopped after ${r.box.dataset["verified"] ?? "0"} bundles.`;
    }
  }
  runs = [];
  verifyButton.disabled = false;
  stopButton.hidden = true;
  document.body.dataset["console"] = "stopped";
});

/** Once every run has finished (or failed), the figures are drawn. */
async function settle(): Promise<void> {
  if (runs.some((r) => r.state === "verifying")) return;
  verifyButton.disabled = false;
  stopButton.hidden = true;
  const done = runs.filter((r) => r.state === "done");
  if (done.length === 0) {
    document.body.dataset["console"] = "error";
    return;
  }
  document.body.dataset["console"] = "drawing";
  const drawing = performance.now();
  renderScopes(done);
  await refresh({ resetFilters: true });
  document.body.dataset["drawMs"] = String(Math.round(performance.now() - drawing));
  results.hidden = false;
  document.body.dataset["console"] = "done";
}

// ---- filters ---------------------------------------------------------------------------------

const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
zoneField.value = localZone;
for (const z of ["UTC", ...Intl.supportedValuesOf("timeZone")])
  zones.append(el("option", { value: z }));
hoursStart.value = clockTimeText(DEFAULT_WORKING_HOURS.startMinute);
hoursEnd.value = clockTimeText(DEFAULT_WORKING_HOURS.endMinute);
WEEKDAY_NAMES.forEach((name, i) => {
  const label = el("label", { class: "weekday" });
  const box = el("input", { type: "checkbox", "data-weekday": String(i + 1) });
  box.checked = DEFAULT_WORKING_HOURS.days.includes(i + 1);
  label.append(box, ` ${name}`);
  weekdays.append(label);
});

function renderScopes(done: RunView[]): void {
  scopeSelect.replaceChildren(el("option", { value: "all" }, "All logs together"));
  for (const r of done)
    scopeSelect.append(el("option", { value: String(r.index) }, logName(r.index)));
}

function logName(index: number): string {
  const r = runs.find((x) => x.index === index);
  return r?.operator ?? r?.label ?? `log ${index}`;
}

function workingHours(): WorkingHours | string {
  const zone = zoneField.value.trim();
  if (!isTimeZone(zone))
    return `“${zone}” is not a time zone this browser knows (e.g. UTC, Europe/Berlin).`;
  const startMinute = parseClockTime(hoursStart.value);
  const endMinute = parseClockTime(hoursEnd.value);
  if (startMinute === undefined || endMinute === undefined)
    return "Give the working hours as HH:MM.";
  const days = Array.from(weekdays.querySelectorAll<HTMLInputElement>("input:checked")).map((b) =>
    Number(b.dataset["weekday"]),
  );
  return { zone, startMinute, endMinute, days };
}

function query(listLimit: number | undefined): FigureQuery | string {
  const hours = workingHours();
  if (typeof hours === "string") return hours;
  const threshold = Math.floor(Number(thresholdField.value));
  const organizations = Array.from(
    organizationsBox.querySelectorAll<HTMLInputElement>("input:checked"),
  ).map((b) => b.value);
  const all = organizationsBox.querySelectorAll("input").length;
  return {
    ...(fromDay.value ? { fromDay: fromDay.value } : {}),
    ...(toDay.value ? { toDay: toDay.value } : {}),
    // All ticked is no filter at all (an organization seen later is then counted too).
    ...(organizations.length < all ? { organizations } : {}),
    verifiedOnly: verifiedOnly.checked,
    hours,
    staffThreshold: Number.isSafeInteger(threshold) && threshold > 0 ? threshold : 1,
    ...(listLimit !== undefined ? { listLimit } : {}),
  };
}

interface Current {
  perLog: Array<{ log: number; figures: Figures }>;
  shown: Figures;
  all: Figures;
}
let current: Current | undefined;
let version = 0;

async function figuresOf(q: FigureQuery): Promise<Array<{ log: number; figures: Figures }>> {
  const done = runs.filter((r) => r.state === "done");
  return Promise.all(
    done.map(async (r) => {
      const answer = await ask<Extract<FromWorker, { type: "figures" }>>(r, {
        type: "figures",
        id: nextRequest++,
        query: q,
      });
      return { log: r.index, figures: answer.figures };
    }),
  );
}

async function refresh(opts: { resetFilters?: boolean } = {}): Promise<void> {
  const q = query(LIST_LIMIT);
  if (typeof q === "string") {
    hoursMessage.textContent = q;
    return;
  }
  hoursMessage.textContent = describeHours(q.hours);
  if (opts.resetFilters) {
    delete q.organizations;
    delete q.fromDay;
    delete q.toDay;
  }
  const perLog = await figuresOf(q);
  const all = mergeFigures(
    perLog.map((p) => p.figures),
    LIST_LIMIT,
  );
  if (opts.resetFilters) renderOrganizations(all.organizations);
  const scope = scopeSelect.value;
  const shown =
    scope === "all" ? all : (perLog.find((p) => String(p.log) === scope)?.figures ?? all);
  current = { perLog, shown, all };
  render(current);
  version++;
  document.body.dataset["figures"] = String(version);
}

function describeHours(h: WorkingHours): string {
  const days = h.days.map((d) => WEEKDAY_NAMES[d - 1]).join(", ") || "no day";
  return `Working hours ${clockTimeText(h.startMinute)}–${clockTimeText(h.endMinute)} on ${days}, ${h.zone}; anything else counts as after hours.`;
}

function renderOrganizations(organizations: string[]): void {
  organizationsBox.replaceChildren(el("legend", {}, "Organizations"));
  for (const o of organizations) {
    const label = el("label", { class: "organization" });
    const box = el("input", { type: "checkbox", value: o });
    box.checked = true;
    label.append(box, ` ${o}`);
    organizationsBox.append(label);
  }
}

let refreshTimer: ReturnType<typeof setTimeout> | undefined;
/** Refreshes scheduled or running: the results say they are busy until the last is drawn. */
let refreshing = 0;
function refreshSoon(): void {
  if (refreshTimer === undefined) refreshing++;
  clearTimeout(refreshTimer);
  results.setAttribute("aria-busy", "true");
  refreshTimer = setTimeout(() => {
    refreshTimer = undefined;
    void refresh().finally(() => {
      refreshing--;
      if (refreshing === 0) results.setAttribute("aria-busy", "false");
    });
  }, 150);
}
for (const input of [
  fromDay,
  toDay,
  scopeSelect,
  verifiedOnly,
  zoneField,
  hoursStart,
  hoursEnd,
  thresholdField,
])
  input.addEventListener("change", refreshSoon);
organizationsBox.addEventListener("change", refreshSoon);
weekdays.addEventListener("change", refreshSoon);
thresholdField.addEventListener("input", refreshSoon);

// ---- rendering -------------------------------------------------------------------------------

const charts = new ConsoleCharts();

function tablesOf(c: Current): Record<string, FigureTable> {
  const f = c.shown;
  return {
    compare: compareTable(c.perLog, c.all, logName),
    verdicts: verdictsTable(f),
    failures: failuresTable(f.failures.rows, logName),
    perday: perDayTable(f),
    purposes: countsTable("purpose-of-use", "purpose of use", f.purposes),
    actions: countsTable("actions", "action", f.actions),
    categories: countsTable("data-categories", "data category", f.categories),
    breakglass: eventListTable("break-glass", f.breakGlass.rows, logName),
    afterhours: eventListTable("after-hours", f.afterHours.rows, logName),
    staff: staffTable(f.staff.rows, logName),
    transfers: transfersTable(transferLines(f.transfers), logName),
    anchoring: batchesTable(f.batches, logName),
  };
}

/** A 32-byte hash is shown shortened (the whole value in its tooltip and in the CSV). */
const HASH = /^0x[0-9a-f]{64}$/;

function cellText(cell: FigureTable["rows"][number][number]): string {
  if (cell === null) return "";
  if (typeof cell === "boolean") return cell ? "yes" : "no";
  return String(cell);
}

function fillTable(table: HTMLTableElement, t: FigureTable): void {
  const head = el("thead");
  const hr = el("tr");
  const numeric = t.header.map(
    (_, i) => t.rows.length > 0 && t.rows.every((r) => typeof r[i] === "number" || r[i] === null),
  );
  t.header.forEach((h, i) =>
    hr.append(el("th", { scope: "col", ...(numeric[i] ? { class: "num" } : {}) }, h)),
  );
  if (t.proofs) hr.append(el("th", { scope: "col" }, "proof"));
  head.append(hr);
  const body = el("tbody");
  t.rows.forEach((row, i) => {
    const tr = el("tr");
    for (const cell of row) {
      const text = cellText(cell);
      const td = el("td", {}, HASH.test(text) ? `${text.slice(0, 10)}…${text.slice(-4)}` : text);
      if (HASH.test(text)) td.title = text;
      if (typeof cell === "number") td.className = "num";
      tr.append(td);
    }
    if (t.proofs) {
      const td = el("td", { class: "proof" });
      for (const p of t.proofs[i] ?? []) {
        const a = el(
          "a",
          {
            href: `#proof=${p.log}-${p.seq}`,
            "data-log": String(p.log),
            "data-seq": String(p.seq),
          },
          `proof of seq ${p.seq}`,
        );
        td.append(a, " ");
      }
      tr.append(td);
    }
    if (t.name === "staff-distinct-patients" && row[row.length - 1] === true)
      tr.dataset["flag"] = "over";
    body.append(tr);
  });
  table.replaceChildren(head, body);
  table.dataset["rows"] = String(t.rows.length);
}

function setCount(name: string, text: string): void {
  const p = document.querySelector<HTMLElement>(`[data-count="${name}"]`);
  if (p) p.textContent = text;
}

function render(c: Current): void {
  const f = c.shown;
  const tables = tablesOf(c);
  for (const [name, t] of Object.entries(tables)) {
    const table = document.querySelector<HTMLTableElement>(`table[data-table="${name}"]`);
    if (table) fillTable(table, t);
  }
  element("view-compare").hidden = c.perLog.length < 2;
  const v = f.verdicts;
  const bad = v.failed + v.error;
  const line = element<HTMLParagraphElement>("verdict-line");
  line.dataset["status"] = bad > 0 ? "failed" : v.pending > 0 ? "pending" : "verified";
  line.textContent =
    bad > 0
      ? `✗ ${formatCount(bad)} of ${formatCount(v.total)} bundles did not verify: ${Object.entries(
          v.byCode,
        )
          .map(([code, n]) => `${code} × ${n}`)
          .join(", ")}.`
      : `✓ ${v.pending > 0 ? `${formatCount(v.total - v.pending)} of ${formatCount(v.total)}` : `All ${formatCount(v.total)}`} bundles verified against the chain and the trust policy` +
        (v.withheld > 0 ? ` (${formatCount(v.withheld)} with content withheld)` : "") +
        (v.erased > 0 ? ` (${formatCount(v.erased)} erased on request)` : "") +
        (v.pending > 0
          ? `; ${formatCount(v.pending)} not anchored yet (pending): their receipts verify, their batches are not on-chain.`
          : ".");
  charts.perDay(element<HTMLCanvasElement>("chart-perday"), f);
  charts.counts("purposes", element<HTMLCanvasElement>("chart-purposes"), f.purposes, "#4e79a7");
  charts.counts("actions", element<HTMLCanvasElement>("chart-actions"), f.actions, "#f28e2b");
  charts.counts(
    "categories",
    element<HTMLCanvasElement>("chart-categories"),
    f.categories,
    "#59a14f",
  );
  const more = (shown: number, total: number) =>
    total > shown ? ` The first ${formatCount(shown)} are listed; the CSV has them all.` : "";
  // The bundles that did not verify get a view of their own, only when there are any.
  element("view-failures").hidden = f.failures.total === 0;
  setCount(
    "failures",
    f.failures.total === 0
      ? "No bundle failed verification."
      : `${formatCount(f.failures.total)} ${f.failures.total === 1 ? "bundle" : "bundles"} did not verify, each with the step that failed and why.${more(f.failures.rows.length, f.failures.total)}`,
  );
  setCount(
    "breakglass",
    `${formatCount(f.breakGlass.total)} break-glass accesses.${more(f.breakGlass.rows.length, f.breakGlass.total)}`,
  );
  setCount(
    "afterhours",
    `${formatCount(f.afterHours.total)} accesses outside working hours.${more(f.afterHours.rows.length, f.afterHours.total)}`,
  );
  setCount(
    "staff",
    `${formatCount(f.staff.overThreshold)} of ${formatCount(f.staff.accounts)} staff accounts at or over the threshold.` +
      (f.staff.withheldEvents > 0
        ? ` ${formatCount(f.staff.withheldEvents)} events name staff whose identity is withheld in the export (not attributable).`
        : "") +
      more(f.staff.rows.length, f.staff.accounts),
  );
  const transfers = tables["transfers"]!;
  const unmatched = transfers.rows.filter((r) => r[2] !== "matched").length;
  setCount(
    "transfers",
    `${formatCount(transfers.rows.length)} transfers, ${formatCount(unmatched)} without a matching other side.`,
  );
  const batches = f.batches;
  const pendingBatches = batches.filter((b) => b.state === "pending").length;
  const discrepancies = batches.filter(
    (b) => b.state === "discrepancy" || b.state === "incomplete",
  ).length;
  const gaps =
    f.gaps.length > 0
      ? ` Missing seqs: ${f.gaps.map((g) => `${logName(g.log)} ${g.from}–${g.to}`).join(", ")}.`
      : "";
  setCount(
    "anchoring",
    `${formatCount(batches.length)} batches: ${formatCount(batches.length - pendingBatches - discrepancies)} anchored and complete, ${formatCount(pendingBatches)} pending, ${formatCount(discrepancies)} with a discrepancy.${gaps}`,
  );
}

// ---- exports: CSV of every figure, JSON of the verification result ----------------------------

document.addEventListener("click", (e) => {
  const target = e.target as HTMLElement;
  const button = target.closest<HTMLButtonElement>("button.csv");
  if (button) {
    void csv(button.dataset["table"]!);
    return;
  }
  const link = target.closest<HTMLAnchorElement>("a[data-seq]");
  if (link) {
    e.preventDefault();
    void showProof(Number(link.dataset["log"]), Number(link.dataset["seq"]));
  }
});

async function csv(name: string): Promise<void> {
  // The lists on the page are cut; the CSV holds every row of the same figure.
  const q = query(undefined);
  if (typeof q === "string" || !current) return;
  const perLog = await figuresOf(q);
  const all = mergeFigures(perLog.map((p) => p.figures));
  const scope = scopeSelect.value;
  const shown =
    scope === "all" ? all : (perLog.find((p) => String(p.log) === scope)?.figures ?? all);
  const table = tablesOf({ perLog, all, shown })[name];
  if (table) download(`${table.name}.csv`, "text/csv;charset=utf-8", csvOf(table));
}

element<HTMLButtonElement>("result-json").addEventListener("click", () => void resultJson());

async function resultJson(): Promise<void> {
  const done = runs.filter((r) => r.state === "done");
  const logs = await Promise.all(
    done.map(async (r) => {
      const m = await ask<Extract<FromWorker, { type: "result" }>>(r, {
        type: "result",
        id: nextRequest++,
      });
      return m.result;
    }),
  );
  const p = policyAtStart!;
  const result = {
    format: "veritrail-console-result/1",
    generatedAt: new Date().toISOString(),
    trustPolicy: { fingerprint: p.fingerprint, issuer: p.issuer },
    failedRuns: runs
      .filter((r) => r.state === "error")
      .map((r) => ({
        source: r.label,
        error: r.box.dataset["error"],
        message: r.text.textContent,
      })),
    logs: logs satisfies LogResult[],
  };
  download(
    "veritrail-verification.json",
    "application/json",
    `${JSON.stringify(result, null, 2)}\n`,
  );
}

// ---- proofs ----------------------------------------------------------------------------------

let proofBundle: { seq: number; bundle: unknown } | undefined;

async function showProof(log: number, seq: number): Promise<void> {
  const run = runs.find((r) => r.index === log);
  if (!run) return;
  element("proof-title").textContent = `Proof of seq ${seq} — ${logName(log)}`;
  const verdict = element<HTMLParagraphElement>("proof-verdict");
  verdict.textContent = "Reading and checking the bundle…";
  delete verdict.dataset["status"];
  const tbody = element<HTMLTableElement>("proof-checks").tBodies[0]!;
  tbody.replaceChildren();
  element("proof-json").textContent = "";
  proofBundle = undefined;
  if (!proofDialog.open) proofDialog.showModal();
  const answer = await ask<Extract<FromWorker, { type: "proof" | "proof-error" }>>(run, {
    type: "proof",
    id: nextRequest++,
    seq,
  });
  if (answer.type === "proof-error") {
    verdict.dataset["status"] = "error";
    verdict.textContent = `Could not read the proof: ${answer.message}`;
    return;
  }
  verdict.dataset["status"] = answer.status;
  verdict.textContent =
    answer.status === "verified"
      ? "✓ Verified against the chain and the trust policy."
      : answer.status === "failed"
        ? `✗ Not valid (${answer.code ?? ""}).`
        : `${answer.status}${answer.code ? ` (${answer.code})` : ""}.`;
  tbody.replaceChildren(...answer.checks.map(checkRow));
  element("proof-json").textContent = JSON.stringify(answer.bundle, null, 2);
  proofBundle = { seq, bundle: answer.bundle };
}

function checkRow(c: Check): HTMLTableRowElement {
  const tr = el("tr", { "data-ok": String(c.ok), "data-step": c.step });
  const mark = c.ok === true ? "✓" : c.ok === false ? "✗" : "–";
  tr.append(
    el("td", { class: "mark" }, mark),
    el("td", {}, STEP_NAMES[c.step] ?? c.step),
    el("td", { class: "code" }, c.code ?? ""),
    el("td", { class: "reason" }, c.reason),
  );
  return tr;
}

element<HTMLButtonElement>("proof-download").addEventListener("click", () => {
  if (proofBundle)
    download(
      `proof-${proofBundle.seq}.json`,
      "application/json",
      `${JSON.stringify(proofBundle.bundle, null, 2)}\n`,
    );
});

function proofFromAddress(): void {
  const m = /^#proof=(\d+)-(\d+)$/.exec(location.hash);
  if (m) void showProof(Number(m[1]), Number(m[2]));
}
window.addEventListener("hashchange", proofFromAddress);

renderSources(trust.current());

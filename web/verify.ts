/**
 * The verify page (web/verify.html): runs the standalone verifier in the browser against the RPC
 * URL the user gives. The same field takes a receipt (checked as `veritrail receipt check` does,
 * with the receipt's bundle from a second field once the event is anchored) or receipt evidence
 * (re-checked from the chain); a broken promise's evidence is offered as a download. Bundled by scripts/build-web.ts (esbuild, browser conditions, so core's
 * SHA-256 is @noble's) into web/dist/verify.js, served at /assets/verify.js.
 *
 * Never talks to the Veritrail API. Every value from the bundle reaches the page through
 * textContent only: a bundle is untrusted input. Every verdict is relative to the trust policy
 * the user loaded (web/trust-policy.ts); without one nothing is verified.
 *
 * Address fragment: #bundle=<base64url JSON>[&rpc=<url>][&confirmations=<n>] fills the form and
 * verifies at once (the fragment is never sent to any server).
 */
import {
  type ReceiptCheck,
  type ReceiptVerdict,
  checkReceipt,
  isReceiptEvidence,
  recheckEvidence,
} from "../services/verifier/receipt-check.ts";
import type { Check, Verdict } from "../services/verifier/verdict.ts";
import { connectRpc } from "../services/verifier/rpc.ts";
import { verifyBundle } from "../services/verifier/verify-bundle.ts";
import { mountTrustPolicy, trustLine } from "./trust-policy.ts";
import { STEP_NAMES } from "./dom.ts";

const MARK: Record<string, { symbol: string; label: string }> = {
  true: { symbol: "✓", label: "passed" },
  false: { symbol: "✗", label: "failed" },
  skipped: { symbol: "–", label: "skipped" },
};

/** The receipt check's steps (services/verifier/receipt-check.ts), by name. */
const RECEIPT_STEP_NAMES: Record<string, string> = {
  receipt: "Receipt signature",
  trust: "Trusted log",
  signer: "Registered signer",
  deadline: "Anchored by the deadline",
  leaf: "The receipt's entry anchored",
  evidence: "Evidence",
};

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

const form = element<HTMLFormElement>("verify-form");
const bundleField = element<HTMLTextAreaElement>("bundle");
const fileField = element<HTMLInputElement>("bundle-file");
const rpcField = element<HTMLInputElement>("rpc");
const confirmationsField = element<HTMLInputElement>("confirmations");
const button = element<HTMLButtonElement>("verify");
const busy = element<HTMLSpanElement>("busy");
const verdictBox = element<HTMLDivElement>("verdict");
const verdictTitle = element<HTMLHeadingElement>("verdict-title");
const verdictDetail = element<HTMLParagraphElement>("verdict-detail");
const verdictTrust = element<HTMLParagraphElement>("verdict-trust");
const evidenceLink = element<HTMLAnchorElement>("evidence-download");
const receiptBundleRow = element<HTMLDivElement>("receipt-bundle-row");
const receiptBundleField = element<HTMLTextAreaElement>("receipt-bundle");
const trust = mountTrustPolicy(element<HTMLElement>("trust"));
const table = element<HTMLTableElement>("checks");
const tbody = table.tBodies[0]!;

function headline(v: Verdict): { title: string; detail: string } {
  const who = v.seq !== undefined ? `Event ${v.seq}` : "This bundle";
  switch (v.status) {
    case "verified":
      return {
        title: "✓ Verified",
        detail: `${who} is in a batch anchored on-chain in a registry your trust policy lists; every check passed against the chain.`,
      };
    case "erased":
      return {
        title: "✓ Genuine entry, content erased",
        detail: `${who} is in a batch anchored on-chain; its content was erased on request, as event ${v.erasedBy} of the same log records (its proof verified too).`,
      };
    case "withheld":
      return {
        title: "! Content withheld",
        detail: `${who} is in a batch anchored on-chain, but the bundle carries no content and no erasure record: nothing shows that it was erased. Ask for the full proof.`,
      };
    case "pending":
      return {
        title: "… Receipt verified, not yet anchored",
        detail: `${who} was accepted and its signed receipt checks out, but its batch is not on-chain yet. Check again later.`,
      };
    case "failed": {
      const failed = v.checks.find((c) => c.ok === false && c.code === v.code);
      if (failed?.step === "trust")
        return {
          title: "✗ Not from a log you trust",
          detail: `${v.code}: ${failed.reason}. A registry anyone can deploy proves nothing.`,
        };
      return {
        title: "✗ Not valid",
        detail: `Failed at “${STEP_NAMES[failed?.step ?? ""] ?? failed?.step}” (${v.code}): ${failed?.reason ?? ""}`,
      };
    }
    case "error":
      return {
        title: "! Could not check",
        detail: "The RPC endpoint could not be read. Check the URL and try again.",
      };
  }
}

function cell(text: string, className: string): HTMLTableCellElement {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  return td;
}

function checkRow(c: Check | ReceiptCheck, names = STEP_NAMES): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset.ok = String(c.ok);
  tr.dataset.step = c.step;
  const mark = MARK[String(c.ok)]!;
  const markCell = cell(mark.symbol, "mark");
  markCell.setAttribute("aria-label", mark.label);
  tr.append(
    markCell,
    cell(names[c.step] ?? STEP_NAMES[c.step] ?? c.step, "step"),
    cell(c.code ?? "", "code"),
    cell(c.reason, "reason"),
  );
  return tr;
}

function show(
  status: string,
  title: string,
  detail: string,
  checks: Array<Check | ReceiptCheck>,
  trustText = "",
  names = STEP_NAMES,
): void {
  offerEvidence(undefined);
  verdictBox.hidden = false;
  verdictBox.dataset.status = status;
  verdictTitle.textContent = title;
  verdictDetail.textContent = detail;
  verdictTrust.textContent = trustText;
  verdictTrust.hidden = trustText === "";
  tbody.replaceChildren(...checks.map((c) => checkRow(c, names)));
  table.hidden = checks.length === 0;
  // Tests and scripts wait for this attribute.
  document.body.dataset.verdict = status;
}

/** What was pasted: a bundle, a receipt (or a POST /v1/events answer with one), or evidence. */
function kindOf(doc: unknown): { kind: "bundle" | "evidence" | "receipt"; value: unknown } {
  if (isReceiptEvidence(doc)) return { kind: "evidence", value: doc };
  if (typeof doc === "object" && doc !== null) {
    const format = (doc as { format?: unknown }).format;
    if (format === "veritrail-receipt/1") return { kind: "receipt", value: doc };
    const receipts = (doc as { receipts?: unknown }).receipts;
    if (Array.isArray(receipts) && receipts.length === 1) {
      const only = receipts[0] as { receipt?: unknown } | undefined;
      return { kind: "receipt", value: only?.receipt ?? only };
    }
  }
  return { kind: "bundle", value: doc };
}

/** Shows the receipt's bundle field while the main field holds a receipt. */
function syncReceiptField(): void {
  let receipt = false;
  try {
    receipt = kindOf(JSON.parse(bundleField.value)).kind === "receipt";
  } catch {
    receipt = false;
  }
  receiptBundleRow.hidden = !receipt;
}

let evidenceUrl: string | undefined;

/** Offers a broken promise's evidence as a file to save (or withdraws the offer). */
function offerEvidence(v: ReceiptVerdict | undefined): void {
  if (evidenceUrl) URL.revokeObjectURL(evidenceUrl);
  evidenceUrl = undefined;
  evidenceLink.hidden = true;
  evidenceLink.removeAttribute("href");
  if (!v?.evidence) return;
  const blob = new Blob([`${JSON.stringify(v.evidence, null, 2)}\n`], {
    type: "application/json",
  });
  evidenceUrl = URL.createObjectURL(blob);
  evidenceLink.href = evidenceUrl;
  evidenceLink.download = `veritrail-evidence-seq${v.seq ?? "x"}.json`;
  evidenceLink.hidden = false;
}

function receiptHeadline(v: ReceiptVerdict, rechecked: boolean): { title: string; detail: string } {
  const who = v.seq !== undefined ? `Event ${v.seq}` : "This receipt";
  switch (v.status) {
    case "honored":
      return {
        title: "✓ Promise kept",
        detail: `${who} was anchored by the receipt's deadline, with the entry the receipt names: ${v.reason}.`,
      };
    case "pending":
      return {
        title: "… Promise still open",
        detail: `${who} is not anchored yet and its deadline (${v.anchorDeadline ?? "?"}) has not passed on-chain. Check again later.`,
      };
    case "DEADLINE_MISSED":
      return {
        title: "✗ Deadline missed",
        detail: `${rechecked ? "The evidence holds: " : ""}${v.reason}. ${rechecked ? "" : "Save the evidence: anyone can check it again here or with veritrail receipt check."}`,
      };
    case "LEAF_MISMATCH":
      return {
        title: "✗ Another entry was anchored",
        detail: `${rechecked ? "The evidence holds: " : ""}${v.reason}. ${rechecked ? "" : "Save the evidence: anyone can check it again here or with veritrail receipt check."}`,
      };
    case "invalid":
      return { title: "✗ Not a valid receipt", detail: `${v.code ?? ""}: ${v.reason}` };
    case "undecided":
      if (v.code === "BUNDLE_NEEDED")
        return {
          title: "! The receipt's bundle is needed",
          detail: `${who} is anchored; paste its proof bundle in the field that appeared above to see which entry the chain holds.`,
        };
      if (v.code === "EVIDENCE_INVALID")
        return { title: "✗ The evidence does not hold", detail: v.reason };
      return { title: "! Could not decide", detail: `${v.code ?? ""}: ${v.reason}` };
  }
}

async function run(): Promise<void> {
  delete document.body.dataset.verdict;
  let doc: unknown;
  try {
    doc = JSON.parse(bundleField.value);
  } catch (e) {
    show("failed", "✗ Not a bundle", `The text is not JSON: ${(e as Error).message}`, []);
    return;
  }
  const input = kindOf(doc);
  const bundle = input.value;
  let receiptBundle: unknown;
  if (input.kind === "receipt" && receiptBundleField.value.trim() !== "") {
    try {
      receiptBundle = JSON.parse(receiptBundleField.value);
    } catch (e) {
      show(
        "failed",
        "✗ Not a bundle",
        `The receipt's bundle is not JSON: ${(e as Error).message}`,
        [],
      );
      return;
    }
  }
  const confirmations = Number(confirmationsField.value);
  if (!Number.isSafeInteger(confirmations) || confirmations < 0) {
    show("error", "! Check the form", "Confirmations must be a whole number, 0 or more.", []);
    return;
  }
  const policy = trust.current();
  if (!policy) {
    show(
      "no-policy",
      "! No trust policy",
      "Load the trust policy of your regulator or health authority first (above): without it, a proof only shows that some registry holds it, and anyone can deploy one.",
      [],
    );
    return;
  }
  button.disabled = true;
  busy.textContent = "Checking against the chain…";
  try {
    const provider = await connectRpc(rpcField.value.trim(), { timeoutMs: 15_000 });
    try {
      if (input.kind === "bundle") {
        const verdict = await verifyBundle(bundle, provider, { trust: policy, confirmations });
        const { title, detail } = headline(verdict);
        show(verdict.status, title, detail, verdict.checks, trustLine(verdict.trust));
      } else {
        const options = { trust: policy, confirmations };
        const verdict =
          input.kind === "evidence"
            ? await recheckEvidence(bundle, provider, options)
            : await checkReceipt(
                {
                  receipt: bundle,
                  ...(receiptBundle !== undefined ? { bundle: receiptBundle } : {}),
                },
                provider,
                options,
              );
        const { title, detail } = receiptHeadline(verdict, input.kind === "evidence");
        const names = { ...STEP_NAMES, ...RECEIPT_STEP_NAMES };
        show(verdict.status, title, detail, verdict.checks, trustLine(verdict.trust), names);
        if (input.kind === "receipt") offerEvidence(verdict);
      }
    } finally {
      provider.destroy();
    }
  } catch (e) {
    show("error", "! Could not check", (e as Error).message, []);
  } finally {
    button.disabled = false;
    busy.textContent = "";
  }
}

function fromBase64Url(text: string): string {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) =>
    c.charCodeAt(0),
  );
  return new TextDecoder().decode(bytes);
}

async function loadFile(file: File): Promise<void> {
  bundleField.value = await file.text();
  syncReceiptField();
}

bundleField.addEventListener("input", syncReceiptField);
receiptBundleField.addEventListener("dragover", (event) => event.preventDefault());
receiptBundleField.addEventListener("drop", (event) => {
  event.preventDefault();
  const file = event.dataTransfer?.files[0];
  if (file) void file.text().then((text) => (receiptBundleField.value = text));
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  void run();
});

fileField.addEventListener("change", () => {
  const file = fileField.files?.[0];
  if (file) void loadFile(file);
});

bundleField.addEventListener("dragover", (event) => {
  event.preventDefault();
  bundleField.classList.add("dragging");
});
bundleField.addEventListener("dragleave", () => bundleField.classList.remove("dragging"));
bundleField.addEventListener("drop", (event) => {
  event.preventDefault();
  bundleField.classList.remove("dragging");
  const file = event.dataTransfer?.files[0];
  if (file) void loadFile(file);
});

function fromFragment(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const rpc = params.get("rpc");
  if (rpc) rpcField.value = rpc;
  const confirmations = params.get("confirmations");
  if (confirmations) confirmationsField.value = confirmations;
  const encoded = params.get("bundle");
  if (!encoded) return;
  try {
    bundleField.value = JSON.stringify(JSON.parse(fromBase64Url(encoded)), null, 2);
    syncReceiptField();
  } catch {
    show("failed", "✗ Not a bundle", "The #bundle= part of the address is not base64url JSON.", []);
    return;
  }
  void run();
}

window.addEventListener("hashchange", fromFragment);
fromFragment();

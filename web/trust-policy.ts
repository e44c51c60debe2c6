/**
 * The trust policy on the pages (DESIGN.md "Trust policy"), shared by /verify and /patient (and
 * any later page that verifies). A verdict means "this operator's log, on the registry you
 * trust" only relative to a policy the user chose: loaded from a file or a URL they give (their
 * regulator's), kept in this browser's localStorage, shown with its issuer and fingerprint so it
 * can be compared with the published one. Nothing here adopts a policy by itself: not the
 * server's /.well-known/veritrail-trust.json, not one named by a bundle.
 *
 * `mountTrustPolicy(container)` fills an empty element with the controls; every value from a
 * policy reaches the page through textContent only.
 */
import {
  type TrustPolicy,
  TrustPolicyError,
  parseTrustPolicy,
  registryLabel,
} from "../services/core/trust-policy.ts";
import { el } from "./dom.ts";

/** Where the chosen policy is kept (one per origin). */
export const TRUST_STORAGE_KEY = "veritrail.trust-policy.v1";

interface Stored {
  document: unknown;
  /** Where it came from: a file name or a URL (shown to the user). */
  source: string;
}

export interface TrustPolicyControl {
  /** The policy the user chose, if any. */
  current(): TrustPolicy | undefined;
  /** The policy document as loaded (unknown fields included: the fingerprint is over it). */
  document(): unknown;
  /** Where it came from. */
  source(): string | undefined;
}

function load(): { policy: TrustPolicy; source: string; document: unknown } | undefined {
  try {
    const raw = localStorage.getItem(TRUST_STORAGE_KEY);
    if (!raw) return undefined;
    const stored = JSON.parse(raw) as Stored;
    return {
      policy: parseTrustPolicy(stored.document),
      source: stored.source,
      document: stored.document,
    };
  } catch {
    // A stored policy that no longer parses (edited by hand, or an older format) is dropped.
    localStorage.removeItem(TRUST_STORAGE_KEY);
    return undefined;
  }
}

export function mountTrustPolicy(
  container: HTMLElement,
  opts: { onChange?: (policy: TrustPolicy | undefined) => void } = {},
): TrustPolicyControl {
  let chosen = load();

  const heading = el("h2", { id: "trust-title" }, "Trust policy");
  const hint = el(
    "p",
    { class: "hint", id: "trust-hint" },
    "Whose logs, on which registry, you accept. Get the policy file from your regulator or " +
      "health authority (or build one with `veritrail trust init`), and check that the " +
      "fingerprint below is the one they publish. It is kept in this browser only.",
  );
  const fileLabel = el("label", { for: "trust-file" }, "Policy file");
  const file = el("input", {
    id: "trust-file",
    type: "file",
    accept: ".json,application/json",
    "aria-describedby": "trust-hint",
  });
  const urlLabel = el("label", { for: "trust-url" }, "or policy URL");
  const url = el("input", {
    id: "trust-url",
    type: "url",
    placeholder: "https://…/veritrail-trust.json",
    "aria-describedby": "trust-hint",
  });
  const loadButton = el("button", { id: "trust-load", type: "button" }, "Load");
  const forget = el("button", { id: "trust-forget", type: "button", class: "secondary" }, "Forget");
  const status = el("div", { id: "trust-status", role: "status", "aria-live": "polite" });
  const fileRow = el("div");
  fileRow.append(fileLabel, file);
  const urlRow = el("div", { class: "trust-url-row" });
  urlRow.append(urlLabel, url, loadButton);
  container.replaceChildren(heading, hint, fileRow, urlRow, status, forget);
  container.classList.add("trust-policy");

  const render = (error?: string): void => {
    status.replaceChildren();
    if (error) {
      status.dataset["state"] = "error";
      status.append(el("p", { class: "trust-error" }, error));
    }
    if (!chosen) {
      if (!error) status.dataset["state"] = "none";
      status.append(
        el(
          "p",
          { id: "trust-none" },
          "No trust policy loaded: nothing can be verified until you load one.",
        ),
      );
      forget.hidden = true;
      document.body.dataset["trust"] = "none";
      return;
    }
    const p = chosen.policy;
    if (!error) status.dataset["state"] = "loaded";
    const summary = el("p", { id: "trust-summary" });
    summary.append(
      el("span", {}, "Issued by "),
      el("strong", { id: "trust-issuer" }, p.issuer),
      el("span", {}, ` (from ${chosen.source}). Fingerprint `),
      el("code", { id: "trust-fingerprint" }, p.fingerprint),
    );
    const list = el("ul", { id: "trust-logs" });
    for (const r of p.registries) {
      const logs = p.logs.filter(
        (l) => l.chainId === r.chainId && l.registry.toLowerCase() === r.address.toLowerCase(),
      );
      for (const l of logs) list.append(el("li", {}, `${l.operator} — ${registryLabel(r)}`));
    }
    status.append(summary, list);
    forget.hidden = false;
    document.body.dataset["trust"] = "loaded";
  };

  const adopt = (document: unknown, source: string): void => {
    try {
      const policy = parseTrustPolicy(document);
      localStorage.setItem(TRUST_STORAGE_KEY, JSON.stringify({ document, source } as Stored));
      chosen = { policy, source, document };
      render();
      opts.onChange?.(policy);
    } catch (e) {
      render(
        e instanceof TrustPolicyError
          ? `Not a trust policy: ${e.message}`
          : `Not a trust policy: ${String(e)}`,
      );
    }
  };

  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (!f) return;
    void f.text().then((text) => {
      let document: unknown;
      try {
        document = JSON.parse(text);
      } catch {
        render(`${f.name} is not JSON.`);
        return;
      }
      adopt(document, f.name);
    });
  });

  loadButton.addEventListener("click", () => {
    const target = url.value.trim();
    if (target === "") {
      render("Give the URL of a policy file.");
      return;
    }
    loadButton.disabled = true;
    void fetch(target, { cache: "no-store" })
      .then(async (res) => {
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        adopt(await res.json(), target);
      })
      .catch((e: unknown) =>
        render(`Could not load ${target}: ${e instanceof Error ? e.message : String(e)}`),
      )
      .finally(() => {
        loadButton.disabled = false;
      });
  });

  forget.addEventListener("click", () => {
    localStorage.removeItem(TRUST_STORAGE_KEY);
    chosen = undefined;
    render();
    opts.onChange?.(undefined);
  });

  render();
  return {
    current: () => chosen?.policy,
    source: () => chosen?.source,
    document: () => chosen?.document,
  };
}

/** "Log of St Mary General Hospital — trust policy 0x… (issuer)": shown with every verdict. */
export function trustLine(
  verdictTrust: { operator?: string; fingerprint: string; issuer: string } | undefined,
): string {
  if (!verdictTrust) return "";
  const who = verdictTrust.operator ? `Log operated by ${verdictTrust.operator}` : "Log not in";
  const sep = verdictTrust.operator ? ", per" : "";
  return `${who}${sep} trust policy ${verdictTrust.fingerprint} (issued by ${verdictTrust.issuer}).`;
}

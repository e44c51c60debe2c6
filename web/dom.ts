/**
 * What the pages share to build their DOM and name the verifier's steps. Every value from a
 * bundle or a policy goes in through textContent only (`el`'s text), never as markup.
 */

/** The element with this id; a page without it is a build error worth stopping for. */
export function element<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} missing from the page`);
  return node as T;
}

/** A new element with attributes and text (as textContent). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The verifier's steps (services/verifier/verdict.ts) as the pages name them. */
export const STEP_NAMES: Record<string, string> = {
  shape: "Bundle format",
  trust: "Trusted registry and log",
  commitment: "Event commitment",
  entry: "Entry, batch and receipt agree",
  inclusion: "Merkle audit path",
  anchor: "Anchored on-chain",
  confirmations: "Confirmations",
  receipt: "Receipt signature",
  signer: "Registered signer",
  erasure: "Erasure record",
};

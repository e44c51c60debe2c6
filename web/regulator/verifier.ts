/**
 * A verifier worker of the regulator console: its log's worker (web/regulator/worker.ts) hands
 * it chunks of NDJSON lines, it verifies each bundle with the standalone verifier against the
 * trust policy and the log's chain (through the log worker, which shares the chain reads of all
 * its verifiers: web/regulator/chain-proxy.ts) and answers with each bundle's facts and
 * verdict, never the bundle. Several run side by side, one per spare core. Bundled by
 * scripts/build-web.ts to web/dist/regulator-verifier.js.
 */
import { type TrustPolicy, parseTrustPolicy } from "../../services/core/trust-policy.ts";
import { type Verdict, malformedVerdict } from "../../services/verifier/verdict.ts";
import { type VerifySession, newSession } from "../../services/verifier/verify-bundle.ts";
import { verifyBundles } from "../../services/verifier/verify-bundles.ts";
import { type ChainAnswer, type ChainCall, proxiedChain } from "./chain-proxy.ts";
import { type BatchSighting, type EventFacts, Strings, batchSighting, factsOf } from "./facts.ts";

export type ToVerifier =
  | { type: "init"; trust: unknown; confirmations: number }
  | { type: "lines"; id: number; lines: Array<{ line: number; text: string }> }
  | ChainAnswer;

/** What the log worker keeps of one line's verdict. */
export interface LineVerdict {
  line: number;
  seq: number | null;
  status: Verdict["status"];
  code?: string;
  /** The failed step and its reason, for a bundle that did not verify. */
  step?: string;
  reason?: string;
}

export interface LineResult {
  verdict: LineVerdict;
  facts?: EventFacts;
  sighting?: BatchSighting;
}

export type FromVerifier =
  | { type: "lines"; id: number; results: LineResult[]; categoryLabels: Array<[string, string]> }
  | ChainCall;

interface VerifierScope {
  postMessage(message: FromVerifier): void;
  addEventListener(type: "message", listener: (e: MessageEvent<ToVerifier>) => void): void;
}
const scope = self as unknown as VerifierScope;

const chain = proxiedChain((call) => scope.postMessage(call));
const strings = new Strings();
let options: { trust: TrustPolicy; confirmations: number } | undefined;
let session: VerifySession | undefined;

scope.addEventListener("message", (e) => {
  const msg = e.data;
  switch (msg.type) {
    case "init":
      options = { trust: parseTrustPolicy(msg.trust), confirmations: msg.confirmations };
      session = newSession(chain.rpc);
      return;
    case "chain":
      chain.settle(msg);
      return;
    case "lines":
      void verifyLines(msg.id, msg.lines);
      return;
  }
});

/** A verdict as the log worker keeps it (the first failed step named). */
export function lineVerdict(line: number, v: Verdict, seq: number | null): LineVerdict {
  const out: LineVerdict = { line, seq, status: v.status };
  if (v.code !== undefined) out.code = v.code;
  if (v.status === "verified" || v.status === "erased") return out;
  const failed = v.checks.find((c) => c.ok === false && c.code === v.code);
  if (failed) {
    out.step = failed.step;
    out.reason = failed.reason;
  }
  return out;
}

async function verifyLines(
  id: number,
  lines: Array<{ line: number; text: string }>,
): Promise<void> {
  const values: unknown[] = [];
  const parsed: boolean[] = [];
  for (const l of lines) {
    try {
      values.push(JSON.parse(l.text));
      parsed.push(true);
    } catch {
      values.push(undefined);
      parsed.push(false);
    }
  }
  const known = new Set(strings.categoryLabels.keys());
  const verdicts = await verifyBundles(values, chain.rpc, {
    ...options!,
    session: session!,
    concurrency: 32,
  });
  const results: LineResult[] = lines.map((l, i) => {
    if (!parsed[i])
      return { verdict: lineVerdict(l.line, malformedVerdict(`line ${l.line} is not JSON`), null) };
    const v = verdicts[i]!;
    const facts = factsOf(values[i], v, strings);
    const sighting = facts ? batchSighting(values[i], v) : undefined;
    return {
      verdict: lineVerdict(l.line, v, facts?.seq ?? null),
      ...(facts ? { facts } : {}),
      ...(sighting ? { sighting } : {}),
    };
  });
  const categoryLabels = [...strings.categoryLabels].filter(([code]) => !known.has(code));
  scope.postMessage({ type: "lines", id, results, categoryLabels });
}

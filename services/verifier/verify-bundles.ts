/**
 * Many bundles at once (an auditor's export, a patient's history): one session, so chain reads
 * are cached per batch and receipt signatures per group commit, and a bounded number of bundles
 * in flight. Verdicts come back in input order.
 */
import type { ChainRpc } from "./chain-reads.ts";
import { type Verdict, malformedVerdict } from "./verdict.ts";
import {
  type VerifyOptions,
  type VerifySession,
  newSession,
  verifyInSession,
} from "./verify-bundle.ts";

/** One line of an NDJSON file: its parsed value, or why it is not JSON. */
export type BundleLine = { line: number; value: unknown } | { line: number; error: string };

/** Splits NDJSON text into values; blank lines are ignored, a bad line is kept as an error. */
export function parseBundleLines(text: string): BundleLine[] {
  const out: BundleLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === "") continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(raw) as unknown });
    } catch (e) {
      out.push({ line: i + 1, error: `line ${i + 1} is not JSON: ${(e as Error).message}` });
    }
  }
  return out;
}

export interface VerifyManyOptions extends VerifyOptions {
  /** Bundles verified concurrently (default 16); their chain reads are shared anyway. */
  concurrency?: number;
  /** Called after each verdict with the number done so far. */
  onProgress?: (done: number, total: number) => void;
  /** Reuse a session (its caches) across calls. */
  session?: VerifySession;
}

export async function verifyBundles(
  bundles: readonly unknown[],
  provider: ChainRpc,
  options: VerifyManyOptions,
): Promise<Verdict[]> {
  const session = options.session ?? newSession(provider);
  const verdicts = new Array<Verdict>(bundles.length);
  const concurrency = Math.max(1, options.concurrency ?? 16);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < bundles.length) {
      const i = next++;
      verdicts[i] = await verifyInSession(bundles[i], session, options);
      done++;
      options.onProgress?.(done, bundles.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, bundles.length) }, worker));
  return verdicts;
}

/** Verifies parsed NDJSON lines; a line that is not JSON gets a BUNDLE_MALFORMED verdict. */
export async function verifyBundleLines(
  lines: readonly BundleLine[],
  provider: ChainRpc,
  options: VerifyManyOptions,
): Promise<Array<Verdict & { line: number }>> {
  const values = lines.map((l) => ("value" in l ? l.value : undefined));
  const verdicts = await verifyBundles(values, provider, options);
  return lines.map((l, i) => ({
    line: l.line,
    ...("error" in l ? malformedVerdict(l.error) : verdicts[i]!),
  }));
}

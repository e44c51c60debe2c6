import { type Bundle, BundleSchema } from "../core/bundle.ts";
import { SYSTEM } from "../core/codes.ts";
import { parseNativeEvent } from "../core/event.ts";
import { EXPORT_TYPE_CODE, IMPORT_TYPE_CODE } from "../core/transfer.ts";
import type { TransferLog } from "../core/transfer-log.ts";

/** How much of a peer's answers a trace reads, and for how long (config PEER_*). */
export interface PeerLimits {
  /** Per request: a peer that accepts the connection and never answers must not hang a trace. */
  timeoutMs?: number;
  /** Per answer, in bytes: a peer answering without end must not fill the memory. */
  maxResponseBytes?: number;
  /** For everything read from this peer in one trace (every page of its transfer events). */
  totalTimeoutMs?: number;
}

/** Events per page asked of a peer: at ≤ 32 KiB each, a page stays well under 16 MiB. */
const PEER_PAGE = 200;
/** Same-origin redirects followed per request (a peer behind a path-rewriting proxy). */
const MAX_PEER_REDIRECTS = 3;

function urlOrUndefined(location: string, base: URL): URL | undefined {
  try {
    return new URL(location, base);
  } catch {
    return undefined;
  }
}

/** The body of `res` as text, refusing more than `maxBytes` (read as it arrives, then cut). */
async function boundedText(res: Response, maxBytes: number, what: string): Promise<string> {
  const tooBig = () => new Error(`${what}: the answer is over ${maxBytes} bytes`);
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw tooBig();
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooBig();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A TransferLog over another institution's Veritrail API (an auditor key of that API). What the
 * API returns is not trusted: events are parsed with the native schema and bundles with the
 * bundle schema here, and every bundle is meant to be checked with `verifyBundle` afterwards.
 * Answers are bounded in size and time (PeerLimits), and redirects are followed only within the
 * peer's origin: the auditor key is never sent to, and no answer read from, another origin.
 */
export function apiTransferLog(
  name: string,
  baseUrl: string,
  auditorKey: string,
  opts: PeerLimits = {},
): TransferLog {
  const maxBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
  // Started when the log is made: one trace makes one TransferLog per peer.
  const deadline =
    opts.totalTimeoutMs !== undefined ? AbortSignal.timeout(opts.totalTimeoutMs) : undefined;
  const get = async (route: string): Promise<unknown> => {
    const what = `${name}: GET ${route.split("?")[0]}`;
    let url = new URL(route, baseUrl);
    const origin = url.origin;
    for (let redirects = 0; ; redirects++) {
      const signals = [
        ...(opts.timeoutMs !== undefined ? [AbortSignal.timeout(opts.timeoutMs)] : []),
        ...(deadline ? [deadline] : []),
      ];
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${auditorKey}` },
        redirect: "manual",
        ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}),
      });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        const location = res.headers.get("location");
        const next = location === null ? undefined : urlOrUndefined(location, url);
        if (!next) throw new Error(`${what} answered ${res.status} without a usable Location`);
        if (next.origin !== origin)
          throw new Error(`${what} redirected to another origin (${next.origin}); not followed`);
        if (redirects >= MAX_PEER_REDIRECTS)
          throw new Error(`${what} redirected more than ${MAX_PEER_REDIRECTS} times`);
        url = next;
        continue;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`${what} answered ${res.status}`);
      }
      const text = await boundedText(res, maxBytes, what);
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new Error(`${what}: the answer is not JSON`);
      }
    }
  };
  return {
    name,
    async prove(seq) {
      const raw = await get(`/v1/events/${seq}/proof`);
      if (!BundleSchema.safeParse(raw).success)
        throw new Error(`${name}: the proof of seq ${seq} is not a bundle`);
      // Passed on as the peer wrote it (its extensions and erasure record included): the
      // verifier that checks the trace parses it again and trusts none of it.
      return raw as Bundle;
    },
    async *transferEvents() {
      for (const code of [EXPORT_TYPE_CODE, IMPORT_TYPE_CODE]) {
        let cursor: string | null = null;
        do {
          const query = new URLSearchParams({ type: code, limit: String(PEER_PAGE) });
          if (cursor !== null) query.set("cursor", cursor);
          const page = (await get(`/v1/events?${query.toString()}`)) as {
            events?: Array<{ seq?: unknown; event?: unknown }>;
            nextCursor?: unknown;
          };
          for (const item of page.events ?? []) {
            if (item.event === null || !Number.isSafeInteger(item.seq)) continue;
            const parsed = parseNativeEvent(item.event);
            if (!parsed.ok) throw new Error(`${name}: event ${String(item.seq)} is not valid`);
            if (parsed.value.transfer !== undefined && parsed.value.type.system === SYSTEM.dcm)
              yield { seq: item.seq as number, event: parsed.value };
          }
          cursor = typeof page.nextCursor === "string" ? page.nextCursor : null;
        } while (cursor !== null);
      }
    },
  };
}

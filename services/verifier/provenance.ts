import {
  type RegistryRef,
  type Trace,
  type TraceSide,
  type WithheldSide,
  anchorOf,
  checkHopMatch,
  custodyOf,
  isWithheld,
  registryProblem,
  sideKey,
} from "../core/provenance-trace.ts";
import type { TrustPolicy } from "../core/trust-policy.ts";
import type { ChainRpc } from "./chain-reads.ts";
import type { Verdict, VerdictStatus } from "./verdict.ts";
import { newSession, verifyInSession } from "./verify-bundle.ts";

/**
 * A provenance trace checked hop by hop without trusting whoever produced it: every side's
 * bundle verified against the chain (relative to the trust policy), every hop's match re-derived
 * from the bundles' own events (core/provenance-trace.ts), and every anchored bundle required to
 * name one registry, so a server cannot prove a hop with a registry of its own choosing.
 */

export interface SideReport {
  organization: string;
  log: string;
  logId: string;
  seq: number;
  status: VerdictStatus;
  code?: string;
  /** The log's operator, as the trust policy names it. */
  operator?: string;
  /** Why the bundle's anchor is not in the trace's registry, when it is not. */
  registry?: string;
}

export interface HopReport {
  hop: number;
  reference: string;
  dataHash: string;
  from: SideReport | WithheldSide;
  to: SideReport | WithheldSide;
  match: { ok: boolean; reason: string };
  ok: boolean;
}

export interface UnmatchedReport extends SideReport {
  kind: "export" | "import";
  reason: string;
  reference: string;
  dataHash: string;
}

export interface TraceVerdict {
  /** Every hop verified and matched, nothing unmatched, every log read, something found. */
  ok: boolean;
  /** The registry every anchored bundle had to name (null when no bundle is anchored). */
  registry: RegistryRef | null;
  complete: boolean;
  unreadable: Array<{ name: string; readable: boolean; error?: string }>;
  custody: string[];
  hops: HopReport[];
  unmatched: UnmatchedReport[];
  failedHops: number;
  /** No hop and no unmatched transfer: nothing of the item was found. */
  empty: boolean;
}

export interface TraceCheckOptions {
  trust: TrustPolicy;
  confirmations?: number;
  /** Accept sides whose bundles are not anchored yet. */
  allowPending?: boolean;
  /** The registry every anchored bundle must name (on the chain of the first anchored one). */
  registry?: string;
  /** The data item traced: a hop moving other data fails its match. */
  dataHash?: string;
}

/** Whether a side counts as good under `allowPending`. */
export function sideAcceptable(s: SideReport, allowPending: boolean): boolean {
  return (
    (s.status === "verified" || (allowPending && s.status === "pending")) &&
    s.registry === undefined
  );
}

export async function verifyTrace(
  trace: Trace,
  rpc: ChainRpc,
  opts: TraceCheckOptions,
): Promise<TraceVerdict> {
  const session = newSession(rpc);
  const verdicts = new Map<string, Promise<Verdict>>();
  const verify = (side: TraceSide) => {
    const key = sideKey(side);
    let v = verdicts.get(key);
    if (v === undefined) {
      v = verifyInSession(side.bundle, session, {
        trust: opts.trust,
        ...(opts.confirmations !== undefined ? { confirmations: opts.confirmations } : {}),
      });
      verdicts.set(key, v);
    }
    return v;
  };

  // The registry every anchored bundle must name: opts.registry (on the chain of the first
  // anchored bundle, which the verifier checks against the RPC's chain id), else the first one's.
  const allSides = [
    ...trace.hops.flatMap((h) => [h.from, h.to]).filter((s): s is TraceSide => !isWithheld(s)),
    ...trace.unmatched.map((u) => u.side),
  ];
  const firstAnchor = allSides.map((s) => anchorOf(s.bundle)).find((a) => a !== null) ?? null;
  const registry: RegistryRef | null =
    firstAnchor === null
      ? null
      : {
          chainId: firstAnchor.chainId,
          contract: opts.registry?.toLowerCase() ?? firstAnchor.contract,
        };

  const allowPending = opts.allowPending ?? false;
  const report = async (side: TraceSide): Promise<SideReport> => {
    const v = await verify(side);
    const problem = registryProblem(side.bundle, registry);
    return {
      organization: side.organization,
      log: side.log,
      logId: side.logId,
      seq: side.seq,
      status: v.status,
      ...(v.code !== undefined ? { code: v.code } : {}),
      ...(v.trust?.operator !== undefined ? { operator: v.trust.operator } : {}),
      ...(problem !== null ? { registry: problem } : {}),
    };
  };
  const reportSide = async (side: TraceSide | WithheldSide): Promise<SideReport | WithheldSide> =>
    isWithheld(side) ? side : report(side);

  const hops: HopReport[] = await Promise.all(
    trace.hops.map(async (hop, i) => {
      const [from, to] = await Promise.all([reportSide(hop.from), reportSide(hop.to)]);
      const mismatch = checkHopMatch(hop, opts.dataHash ?? null);
      const good = (s: SideReport | WithheldSide) =>
        !isWithheld(s) && sideAcceptable(s, allowPending);
      return {
        hop: i + 1,
        reference: hop.reference,
        dataHash: hop.dataHash,
        from,
        to,
        match: {
          ok: mismatch === null,
          reason:
            mismatch ??
            "an Export and an Import with the same reference and data hash; the importer is the export's recipient",
        },
        ok: good(from) && good(to) && mismatch === null,
      };
    }),
  );
  const unmatched: UnmatchedReport[] = await Promise.all(
    trace.unmatched.map(async (u) => ({
      kind: u.kind,
      reason: u.reason,
      reference: u.reference,
      dataHash: u.dataHash,
      ...(await report(u.side)),
    })),
  );

  const unreadable = (trace.logs ?? []).filter((l) => !l.readable);
  const failedHops = hops.filter((h) => !h.ok).length;
  const empty = hops.length === 0 && unmatched.length === 0;
  const complete = trace.complete !== false;
  return {
    ok: failedHops === 0 && unmatched.length === 0 && complete && !empty,
    registry,
    complete,
    unreadable,
    custody: custodyOf(hops),
    hops,
    unmatched,
    failedHops,
    empty,
  };
}

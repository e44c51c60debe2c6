import { z } from "zod";
import { SYSTEM } from "./codes.ts";
import { type NativeEvent, parseNativeEvent } from "./event.ts";
import { EXPORT_TYPE_CODE, IMPORT_TYPE_CODE } from "./transfer.ts";

/**
 * A provenance trace as GET /v1/provenance answers it, read as untrusted input: its shape, how
 * several answers merge into one, and the check that a hop really is an Export and an Import of
 * the same transfer. Pure, so the `veritrail provenance` command and any page that checks a
 * trace share it (the verifying against the chain is verifier/provenance.ts).
 */

const SideSchema = z.object({
  log: z.string(),
  logId: z.string(),
  seq: z.number().int().nonnegative(),
  organization: z.string(),
  recorded: z.string(),
  bundle: z.unknown(),
});
/** One side of a hop with the bundle that proves it (the bundle not yet checked). */
export type TraceSide = z.infer<typeof SideSchema>;

/** A side the API's access policy withheld from the key that asked (a writer's trace). */
const WithheldSchema = z.object({ withheld: z.literal(true) });
export type WithheldSide = z.infer<typeof WithheldSchema>;
const HopSideSchema = z.union([SideSchema, WithheldSchema]);

export function isWithheld<T extends object>(side: T | WithheldSide): side is WithheldSide {
  return "withheld" in side;
}

export const TraceSchema = z.object({
  dataHash: z.string().nullable().optional(),
  reference: z.string().nullable().optional(),
  hops: z.array(
    z.object({
      reference: z.string(),
      dataHash: z.string(),
      from: HopSideSchema,
      to: HopSideSchema,
    }),
  ),
  unmatched: z.array(
    z.object({
      kind: z.enum(["export", "import"]),
      reason: z.string(),
      reference: z.string(),
      dataHash: z.string(),
      side: SideSchema,
    }),
  ),
  logs: z
    .array(z.object({ name: z.string(), readable: z.boolean(), error: z.string().optional() }))
    .optional(),
  complete: z.boolean().optional(),
});
export type Trace = z.infer<typeof TraceSchema>;
export type TraceHop = Trace["hops"][number];
export type TraceUnmatched = Trace["unmatched"][number];

/** The trace in `value`, or why it is not one (the first issue, with its path). */
export function parseTrace(
  value: unknown,
): { ok: true; trace: Trace } | { ok: false; message: string } {
  const parsed = TraceSchema.safeParse(value);
  if (parsed.success) return { ok: true, trace: parsed.data };
  const issue = parsed.error.issues[0];
  const at = issue ? issue.path.join(".") || "$" : "$";
  return { ok: false, message: `${at}: ${issue?.message}` };
}

export const sideKey = (s: TraceSide | WithheldSide) =>
  isWithheld(s) ? "withheld" : `${s.logId}:${s.seq}`;

/**
 * Several answers (each API traces from its own log and its peers) as one trace: hops are
 * deduplicated by their two sides, a hop with a side withheld from one key gives way to the same
 * hop seen whole by another, and a transfer one source lists as unmatched but another matched
 * (it could not see the counterparty's log) counts as matched.
 */
export function mergeTraces(traces: Trace[]): Trace {
  const hops = new Map<string, TraceHop>();
  for (const t of traces)
    for (const hop of t.hops) hops.set(`${sideKey(hop.from)}>${sideKey(hop.to)}`, hop);
  const whole = [...hops.values()].filter((h) => !isWithheld(h.from) && !isWithheld(h.to));
  const wholeFrom = new Set(whole.map((h) => sideKey(h.from)));
  const wholeTo = new Set(whole.map((h) => sideKey(h.to)));
  for (const [key, hop] of hops) {
    const seenWhole =
      (isWithheld(hop.from) && wholeTo.has(sideKey(hop.to))) ||
      (isWithheld(hop.to) && wholeFrom.has(sideKey(hop.from)));
    if (seenWhole) hops.delete(key);
  }
  const exported = new Set([...hops.values()].map((h) => sideKey(h.from)));
  const imported = new Set([...hops.values()].map((h) => sideKey(h.to)));
  const unmatched = new Map<string, TraceUnmatched>();
  for (const t of traces)
    for (const u of t.unmatched) {
      const key = sideKey(u.side);
      if ((u.kind === "export" ? exported : imported).has(key)) continue;
      unmatched.set(`${u.kind}:${key}`, u);
    }
  const timeOf = (h: TraceHop) => [h.from, h.to].find((s): s is TraceSide => !isWithheld(s));
  const sorted = [...hops.values()].sort((a, b) => {
    const [x, y] = [timeOf(a), timeOf(b)];
    return (x?.recorded ?? "").localeCompare(y?.recorded ?? "") || (x?.seq ?? 0) - (y?.seq ?? 0);
  });
  const first = traces[0];
  return {
    dataHash: traces.find((t) => typeof t.dataHash === "string")?.dataHash ?? null,
    reference: first?.reference ?? null,
    hops: sorted,
    unmatched: [...unmatched.values()],
    logs: traces.flatMap((t) => t.logs ?? []),
    complete: traces.every((t) => t.complete !== false),
  };
}

/** Organizations in custody order (the first sender, then each recipient); withheld sides name none. */
export function custodyOf(
  hops: ReadonlyArray<{
    from: { organization: string } | WithheldSide;
    to: { organization: string } | WithheldSide;
  }>,
): string[] {
  const custody: string[] = [];
  for (const hop of hops) {
    if (!isWithheld(hop.from) && custody[custody.length - 1] !== hop.from.organization)
      custody.push(hop.from.organization);
    if (!isWithheld(hop.to)) custody.push(hop.to.organization);
  }
  return custody;
}

/** A registry: the chain and the contract address (lowercase). */
export interface RegistryRef {
  chainId: number;
  contract: string;
}

/** The registry a bundle says it is anchored in, when the bundle has an anchor. */
export function anchorOf(bundle: unknown): RegistryRef | null {
  if (typeof bundle !== "object" || bundle === null) return null;
  const anchor = (bundle as { anchor?: unknown }).anchor;
  if (typeof anchor !== "object" || anchor === null) return null;
  const { chainId, contract } = anchor as { chainId?: unknown; contract?: unknown };
  if (typeof chainId !== "number" || typeof contract !== "string") return null;
  return { chainId, contract: contract.toLowerCase() };
}

/** Why a bundle's anchor is not in `registry`, or null when it is (or either is unknown). */
export function registryProblem(bundle: unknown, registry: RegistryRef | null): string | null {
  const anchor = anchorOf(bundle);
  if (anchor === null || registry === null) return null;
  if (anchor.chainId !== registry.chainId || anchor.contract !== registry.contract)
    return `anchored in ${anchor.contract} on chain ${anchor.chainId}, not in the registry ${registry.contract} on chain ${registry.chainId}`;
  return null;
}

type TransferEvent = NativeEvent & { transfer: NonNullable<NativeEvent["transfer"]> };

/** The event a side's bundle carries, if it is a transfer event of the expected type. */
function transferEventOf(side: TraceSide, code: string): TransferEvent | string {
  const bundle = side.bundle as { event?: unknown; entry?: { log?: unknown; seq?: unknown } };
  if (bundle.entry?.log !== side.logId || bundle.entry.seq !== side.seq)
    return `the bundle is of ${String(bundle.entry?.log)}:${String(bundle.entry?.seq)}, not ${sideKey(side)}`;
  if (bundle.event === null || bundle.event === undefined)
    return `seq ${side.seq} was erased: its transfer cannot be checked`;
  const parsed = parseNativeEvent(bundle.event);
  if (!parsed.ok) return `seq ${side.seq} does not carry a valid event`;
  const e = parsed.value;
  if (e.type.system !== SYSTEM.dcm || e.type.code !== code || e.transfer === undefined)
    return `seq ${side.seq} is not ${code === EXPORT_TYPE_CODE ? `an Export (${EXPORT_TYPE_CODE})` : `an Import (${IMPORT_TYPE_CODE})`} with a transfer`;
  if (e.source.organization !== side.organization)
    return `seq ${side.seq} was logged by ${e.source.organization}, not ${side.organization}`;
  return e as TransferEvent;
}

/**
 * The hop re-derived from what the bundles say, not from the API's labels: an Export and an
 * Import with the hop's reference and data hash, the importer being the export's recipient (an
 * export without a recipient matches any importer, as in the ledger's matching, core/transfer.ts).
 * Null when it holds, else why not.
 */
export function checkHopMatch(hop: TraceHop, dataHash: string | null): string | null {
  if (isWithheld(hop.from) || isWithheld(hop.to))
    return `the ${isWithheld(hop.from) ? "export" : "import"} side was withheld from the key that asked (it names another organization): the hop cannot be checked`;
  const exp = transferEventOf(hop.from, EXPORT_TYPE_CODE);
  if (typeof exp === "string") return `export: ${exp}`;
  const imp = transferEventOf(hop.to, IMPORT_TYPE_CODE);
  if (typeof imp === "string") return `import: ${imp}`;
  if (exp.transfer.reference !== hop.reference || imp.transfer.reference !== hop.reference)
    return `the transfer references differ (export ${exp.transfer.reference}, import ${imp.transfer.reference})`;
  if (exp.transfer.dataHash !== hop.dataHash || imp.transfer.dataHash !== hop.dataHash)
    return `the data hashes differ (export ${exp.transfer.dataHash}, import ${imp.transfer.dataHash})`;
  if (dataHash !== null && hop.dataHash !== dataHash)
    return `the hop moves data ${hop.dataHash}, not the item traced (${dataHash})`;
  if (exp.recipient !== undefined && exp.recipient.organization !== imp.source.organization)
    return `the export went to ${exp.recipient.organization}, the import was logged by ${imp.source.organization}`;
  return null;
}

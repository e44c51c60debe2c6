/**
 * Who could change what, and when: a registry's admin and each log's key rotations, read from the
 * chain for `veritrail trust show --rpc`. A trust policy names a log and its registry; whether the
 * keys behind that log stayed in the right hands is in the registry's events — the admin role's
 * two-step transfers (OpenZeppelin AccessControlDefaultAdminRules), each log's registration,
 * anchorer and receipt-signer rotations and operator renames.
 *
 * Events come from `eth_getLogs`, which execution clients may no longer serve for old blocks
 * (EIP-4444) and RPC providers cap by block range: when they cannot be read the history says so
 * and the current state (read from storage, always available) stands alone. The last event of
 * each kind must agree with that state; when it does not, the history is incomplete and says so.
 */
import { type Log, ZeroAddress, ZeroHash } from "ethers";
import { type RegistryClient, registryInterface } from "./registry-client.ts";

export type HistoryKind =
  | "registered"
  | "anchorer-rotated"
  | "signer-rotated"
  | "operator-renamed"
  | "admin-granted"
  | "admin-revoked"
  | "admin-transfer-scheduled"
  | "admin-transfer-canceled"
  | "admin-delay-change-scheduled"
  | "admin-delay-change-canceled";

export interface HistoryEntry {
  kind: HistoryKind;
  blockNumber: number;
  /** Block timestamp, ISO 8601 UTC. */
  at: string;
  txHash: string;
  /** What happened, in words (addresses, names, schedules). */
  text: string;
  logId?: string;
  /** What the log's anchorer, receipt signer or operator name is after this event. */
  after?: { anchorer?: string; receiptSigner?: string; operator?: string };
}

export interface LogState {
  logId: string;
  registered: boolean;
  anchorer: string;
  receiptSigner: string;
  operator: string;
  /** ISO 8601 UTC of the registration block. */
  registeredAt: string | null;
}

export interface LogHistory {
  state: LogState;
  events: HistoryEntry[];
  /** Whether the events end in the state read from storage (false: some are missing). */
  consistent: boolean;
}

export interface AdminState {
  admin: string;
  delaySeconds: number;
  pending: { newAdmin: string; acceptableFrom: string } | null;
  pendingDelay: { newDelaySeconds: number; effectiveFrom: string } | null;
}

export interface RegistryHistory {
  chainId: number;
  registry: string;
  /** Null state: a registry deployed before the admin rules (no `defaultAdmin()` to ask). */
  admin: { state: AdminState | null; events: HistoryEntry[] };
  logs: LogHistory[];
  /** The block range whose events were read, or why none could be. */
  events: { fromBlock: number; toBlock: number } | { unavailable: string };
}

const DEFAULT_ADMIN_ROLE = ZeroHash;

function iso(seconds: bigint | number): string {
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}

function duration(seconds: number): string {
  if (seconds % 86_400 === 0 && seconds > 0) return `${seconds / 86_400} day(s)`;
  if (seconds % 3_600 === 0 && seconds > 0) return `${seconds / 3_600} hour(s)`;
  return `${seconds} s`;
}

export { duration as formatDelay };

/** The admin role's state, read from storage. */
export async function readAdminState(client: RegistryClient): Promise<AdminState> {
  const c = client.contract;
  const [admin, delay, pending, pendingDelay] = (await Promise.all([
    c.getFunction("defaultAdmin").staticCall(),
    c.getFunction("defaultAdminDelay").staticCall(),
    c.getFunction("pendingDefaultAdmin").staticCall(),
    c.getFunction("pendingDefaultAdminDelay").staticCall(),
  ])) as [string, bigint, [string, bigint], [bigint, bigint]];
  return {
    admin,
    delaySeconds: Number(delay),
    pending: pending[1] === 0n ? null : { newAdmin: pending[0], acceptableFrom: iso(pending[1]) },
    pendingDelay:
      pendingDelay[1] === 0n
        ? null
        : { newDelaySeconds: Number(pendingDelay[0]), effectiveFrom: iso(pendingDelay[1]) },
  };
}

/**
 * The registry's admin history and the rotation history of `logIds` (all registered logs when
 * omitted), events from `fromBlock` (default 0) to the head.
 */
export async function readRegistryHistory(
  client: RegistryClient,
  opts: { logIds?: readonly string[]; fromBlock?: number } = {},
): Promise<RegistryHistory> {
  const logIds = (opts.logIds ?? (await client.listLogs()).map((l) => l.logId)).map((l) =>
    l.toLowerCase(),
  );
  const [adminState, states] = await Promise.all([
    readAdminState(client).catch(() => null),
    Promise.all(logIds.map((logId) => logState(client, logId))),
  ]);
  const fromBlock = opts.fromBlock ?? 0;
  let raw: Log[] | undefined;
  let toBlock = 0;
  let unavailable: string | undefined;
  try {
    toBlock = await client.blockNumber();
    raw = await client.provider.getLogs({ address: client.address, fromBlock, toBlock });
  } catch (e) {
    unavailable =
      `the node did not serve the registry's events from block ${fromBlock} ` +
      `(${e instanceof Error ? e.message.split("\n")[0] : String(e)}); pruned history (EIP-4444) ` +
      `or a block-range cap: try --from-block <the registry's deployment block>`;
  }
  const entries = raw ? await toEntries(client, raw) : [];
  const adminEvents = entries.filter((e) => e.logId === undefined);
  const logs = states.map((state): LogHistory => {
    const events = entries.filter((e) => e.logId === state.logId);
    return { state, events, consistent: raw !== undefined && agrees(state, events) };
  });
  return {
    chainId: client.chainId,
    registry: client.address,
    admin: { state: adminState, events: adminEvents },
    logs,
    events: unavailable !== undefined ? { unavailable } : { fromBlock, toBlock },
  };
}

async function logState(client: RegistryClient, logId: string): Promise<LogState> {
  const [info, operator] = await Promise.all([client.getLog(logId), client.logOperator(logId)]);
  return {
    logId,
    registered: info.registered,
    anchorer: info.anchorer,
    receiptSigner: info.receiptSigner,
    operator,
    registeredAt: info.registered ? iso(info.registeredAt) : null,
  };
}

/** The last registration/rotation/rename events must leave the log as its storage says. */
function agrees(state: LogState, events: readonly HistoryEntry[]): boolean {
  if (!state.registered) return events.length === 0;
  const last = (kind: HistoryKind) => events.filter((e) => e.kind === kind).at(-1);
  const registered = last("registered")?.after;
  if (!registered) return false;
  const anchorer = last("anchorer-rotated")?.after?.anchorer ?? registered.anchorer;
  const signer = last("signer-rotated")?.after?.receiptSigner ?? registered.receiptSigner;
  const operator = last("operator-renamed")?.after?.operator ?? registered.operator;
  return (
    anchorer === state.anchorer && signer === state.receiptSigner && operator === state.operator
  );
}

async function toEntries(client: RegistryClient, logs: readonly Log[]): Promise<HistoryEntry[]> {
  const times = new Map<number, Promise<string>>();
  const timeOf = (n: number): Promise<string> => {
    let t = times.get(n);
    if (!t) {
      t = client.provider.getBlock(n).then((b) => (b ? iso(b.timestamp) : "?"));
      times.set(n, t);
    }
    return t;
  };
  const out: HistoryEntry[] = [];
  for (const log of logs) {
    if (log.removed) continue;
    let parsed;
    try {
      parsed = registryInterface.parseLog({ topics: [...log.topics], data: log.data });
    } catch {
      continue;
    }
    if (!parsed) continue;
    const a = parsed.args;
    const base = { blockNumber: log.blockNumber, txHash: log.transactionHash };
    let entry: Omit<HistoryEntry, "at" | "blockNumber" | "txHash"> | undefined;
    switch (parsed.name) {
      case "LogRegistered":
        entry = {
          kind: "registered",
          logId: String(a[0]).toLowerCase(),
          text: `registered: anchorer ${String(a[1])}, receipt signer ${String(a[2])}, operator ${JSON.stringify(String(a[3]))}`,
          after: { anchorer: String(a[1]), receiptSigner: String(a[2]), operator: String(a[3]) },
        };
        break;
      case "AnchorerRotated":
        entry = {
          kind: "anchorer-rotated",
          logId: String(a[0]).toLowerCase(),
          text: `anchorer rotated: ${String(a[1])} → ${String(a[2])}`,
          after: { anchorer: String(a[2]) },
        };
        break;
      case "ReceiptSignerRotated":
        entry = {
          kind: "signer-rotated",
          logId: String(a[0]).toLowerCase(),
          text: `receipt signer rotated: ${String(a[1])} → ${String(a[2])}`,
          after: { receiptSigner: String(a[2]) },
        };
        break;
      case "LogOperatorRenamed":
        entry = {
          kind: "operator-renamed",
          logId: String(a[0]).toLowerCase(),
          text: `operator renamed: ${JSON.stringify(String(a[1]))} → ${JSON.stringify(String(a[2]))}`,
          after: { operator: String(a[2]) },
        };
        break;
      case "RoleGranted":
        if (a[0] !== DEFAULT_ADMIN_ROLE) break;
        entry = { kind: "admin-granted", text: `admin role granted to ${String(a[1])}` };
        break;
      case "RoleRevoked":
        if (a[0] !== DEFAULT_ADMIN_ROLE) break;
        entry = { kind: "admin-revoked", text: `admin role revoked from ${String(a[1])}` };
        break;
      case "DefaultAdminTransferScheduled":
        entry = {
          kind: "admin-transfer-scheduled",
          text:
            String(a[0]) === ZeroAddress
              ? `renouncing the admin role scheduled, effective from ${iso(a[1] as bigint)}`
              : `admin transfer to ${String(a[0])} scheduled, acceptable from ${iso(a[1] as bigint)}`,
        };
        break;
      case "DefaultAdminTransferCanceled":
        entry = { kind: "admin-transfer-canceled", text: "scheduled admin transfer canceled" };
        break;
      case "DefaultAdminDelayChangeScheduled":
        entry = {
          kind: "admin-delay-change-scheduled",
          text: `admin transfer delay change to ${duration(Number(a[0]))} scheduled, effective from ${iso(a[1] as bigint)}`,
        };
        break;
      case "DefaultAdminDelayChangeCanceled":
        entry = {
          kind: "admin-delay-change-canceled",
          text: "scheduled admin delay change canceled",
        };
        break;
      default:
        break;
    }
    if (entry) out.push({ ...base, ...entry, at: "" });
  }
  await Promise.all(
    out.map(async (e) => {
      e.at = await timeOf(e.blockNumber);
    }),
  );
  return out;
}

import { TestLogClock } from "../../support/log-clock.ts";
import { Wallet } from "ethers";
import { policyFor } from "../../support/trust.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { type AnchorStatus, type AppOptions, createApp } from "../../../services/api/app.ts";
import { startServer } from "../../../services/api/server.ts";
import { loadConfig } from "../../../services/config.ts";
import type { NativeEvent } from "../../../services/core/event.ts";
import { ApiKeys } from "../../../services/ledger/api-keys.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import type { ChainRpc } from "../../../services/verifier/chain-reads.ts";
import { RpcUnavailableError } from "../../../services/verifier/rpc.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { HOSPITAL_ORG, LAB_ORG, makeNativeEvent } from "../../fixtures/events.ts";

export const PATIENT_1 = { system: "urn:oid:2.16.840.1.113883.4.1", value: "PAT-111-2222" };
export const PATIENT_2 = { system: "urn:oid:2.16.840.1.113883.4.1", value: "PAT-333-4444" };

const signer = new Wallet("0x" + "22".repeat(32));

/** A chain that cannot be reached: bundles that need it verify to "error", unanchored ones to "pending". */
export const UNREACHABLE_CHAIN: ChainRpc = {
  call: () => Promise.reject(new RpcUnavailableError("no chain in this test")),
  getBlockNumber: () => Promise.reject(new RpcUnavailableError("no chain in this test")),
  getTransactionReceipt: () => Promise.reject(new RpcUnavailableError("no chain in this test")),
  getNetwork: () => Promise.reject(new RpcUnavailableError("no chain in this test")),
  getBlock: () => Promise.reject(new RpcUnavailableError("no chain in this test")),
};

/** An event of `org` about `patient`, with a fresh requestId unless `requestId` is given. */
export function eventFor(
  org: string,
  patient: { system?: string; value: string } | null,
  extra: Partial<NativeEvent> = {},
): NativeEvent {
  const base = makeNativeEvent();
  delete base.requestId;
  delete base.patient;
  return {
    ...base,
    ...(patient ? { patient } : {}),
    ...extra,
    source: { ...base.source, organization: org },
  };
}

export interface TestApi {
  url: string;
  ledger: Ledger;
  /** The log clock entry.recorded is read from (real time unless set). */
  clock: TestLogClock;
  keys: ApiKeys;
  /** Everything the app logged, as written (JSON lines). */
  logs: string[];
  secrets: {
    admin: string;
    auditor: string;
    writer: string;
    otherWriter: string;
    patient1: string;
    patient2: string;
    revoked: string;
  };
  request(
    method: string,
    route: string,
    opts?: {
      key?: string;
      body?: unknown;
      raw?: string | Buffer;
      type?: string;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: unknown; headers: Headers; text: string }>;
  close(): Promise<void>;
}

/**
 * The API in-process on 127.0.0.1:0 over a real LevelDB in a temp dir, with one key per role,
 * two writers (hospital, lab) and two patients.
 */
export async function startTestApi(
  overrides: {
    config?: Record<string, string>;
    statusProvider?: () => AnchorStatus;
    webDir?: string;
    batchMaxEvents?: number;
    /** false: no verifier (POST /v1/verify answers 503); default: the real one, chain unreachable. */
    verifier?: false;
  } = {},
): Promise<TestApi> {
  const dir = await mkdtemp(path.join(tmpdir(), "veritrail-api-"));
  const clock = new TestLogClock();
  const ledger = await Ledger.open({
    logClock: clock.now,
    location: path.join(dir, "ledger"),
    receiptSigner: signer,
    batchMaxEvents: overrides.batchMaxEvents ?? 1_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  });
  const keys = ApiKeys.forLedger(ledger);
  const logs: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
  const config = loadConfig({ ...overrides.config });
  const appOptions: AppOptions = { ledger, apiKeys: keys, logger, config };
  if (overrides.statusProvider) appOptions.statusProvider = overrides.statusProvider;
  if (overrides.webDir) appOptions.webDir = overrides.webDir;
  if (overrides.verifier !== false)
    appOptions.verifier = (bundle, trust) =>
      verifyBundle(bundle, UNREACHABLE_CHAIN, {
        // This log in a registry a test regulator lists (no chain answers: verdicts are pending
        // or errors, never verified).
        trust:
          trust ??
          policyFor({
            chainId: 31337,
            contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            logIds: ledger.logId,
          }),
        confirmations: 1,
      });
  const server = await startServer(createApp(appOptions), { host: "127.0.0.1", port: 0 });
  const secret = async (req: Parameters<ApiKeys["create"]>[0]) => (await keys.create(req)).secret;
  const revoked = await keys.create({ role: "auditor" });
  await keys.revoke(revoked.key.id);
  const secrets = {
    admin: await secret({ role: "admin" }),
    auditor: await secret({ role: "auditor" }),
    writer: await secret({ role: "writer", organization: HOSPITAL_ORG }),
    otherWriter: await secret({ role: "writer", organization: LAB_ORG }),
    patient1: await secret({ role: "patient", patient: PATIENT_1 }),
    patient2: await secret({ role: "patient", patient: PATIENT_2 }),
    revoked: revoked.secret,
  };
  return {
    url: server.url,
    ledger,
    clock,
    keys,
    logs,
    secrets,
    async request(method, route, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.key !== undefined) headers["authorization"] = `Bearer ${opts.key}`;
      let body: string | Uint8Array<ArrayBuffer> | undefined;
      if (opts.raw !== undefined)
        body = typeof opts.raw === "string" ? opts.raw : new Uint8Array(opts.raw);
      else if (opts.body !== undefined) body = JSON.stringify(opts.body);
      if (body !== undefined) headers["content-type"] = opts.type ?? "application/json";
      const res = await fetch(server.url + route, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = undefined;
      try {
        parsed = JSON.parse(text) as unknown;
      } catch {
        parsed = undefined;
      }
      return { status: res.status, body: parsed, headers: res.headers, text };
    },
    async close() {
      await server.close(1_000);
      if (ledger.store.isOpen) await ledger.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

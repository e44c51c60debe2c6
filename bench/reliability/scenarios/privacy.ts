/**
 * (f) Privacy scan (DESIGN.md "Never on-chain, never in logs"): events about run-specific
 * patients are logged (plus a few rejected requests and queries that carry the identifiers),
 * the batches are anchored, and then the identifiers — as text, as hex of their UTF-8, and as
 * the plain SHA-256 of the value and of `system|value` — are searched for in every transaction
 * input and event log of the chain, in every receipt, in everything the service printed at
 * LOG_LEVEL=debug, and in /metrics. The scan must find data in each place (so it is not
 * vacuous) and no identifier anywhere. Then, as a patient sees it with PATIENT_VIEW_STAFF_NAMES
 * off (the default): the patient's history, proofs, event list and FHIR resources hold no staff
 * identity — not even inside the proof bundles — and the same history verifies as complete
 * against the chain, with the library and with `veritrail verify`.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { runCli } from "../../../services/cli/main.ts";
import { verifyPatientHistory } from "../../../services/verifier/completeness.ts";
import { connectRpc } from "../../../services/verifier/rpc.ts";
import { sha256 } from "../../../services/core/hash.ts";
import { toHex, utf8 } from "../../../services/core/hex.ts";
import { patientKey } from "../../../services/core/entry.ts";
import { PATIENT_MRN_SYSTEM } from "../../../test/fixtures/events.ts";
import { freePort, jsonRpc } from "../../../test/support/hardhat-node.ts";
import {
  Load,
  WRITER_ORG,
  call,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
  servicePolicy,
  writerEvent,
} from "../client.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess } from "../service-process.ts";
import { withTempDir } from "../workspace.ts";

export interface PrivacyOptions {
  events: number;
  patients: number;
  log?: (message: string) => void;
}

export const PRIVACY_DEFAULTS: PrivacyOptions = { events: 500, patients: 100 };

interface Block {
  transactions: Array<{ input: string; to: string | null }>;
}

/** Every transaction input and event log of the chain, as one lowercase text. */
async function chainData(rpcUrl: string): Promise<{ text: string; txs: number; logs: number }> {
  const head = Number(BigInt(await jsonRpc<string>(rpcUrl, "eth_blockNumber")));
  const parts: string[] = [];
  let txs = 0;
  for (let n = 0; n <= head; n++) {
    const block = await jsonRpc<Block>(rpcUrl, "eth_getBlockByNumber", [
      `0x${n.toString(16)}`,
      true,
    ]);
    for (const tx of block.transactions) {
      parts.push(tx.input);
      txs++;
    }
  }
  const logs = await jsonRpc<Array<{ data: string; topics: string[] }>>(rpcUrl, "eth_getLogs", [
    { fromBlock: "0x0", toBlock: "latest" },
  ]);
  for (const l of logs) parts.push(l.data, ...l.topics);
  return { text: parts.join("\n").toLowerCase(), txs, logs: logs.length };
}

export async function runPrivacyScan(opts: PrivacyOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "privacy scan",
    `${opts.events} events, ${opts.patients} patients`,
  );
  const log = opts.log ?? (() => undefined);
  const run = randomBytes(4).toString("hex").toUpperCase();
  const patients = Array.from({ length: opts.patients }, (_, i) => ({
    system: PATIENT_MRN_SYSTEM,
    value: `MRN-${run}-${String(i).padStart(4, "0")}`,
  }));
  const needles = patients.flatMap((p) => [
    p.value,
    toHex(utf8(p.value)).slice(2),
    toHex(sha256(utf8(p.value))).slice(2),
    toHex(sha256(utf8(patientKey(p, "jcs")))).slice(2),
    toHex(sha256(utf8(patientKey(p, "pipe")))).slice(2),
  ]);
  const find = (haystack: string): string[] => {
    const lower = haystack.toLowerCase();
    return needles.filter((n) => lower.includes(n.toLowerCase()));
  };
  await withTempDir("privacy", async (dataDir) => {
    let service: ServiceProcess | undefined;
    try {
      const chainPort = await freePort();
      service = await ServiceProcess.start({
        DATA_DIR: dataDir,
        PORT: String(await freePort()),
        EMBEDDED_CHAIN_PORT: String(chainPort),
        BATCH_MAX_EVENTS: "64",
        BATCH_MAX_WAIT_MS: "100",
        LOG_LEVEL: "debug",
      });
      const base = service.baseUrl;
      const rpcUrl = `http://127.0.0.1:${chainPort}`;
      const adminKey = service.adminKey!;
      const writerKey = await createKey(base, adminKey, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const load = new Load(() => base, writerKey, {
        concurrency: 4,
        maxMs: 120_000,
        maxEvents: opts.events,
        runId: `privacy-${run}`,
        patient: (i) => patients[i % patients.length]!,
      });
      await load.finished();
      // Requests that carry identifiers where they do not belong: a rejected event, a query
      // string, a path. They must not echo into logs or metrics either.
      for (const p of patients.slice(0, 5)) {
        await call(base, writerKey, "POST", "/v1/events", {
          ...writerEvent(`bad-${p.value}`, p),
          recorded: p.value,
        });
        await call(
          base,
          writerKey,
          "GET",
          `/v1/events?organization=${encodeURIComponent(p.value)}`,
        );
        await call(base, writerKey, "GET", `/v1/events/${encodeURIComponent(p.value)}`);
      }
      const check = await checkAcknowledged(base, writerKey, rpcUrl, load.acked, {
        anchorTimeoutMs: 60_000,
      });
      report.check(
        "events logged and anchored (the scan is not vacuous)",
        checkPassed(check),
        describeCheck(check),
      );
      log(`privacy: ${load.acked.length} events anchored; scanning`);

      // The scanner must see an identifier where it legitimately is: in the event itself.
      const served = await call(base, writerKey, "GET", `/v1/events/${load.acked[0]?.seq ?? 0}`);
      report.check(
        "the scanner finds identifiers where they belong (a served event)",
        find(served.text).length > 0,
        `${find(served.text).length} needles matched in GET /v1/events/:seq`,
      );
      const chain = await chainData(rpcUrl);
      const onChain = find(chain.text);
      report.check(
        "no identifier in chain data (tx inputs, event logs)",
        onChain.length === 0 && chain.txs > 0,
        onChain.length
          ? `found ${onChain.slice(0, 3).join(", ")}`
          : `${chain.txs} txs, ${chain.logs} logs scanned`,
      );
      const receipts = JSON.stringify(load.acked);
      const inReceipts = find(receipts);
      report.check(
        "no identifier in receipts",
        inReceipts.length === 0 && load.acked.length > 0,
        inReceipts.length
          ? `found ${inReceipts.slice(0, 3).join(", ")}`
          : `${load.acked.length} receipts scanned`,
      );
      const metrics = await call(base, undefined, "GET", "/metrics");
      const inMetrics = find(metrics.text);
      report.check(
        "no identifier in /metrics",
        inMetrics.length === 0 && metrics.status === 200,
        inMetrics.length
          ? `found ${inMetrics.slice(0, 3).join(", ")}`
          : `${metrics.text.length} bytes scanned`,
      );
      await checkPatientFacing(report, base, adminKey, rpcUrl, patients[0]!, dataDir);

      await service.kill("SIGTERM", 10_000);
      const output = service.output;
      const inLogs = find(output);
      const lines = output.split("\n").length;
      report.check(
        "no identifier in service logs (LOG_LEVEL=debug, stdout and stderr)",
        inLogs.length === 0 && lines > opts.events / 10,
        inLogs.length ? `found ${inLogs.slice(0, 3).join(", ")}` : `${lines} lines scanned`,
      );
    } finally {
      await service?.kill("SIGKILL");
    }
  });
  return report.finish();
}

/** Staff identity the events carry (test/fixtures/events.ts): none of it may reach a patient. */
const STAFF = ["Dr. Anna Weber", "aweber", "u-38117", "ehr-frontend-07", "10.20.30.41"];

async function checkPatientFacing(
  report: ScenarioReport,
  base: string,
  adminKey: string,
  rpcUrl: string,
  patient: { system: string; value: string },
  dataDir: string,
): Promise<void> {
  const created = await call<{ secret: string }>(base, adminKey, "POST", "/v1/keys", {
    role: "patient",
    patient,
  });
  const key = created.body.secret;
  const history = await call<{ events: Array<{ seq: number }> }>(
    base,
    key,
    "GET",
    "/v1/patient/history",
  );
  const seq = history.body.events[0]?.seq ?? 0;
  const answers = [
    history,
    await call(base, key, "GET", `/v1/events/${seq}/proof`),
    await call(base, key, "GET", `/v1/events/${seq}`),
    await call(base, key, "GET", "/v1/events?limit=1000"),
    await call(base, key, "GET", "/fhir/AuditEvent?_count=1000"),
    await call(base, key, "GET", `/fhir/AuditEvent/${seq}`),
    await call(base, key, "GET", "/v1/reports/accesses"),
  ];
  const leaks = answers.flatMap((a) => STAFF.filter((s) => a.text.includes(s)));
  const served = answers.every((a) => a.status === 200) && history.body.events.length > 0;
  report.check(
    "no staff identity in a patient's history, proofs, events, FHIR resources or report",
    served && leaks.length === 0 && history.text.includes('"_sd":"0x'),
    leaks.length > 0
      ? `found ${[...new Set(leaks)].join(", ")}`
      : `${answers.length} answers, ${history.body.events.length} events, staff values withheld as digests`,
  );
  const provider = await connectRpc(rpcUrl);
  let verdict;
  try {
    verdict = await verifyPatientHistory(history.body, provider, {
      trust: await servicePolicy(base),
      confirmations: 1,
    });
  } finally {
    provider.destroy();
  }
  report.check(
    "the patient's redacted history verifies as complete (library)",
    verdict.status === "verified",
    `${verdict.status}${verdict.code ? ` ${verdict.code}` : ""}, ${verdict.count ?? 0} events proven complete`,
  );
  const file = path.join(dataDir, "patient-history.json");
  await writeFile(file, history.text);
  let out = "";
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString("utf8");
      cb();
    },
  });
  // The policy the service wrote for its own log (DATA_DIR/trust.json).
  const trustFile = path.join(dataDir, "trust.json");
  const code = await runCli(
    ["node", "veritrail", "verify", file, "--rpc", rpcUrl, "--trust", trustFile],
    {
      stdout: sink,
      stderr: sink,
      stdin: new PassThrough(),
    },
  );
  report.check(
    "the same history verifies as complete (veritrail verify)",
    code === 0 && /^VERIFIED: complete history of /m.test(out),
    `exit ${code}: ${out.split("\n").find((l) => /^(VERIFIED|FAILED|PENDING)/.test(l)) ?? out.trim()}`,
  );
}

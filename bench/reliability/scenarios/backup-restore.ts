/**
 * (h) Backup under load, loss of the machine, restore. Writers post while `veritrail backup`
 * copies the running service's ledger (through its control socket); they go on after it, and
 * everything they were acknowledged gets anchored. Then the service is killed and its data
 * directory thrown away, the backup restored into a new one, and the service started on it.
 *
 * The chain holds everything anchored after the backup, which the copy does not: the restored
 * service must report exactly those batches and seqs as lost (/readyz, /metrics), give new
 * events seqs after the chain's last anchored one, keep every event of the backup provable,
 * and `veritrail audit` against the chain must find exactly that lost range and nothing else.
 */
import { stat } from "node:fs/promises";
import { Writable } from "node:stream";
import path from "node:path";
import { RegistryClient } from "../../../services/chain/registry-client.ts";
import { runCli } from "../../../services/cli/main.ts";
import type { AuditReport } from "../../../services/ledger/audit.ts";
import type { BackupManifest } from "../../../services/store/backup-archive.ts";
import { freePort } from "../../../test/support/hardhat-node.ts";
import {
  type AckedReceipt,
  Load,
  WRITER_ORG,
  call,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
  lastSeq,
} from "../client.ts";
import { startExternalChain } from "../external-chain.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess, sleep } from "../service-process.ts";
import { withTempDir } from "../workspace.ts";

export interface BackupRestoreOptions {
  /** Load before the backup is taken, and after it (the part the restore loses). */
  beforeMs: number;
  afterMs: number;
  writers: number;
  batchMaxEvents: number;
  log?: (message: string) => void;
}

export const BACKUP_RESTORE_DEFAULTS: BackupRestoreOptions = {
  beforeMs: 20_000,
  afterMs: 10_000,
  writers: 8,
  batchMaxEvents: 256,
};

/** Runs the CLI in-process; returns its exit code and what it printed. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, done) {
        append(chunk.toString("utf8"));
        done();
      },
    });
  const code = await runCli(["node", "veritrail", ...args], {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    stdin: process.stdin,
  });
  return { code, out, err };
}

interface ReadyChecks {
  lost: {
    events: number;
    batches: number;
    ranges: Array<{ fromBatchNo: number; batches: number; firstSeq: number; count: number }>;
  };
  restore: unknown;
}

export async function runBackupRestore(opts: BackupRestoreOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "backup, loss, restore",
    `${opts.beforeMs / 1000} s load, backup, ${opts.afterMs / 1000} s more`,
  );
  const log = opts.log ?? (() => undefined);
  await withTempDir("backup", async (root) => {
    const original = path.join(root, "original");
    const restored = path.join(root, "restored");
    const archive = path.join(root, "ledger-backup.tar.gz");
    const chain = await startExternalChain(original);
    let service: ServiceProcess | undefined;
    const serviceEnv = (dataDir: string, port: number) => ({
      ...chain.env,
      DATA_DIR: dataDir,
      PORT: String(port),
      BATCH_MAX_EVENTS: String(opts.batchMaxEvents),
      BATCH_MAX_WAIT_MS: "200",
      LOG_LEVEL: "warn",
    });
    try {
      service = await ServiceProcess.start(serviceEnv(original, await freePort()));
      const adminKey = service.adminKey!;
      let base = service.baseUrl;
      const writerKey = await createKey(base, adminKey, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const load = new Load(() => base, writerKey, {
        concurrency: opts.writers,
        maxMs: opts.beforeMs + opts.afterMs + 120_000,
        maxEvents: 10_000_000,
        runId: "backup",
      });
      await sleep(opts.beforeMs);
      const ackedBeforeBackup = load.acked.length;
      const backup = await cli(["backup", "--data", original, "--out", archive, "--json"]);
      if (backup.code !== 0) throw new Error(`veritrail backup failed: ${backup.err}`);
      const { manifest } = JSON.parse(backup.out) as { manifest: BackupManifest };
      log(
        `backup: ${manifest.headSeq} events, ${manifest.records} records in ${(manifest.durationMs / 1000).toFixed(1)} s, ingest paused ${manifest.ingestPausedMs} ms`,
      );
      await sleep(opts.afterMs);
      await load.stop();
      const acked = [...load.acked];
      // Everything acknowledged gets anchored before the machine is lost: the chain then holds
      // exactly what the backup lacks.
      const registry = await RegistryClient.connect({
        rpcUrl: chain.node.url,
        address: chain.contract,
      });
      let head;
      try {
        const deadline = Date.now() + 120_000;
        head = await registry.logHead(chain.logId);
        while (head.nextSeq <= lastSeq(acked) && Date.now() < deadline) {
          await sleep(250);
          head = await registry.logHead(chain.logId);
        }
      } finally {
        registry.destroy();
      }
      const inBackup = acked.filter((r) => r.seq < manifest.headSeq);
      const afterBackup = acked.filter((r) => r.seq >= manifest.headSeq);
      report.check(
        "backup under load: a consistent copy, ingest held back briefly",
        manifest.source === "service" &&
          manifest.lastSealedBatch !== null &&
          manifest.lastSealedBatch.firstSeq + manifest.lastSealedBatch.count === manifest.headSeq &&
          inBackup.length >= ackedBeforeBackup &&
          afterBackup.length > 0 &&
          load.serverErrors === 0,
        `copy of events 0..${manifest.headSeq - 1} (all sealed, batches 0..${manifest.lastSealedBatch?.batchNo}): ${manifest.records} records, ${(manifest.bytes / 1e6).toFixed(1)} MB, ${((await stat(archive)).size / 1e6).toFixed(1)} MB as .tar.gz, in ${(manifest.durationMs / 1000).toFixed(1)} s; ingest paused ${manifest.ingestPausedMs} ms; ${afterBackup.length} events acknowledged after it; ${load.serverErrors} 5xx, ${load.overloaded} × 503 OVERLOADED`,
      );

      // The machine is lost.
      await service.kill("SIGKILL");
      service = undefined;
      const restore = await cli(["restore", "--from", archive, "--data", restored]);
      if (restore.code !== 0) throw new Error(`veritrail restore failed: ${restore.err}`);
      service = await ServiceProcess.start(serviceEnv(restored, await freePort()));
      base = service.baseUrl;
      let ready = await call<{ checks: ReadyChecks }>(base, undefined, "GET", "/readyz");
      const readyBy = Date.now() + 60_000;
      while (ready.status !== 200 && Date.now() < readyBy) {
        await sleep(200);
        ready = await call<{ checks: ReadyChecks }>(base, undefined, "GET", "/readyz");
      }
      const expected = {
        fromBatchNo: (manifest.lastSealedBatch?.batchNo ?? -1) + 1,
        batches: head.nextBatchNo - (manifest.lastSealedBatch?.batchNo ?? -1) - 1,
        firstSeq: manifest.headSeq,
        count: head.nextSeq - manifest.headSeq,
      };
      // The same range from the writers' receipts alone: every seq acknowledged after the copy,
      // and nothing else, is what the chain holds beyond it.
      const afterSeqs = afterBackup.map((r) => r.seq).sort((a, b) => a - b);
      const receiptsMatch =
        afterSeqs.length === expected.count &&
        afterSeqs.every((seq, i) => seq === expected.firstSeq + i);
      const range = ready.body?.checks?.lost?.ranges?.[0];
      const metrics = await call(base, undefined, "GET", "/metrics");
      const lostMetric = Number(/^veritrail_events_lost (\d+)$/m.exec(metrics.text)?.[1] ?? NaN);
      const asExpected = (r: typeof range) =>
        r !== undefined &&
        r.fromBatchNo === expected.fromBatchNo &&
        r.batches === expected.batches &&
        r.firstSeq === expected.firstSeq &&
        r.count === expected.count;
      report.check(
        "the restored service reports exactly what the chain holds beyond the copy as lost",
        receiptsMatch &&
          ready.status === 200 &&
          ready.body.checks.lost.ranges.length === 1 &&
          asExpected(range) &&
          lostMetric === expected.count,
        `expected batches ${expected.fromBatchNo}..${expected.fromBatchNo + expected.batches - 1}, seqs ${expected.firstSeq}..${expected.firstSeq + expected.count - 1} (${expected.count} events; ${receiptsMatch ? "exactly" : "NOT"} the ${afterSeqs.length} receipts after the backup); /readyz ${ready.status} says ${range ? `${range.fromBatchNo}+${range.batches}, seqs ${range.firstSeq}+${range.count}` : "nothing"}; veritrail_events_lost ${lostMetric}`,
      );

      // An auditor sees every seq (a writer's key answers a plain 404 for any seq outside its
      // scope, and a lost seq is in no one's).
      const auditorKey = await createKey(base, adminKey, { role: "auditor" });
      const lostProof = afterBackup[0]
        ? await call<{ error: { code: string; message: string } }>(
            base,
            auditorKey,
            "GET",
            `/v1/events/${afterBackup[0].seq}/proof`,
          )
        : undefined;
      const more = new Load(() => base, writerKey, {
        concurrency: 2,
        maxMs: 2_000,
        maxEvents: 200,
        runId: "after-restore",
      });
      await more.finished();
      const newSeqs = more.acked.map((r) => r.seq);
      const firstNew = newSeqs.reduce((m, s) => Math.min(m, s), Number.MAX_SAFE_INTEGER);
      report.check(
        "seqs never repeat: new events continue after the chain's last anchored seq",
        more.acked.length > 0 &&
          firstNew === head.nextSeq &&
          lostProof?.status === 404 &&
          lostProof.body.error.message.includes("lost"),
        `${more.acked.length} new events from seq ${firstNew} (chain's next seq ${head.nextSeq}); a lost seq's proof: ${lostProof?.status} ${lostProof?.body?.error?.message?.slice(0, 80) ?? ""}…`,
      );
      const check = await checkAcknowledged(
        base,
        writerKey,
        chain.node.url,
        [...inBackup, ...more.acked] as AckedReceipt[],
        { anchorTimeoutMs: 120_000 },
      );
      report.check(
        "every event in the backup, and every new one, is present, unchanged, anchored, provable",
        checkPassed(check),
        describeCheck(check),
      );

      await service.kill("SIGTERM");
      service = undefined;
      // The policy the restored service wrote for its own log (the chain's registry, this log).
      const audit = await cli([
        "audit",
        "--data",
        restored,
        "--rpc",
        chain.node.url,
        "--trust",
        path.join(restored, "trust.json"),
        "--json",
      ]);
      if (audit.out.trim() === "")
        throw new Error(`veritrail audit printed no report (exit ${audit.code}): ${audit.err}`);
      const auditReport = JSON.parse(audit.out) as AuditReport;
      const findings = auditReport.findings;
      report.check(
        "veritrail audit against the chain finds exactly the lost range, and nothing else",
        audit.code === 1 &&
          auditReport.chain !== null &&
          findings.length === 1 &&
          findings[0]!.kind === "EVENTS_LOST" &&
          asExpected(findings[0]!.range),
        `${findings.length} finding(s): ${findings
          .slice(0, 3)
          .map(
            (f) =>
              `${f.kind} ${f.range ? `batches ${f.range.fromBatchNo}+${f.range.batches}, seqs ${f.range.firstSeq}+${f.range.count}` : f.message}`,
          )
          .join(
            "; ",
          )}; ${auditReport.events} events, ${auditReport.batches} batches replayed, chain compared: ${auditReport.chain ? `${auditReport.chain.anchoredBatches} batches anchored` : "no"}`,
      );
    } finally {
      await service?.kill("SIGKILL");
      await chain.close();
    }
  });
  return report.finish();
}

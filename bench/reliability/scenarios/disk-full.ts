/**
 * (g) A full disk under load. DATA_DIR is a tmpfs of `diskMiB` (a real size-limited file system:
 * the kernel answers ENOSPC to LevelDB's own writes; mounting needs root, as on this project's
 * machines). While writers post, a ballast file fills the disk; the service must stop
 * acknowledging (503 STORAGE_UNAVAILABLE, no other 5xx, /readyz 503, the alarm metric on), keep
 * serving what it holds, and, once the ballast is deleted, resume by itself. Afterwards every
 * event acknowledged before, during and after must be present, unchanged, anchored and
 * provable against the chain.
 */
import { freePort } from "../../../test/support/hardhat-node.ts";
import { mountSizeLimited } from "../../../test/support/size-limited-fs.ts";
import {
  Load,
  WRITER_ORG,
  call,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
} from "../client.ts";
import { startExternalChain } from "../external-chain.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess, sleep } from "../service-process.ts";

export interface DiskFullOptions {
  /** Times the disk is filled and freed. */
  fills: number;
  /** How long the disk stays full each time. */
  fullMs: number;
  diskMiB: number;
  writers: number;
  log?: (message: string) => void;
}

export const DISK_FULL_DEFAULTS: DiskFullOptions = {
  fills: 3,
  fullMs: 10_000,
  diskMiB: 256,
  writers: 8,
};

export async function runDiskFull(opts: DiskFullOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "disk full under load",
    `${opts.fills} × ${opts.fullMs / 1000} s full, tmpfs ${opts.diskMiB} MiB`,
  );
  const log = opts.log ?? (() => undefined);
  const disk = await mountSizeLimited(opts.diskMiB * 1024 * 1024);
  if (!disk) {
    report.check(
      "a size-limited file system can be mounted (tmpfs)",
      false,
      "mount -t tmpfs was refused (needs root or CAP_SYS_ADMIN); the ledger tests fall back to fault injection, this scenario cannot",
    );
    return report.finish();
  }
  let service: ServiceProcess | undefined;
  const chain = await startExternalChain(disk.dir).catch(async (error: unknown) => {
    await disk.close();
    throw error;
  });
  try {
    service = await ServiceProcess.start({
      ...chain.env,
      PORT: String(await freePort()),
      BATCH_MAX_EVENTS: "64",
      BATCH_MAX_WAIT_MS: "100",
      LOG_LEVEL: "warn",
    });
    const base = service.baseUrl;
    const writerKey = await createKey(base, service.adminKey!, {
      role: "writer",
      organization: WRITER_ORG,
    });
    const load = new Load(() => base, writerKey, {
      concurrency: opts.writers,
      maxMs: opts.fills * (opts.fullMs + 60_000) + 30_000,
      maxEvents: 1_000_000,
      runId: "disk-full",
    });
    const fills: Array<{
      detectMs: number;
      resumeMs: number;
      ackedWhileFull: number;
      readyz: number;
      metric: string;
      served: number;
    }> = [];
    for (let i = 0; i < opts.fills; i++) {
      await sleep(3_000);
      const filledAt = Date.now();
      const ballast = await disk.fill();
      // Writers run into the full disk on their next synced write.
      let readyz = await call<{ checks?: { storage?: { reason?: string } } }>(
        base,
        undefined,
        "GET",
        "/readyz",
      );
      while (readyz.status !== 503 && Date.now() - filledAt < 30_000) {
        await sleep(50);
        readyz = await call(base, undefined, "GET", "/readyz");
      }
      const detectMs = Date.now() - filledAt;
      // Answers to writes that made it before the disk filled may still be on their way.
      await sleep(500);
      const ackedAtDetect = load.acked.length;
      await sleep(opts.fullMs);
      const ackedWhileFull = load.acked.length - ackedAtDetect;
      const metrics = await call(base, undefined, "GET", "/metrics");
      const metric =
        /veritrail_storage_failed\{reason="(\w+)"\} (\d)/.exec(metrics.text)?.slice(1).join("=") ??
        "absent";
      // Reads are served from the full disk: the first acknowledged event.
      const first = load.acked[0];
      const served = first
        ? (await call(base, writerKey, "GET", `/v1/events/${first.seq}`)).status
        : 0;
      const freedAt = Date.now();
      await disk.free();
      let ready = await call(base, undefined, "GET", "/readyz");
      while (ready.status !== 200 && Date.now() - freedAt < 60_000) {
        await sleep(50);
        ready = await call(base, undefined, "GET", "/readyz");
      }
      const resumeMs = Date.now() - freedAt;
      fills.push({ detectMs, resumeMs, ackedWhileFull, readyz: readyz.status, metric, served });
      log(
        `fill ${i + 1}/${opts.fills}: ${(ballast / 2 ** 20).toFixed(0)} MiB of ballast; refused after ${detectMs} ms (readyz ${readyz.status}, ${readyz.body?.checks?.storage?.reason ?? "?"}), writable again ${resumeMs} ms after the ballast was deleted`,
      );
    }
    await sleep(3_000);
    await load.stop();
    const codes = [...load.errorCodes.entries()].map(([k, n]) => `${k} ×${n}`).join(", ");
    // 503 OVERLOADED is backpressure, not a failure: events acknowledged before the disk
    // filled wait to be sealed while it is full, and their age can hold new writes back
    // (with Retry-After) until the sealer has caught up after the disk takes writes again.
    const otherErrors = [...load.errorCodes.entries()].filter(
      ([k]) => k !== "503 STORAGE_UNAVAILABLE" && k !== "503 OVERLOADED",
    );
    const refused = load.errorCodes.get("503 STORAGE_UNAVAILABLE") ?? 0;
    report.check(
      "a full disk stops acknowledging: 503 STORAGE_UNAVAILABLE (or backpressure's OVERLOADED), no other error, /readyz 503, alarm metric on",
      fills.every((f) => f.readyz === 503 && f.metric === "ENOSPC=1" && f.ackedWhileFull === 0) &&
        refused > 0 &&
        otherErrors.length === 0,
      `${refused} requests refused; answers other than 201: ${codes || "none"}; per fill: ${fills.map((f) => `readyz ${f.readyz}, metric ${f.metric}, ${f.ackedWhileFull} acked while full`).join("; ")}`,
    );
    report.check(
      "while full, what is held is still served",
      fills.every((f) => f.served === 200),
      `GET /v1/events/<first acked> while full: ${fills.map((f) => f.served).join(", ")}`,
    );
    report.check(
      "resumes by itself once space returns",
      fills.every((f) => f.resumeMs < 60_000) && !service.exited,
      `writable again ${fills.map((f) => `${(f.resumeMs / 1000).toFixed(1)} s`).join(", ")} after the ballast was deleted (probe every 2 s); refused ${fills.map((f) => `${f.detectMs} ms`).join(", ")} after the disk filled; the process never exited`,
    );
    const check = await checkAcknowledged(base, writerKey, chain.node.url, load.acked, {
      anchorTimeoutMs: 120_000,
    });
    const seqs = new Set(load.acked.map((r) => r.seq));
    report.check(
      "every event acknowledged before, during and after is present, unchanged, anchored, provable",
      checkPassed(check) && seqs.size === load.acked.length,
      `${describeCheck(check)}; ${load.acked.length} receipts, ${seqs.size} distinct seqs`,
    );
  } finally {
    await service?.kill("SIGKILL");
    await chain.close();
    await disk.close();
  }
  return report.finish();
}

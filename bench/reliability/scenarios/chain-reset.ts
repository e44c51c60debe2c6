/**
 * (c) Development chain reset: the service runs with its embedded Hardhat node
 * (CHAIN_MODE=development); the node is killed under it and a fresh node (empty chain) takes
 * its port, as when a developer restarts `hardhat node`. The anchor loop must redeploy the
 * registry, re-register the log and re-anchor every batch from LevelDB, so that every
 * acknowledged event — those anchored before the reset included — is provable again.
 *
 * Finding the embedded node: the child of the service process whose command line is
 * `hardhat node … --port <EMBEDDED_CHAIN_PORT>` (Linux /proc).
 */
import { readFile, readdir } from "node:fs/promises";
import { JsonRpcProvider } from "ethers";
import { verifyBundles } from "../../../services/verifier/verify-bundles.ts";
import { HardhatNode, freePort } from "../../../test/support/hardhat-node.ts";
import {
  type AckedReceipt,
  Load,
  WRITER_ORG,
  call,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
  servicePolicy,
} from "../client.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess, sleep } from "../service-process.ts";
import { waitReanchored, withTempDir } from "../workspace.ts";

export interface ChainResetOptions {
  resets: number;
  eventsPerRound: number;
  anchorTimeoutMs: number;
  log?: (message: string) => void;
}

export const CHAIN_RESET_DEFAULTS: ChainResetOptions = {
  resets: 3,
  eventsPerRound: 500,
  anchorTimeoutMs: 120_000,
};

/** The pid of the service's embedded Hardhat node on `port`. */
async function embeddedNodePid(servicePid: number, port: number): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      const at = argv.indexOf("--port");
      if (at < 0 || argv[at + 1] !== String(port) || !argv.includes("node")) continue;
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === servicePid) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  return undefined;
}

async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(100);
  }
}

export async function runChainReset(opts: ChainResetOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport("dev chain reset", `${opts.resets} resets`);
  const log = opts.log ?? (() => undefined);
  await withTempDir("reset", async (dataDir) => {
    const chainPort = await freePort();
    const rpcUrl = `http://127.0.0.1:${chainPort}`;
    let service: ServiceProcess | undefined;
    let freshNode: HardhatNode | undefined;
    try {
      service = await ServiceProcess.start({
        DATA_DIR: dataDir,
        PORT: String(await freePort()),
        EMBEDDED_CHAIN_PORT: String(chainPort),
        CHAIN_MODE: "development",
        BATCH_MAX_EVENTS: "64",
        BATCH_MAX_WAIT_MS: "100",
        ANCHOR_RETRY_MAX_MS: "2000",
        RPC_TIMEOUT_MS: "2000",
        LOG_LEVEL: "warn",
      });
      const base = service.baseUrl;
      const writerKey = await createKey(base, service.adminKey!, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const acked: AckedReceipt[] = [];
      let resetsRecovered = 0;
      let oldBundlesOk = 0;
      let oldBundlesTotal = 0;
      for (let round = 0; round < opts.resets; round++) {
        const load = new Load(() => base, writerKey, {
          concurrency: 4,
          maxMs: 60_000,
          maxEvents: opts.eventsPerRound,
          runId: `reset-${round}`,
        });
        await load.finished();
        acked.push(...load.acked);
        const before = await checkAcknowledged(base, writerKey, rpcUrl, acked, {
          anchorTimeoutMs: opts.anchorTimeoutMs,
        });
        // Bundles as a user downloaded them before the reset.
        const oldBundles = [];
        for (const r of acked.filter((_, i) => i % 10 === 0)) {
          const b = await call(base, writerKey, "GET", `/v1/events/${r.seq}/proof`);
          oldBundles.push(b.body);
        }
        // The chain goes away under the running service and a fresh one takes its place.
        const pid = freshNode?.pid ?? (await embeddedNodePid(service.pid ?? -1, chainPort));
        if (pid === undefined) throw new Error("embedded Hardhat node not found");
        if (freshNode) {
          await freshNode.restart();
        } else {
          process.kill(pid, "SIGKILL");
          await waitGone(pid, 10_000);
          freshNode = await HardhatNode.start({ port: chainPort });
        }
        await waitReanchored(rpcUrl, acked, opts.anchorTimeoutMs);
        const after = await checkAcknowledged(base, writerKey, rpcUrl, acked, {
          anchorTimeoutMs: opts.anchorTimeoutMs,
        });
        const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
        try {
          const verdicts = await verifyBundles(oldBundles, provider, {
            trust: await servicePolicy(base),
            confirmations: 1,
          });
          oldBundlesTotal += verdicts.length;
          oldBundlesOk += verdicts.filter((v) => v.ok).length;
        } finally {
          provider.destroy();
        }
        if (checkPassed(before) && checkPassed(after)) resetsRecovered++;
        log(
          `reset ${round + 1}/${opts.resets}: before ${describeCheck(before)}; after ${describeCheck(after)}`,
        );
        if (!checkPassed(after))
          report.check(`reset ${round + 1}: re-anchored`, false, describeCheck(after));
      }
      report.check(
        "after each reset every acknowledged event is re-anchored and provable",
        resetsRecovered === opts.resets,
        `${resetsRecovered}/${opts.resets} resets; ${acked.length} events`,
      );
      report.check(
        "bundles downloaded before a reset verify against the new chain",
        oldBundlesOk === oldBundlesTotal,
        `${oldBundlesOk}/${oldBundlesTotal} old bundles verify`,
      );
    } finally {
      await service?.kill("SIGTERM", 10_000);
      await freshNode?.stop();
    }
  });
  return report.finish();
}

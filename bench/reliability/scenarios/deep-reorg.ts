/**
 * (i) A reorg deeper than the confirmations, under load. The service anchors with
 * CONFIRMATIONS=3 into a Hardhat node that mines a block every 250 ms besides automining. At
 * some point the node's state is snapshotted; writers go on, and several batches are anchored
 * with their 3 confirmations after it, some of their bundles handed out. Then the node reverts
 * to the snapshot (`evm_revert`): every anchor after it is gone, deeper than the confirmations,
 * and a different block takes their place.
 *
 * The anchor loop must notice that confirmed anchors disappeared and raise the alarm (/readyz
 * `checks.anchoring.deepReorg`, `veritrail_anchor_deep_reorg` 1), re-anchor those batches and
 * clear it; the bundles handed out before must name the block they relied on — gone now: their
 * verification fails at the anchor, and the batch record lists that anchor in
 * `reorgedAnchors` — while fresh bundles verify; and nothing acknowledged may be lost.
 */
import { JsonRpcProvider } from "ethers";
import { freePort } from "../../../test/support/hardhat-node.ts";
import { verifyBundles } from "../../../services/verifier/verify-bundles.ts";
import {
  type AckedReceipt,
  Load,
  WRITER_ORG,
  call,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
  sampleOf,
  servicePolicy,
} from "../client.ts";
import { startExternalChain } from "../external-chain.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess, sleep } from "../service-process.ts";
import { anchoredOnChain, batchSequenceProblems, withTempDir } from "../workspace.ts";

export interface DeepReorgOptions {
  /** Load before the snapshot, and between the snapshot and the revert. */
  beforeMs: number;
  afterMs: number;
  writers: number;
  confirmations: number;
  log?: (message: string) => void;
}

export const DEEP_REORG_DEFAULTS: DeepReorgOptions = {
  beforeMs: 5_000,
  afterMs: 8_000,
  writers: 8,
  confirmations: 3,
};

interface Ready {
  checks: {
    anchoring: {
      state: string;
      deepReorg?: { fromBatchNo: number; batches: number; reanchoredAt?: string };
    } | null;
  };
}

interface BundleAnswer {
  entry: { seq: number };
  batch: { batchNo: number } | null;
  anchor: { txHash: string; blockNumber: number } | null;
  status: string;
}

export async function runDeepReorg(opts: DeepReorgOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport(
    "reorg deeper than the confirmations",
    `CONFIRMATIONS=${opts.confirmations}, ${opts.afterMs / 1000} s of anchors reverted`,
  );
  const log = opts.log ?? (() => undefined);
  await withTempDir("deep-reorg", async (dataDir) => {
    const chain = await startExternalChain(dataDir);
    let service: ServiceProcess | undefined;
    // A block every 250 ms besides automining, so anchors gather confirmations; paused around
    // the revert.
    let mining = true;
    let paused = false;
    let mined: Promise<void> = Promise.resolve();
    const miner = (async () => {
      while (mining) {
        if (!paused) {
          mined = chain.node.mine().catch(() => undefined);
          await mined;
        }
        await sleep(250);
      }
    })();
    try {
      service = await ServiceProcess.start({
        ...chain.env,
        PORT: String(await freePort()),
        BATCH_MAX_EVENTS: "64",
        BATCH_MAX_WAIT_MS: "200",
        CONFIRMATIONS: String(opts.confirmations),
        ANCHOR_RECHECK_INTERVAL_MS: "500",
        ANCHOR_POLL_MS: "50",
        LOG_LEVEL: "warn",
      });
      const base = service.baseUrl;
      const adminKey = service.adminKey!;
      const writerKey = await createKey(base, adminKey, {
        role: "writer",
        organization: WRITER_ORG,
      });
      const auditorKey = await createKey(base, adminKey, { role: "auditor" });
      const load = new Load(() => base, writerKey, {
        concurrency: opts.writers,
        maxMs: opts.beforeMs + opts.afterMs + 180_000,
        maxEvents: 10_000_000,
        runId: "deep-reorg",
      });
      await sleep(opts.beforeMs);
      const snapshot = await chain.node.snapshot();
      const headAtSnapshot = await chain.node.rpc<string>("eth_blockNumber");
      await sleep(opts.afterMs);
      // Bundles of events anchored after the snapshot, handed out as a user would download them.
      const handedOut: BundleAnswer[] = [];
      for (const r of sampleOf(load.acked, 200)) {
        const b = await call<BundleAnswer>(base, writerKey, "GET", `/v1/events/${r.seq}/proof`);
        if (
          b.status === 200 &&
          b.body.status === "anchored" &&
          b.body.anchor!.blockNumber > Number(headAtSnapshot)
        )
          handedOut.push(b.body);
      }
      const beforeRevert = await anchoredOnChain(chain.node.url, chain.logId);
      paused = true;
      await mined;
      await chain.node.revert(snapshot);
      const afterRevert = await anchoredOnChain(chain.node.url, chain.logId);
      const reverted = beforeRevert.length - afterRevert.length;
      const revertedAt = Date.now();
      // A different block takes the place of the reverted ones (an empty one, a new timestamp).
      await chain.node.mine();
      paused = false;
      log(
        `reverted ${reverted} anchored batches (each with ≥ ${opts.confirmations} confirmations)`,
      );
      // The alarm.
      let ready = await call<Ready>(base, undefined, "GET", "/readyz");
      while (!ready.body?.checks?.anchoring?.deepReorg && Date.now() - revertedAt < 60_000) {
        await sleep(100);
        ready = await call<Ready>(base, undefined, "GET", "/readyz");
      }
      const detectMs = Date.now() - revertedAt;
      const alarm = ready.body?.checks?.anchoring?.deepReorg;
      const metricOf = async () =>
        /^veritrail_anchor_deep_reorg (\d)$/m.exec(
          (await call(base, undefined, "GET", "/metrics")).text,
        )?.[1];
      const metricRaised = await metricOf();
      // Re-anchored.
      while (
        !ready.body?.checks?.anchoring?.deepReorg?.reanchoredAt &&
        Date.now() - revertedAt < 180_000
      ) {
        await sleep(200);
        ready = await call<Ready>(base, undefined, "GET", "/readyz");
      }
      const reanchorMs = Date.now() - revertedAt;
      const cleared = ready.body?.checks?.anchoring?.deepReorg;
      const metricCleared = await metricOf();
      await load.stop();
      report.check(
        "a reorg deeper than CONFIRMATIONS is noticed and raises the alarm",
        reverted > 0 &&
          alarm !== undefined &&
          alarm.fromBatchNo === afterRevert.length &&
          alarm.batches > 0 &&
          alarm.batches <= reverted &&
          metricRaised === "1",
        `${reverted} batches' anchors reverted (from batch ${afterRevert.length}); noticed after ${(detectMs / 1000).toFixed(1)} s: /readyz deepReorg from batch ${alarm?.fromBatchNo}, ${alarm?.batches} batches; veritrail_anchor_deep_reorg ${metricRaised}`,
      );
      report.check(
        "the batches it took are anchored again and the alarm clears",
        cleared?.reanchoredAt !== undefined && metricCleared === "0",
        `re-anchored ${(reanchorMs / 1000).toFixed(1)} s after the revert; veritrail_anchor_deep_reorg ${metricCleared}`,
      );

      // Bundles handed out before: they name a block that is gone; the batch record lists it.
      const provider = new JsonRpcProvider(chain.node.url, undefined, { staticNetwork: true });
      let oldFailing = 0;
      let oldSameAnchor = 0;
      let oldListed = 0;
      let freshOk = 0;
      const reasons = new Set<string>();
      try {
        const trust = await servicePolicy(base);
        const oldVerdicts = await verifyBundles(handedOut, provider, {
          trust,
          confirmations: opts.confirmations,
        });
        for (const [i, v] of oldVerdicts.entries()) {
          if (!v.ok) {
            oldFailing++;
            reasons.add(v.code ?? v.status);
          }
          const b = handedOut[i]!;
          const record = await call<{
            reorgedAnchors?: Array<{ txHash: string; blockNumber: number }>;
          }>(base, auditorKey, "GET", `/v1/batches/${b.batch!.batchNo}`);
          if (
            record.body.reorgedAnchors?.some(
              (a) => a.txHash === b.anchor!.txHash && a.blockNumber === b.anchor!.blockNumber,
            )
          )
            oldListed++;
          const fresh = await call<BundleAnswer>(
            base,
            writerKey,
            "GET",
            `/v1/events/${b.entry.seq}/proof`,
          );
          const [verdict] = await verifyBundles([fresh.body], provider, {
            trust,
            confirmations: opts.confirmations,
          });
          if (verdict?.ok) freshOk++;
          // The re-sent transaction can be byte-identical (same nonce, header and fees) and land
          // at the same height: then the old bundle names the new anchor too, and verifies.
          if (
            v.ok &&
            fresh.body.anchor?.txHash === b.anchor!.txHash &&
            fresh.body.anchor?.blockNumber === b.anchor!.blockNumber
          )
            oldSameAnchor++;
        }
      } finally {
        provider.destroy();
      }
      report.check(
        "bundles handed out before name the block they relied on: gone, listed in the batch record; fresh bundles verify",
        handedOut.length > 0 &&
          oldFailing + oldSameAnchor === handedOut.length &&
          oldListed === handedOut.length &&
          freshOk === handedOut.length,
        `${handedOut.length} bundles handed out before the revert: all name an anchor the batch record lists in reorgedAnchors (${oldListed}); ${oldFailing} fail verification now (${[...reasons].join(", ") || "-"}), ${oldSameAnchor} name the identical re-sent transaction at the same height; the fresh bundles of the same events: ${freshOk} verify`,
      );

      const check = await checkAcknowledged(
        base,
        writerKey,
        chain.node.url,
        load.acked as AckedReceipt[],
        {
          anchorTimeoutMs: 120_000,
          confirmations: opts.confirmations,
        },
      );
      const anchored = await anchoredOnChain(chain.node.url, chain.logId);
      const problems = batchSequenceProblems(anchored);
      report.check(
        "nothing acknowledged is lost: every event anchored and provable, batches on-chain contiguous, each once",
        checkPassed(check) && problems.length === 0 && load.serverErrors === 0,
        `${describeCheck(check)}; ${anchored.length} batches on-chain${problems.length ? `: ${problems.slice(0, 3).join("; ")}` : ", contiguous"}; ${load.serverErrors} 5xx, ${load.overloaded} × 503 OVERLOADED`,
      );
    } finally {
      mining = false;
      await miner;
      await service?.kill("SIGKILL");
      await chain.close();
    }
  });
  return report.finish();
}

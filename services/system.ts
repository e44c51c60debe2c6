import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { EmbeddedDevChain } from "./chain/dev-node.ts";
import { DevDeployment } from "./chain/dev-deployment.ts";
import type { Config } from "./config.ts";
import { AnchorLoop, type AnchorLoopEvent, anchorLoopTuning } from "./anchoring/anchor-loop.ts";
import { ChainSession } from "./anchoring/chain-session.ts";
import { loadKeys, loadLogSecretKey, usesEmbeddedDevChain } from "./ledger/keystore.ts";
import { Ledger } from "./ledger/ledger.ts";
import { makeTreePrivate, restrictNewFileModes, writePrivateFile } from "./private-files.ts";

/** The embedded dev chain's pid file, under DATA_DIR (see chain/dev-node.ts). */
export const DEV_CHAIN_PID_FILE = "dev-chain.pid";

/** Where the dev deployment's address is kept, so `npm start` deploys the registry once. */
interface DeploymentFile {
  chainId?: number;
  contract: string;
}

export interface RunningSystem {
  ledger: Ledger;
  anchorLoop: AnchorLoop;
  rpcUrl: string;
  anchorerAddress: string;
  contractAddress: () => string | undefined;
  chain?: EmbeddedDevChain;
  /** Stops anchoring, writes what is queued, closes LevelDB, stops the embedded chain. */
  stop: () => Promise<void>;
}

/**
 * Brings up the ledger side of the service: the embedded dev chain when no RPC_URL is set, the
 * keys, the ledger on LevelDB under DATA_DIR, the chain session (which deploys the registry on a
 * dev chain once and registers the log) and the anchor loop over both. The HTTP API is started on top by the caller.
 */
export async function startSystem(
  config: Config,
  logger: Logger,
  hooks: { onAnchorEvent?: (event: AnchorLoopEvent) => void } = {},
): Promise<RunningSystem> {
  const dataDir = path.resolve(config.DATA_DIR);
  restrictNewFileModes();
  await makeTreePrivate(dataDir);
  const embedded = usesEmbeddedDevChain(config);
  let chain: EmbeddedDevChain | undefined;
  let rpcUrl = config.RPC_URL;
  if (embedded) {
    logger.info(
      { port: config.EMBEDDED_CHAIN_PORT },
      "starting the embedded Hardhat node on 127.0.0.1",
    );
    chain = await EmbeddedDevChain.start({
      port: config.EMBEDDED_CHAIN_PORT,
      pidFile: path.join(dataDir, DEV_CHAIN_PID_FILE),
      onOrphanStopped: (pid) =>
        logger.warn({ pid }, "stopped the embedded Hardhat node a previous run left behind"),
    });
    rpcUrl = chain.url;
    if (config.CONFIRMATIONS > 1) await chain.mineEvery(1_000);
  }
  if (!rpcUrl) throw new Error("RPC_URL is required when EMBEDDED_CHAIN is off");

  try {
    const keys = await loadKeys(config, { embeddedChain: embedded });
    const logSecretKey = await loadLogSecretKey(config);
    const ledger = await Ledger.open({
      ...(logSecretKey ? { logSecretKey: logSecretKey.key } : {}),
      location: path.join(dataDir, "ledger"),
      receiptSigner: keys.receiptSigner.wallet,
      batchMaxEvents: config.BATCH_MAX_EVENTS,
      batchMaxWaitMs: config.BATCH_MAX_WAIT_MS,
      anchorDeadlineMs: config.ANCHOR_DEADLINE_MS,
      groupCommitMaxEvents: config.GROUP_COMMIT_MAX_EVENTS,
      sealWorker: true,
      indexNodeCacheMax: config.INDEX_NODE_CACHE_MAX,
      sealWorkerHeapMb: config.SEAL_WORKER_HEAP_MB,
      store: {
        tableFileBytes: config.STORE_TABLE_FILE_MB * 1024 * 1024,
        batchCacheRecords: config.BATCH_CACHE_RECORDS,
      },
      ingestLimits: {
        maxUnsealedEvents: config.INGEST_MAX_UNSEALED_EVENTS,
        maxUnsealedAgeMs: config.INGEST_MAX_UNSEALED_AGE_MS,
        maxUnanchoredBatches: config.INGEST_MAX_UNANCHORED_BATCHES,
        waitMs: config.INGEST_BACKPRESSURE_WAIT_MS,
      },
      onBackgroundError: (error) => logger.error({ err: error }, "sealing failed"),
      onStorage: (event) => {
        if (event.type === "failed")
          logger.error(
            { storage: event.failure },
            "the disk refuses writes: ingest answers 503 STORAGE_UNAVAILABLE until it takes them again",
          );
        else if (event.type === "probe-failed")
          logger.warn({ storage: event }, "the disk still refuses writes");
        else
          logger.info(
            { downMs: event.downMs, nextSeq: event.nextSeq, reason: event.failure.reason },
            "the disk takes writes again: ledger reopened, ingest resumed",
          );
      },
    });
    if (logSecretKey)
      logger.info({ key: logSecretKey.origin }, "the log secret is sealed at rest in DATA_DIR");
    else
      logger.warn(
        "the log secret is stored in clear in DATA_DIR (development mode): set LOG_SECRET_KEY or LOG_SECRET_KEYSTORE to seal it",
      );
    const deploymentPath = path.join(dataDir, "deployment.json");
    const saved = await readDeployment(deploymentPath);
    const contractAddress = config.CONTRACT_ADDRESS ?? saved?.contract;
    const deployment =
      config.CHAIN_MODE === "development" && keys.admin
        ? new DevDeployment(keys.admin.wallet, contractAddress)
        : undefined;
    const { requestTimeoutMs, ...tuning } = anchorLoopTuning(config);
    const session = new ChainSession({
      rpcUrl,
      chainMode: config.CHAIN_MODE,
      ...(contractAddress ? { contractAddress } : {}),
      anchorer: keys.anchorer.wallet,
      ...(keys.admin ? { admin: keys.admin.wallet } : {}),
      operator: config.LOG_OPERATOR,
      ...(deployment ? { deployment } : {}),
      requestTimeoutMs,
      onContractChanged: (address) => {
        void writeDeployment(deploymentPath, { contract: address }).catch((err: unknown) =>
          logger.error({ err }, "could not record the deployment"),
        );
      },
    });
    const anchorLoop = new AnchorLoop({
      ledger,
      session,
      ...tuning,
      onEvent: (event) => {
        hooks.onAnchorEvent?.(event);
        logAnchorEvent(logger, event);
      },
    });
    ledger.expectAnchoring();
    anchorLoop.start();
    return {
      ledger,
      anchorLoop,
      rpcUrl,
      anchorerAddress: keys.anchorer.wallet.address,
      contractAddress: () => anchorLoop.status().contract ?? contractAddress,
      ...(chain ? { chain } : {}),
      stop: async () => {
        await anchorLoop.stop();
        await ledger.close();
        await chain?.stop();
      },
    };
  } catch (error) {
    await chain?.stop();
    throw error;
  }
}

const batches = (n: number): string => `${n} batch${n === 1 ? "" : "es"}`;
const seconds = (ms: number): string => `${(ms / 1_000).toFixed(1)} s`;

/**
 * The anchor loop's events in the service log. What an operator needs to know without asking is
 * at info: a registry deployed, a log (re-)registered, a development chain found reset and the
 * log re-anchored, a backlog after a restart or an outage and when it is anchored. Each
 * transaction is at debug; errors and alarms as warn and error.
 */
export function logAnchorEvent(logger: Logger, event: AnchorLoopEvent): void {
  const anchor = event;
  switch (event.type) {
    case "deployed":
      logger.info(
        { anchor },
        `deployed the registry on the development chain at ${event.contract}`,
      );
      break;
    case "registered":
      logger.info({ anchor }, `registered the log in the registry at ${event.contract}`);
      break;
    case "chain-reset":
      logger.info(
        { anchor },
        event.redeployed
          ? `the development chain was reset (${event.reason}): redeployed the registry at ${event.contract} (was ${event.previousContract}), re-registered the log, re-anchoring ${batches(event.backlog)} from LevelDB (${event.batchesReset} had been anchored)`
          : `the log's registration was gone (${event.reason}): re-registered the log at ${event.contract}, re-anchoring ${batches(event.backlog)} from LevelDB (${event.batchesReset} had been anchored)`,
      );
      break;
    case "backlog":
      logger.info(
        { anchor },
        `resuming anchoring: ${batches(event.batches)} sealed, not anchored yet`,
      );
      break;
    case "recovered":
      logger.info(
        { anchor },
        `the chain answers again after ${event.failures} failed attempt${event.failures === 1 ? "" : "s"} over ${seconds(event.downMs)}: ${batches(event.lagBatches)} waiting to be anchored`,
      );
      break;
    case "caught-up":
      logger.info(
        { anchor },
        `anchoring caught up after the ${event.reason.replace("-", " ")}: ${batches(event.batches)} anchored in ${seconds(event.ms)}`,
      );
      break;
    case "reorg":
      logger.warn(
        { anchor },
        `reorg: re-anchoring from batch ${event.fromBatchNo} (${event.reason})`,
      );
      break;
    case "deep-reorg":
      logger.error(
        { anchor: { ...event, lostAnchors: event.lostAnchors.length } },
        `reorg deeper than ${event.confirmations} confirmation${event.confirmations === 1 ? "" : "s"}: the anchors of ${batches(event.batches)} from batch ${event.fromBatchNo} are gone (${event.reason}); re-anchoring them`,
      );
      break;
    case "reanchored":
      logger.info(
        { anchor },
        `re-anchored the ${batches(event.batches)} from batch ${event.fromBatchNo} a deep reorg took, ${seconds(event.ms)} after it was found`,
      );
      break;
    case "restore-reconciled":
      if (event.lost)
        logger.error(
          { anchor: { lost: { ...event.lost, anchors: event.lost.anchors.length } } },
          `restored ledger compared with the chain: batches ${event.lost.fromBatchNo}..${event.lost.fromBatchNo + event.lost.batches - 1} (seqs ${event.lost.firstSeq}..${event.lost.firstSeq + event.lost.count - 1}) were anchored after the backup and are lost; the log continues at seq ${event.lost.firstSeq + event.lost.count}`,
        );
      else
        logger.info(
          { anchor },
          "restored ledger compared with the chain: nothing the chain holds is missing",
        );
      break;
    case "error":
      logger.warn({ anchor }, "anchoring error");
      break;
    case "alarm":
      logger.error({ anchor }, "anchoring alarm");
      break;
    default:
      logger.debug({ anchor }, "anchoring");
  }
}

async function readDeployment(file: string): Promise<DeploymentFile | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as DeploymentFile;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function writeDeployment(file: string, deployment: DeploymentFile): Promise<void> {
  await writePrivateFile(file, JSON.stringify(deployment, null, 2) + "\n");
}

import { type Wallet, ZeroHash, getAddress } from "ethers";
import { DevDeployment } from "../chain/dev-deployment.ts";
import {
  type AnchoredEvent,
  type LogInfo,
  type MinedTransaction,
  NonceTracker,
  RegistryClient,
  RegistryError,
  makeProvider,
  probeChainId,
  redactRpcUrl,
} from "../chain/registry-client.ts";
import type { BatchRecord } from "../store/batch-record.ts";
import { alarmError } from "./alarms.ts";

/** The operator name a development registration records when none is configured. */
export const DEV_LOG_OPERATOR = "Veritrail development log";

export interface ChainSessionOptions {
  rpcUrl: string;
  chainMode: "development" | "production";
  /** The registry. Required in production; on a dev chain it is deployed when missing. */
  contractAddress?: string;
  anchorer: Wallet;
  /** Admin (deployer) key: dev chain only, for deploy, log registration and reset recovery. */
  admin?: Wallet;
  /**
   * The operator name recorded on-chain when this session registers the log (dev chain only; in
   * production the registry's admin registers the log with scripts/register-log.ts).
   */
  operator?: string;
  /** Share one DevDeployment between sessions on the same dev chain (one registry for all). */
  deployment?: DevDeployment;
  /** Share one tracker between sessions that use the same anchorer account. */
  nonceTracker?: NonceTracker;
  requestTimeoutMs?: number;
  /** Blocks searched back for BatchAnchored events when a tx hash is unknown. */
  logLookbackBlocks?: number;
  /** Called when the session deployed a registry (first start, or a dev chain reset). */
  onContractChanged?: (address: string) => void;
}

/** The log this session anchors: its id and the receipt signer it registers on a dev chain. */
export interface SessionLog {
  logId: string;
  signerAddress: string;
}

/** What `registerAgain` did: the registry now in use, the one before, whether it deployed. */
export interface Reregistration {
  address: string;
  previousContract: string;
  deployed: boolean;
}

/** A transaction that put a batch's commitment on-chain, as far as the node can still say. */
export type AnchoringTx = Omit<MinedTransaction, "status">;

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_LOG_LOOKBACK_BLOCKS = 100_000;

/**
 * The anchor loop's connection to one registry on one chain: the RPC provider and the
 * RegistryClient, the nonce tracker of the anchorer account, and, on a development chain, the
 * deployment of the registry and the log's registration (again, after the node was reset).
 * It decides nothing about batches; the loop (anchor-loop.ts) does.
 */
export class ChainSession {
  readonly rpcUrl: string;
  readonly chainMode: "development" | "production";
  readonly anchorer: Wallet;
  readonly anchorerAddress: string;
  readonly logLookbackBlocks: number;
  private readonly requestTimeoutMs: number;
  private readonly deployment: DevDeployment | undefined;
  private readonly sharedTracker: NonceTracker | undefined;
  private readonly operator: string | undefined;
  private readonly onContractChanged: ((address: string) => void) | undefined;
  private contractAddress: string | undefined;
  private current: RegistryClient | undefined;
  private nonces: NonceTracker | undefined;

  constructor(opts: ChainSessionOptions) {
    if (opts.chainMode === "production" && !opts.contractAddress) {
      throw new Error("CONTRACT_ADDRESS is required in production mode");
    }
    this.rpcUrl = opts.rpcUrl;
    this.chainMode = opts.chainMode;
    this.anchorer = opts.anchorer;
    this.anchorerAddress = getAddress(opts.anchorer.address);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.logLookbackBlocks = opts.logLookbackBlocks ?? DEFAULT_LOG_LOOKBACK_BLOCKS;
    this.contractAddress = opts.contractAddress ?? opts.deployment?.address;
    this.deployment =
      opts.chainMode === "development"
        ? (opts.deployment ??
          (opts.admin ? new DevDeployment(opts.admin, opts.contractAddress) : undefined))
        : undefined;
    this.sharedTracker = opts.nonceTracker;
    this.operator = opts.operator;
    this.onContractChanged = opts.onContractChanged;
  }

  /** The registry client while connected. */
  get client(): RegistryClient | undefined {
    return this.current;
  }

  /** The anchorer account's nonce tracker while connected. */
  get tracker(): NonceTracker | undefined {
    return this.nonces;
  }

  /**
   * The registry client, connecting first if needed. On a first start on a dev chain with no
   * known registry it deploys one; `deployed` is its address when this call did.
   */
  async connect(): Promise<{ client: RegistryClient; deployed?: string }> {
    if (this.current) return { client: this.current };
    const chainId = await probeChainId(this.rpcUrl, this.requestTimeoutMs);
    const provider = makeProvider(this.rpcUrl, chainId, this.requestTimeoutMs);
    let address = this.contractAddress;
    let deployed: string | undefined;
    if (address === undefined) {
      if (!this.deployment) {
        provider.destroy();
        throw alarmError(
          "NO_ADMIN_KEY",
          "no CONTRACT_ADDRESS and no admin key to deploy the registry",
        );
      }
      // First start on a dev chain: deploy once.
      const bootstrap = new RegistryClient(provider, chainId, ZeroHash.slice(0, 42));
      const ensured = await this.deployment.ensure(bootstrap);
      address = ensured.address;
      this.contractAddress = address;
      this.onContractChanged?.(address);
      if (ensured.deployed) deployed = address;
    }
    this.current = new RegistryClient(provider, chainId, address);
    this.nonces = this.sharedTracker ?? NonceTracker.forAccount(provider, this.anchorerAddress);
    return { client: this.current, ...(deployed ? { deployed } : {}) };
  }

  /** The log's registration, or undefined when there is no registry code at the address. */
  async readLog(client: RegistryClient, logId: string): Promise<LogInfo | undefined> {
    return client.getLog(logId).catch(async (error: unknown) => {
      if (error instanceof RegistryError && error.code === "NO_CONTRACT") return undefined;
      throw error;
    });
  }

  /**
   * The registry or the log registration is gone. On a dev chain that is a node restart:
   * deploy the registry again if its code is gone and register the log again. In production,
   * refuse with an alarm. The caller re-anchors every batch.
   */
  async registerAgain(
    code: "CONTRACT_MISSING" | "LOG_NOT_REGISTERED",
    why: string,
    log: SessionLog,
  ): Promise<Reregistration | undefined> {
    const client = this.current;
    if (!client) return undefined;
    if (this.chainMode !== "development")
      throw alarmError(code, `${why}; production mode never redeploys or re-registers`);
    if (!this.deployment)
      throw alarmError("NO_ADMIN_KEY", `${why}; no admin key to redeploy the registry`);
    const chainId = await probeChainId(this.rpcUrl, this.requestTimeoutMs);
    if (chainId !== client.chainId) {
      // A different dev chain behind the same URL: start over with a fresh provider.
      client.destroy();
      this.current = undefined;
      this.nonces = undefined;
      throw new Error(`chain id changed from ${client.chainId} to ${chainId}; reconnecting`);
    }
    const { address, deployed } = await this.deployment.ensure(client);
    const target = address === client.address ? client : client.at(address);
    await target.registerLog(this.deployment.admin, {
      logId: log.logId,
      anchorer: this.anchorerAddress,
      receiptSigner: log.signerAddress,
      operator: this.operator ?? DEV_LOG_OPERATOR,
    });
    this.current = target;
    this.contractAddress = address;
    if (address !== client.address) this.onContractChanged?.(address);
    this.nonces?.reset();
    return { address, previousContract: client.address, deployed };
  }

  /**
   * The transaction that put a batch's commitment on-chain: one of ours (`ourHashes`, newest
   * first, then the record's submission) if the node has it mined, else the BatchAnchored
   * event. If the node no longer serves old logs (EIP-4444 pruning), the state itself is the
   * evidence: the current head is recorded as the block it was observed in.
   */
  async findAnchoringTx(
    client: RegistryClient,
    record: BatchRecord,
    head: number,
    ourHashes: readonly string[],
  ): Promise<AnchoringTx> {
    const candidates = [...ourHashes];
    if (record.submission?.txHash && !candidates.includes(record.submission.txHash))
      candidates.push(record.submission.txHash);
    for (const txHash of candidates) {
      const mined = await client.minedTransaction(txHash);
      if (mined && mined.status === "success") return mined;
    }
    const fromBlock = Math.max(0, head - this.logLookbackBlocks);
    let event: AnchoredEvent | undefined;
    try {
      event = await client.findBatchAnchored(record.header.logId, record.header.batchNo, fromBlock);
    } catch (error) {
      // Nodes that pruned history or cap log ranges answer with an error. If the next call
      // fails too, the node is down: an outage, not pruning.
      await client.blockNumber().catch(() => {
        throw error;
      });
      event = undefined;
    }
    if (event) {
      const mined = await client.minedTransaction(event.txHash);
      if (mined && mined.status === "success") return mined;
      return { ...event, gasUsed: 0, confirmations: Math.max(0, head - event.blockNumber + 1) };
    }
    const blockHash = (await client.blockHashAt(head)) ?? ZeroHash;
    return {
      txHash: ZeroHash,
      blockNumber: head,
      blockHash,
      gasUsed: 0,
      confirmations: Number.MAX_SAFE_INTEGER,
    };
  }

  /** A one-line reason for status output; never the RPC URL's credentials. */
  describeError(error: unknown): string {
    const text =
      error instanceof RegistryError
        ? `${error.code}: ${error.message}`
        : error instanceof Error
          ? ((error as { shortMessage?: string }).shortMessage ?? error.message)
          : String(error);
    return text.split(this.rpcUrl).join(redactRpcUrl(this.rpcUrl)).slice(0, 500);
  }

  /** Closes the provider; the next `connect` opens a new one. */
  close(): void {
    this.current?.destroy();
    this.current = undefined;
  }
}

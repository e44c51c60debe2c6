import { readFile } from "node:fs/promises";
import path from "node:path";
import type { JsonRpcProvider } from "ethers";
import {
  AbiCoder,
  Contract,
  ContractFactory,
  Interface,
  Transaction,
  type TransactionRequest,
  type InterfaceAbi,
  type Wallet,
  getAddress,
  isCallException,
  isError,
} from "ethers";
import type { BatchHeader } from "../core/batch-header.ts";
import {
  RpcUnavailableError,
  probeChainId as probeRpcChainId,
  rpcProvider,
} from "../verifier/rpc.ts";
import { REGISTRY_ABI, REGISTRY_ARTIFACT_PATH } from "./registry-abi.ts";

/** Never print credentials that some RPC URLs carry in their path or query. */
export { redactRpcUrl } from "../verifier/rpc.ts";

/**
 * The ethers v6 client of the VeritrailRegistry: connect, deploy, register a log, read the
 * anchored state, and send `anchorBatch` with explicit nonces, then wait for confirmations.
 * Everything here is one chain call (or one small sequence of them); policy — what to anchor
 * when, retries, reorgs — lives in services/anchoring/.
 */

export const registryInterface = new Interface(REGISTRY_ABI);

/** The registry's commitment for a header, computed locally (one definition, in core). */
export { batchHeaderHash as headerHash } from "../core/batch-header.ts";

function headerTuple(header: BatchHeader): [string, bigint, bigint, bigint, string, string] {
  return [
    header.logId,
    BigInt(header.batchNo),
    BigInt(header.firstSeq),
    BigInt(header.count),
    header.eventsRoot,
    header.indexRoot,
  ];
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export type RegistryErrorCode =
  // The registry's custom errors
  | "ZERO_LOG_ID"
  | "INVALID_ANCHORER"
  | "INVALID_RECEIPT_SIGNER"
  | "RECEIPT_SIGNER_REUSED"
  | "INVALID_OPERATOR_NAME"
  | "LOG_ALREADY_REGISTERED"
  | "UNKNOWN_LOG"
  | "UNAUTHORIZED_ANCHORER"
  | "UNEXPECTED_BATCH"
  | "UNEXPECTED_FIRST_SEQ"
  | "EMPTY_BATCH"
  | "ZERO_EVENTS_ROOT"
  | "SEQ_OVERFLOW"
  | "BATCH_NO_OVERFLOW"
  // OpenZeppelin's
  | "UNAUTHORIZED_ACCOUNT"
  | "BAD_CONFIRMATION"
  | "INVALID_ADMIN"
  | "ADMIN_RULES"
  | "ADMIN_DELAY"
  | "PAUSED"
  | "NOT_PAUSED"
  // Everything else the client can tell apart
  | "REVERTED"
  | "NO_CONTRACT"
  | "TX_TIMEOUT"
  | "NONCE_CONFLICT"
  | "RPC_UNAVAILABLE"
  | "ARTIFACT_MISSING";

const ERROR_CODES: Record<string, RegistryErrorCode> = {
  VeritrailZeroLogId: "ZERO_LOG_ID",
  VeritrailInvalidAnchorer: "INVALID_ANCHORER",
  VeritrailInvalidReceiptSigner: "INVALID_RECEIPT_SIGNER",
  VeritrailReceiptSignerReused: "RECEIPT_SIGNER_REUSED",
  VeritrailInvalidOperatorName: "INVALID_OPERATOR_NAME",
  VeritrailLogAlreadyRegistered: "LOG_ALREADY_REGISTERED",
  VeritrailUnknownLog: "UNKNOWN_LOG",
  VeritrailUnauthorizedAnchorer: "UNAUTHORIZED_ANCHORER",
  VeritrailUnexpectedBatch: "UNEXPECTED_BATCH",
  VeritrailUnexpectedFirstSeq: "UNEXPECTED_FIRST_SEQ",
  VeritrailEmptyBatch: "EMPTY_BATCH",
  VeritrailZeroEventsRoot: "ZERO_EVENTS_ROOT",
  VeritrailSeqOverflow: "SEQ_OVERFLOW",
  VeritrailBatchNoOverflow: "BATCH_NO_OVERFLOW",
  AccessControlUnauthorizedAccount: "UNAUTHORIZED_ACCOUNT",
  AccessControlBadConfirmation: "BAD_CONFIRMATION",
  AccessControlInvalidDefaultAdmin: "INVALID_ADMIN",
  AccessControlEnforcedDefaultAdminRules: "ADMIN_RULES",
  AccessControlEnforcedDefaultAdminDelay: "ADMIN_DELAY",
  EnforcedPause: "PAUSED",
  ExpectedPause: "NOT_PAUSED",
};

/** A failed registry call with a code (STYLE.md §5); `args` holds a custom error's arguments. */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    readonly args: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RegistryError";
  }

  /** The custom error's name (`VeritrailUnexpectedBatch`, …) when the revert was decoded. */
  get errorName(): string | undefined {
    return typeof this.args.errorName === "string" ? this.args.errorName : undefined;
  }
}

function findRevertData(error: unknown, depth = 0): string | undefined {
  if (depth > 5 || error === null || typeof error !== "object") return undefined;
  const record = error as Record<string, unknown>;
  const data = record.data;
  if (typeof data === "string" && /^0x[0-9a-fA-F]{8}/.test(data)) return data;
  for (const key of ["error", "info", "cause", "data"]) {
    const found = findRevertData(record[key], depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * Turns a revert into a typed RegistryError (custom errors decoded with their arguments), or
 * returns undefined when `error` is not a revert (a network failure, a timeout, …).
 */
export function decodeRegistryError(error: unknown): RegistryError | undefined {
  if (error instanceof RegistryError) return error;
  if (isError(error, "BAD_DATA") && error.value === "0x") {
    return new RegistryError(
      "NO_CONTRACT",
      "the registry address has no code",
      {},
      { cause: error },
    );
  }
  const data = findRevertData(error);
  if (data) {
    try {
      const parsed = registryInterface.parseError(data);
      if (parsed) {
        const args: Record<string, unknown> = { errorName: parsed.name };
        parsed.fragment.inputs.forEach((input, i) => {
          const value: unknown = parsed.args[i];
          args[input.name || String(i)] = typeof value === "bigint" ? Number(value) : value;
        });
        const code = ERROR_CODES[parsed.name] ?? "REVERTED";
        const shown = Object.entries(args)
          .filter(([k]) => k !== "errorName")
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(", ");
        return new RegistryError(code, `${parsed.name}(${shown})`, args, { cause: error });
      }
    } catch {
      // not one of ours: fall through
    }
  }
  if (isCallException(error)) {
    return new RegistryError(
      "REVERTED",
      error.shortMessage || "call reverted",
      {},
      { cause: error },
    );
  }
  return undefined;
}

/** Whether a broadcast failed because of the nonce (used, or replaced with too low a fee). */
export function isNonceConflict(error: unknown): boolean {
  if (isError(error, "NONCE_EXPIRED") || isError(error, "REPLACEMENT_UNDERPRICED")) return true;
  const text = errorText(error);
  return /nonce too low|nonce.*(already|used|expired)|replacement.*underpriced|already known|known transaction/i.test(
    text,
  );
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const nested =
      (error as { error?: unknown; info?: unknown }).error ?? (error as { info?: unknown }).info;
    return `${error.message} ${nested ? JSON.stringify(nested) : ""}`;
  }
  return String(error);
}

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

export interface ConnectOptions {
  rpcUrl: string;
  /** Per-request timeout; an RPC that accepts but never answers counts as down. */
  requestTimeoutMs?: number;
  /** Known chain id: skips the probe. */
  chainId?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * eth_chainId, once (verifier/rpc.ts, the one way to reach an RPC); an RPC that is down is a
 * RegistryError with the same code, RPC_UNAVAILABLE, so callers of this client see one error type.
 */
export async function probeChainId(
  rpcUrl: string,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<number> {
  try {
    return await probeRpcChainId(rpcUrl, timeoutMs);
  } catch (error) {
    if (error instanceof RpcUnavailableError)
      throw new RegistryError(error.code, error.message, {}, { cause: error });
    throw error;
  }
}

/**
 * A JsonRpcProvider pinned to `chainId`, with a request timeout and ethers' 250 ms response
 * cache off, because the anchor loop must see a reorg or a node restart on its very next read.
 */
export function makeProvider(
  rpcUrl: string,
  chainId: number,
  requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): JsonRpcProvider {
  return rpcProvider(rpcUrl, chainId, {
    timeoutMs: requestTimeoutMs,
    cacheTimeout: -1,
    pollingInterval: 1_000,
  });
}

// ---------------------------------------------------------------------------------------------
// Nonces
// ---------------------------------------------------------------------------------------------

/**
 * Hands out consecutive nonces for one account so that several anchor transactions can be in
 * flight at once. Seeded from `getTransactionCount(pending)` on first use and after `reset()`.
 * `send` holds the tracker while the transaction is broadcast, so two loops that share one
 * anchorer account (and therefore one tracker) never sign the same nonce twice.
 */
export class NonceTracker {
  private next: number | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly address: string,
    private readonly pendingCount: () => Promise<number>,
  ) {}

  static forAccount(provider: JsonRpcProvider, address: string): NonceTracker {
    return new NonceTracker(getAddress(address), () =>
      provider.getTransactionCount(address, "pending"),
    );
  }

  /** Forget the local count; the next nonce is read from the node again. */
  reset(): void {
    this.next = undefined;
  }

  /** The nonce the next `send` would use, if known (for status output and tests). */
  get peek(): number | undefined {
    return this.next;
  }

  /**
   * Runs `broadcast(nonce)` with the next nonce, serialised with every other `send` on this
   * tracker. The nonce counts as used when `broadcast` resolves; on a nonce conflict the
   * tracker re-seeds; on any other failure it re-seeds too, because an RPC error after the
   * node received the transaction leaves it unknown whether the nonce was consumed.
   */
  send<T>(broadcast: (nonce: number) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.next === undefined) this.next = await this.pendingCount();
      const nonce = this.next;
      try {
        const result = await broadcast(nonce);
        this.next = nonce + 1;
        return result;
      } catch (error) {
        this.next = undefined;
        throw error;
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** A transaction with an explicit nonce (a replacement) was broadcast. */
  observe(nonce: number): void {
    if (this.next !== undefined && nonce >= this.next) this.next = nonce + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

export interface LogInfo {
  registered: boolean;
  anchorer: string;
  receiptSigner: string;
  nextBatchNo: number;
  nextSeq: number;
  /** Block timestamp (seconds) of the registration. */
  registeredAt: number;
}

export interface SignerPeriod {
  /** Block timestamp (seconds) from which the signer was the log's receipt signer; 0 if never. */
  validFrom: number;
  /** Block timestamp (seconds) at which it was rotated out; 0 while current. */
  validUntil: number;
}

export interface Fees {
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

export interface SentAnchor {
  txHash: string;
  nonce: number;
  fees: Fees;
  gasLimit: bigint;
  /** The signed transaction, for a rebroadcast of exactly the same transaction. */
  raw: string;
  /**
   * The broadcast failed in a way that leaves open whether the node got it (the connection
   * broke). The nonce counts as used; the caller tracks the hash and rebroadcasts `raw` if the
   * node does not know it later.
   */
  uncertain: boolean;
}

export interface MinedTransaction {
  txHash: string;
  status: "success" | "reverted";
  blockNumber: number;
  blockHash: string;
  gasUsed: number;
  /** Blocks on top of and including the transaction's block (1 = just mined). */
  confirmations: number;
}

export interface AnchoredEvent {
  txHash: string;
  blockNumber: number;
  blockHash: string;
}

export interface SendAnchorOptions {
  /** An explicit nonce (a replacement); otherwise the tracker's next one. */
  nonce?: number;
  nonceTracker?: NonceTracker;
  /** Fees to use; the node's current fee data otherwise. */
  fees?: Fees;
  gasLimit?: bigint;
}

/**
 * Fixed gas limit for anchorBatch: its gas does not depend on the batch size (see the
 * contract's NatSpec), and a fixed limit lets the loop send batch n+1 before n is mined,
 * when estimateGas would still revert with VeritrailUnexpectedBatch.
 */
export const DEFAULT_ANCHOR_GAS_LIMIT = 150_000n;

/**
 * Seconds a transfer of the registry's admin role waits between being scheduled and being
 * accepted, unless a deployment chooses otherwise: long enough for the logs' operators and
 * their regulator to see a scheduled transfer (DefaultAdminTransferScheduled) and object.
 */
export const DEFAULT_ADMIN_TRANSFER_DELAY_SECONDS = 3 * 24 * 3600;

export class RegistryClient {
  readonly contract: Contract;

  constructor(
    readonly provider: JsonRpcProvider,
    readonly chainId: number,
    readonly address: string,
  ) {
    this.contract = new Contract(getAddress(address), registryInterface, provider);
  }

  /** Connects to the registry at `address` (one eth_chainId unless `chainId` is given). */
  static async connect(opts: ConnectOptions & { address: string }): Promise<RegistryClient> {
    const timeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const chainId = opts.chainId ?? (await probeChainId(opts.rpcUrl, timeout));
    return new RegistryClient(makeProvider(opts.rpcUrl, chainId, timeout), chainId, opts.address);
  }

  /** The same provider, another registry address (after a redeployment). */
  at(address: string): RegistryClient {
    return new RegistryClient(this.provider, this.chainId, address);
  }

  /**
   * Deploys a registry from the build artifact (`hardhat build`) with `admin` as its
   * DEFAULT_ADMIN_ROLE holder (and `adminTransferDelaySeconds` between scheduling and accepting
   * a transfer of that role) and waits for `confirmations`.
   */
  static async deploy(opts: {
    provider: JsonRpcProvider;
    admin: Wallet;
    adminTransferDelaySeconds?: number;
    confirmations?: number;
    artifactPath?: string;
    timeoutMs?: number;
  }): Promise<{ client: RegistryClient; txHash: string; blockNumber: number }> {
    const artifact = await readArtifact(opts.artifactPath);
    const admin = opts.admin.connect(opts.provider);
    const factory = new ContractFactory(artifact.abi, artifact.bytecode, admin);
    const network = await opts.provider.getNetwork();
    const contract = await factory.deploy(
      admin.address,
      opts.adminTransferDelaySeconds ?? DEFAULT_ADMIN_TRANSFER_DELAY_SECONDS,
    );
    const tx = contract.deploymentTransaction();
    if (!tx) throw new RegistryError("REVERTED", "deployment sent no transaction");
    const receipt = await tx.wait(Math.max(1, opts.confirmations ?? 1), opts.timeoutMs ?? 60_000);
    if (!receipt || receipt.status !== 1)
      throw new RegistryError("REVERTED", "registry deployment reverted");
    const address = await contract.getAddress();
    return {
      client: new RegistryClient(opts.provider, Number(network.chainId), address),
      txHash: tx.hash,
      blockNumber: receipt.blockNumber,
    };
  }

  destroy(): void {
    this.provider.destroy();
  }

  async hasCode(): Promise<boolean> {
    const code = await this.provider.getCode(this.address);
    return code !== "0x";
  }

  async blockNumber(): Promise<number> {
    return this.provider.getBlockNumber();
  }

  /** The hash of the canonical block at `blockNumber`, or undefined beyond the head. */
  async blockHashAt(blockNumber: number): Promise<string | undefined> {
    const block = await this.provider.getBlock(blockNumber);
    return block?.hash ?? undefined;
  }

  async getLog(logId: string): Promise<LogInfo> {
    const r = (await this.call("getLog", [logId])) as [string, string, bigint, bigint, bigint];
    return {
      registered: BigInt(r[0]) !== 0n,
      anchorer: r[0],
      receiptSigner: r[1],
      nextBatchNo: Number(r[2]),
      nextSeq: Number(r[3]),
      registeredAt: Number(r[4]),
    };
  }

  async logHead(logId: string): Promise<{ nextBatchNo: number; nextSeq: number }> {
    const r = (await this.call("logHead", [logId])) as [bigint, bigint];
    return { nextBatchNo: Number(r[0]), nextSeq: Number(r[1]) };
  }

  /** The stored commitment of a batch; ZeroHash if it is not anchored. */
  async batchCommitment(logId: string, batchNo: number): Promise<string> {
    return (await this.call("batchCommitment", [logId, batchNo])) as string;
  }

  async isAnchored(header: BatchHeader): Promise<boolean> {
    return (await this.call("isAnchored", [headerTuple(header)])) as boolean;
  }

  /** The contract's own headerHash (the local `headerHash` must equal it). */
  async headerHashOnChain(header: BatchHeader): Promise<string> {
    return (await this.call("headerHash", [headerTuple(header)])) as string;
  }

  async verifyInclusion(
    header: BatchHeader,
    leafIndex: number,
    leafHash: string,
    proof: string[],
  ): Promise<boolean> {
    return (await this.call("verifyInclusion", [
      headerTuple(header),
      leafIndex,
      leafHash,
      proof,
    ])) as boolean;
  }

  /** The operator name recorded for the log (empty for an unregistered log). */
  async logOperator(logId: string): Promise<string> {
    return (await this.call("logOperator", [logId])) as string;
  }

  /**
   * Every log registered in the registry, in registration order, with its operator name: read
   * from state (logCount, logIdAt, logOperator), not from events, which nodes prune (EIP-4444).
   */
  async listLogs(): Promise<Array<{ logId: string; operator: string }>> {
    const count = Number((await this.call("logCount", [])) as bigint);
    const ids = await Promise.all(
      Array.from({ length: count }, async (_, i) => (await this.call("logIdAt", [i])) as string),
    );
    return Promise.all(
      ids.map(async (logId) => ({ logId, operator: await this.logOperator(logId) })),
    );
  }

  async signerPeriod(logId: string, signer: string): Promise<SignerPeriod> {
    const r = (await this.call("signerPeriod", [logId, signer])) as [bigint, bigint];
    return { validFrom: Number(r[0]), validUntil: Number(r[1]) };
  }

  /**
   * Registers a log, idempotently: if `logId` is already registered nothing is sent and the
   * existing registration is returned (`created: false`); the caller decides whether a
   * different anchorer or signer there is an error.
   */
  async registerLog(
    admin: Wallet,
    args: { logId: string; anchorer: string; receiptSigner: string; operator: string },
    confirmations = 1,
  ): Promise<{ created: boolean; log: LogInfo; txHash?: string }> {
    const existing = await this.getLog(args.logId);
    if (existing.registered) return { created: false, log: existing };
    const { txHash } = await this.sendAdmin(
      admin,
      "registerLog",
      [args.logId, args.anchorer, args.receiptSigner, args.operator],
      confirmations,
    );
    return { created: true, log: await this.getLog(args.logId), txHash };
  }

  /** Admin: changes the operator name recorded for the log (emits LogOperatorRenamed). */
  async renameLogOperator(
    admin: Wallet,
    logId: string,
    operator: string,
    confirmations = 1,
  ): Promise<{ txHash: string }> {
    return this.sendAdmin(admin, "renameLogOperator", [logId, operator], confirmations);
  }

  /** Admin: replaces the log's receipt signer; returns the new signer's validity period. */
  async rotateReceiptSigner(
    admin: Wallet,
    logId: string,
    newSigner: string,
    confirmations = 1,
  ): Promise<{ txHash: string; blockNumber: number; period: SignerPeriod }> {
    const mined = await this.sendAdmin(
      admin,
      "rotateReceiptSigner",
      [logId, newSigner],
      confirmations,
    );
    return { ...mined, period: await this.signerPeriod(logId, newSigner) };
  }

  /** Admin: replaces the log's anchorer. */
  async rotateAnchorer(
    admin: Wallet,
    logId: string,
    newAnchorer: string,
    confirmations = 1,
  ): Promise<{ txHash: string }> {
    return this.sendAdmin(admin, "rotateAnchorer", [logId, newAnchorer], confirmations);
  }

  async pause(admin: Wallet): Promise<{ txHash: string }> {
    return this.sendAdmin(admin, "pause", [], 1);
  }

  async unpause(admin: Wallet): Promise<{ txHash: string }> {
    return this.sendAdmin(admin, "unpause", [], 1);
  }

  /**
   * Simulates anchorBatch from `from` (eth_call): throws the typed RegistryError the real
   * transaction would revert with, without spending gas.
   */
  async preflightAnchor(from: string, header: BatchHeader): Promise<void> {
    try {
      await this.provider.call({
        from,
        to: this.address,
        data: registryInterface.encodeFunctionData("anchorBatch", [headerTuple(header)]),
      });
    } catch (error) {
      throw decodeRegistryError(error) ?? error;
    }
  }

  async feeData(): Promise<Fees> {
    const fee = await this.provider.getFeeData();
    const priority = fee.maxPriorityFeePerGas ?? 1_000_000_000n;
    const max = fee.maxFeePerGas ?? (fee.gasPrice ?? 1_000_000_000n) * 2n;
    return { maxFeePerGas: max > priority ? max : priority, maxPriorityFeePerGas: priority };
  }

  /**
   * Signs and broadcasts anchorBatch(header). The transaction hash is known before the
   * broadcast (it is the hash of the signed bytes), so a caller that loses the answer can
   * still look the transaction up. No waiting here: see `waitMined`.
   */
  async sendAnchor(
    anchorer: Wallet,
    header: BatchHeader,
    opts: SendAnchorOptions = {},
  ): Promise<SentAnchor> {
    const fees = opts.fees ?? (await this.feeData());
    const gasLimit = opts.gasLimit ?? DEFAULT_ANCHOR_GAS_LIMIT;
    const data = registryInterface.encodeFunctionData("anchorBatch", [headerTuple(header)]);
    const broadcast = async (nonce: number): Promise<SentAnchor> => {
      const request: TransactionRequest = {
        type: 2,
        chainId: this.chainId,
        to: this.address,
        data,
        nonce,
        gasLimit,
        maxFeePerGas: fees.maxFeePerGas,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
        value: 0n,
      };
      const raw = await anchorer.signTransaction(request);
      const txHash = Transaction.from(raw).hash;
      if (!txHash) throw new Error("signed transaction has no hash");
      const outcome = await this.broadcastRaw(raw, txHash);
      return { txHash, nonce, fees, gasLimit, raw, uncertain: outcome === "uncertain" };
    };
    if (opts.nonce !== undefined) {
      const sent = await broadcast(opts.nonce);
      opts.nonceTracker?.observe(opts.nonce);
      return sent;
    }
    const tracker = opts.nonceTracker ?? NonceTracker.forAccount(this.provider, anchorer.address);
    return tracker.send(broadcast);
  }

  /**
   * Broadcasts a signed transaction again (same hash): for a transaction the node dropped from
   * its pool. "already known" counts as success.
   */
  async rebroadcast(raw: string): Promise<"accepted" | "uncertain"> {
    const txHash = Transaction.from(raw).hash;
    if (!txHash) throw new Error("signed transaction has no hash");
    return this.broadcastRaw(raw, txHash);
  }

  /**
   * eth_sendRawTransaction, sorting failures into: the node has the transaction after all
   * ("accepted": Hardhat in automine mode mines a reverting transaction and still answers with
   * an error; "already known"), the node cannot be asked ("uncertain": it may or may not have
   * received it, so the caller keeps tracking the hash), or a real rejection (thrown: a typed
   * revert, NONCE_CONFLICT, or the node's error).
   */
  private async broadcastRaw(raw: string, txHash: string): Promise<"accepted" | "uncertain"> {
    try {
      await this.provider.send("eth_sendRawTransaction", [raw]);
      return "accepted";
    } catch (error) {
      let known: boolean | undefined;
      try {
        known = await this.hasTransaction(txHash);
      } catch {
        known = undefined;
      }
      if (known === true) return "accepted";
      const decoded = decodeRegistryError(error);
      if (known === undefined && !decoded) return "uncertain";
      if (isNonceConflict(error)) {
        const nonce = Transaction.from(raw).nonce;
        throw new RegistryError(
          "NONCE_CONFLICT",
          `nonce ${nonce} was already used or is pending: ${errorText(error)}`,
          { nonce },
          { cause: error },
        );
      }
      throw decoded ?? error;
    }
  }

  /** Whether the node knows the transaction (pending or mined). */
  async hasTransaction(txHash: string): Promise<boolean> {
    return (await this.provider.getTransaction(txHash)) !== null;
  }

  /** The transaction's receipt if it is mined on the node's canonical chain, else null. */
  async minedTransaction(txHash: string): Promise<MinedTransaction | null> {
    const receipt = await this.provider.getTransactionReceipt(txHash);
    if (!receipt) return null;
    const head = await this.provider.getBlockNumber();
    return {
      txHash,
      status: receipt.status === 1 ? "success" : "reverted",
      blockNumber: receipt.blockNumber,
      blockHash: receipt.blockHash,
      gasUsed: Number(receipt.gasUsed),
      confirmations: Math.max(0, head - receipt.blockNumber + 1),
    };
  }

  /**
   * Polls until `txHash` is mined with `confirmations` blocks (at least 1). Resolves null if
   * it is not mined within `timeoutMs` (dropped, or stuck with too low a fee: the caller
   * re-checks the chain and replaces it). ethers' tx.wait polls every 4 s by default, far too
   * slow for a 10 s acknowledgement-to-anchor target.
   */
  async waitMined(
    txHash: string,
    opts: { confirmations: number; timeoutMs: number; pollMs?: number; signal?: AbortSignal },
  ): Promise<MinedTransaction | null> {
    const deadline = Date.now() + opts.timeoutMs;
    const pollMs = opts.pollMs ?? 100;
    const wanted = Math.max(1, opts.confirmations);
    for (;;) {
      const mined = await this.minedTransaction(txHash);
      if (mined && (mined.status === "reverted" || mined.confirmations >= wanted)) return mined;
      if (Date.now() >= deadline || opts.signal?.aborted) return null;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  /** Sends anchorBatch and waits for confirmations: one batch, no pipelining (scripts, tests). */
  async anchorBatch(
    anchorer: Wallet,
    header: BatchHeader,
    opts: { confirmations?: number; timeoutMs?: number; nonceTracker?: NonceTracker } = {},
  ): Promise<MinedTransaction> {
    await this.preflightAnchor(anchorer.address, header);
    const sent = await this.sendAnchor(anchorer, header, { nonceTracker: opts.nonceTracker });
    const mined = await this.waitMined(sent.txHash, {
      confirmations: opts.confirmations ?? 1,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    if (!mined)
      throw new RegistryError("TX_TIMEOUT", `anchor transaction ${sent.txHash} not mined in time`);
    if (mined.status === "reverted")
      throw new RegistryError("REVERTED", `anchor transaction ${sent.txHash} reverted`);
    return mined;
  }

  /**
   * The BatchAnchored event of one batch, from `fromBlock`: the transaction that anchored it.
   * Undefined when the node no longer serves those logs (EIP-4444 pruning) or there is none.
   */
  async findBatchAnchored(
    logId: string,
    batchNo: number,
    fromBlock = 0,
  ): Promise<AnchoredEvent | undefined> {
    const topics = [
      registryInterface.getEvent("BatchAnchored")?.topicHash ?? "",
      logId,
      AbiCoder.defaultAbiCoder().encode(["uint64"], [batchNo]),
    ];
    const logs = await this.provider.getLogs({
      address: this.address,
      topics,
      fromBlock,
      toBlock: "latest",
    });
    const last = logs.filter((l) => !l.removed).at(-1);
    return last
      ? { txHash: last.transactionHash, blockNumber: last.blockNumber, blockHash: last.blockHash }
      : undefined;
  }

  /**
   * The BatchAnchored events of batches [fromBatchNo, toBatchNo) of a log since `fromBlock`, one
   * per batch (the latest), in batchNo order. Nodes that pruned those logs or cap log ranges
   * answer with fewer or none; callers treat the result as evidence when present, not as truth.
   */
  async findBatchesAnchored(
    logId: string,
    fromBatchNo: number,
    toBatchNo: number,
    fromBlock = 0,
  ): Promise<
    Array<{ batchNo: number; firstSeq: number; count: number; txHash: string; blockNumber: number }>
  > {
    const event = registryInterface.getEvent("BatchAnchored");
    const logs = await this.provider.getLogs({
      address: this.address,
      topics: [event?.topicHash ?? "", logId],
      fromBlock,
      toBlock: "latest",
    });
    const byBatch = new Map<
      number,
      { batchNo: number; firstSeq: number; count: number; txHash: string; blockNumber: number }
    >();
    for (const log of logs) {
      if (log.removed) continue;
      const parsed = registryInterface.parseLog(log);
      if (!parsed) continue;
      const batchNo = Number(parsed.args.getValue("batchNo") as bigint);
      if (batchNo < fromBatchNo || batchNo >= toBatchNo) continue;
      byBatch.set(batchNo, {
        batchNo,
        firstSeq: Number(parsed.args.getValue("firstSeq") as bigint),
        count: Number(parsed.args.getValue("count") as bigint),
        txHash: log.transactionHash,
        blockNumber: log.blockNumber,
      });
    }
    return [...byBatch.values()].sort((a, b) => a.batchNo - b.batchNo);
  }

  private async call(method: string, args: unknown[]): Promise<unknown> {
    const fn = this.contract.getFunction(method);
    try {
      const result = (await fn.staticCallResult(...args)) as unknown as unknown[];
      return result.length === 1 ? result[0] : result;
    } catch (error) {
      throw decodeRegistryError(error) ?? error;
    }
  }

  private async sendAdmin(
    admin: Wallet,
    method: string,
    args: unknown[],
    confirmations: number,
  ): Promise<{ txHash: string; blockNumber: number }> {
    const signer = admin.connect(this.provider);
    const contract = this.contract.connect(signer) as Contract;
    try {
      const tx = await contract.getFunction(method).send(...args);
      const receipt = await tx.wait(Math.max(1, confirmations), 60_000);
      if (!receipt || receipt.status !== 1)
        throw new RegistryError("REVERTED", `${method} reverted`);
      return { txHash: tx.hash, blockNumber: receipt.blockNumber };
    } catch (error) {
      throw decodeRegistryError(error) ?? error;
    }
  }
}

interface Artifact {
  abi: InterfaceAbi;
  bytecode: string;
}

/** The compiled registry (abi + bytecode) from `hardhat build`. */
export async function readArtifact(artifactPath?: string): Promise<Artifact> {
  const file = artifactPath ?? path.resolve(import.meta.dirname, "../..", REGISTRY_ARTIFACT_PATH);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new RegistryError(
      "ARTIFACT_MISSING",
      `registry artifact ${file} not found: run \`npm run build:contracts\``,
      {},
      {
        cause: error,
      },
    );
  }
  const parsed = JSON.parse(text) as Partial<Artifact>;
  if (
    !Array.isArray(parsed.abi) ||
    typeof parsed.bytecode !== "string" ||
    parsed.bytecode.length < 4
  ) {
    throw new RegistryError("ARTIFACT_MISSING", `registry artifact ${file} has no abi/bytecode`);
  }
  return { abi: parsed.abi as InterfaceAbi, bytecode: parsed.bytecode };
}

/**
 * Registers a Veritrail log on the VeritrailRegistry, idempotently, so that deploy scripts and
 * `npm start` can run it on every start: a log already registered with the same anchorer,
 * receipt signer and operator name is left alone; one registered with other addresses is an
 * error (changing them is a key rotation, not a registration); one registered under another
 * operator name is an error unless `--rename` asks to change the name (renameLogOperator).
 *
 * The operator name is what trust policies (`veritrail trust init`) and every verified verdict
 * show: the institution's name as patients and regulators know it, 1 to 128 bytes.
 *
 * CLI (a development node's unlocked account, or a keystore whose password comes on stdin):
 *   node scripts/register-log.ts --rpc-url http://127.0.0.1:8545 --registry 0x... \
 *     --log-id 0x<32 bytes> --anchorer 0x... --receipt-signer 0x... \
 *     --operator "St Mary General Hospital" [--rename] \
 *     [--admin-account 0 | --admin-keystore keystore.json < password.txt | --print-tx]
 *
 * `--print-tx` is for a registry whose admin is a multisig (a Safe, say): nothing is signed; the
 * same checks run against the chain and the transaction the multisig's owners must propose and
 * sign is printed as JSON (`to`, `value`, `data`), or nothing when there is nothing to do.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  Contract,
  JsonRpcProvider,
  Wallet,
  ZeroAddress,
  ZeroHash,
  getAddress,
  isAddress,
  isHexString,
  type BaseContract,
  type Signer,
} from "ethers";

const REGISTER_LOG_ABI = [
  "function registerLog(bytes32 logId, address anchorer, address receiptSigner, string operator)",
  "function renameLogOperator(bytes32 logId, string newOperator)",
  "function getLog(bytes32 logId) view returns (address anchorer, address receiptSigner, uint64 nextBatchNo, uint64 nextSeq, uint64 registeredAt)",
  "function logOperator(bytes32 logId) view returns (string)",
  "function hasRole(bytes32 role, address account) view returns (bool)",
  "error VeritrailLogAlreadyRegistered(bytes32 logId)",
] as const;

const DEFAULT_ADMIN_ROLE = ZeroHash;

export type RegisterLogErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_ADMIN"
  | "REGISTERED_WITH_OTHER_ADDRESSES"
  | "REGISTERED_WITH_OTHER_OPERATOR";

export class RegisterLogError extends Error {
  readonly code: RegisterLogErrorCode;

  // No parameter properties: this file also runs under Node's type stripping.
  constructor(code: RegisterLogErrorCode, message: string) {
    super(message);
    this.name = "RegisterLogError";
    this.code = code;
  }
}

export interface RegisterLogParams {
  /** The registry, connected to a signer holding DEFAULT_ADMIN_ROLE. */
  registry: BaseContract;
  /** 0x-prefixed 32-byte log id, not zero. */
  logId: string;
  anchorer: string;
  receiptSigner: string;
  /** Name of the institution that operates the log, 1 to 128 bytes of UTF-8. */
  operator: string;
  /** A log registered under another operator name is renamed instead of refused. */
  rename?: boolean;
}

/** A transaction for the registry's admin to send (a multisig proposes and signs it). */
export interface AdminTransaction {
  chainId: number;
  to: string;
  value: "0";
  data: string;
  /** What it does, in words, for the multisig's owners. */
  description: string;
}

export type RegisterLogResult =
  | { status: "registered"; txHash: string; blockNumber: number }
  | { status: "already-registered"; registeredAt: bigint }
  | { status: "renamed"; previousOperator: string; txHash: string; blockNumber: number };

interface OnChainLog {
  anchorer: string;
  receiptSigner: string;
  registeredAt: bigint;
  operator: string;
}

async function readLog(registry: BaseContract, logId: string): Promise<OnChainLog> {
  const [[anchorer, receiptSigner, , , registeredAt], operator] = (await Promise.all([
    registry.getFunction("getLog")(logId),
    registry.getFunction("logOperator")(logId),
  ])) as [[string, string, bigint, bigint, bigint], string];
  return { anchorer, receiptSigner, registeredAt, operator };
}

function checkOperator(value: string): string {
  const name = value.trim();
  const bytes = new TextEncoder().encode(name).length;
  if (bytes === 0 || bytes > 128)
    throw new RegisterLogError(
      "INVALID_ARGUMENT",
      `operator must be 1 to 128 bytes of UTF-8, got ${bytes}`,
    );
  return name;
}

function checkAddress(name: string, value: string): string {
  if (!isAddress(value) || getAddress(value) === ZeroAddress) {
    throw new RegisterLogError("INVALID_ARGUMENT", `${name} is not a non-zero address: ${value}`);
  }
  return getAddress(value);
}

/**
 * Compares what is on-chain with what was asked; undefined while the log is unregistered,
 * "rename" when only the operator name differs and a rename was asked for.
 */
function compareRegistered(
  logId: string,
  onChain: OnChainLog,
  anchorer: string,
  receiptSigner: string,
  operator: string,
  rename: boolean,
): RegisterLogResult | "rename" | undefined {
  if (onChain.anchorer === ZeroAddress) return undefined;
  if (onChain.anchorer === anchorer && onChain.receiptSigner === receiptSigner) {
    if (onChain.operator === operator)
      return { status: "already-registered", registeredAt: onChain.registeredAt };
    if (rename) return "rename";
    throw new RegisterLogError(
      "REGISTERED_WITH_OTHER_OPERATOR",
      `log ${logId} is registered for operator ${JSON.stringify(onChain.operator)}, not ` +
        `${JSON.stringify(operator)}; pass --rename to change the recorded name`,
    );
  }
  throw new RegisterLogError(
    "REGISTERED_WITH_OTHER_ADDRESSES",
    `log ${logId} is already registered with anchorer ${onChain.anchorer} and receipt signer ` +
      `${onChain.receiptSigner}, not anchorer ${anchorer} and receipt signer ${receiptSigner}; ` +
      `change them with rotateAnchorer / rotateReceiptSigner`,
  );
}

/**
 * What registering `logId` needs, without sending anything: the transaction the admin must send
 * (registerLog, or renameLogOperator with `rename`), or the existing registration. For a registry
 * whose admin is a multisig, whose owners propose and sign the transaction themselves.
 */
export async function registerLogTransaction(
  params: RegisterLogParams,
): Promise<AdminTransaction | Extract<RegisterLogResult, { status: "already-registered" }>> {
  const { registry, logId } = params;
  const want = checkParams(params);
  const before = await readLog(registry, logId);
  const existing = compareRegistered(
    logId,
    before,
    want.anchorer,
    want.receiptSigner,
    want.operator,
    params.rename ?? false,
  );
  if (existing !== undefined && existing !== "rename") {
    if (existing.status !== "already-registered") throw new Error("unreachable");
    return existing;
  }
  const network = await registry.runner?.provider?.getNetwork();
  if (!network) throw new RegisterLogError("INVALID_ARGUMENT", "the registry has no provider");
  const to = await registry.getAddress();
  if (existing === "rename")
    return {
      chainId: Number(network.chainId),
      to,
      value: "0",
      data: registry.interface.encodeFunctionData("renameLogOperator", [logId, want.operator]),
      description: `renameLogOperator: log ${logId} from ${JSON.stringify(before.operator)} to ${JSON.stringify(want.operator)}`,
    };
  return {
    chainId: Number(network.chainId),
    to,
    value: "0",
    data: registry.interface.encodeFunctionData("registerLog", [
      logId,
      want.anchorer,
      want.receiptSigner,
      want.operator,
    ]),
    description: `registerLog: log ${logId}, anchorer ${want.anchorer}, receipt signer ${want.receiptSigner}, operator ${JSON.stringify(want.operator)}`,
  };
}

function checkParams(params: RegisterLogParams): {
  anchorer: string;
  receiptSigner: string;
  operator: string;
} {
  if (!isHexString(params.logId, 32) || BigInt(params.logId) === 0n) {
    throw new RegisterLogError(
      "INVALID_ARGUMENT",
      `logId is not a non-zero bytes32: ${params.logId}`,
    );
  }
  return {
    anchorer: checkAddress("anchorer", params.anchorer),
    receiptSigner: checkAddress("receiptSigner", params.receiptSigner),
    operator: checkOperator(params.operator),
  };
}

/**
 * Registers `logId` unless it is already registered with exactly these addresses.
 * Throws {@link RegisterLogError} on bad arguments, a non-admin signer, or a log registered with
 * other addresses; contract and RPC errors propagate unchanged.
 */
export async function registerLog({
  registry,
  logId,
  anchorer,
  receiptSigner,
  operator,
  rename = false,
}: RegisterLogParams): Promise<RegisterLogResult> {
  const want = checkParams({ registry, logId, anchorer, receiptSigner, operator });
  const wantAnchorer = want.anchorer;
  const wantSigner = want.receiptSigner;
  const wantOperator = want.operator;

  const before = await readLog(registry, logId);
  const existing = compareRegistered(logId, before, wantAnchorer, wantSigner, wantOperator, rename);
  if (existing !== undefined && existing !== "rename") return existing;

  const runner = registry.runner as Partial<Signer> | null;
  if (runner?.getAddress) {
    const admin = await runner.getAddress();
    const isAdmin = (await registry.getFunction("hasRole")(DEFAULT_ADMIN_ROLE, admin)) as boolean;
    if (!isAdmin) {
      throw new RegisterLogError("NOT_ADMIN", `${admin} does not hold DEFAULT_ADMIN_ROLE`);
    }
  }

  if (existing === "rename") {
    const tx = await registry.getFunction("renameLogOperator")(logId, wantOperator);
    const receipt = await tx.wait();
    return {
      status: "renamed",
      previousOperator: before.operator,
      txHash: receipt.hash,
      blockNumber: receipt.blockNumber,
    };
  }
  try {
    const tx = await registry.getFunction("registerLog")(
      logId,
      wantAnchorer,
      wantSigner,
      wantOperator,
    );
    const receipt = await tx.wait();
    return { status: "registered", txHash: receipt.hash, blockNumber: receipt.blockNumber };
  } catch (err) {
    // Someone registered the log between our read and our transaction: judge what they wrote.
    const now = await readLog(registry, logId).catch(() => undefined);
    const raced =
      now && compareRegistered(logId, now, wantAnchorer, wantSigner, wantOperator, false);
    if (raced && raced !== "rename") return raced;
    throw err;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "rpc-url": { type: "string", default: "http://127.0.0.1:8545" },
      registry: { type: "string" },
      "log-id": { type: "string" },
      anchorer: { type: "string" },
      "receipt-signer": { type: "string" },
      operator: { type: "string" },
      rename: { type: "boolean", default: false },
      "admin-account": { type: "string", default: "0" },
      "admin-keystore": { type: "string" },
      "print-tx": { type: "boolean", default: false },
    },
  });
  const registryAddress = values.registry;
  const logId = values["log-id"];
  const anchorer = values.anchorer;
  const receiptSigner = values["receipt-signer"];
  const operator = values.operator;
  if (!registryAddress || !logId || !anchorer || !receiptSigner || !operator) {
    throw new RegisterLogError(
      "INVALID_ARGUMENT",
      "usage: register-log --registry <address> --log-id <bytes32> --anchorer <address> " +
        "--receipt-signer <address> --operator <name> [--rename] [--rpc-url <url>] " +
        "[--admin-account <index|address> | --admin-keystore <file> (password on stdin) | --print-tx]",
    );
  }
  const provider = new JsonRpcProvider(values["rpc-url"]);
  const print = (value: unknown) =>
    console.log(
      JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v), 2),
    );
  try {
    const params = { logId, anchorer, receiptSigner, operator, rename: values.rename };
    const address = checkAddress("registry", registryAddress);
    if (values["print-tx"]) {
      const registry = new Contract(address, REGISTER_LOG_ABI, provider);
      const planned = await registerLogTransaction({ registry, ...params });
      print("status" in planned ? { logId, ...planned } : planned);
      return;
    }
    let admin: Signer;
    const keystore = values["admin-keystore"];
    if (keystore) {
      const password = (await readStdin()).replace(/\r?\n$/, "");
      admin = (await Wallet.fromEncryptedJson(await readFile(keystore, "utf8"), password)).connect(
        provider,
      );
    } else {
      const account = values["admin-account"];
      admin = await provider.getSigner(/^\d+$/.test(account) ? Number(account) : account);
    }
    const registry = new Contract(address, REGISTER_LOG_ABI, admin);
    print({ logId, ...(await registerLog({ registry, ...params })) });
  } finally {
    provider.destroy();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`register-log: ${message}`);
    process.exitCode = 1;
  });
}

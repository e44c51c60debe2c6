import { readFile } from "node:fs/promises";
import { Wallet, getAddress, getBytes, hexlify } from "ethers";
import type { RegistryClient, SignerPeriod } from "../chain/registry-client.ts";
import type { Config } from "../config.ts";

/**
 * The service's keys: the anchorer (sends anchorBatch) and the receipt signer (EIP-712
 * receipts), each from an encrypted JSON keystore (ANCHORER_KEYSTORE + _PASSWORD,
 * RECEIPT_KEYSTORE + _PASSWORD) or a raw key (ANCHORER_PRIVATE_KEY, RECEIPT_PRIVATE_KEY),
 * checked at start-up with errors that name the variable.
 *
 * Development with the embedded Hardhat node (CHAIN_MODE=development, EMBEDDED_CHAIN=true and
 * no RPC_URL): keys that are not configured default to the node's well-known accounts
 * (mnemonic "test test … junk", printed by `hardhat node`):
 *   account #0  admin / deployer  (DEFAULT_ADMIN_ROLE: deploys, registers the log, rotates keys)
 *   account #1  anchorer
 *   account #2  receipt signer
 * These keys are public. Production refuses them.
 */

export const HARDHAT_DEV_ACCOUNTS = {
  admin: {
    index: 0,
    address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    privateKey: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  },
  anchorer: {
    index: 1,
    address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    privateKey: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  },
  receiptSigner: {
    index: 2,
    address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    privateKey: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  },
} as const;

/** Private keys of the first 20 default Hardhat accounts are public; these are the ones above. */
const PUBLIC_DEV_KEYS = new Set<string>(
  Object.values(HARDHAT_DEV_ACCOUNTS).map((a) => a.privateKey),
);

export type KeySource = "keystore" | "env" | "hardhat-default";

export interface LoadedKey {
  wallet: Wallet;
  source: KeySource;
  /** The variable the key came from (or the Hardhat account it defaulted to). */
  origin: string;
}

export interface ServiceKeys {
  anchorer: LoadedKey;
  receiptSigner: LoadedKey;
  /** Only with the embedded dev chain: the deployer/admin account #0. */
  admin?: LoadedKey;
}

export type KeyErrorCode =
  | "KEY_MISSING"
  | "KEY_CONFLICT"
  | "KEY_INVALID"
  | "KEY_INSECURE"
  | "KEYS_NOT_DISTINCT"
  | "KEYSTORE_UNREADABLE"
  | "KEYSTORE_INVALID"
  | "KEYSTORE_PASSWORD";

/** A key that cannot be loaded; `variable` names the environment variable to fix. */
export class KeyError extends Error {
  constructor(
    readonly code: KeyErrorCode,
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "KeyError";
  }
}

export type KeyConfig = Pick<
  Config,
  | "CHAIN_MODE"
  | "RPC_URL"
  | "EMBEDDED_CHAIN"
  | "ANCHORER_KEYSTORE"
  | "ANCHORER_KEYSTORE_PASSWORD"
  | "ANCHORER_PRIVATE_KEY"
  | "RECEIPT_KEYSTORE"
  | "RECEIPT_KEYSTORE_PASSWORD"
  | "RECEIPT_PRIVATE_KEY"
>;

/** Whether the service runs its own Hardhat node (and may use the well-known accounts). */
export function usesEmbeddedDevChain(
  config: Pick<Config, "CHAIN_MODE" | "RPC_URL" | "EMBEDDED_CHAIN">,
): boolean {
  return config.CHAIN_MODE === "development" && config.EMBEDDED_CHAIN && !config.RPC_URL;
}

/**
 * Decrypts an encrypted JSON keystore (Web3 Secret Storage, as written by geth, Clef or
 * ethers' `Wallet.encrypt`). `variable` names the setting in errors.
 */
export async function walletFromKeystore(
  file: string,
  password: string,
  variable: string,
): Promise<Wallet> {
  let json: string;
  try {
    json = await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new KeyError(
      "KEYSTORE_UNREADABLE",
      variable,
      `cannot read keystore file ${file} (${reason})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new KeyError("KEYSTORE_INVALID", variable, `${file} is not JSON`);
  }
  if (
    parsed === null ||
    typeof parsed !== "object" ||
    !("crypto" in parsed || "Crypto" in parsed)
  ) {
    throw new KeyError("KEYSTORE_INVALID", variable, `${file} is not an encrypted JSON keystore`);
  }
  try {
    const decrypted = await Wallet.fromEncryptedJson(json, password);
    return new Wallet(decrypted.privateKey);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/password/i.test(message)) {
      throw new KeyError(
        "KEYSTORE_PASSWORD",
        `${variable}_PASSWORD`,
        `wrong password for keystore ${file}`,
      );
    }
    throw new KeyError("KEYSTORE_INVALID", variable, `cannot decrypt keystore ${file}: ${message}`);
  }
}

async function loadRoleKey(
  role: "ANCHORER" | "RECEIPT",
  config: KeyConfig,
  devDefault: string | undefined,
): Promise<LoadedKey> {
  const keystore = config[`${role}_KEYSTORE`];
  const password = config[`${role}_KEYSTORE_PASSWORD`];
  const privateKey = config[`${role}_PRIVATE_KEY`];
  if (keystore && privateKey) {
    throw new KeyError(
      "KEY_CONFLICT",
      `${role}_PRIVATE_KEY`,
      `set either ${role}_KEYSTORE or ${role}_PRIVATE_KEY, not both`,
    );
  }
  let loaded: LoadedKey;
  if (keystore) {
    if (password === undefined) {
      throw new KeyError(
        "KEY_MISSING",
        `${role}_KEYSTORE_PASSWORD`,
        `required with ${role}_KEYSTORE`,
      );
    }
    loaded = {
      wallet: await walletFromKeystore(keystore, password, `${role}_KEYSTORE`),
      source: "keystore",
      origin: `${role}_KEYSTORE`,
    };
  } else if (privateKey) {
    let wallet: Wallet;
    try {
      wallet = new Wallet(privateKey);
    } catch {
      throw new KeyError("KEY_INVALID", `${role}_PRIVATE_KEY`, "not a valid secp256k1 private key");
    }
    loaded = { wallet, source: "env", origin: `${role}_PRIVATE_KEY` };
  } else if (devDefault) {
    loaded = {
      wallet: new Wallet(devDefault),
      source: "hardhat-default",
      origin: `hardhat account`,
    };
  } else {
    throw new KeyError(
      "KEY_MISSING",
      `${role}_KEYSTORE`,
      `a ${role === "ANCHORER" ? "anchorer" : "receipt signer"} key is required: set ${role}_KEYSTORE (+ ${role}_KEYSTORE_PASSWORD) or ${role}_PRIVATE_KEY`,
    );
  }
  if (config.CHAIN_MODE === "production" && PUBLIC_DEV_KEYS.has(loaded.wallet.privateKey)) {
    throw new KeyError(
      "KEY_INSECURE",
      loaded.origin,
      "this is a public Hardhat development key; never use it in production",
    );
  }
  return loaded;
}

/**
 * Loads and checks both keys at start-up. Throws a KeyError naming the variable to fix.
 * `embeddedChain` overrides the detection from the config (the CLI knows whether it started
 * the node).
 */
export async function loadKeys(
  config: KeyConfig,
  opts: { embeddedChain?: boolean } = {},
): Promise<ServiceKeys> {
  const embedded = opts.embeddedChain ?? usesEmbeddedDevChain(config);
  const dev = embedded && config.CHAIN_MODE === "development";
  const anchorer = await loadRoleKey(
    "ANCHORER",
    config,
    dev ? HARDHAT_DEV_ACCOUNTS.anchorer.privateKey : undefined,
  );
  const receiptSigner = await loadRoleKey(
    "RECEIPT",
    config,
    dev ? HARDHAT_DEV_ACCOUNTS.receiptSigner.privateKey : undefined,
  );
  // One key for both roles would let a leaked receipt key anchor batches (and the contract
  // rotates them independently).
  if (anchorer.wallet.address === receiptSigner.wallet.address) {
    throw new KeyError(
      "KEYS_NOT_DISTINCT",
      receiptSigner.origin,
      "the receipt signer must not be the anchorer's key",
    );
  }
  const keys: ServiceKeys = { anchorer, receiptSigner };
  if (dev) {
    keys.admin = {
      wallet: new Wallet(HARDHAT_DEV_ACCOUNTS.admin.privateKey),
      source: "hardhat-default",
      origin: "hardhat account #0",
    };
  }
  return keys;
}

/**
 * The key that seals the log secret at rest (LOG_SECRET_KEY, or the private key of the
 * LOG_SECRET_KEYSTORE keystore); undefined when neither is set, which the config allows only in
 * development (the secret then stays in clear, and the service says so at start).
 */
export async function loadLogSecretKey(
  config: Pick<
    Config,
    "CHAIN_MODE" | "LOG_SECRET_KEY" | "LOG_SECRET_KEYSTORE" | "LOG_SECRET_KEYSTORE_PASSWORD"
  >,
): Promise<{ key: Uint8Array; origin: string } | undefined> {
  if (config.LOG_SECRET_KEY !== undefined && config.LOG_SECRET_KEYSTORE !== undefined)
    throw new KeyError(
      "KEY_CONFLICT",
      "LOG_SECRET_KEY",
      "set either LOG_SECRET_KEYSTORE or LOG_SECRET_KEY, not both",
    );
  let loaded: { key: Uint8Array; origin: string } | undefined;
  if (config.LOG_SECRET_KEYSTORE !== undefined) {
    if (config.LOG_SECRET_KEYSTORE_PASSWORD === undefined)
      throw new KeyError(
        "KEY_MISSING",
        "LOG_SECRET_KEYSTORE_PASSWORD",
        "required with LOG_SECRET_KEYSTORE",
      );
    const wallet = await walletFromKeystore(
      config.LOG_SECRET_KEYSTORE,
      config.LOG_SECRET_KEYSTORE_PASSWORD,
      "LOG_SECRET_KEYSTORE",
    );
    loaded = { key: getBytes(wallet.privateKey), origin: "LOG_SECRET_KEYSTORE" };
  } else if (config.LOG_SECRET_KEY !== undefined) {
    loaded = { key: getBytes(config.LOG_SECRET_KEY), origin: "LOG_SECRET_KEY" };
  }
  if (
    loaded !== undefined &&
    config.CHAIN_MODE === "production" &&
    PUBLIC_DEV_KEYS.has(hexlify(loaded.key))
  )
    throw new KeyError(
      "KEY_INSECURE",
      loaded.origin,
      "this is a public Hardhat development key; never use it in production",
    );
  return loaded;
}

export interface ReceiptSignerRotation {
  txHash: string;
  previous: { address: string; period: SignerPeriod };
  next: { address: string; period: SignerPeriod };
}

/**
 * Rotates a log's receipt signer on-chain (the admin calls `rotateReceiptSigner`). The old
 * signer's period ends at this block and the new one's starts, so receipts signed before stay
 * verifiable against the signer registered at their time. Afterwards the ledger must be
 * reopened with the new signer (Ledger.open({ receiptSigner: newSigner })): receipts it signs
 * with the old key from then on would fail verification.
 */
export async function rotateReceiptSigner(args: {
  client: RegistryClient;
  admin: Wallet;
  logId: string;
  newSigner: string;
  confirmations?: number;
}): Promise<ReceiptSignerRotation> {
  const before = await args.client.getLog(args.logId);
  const newSigner = getAddress(args.newSigner);
  const { txHash } = await args.client.rotateReceiptSigner(
    args.admin,
    args.logId,
    newSigner,
    args.confirmations ?? 1,
  );
  const [previousPeriod, nextPeriod] = await Promise.all([
    args.client.signerPeriod(args.logId, before.receiptSigner),
    args.client.signerPeriod(args.logId, newSigner),
  ]);
  return {
    txHash,
    previous: { address: getAddress(before.receiptSigner), period: previousPeriod },
    next: { address: newSigner, period: nextPeriod },
  };
}

/**
 * Whether `signer` was the log's registered receipt signer at `issuedAtMs` (a receipt's
 * issuedAt, wall clock of the service). Periods are block timestamps in seconds, which are not
 * the service's clock: Hardhat's automine gives each block at least the previous timestamp
 * + 1 s, and real chains allow drift too. `skewSeconds` widens the period by that much on both
 * sides; 0 is the strict check. The widening costs little: issuedAt is chosen by the signer, so
 * a stolen retired key can back-date receipts into its period anyway; the period only stops
 * receipts that claim to be recent.
 */
export function signerPeriodCovers(
  period: SignerPeriod,
  issuedAtMs: number,
  skewSeconds = 0,
): boolean {
  if (period.validFrom === 0) return false;
  const t = Math.floor(issuedAtMs / 1000);
  return (
    period.validFrom - skewSeconds <= t &&
    (period.validUntil === 0 || t <= period.validUntil + skewSeconds)
  );
}

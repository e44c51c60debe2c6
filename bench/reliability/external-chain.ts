/**
 * An external Hardhat node the service anchors into (so the chain survives a SIGKILL of the
 * service), optionally behind a TcpProxy (an RPC outage without losing chain state).
 *
 * Without the embedded chain the service has no admin key, so it cannot deploy the registry or
 * register its log itself: like an operator, we deploy once, create the log's LevelDB to learn
 * its logId, and register it with the anchorer and receipt-signer addresses the service is then
 * started with (Hardhat accounts #1 and #2; public keys, development only).
 */
import { Wallet } from "ethers";
import path from "node:path";
import {
  RegistryClient,
  makeProvider,
  probeChainId,
} from "../../services/chain/registry-client.ts";
import { Ledger } from "../../services/ledger/ledger.ts";
import { HARDHAT_ACCOUNTS, HardhatNode, TcpProxy } from "../../test/support/hardhat-node.ts";

const ADMIN = HARDHAT_ACCOUNTS[0];
const ANCHORER = HARDHAT_ACCOUNTS[1];
const RECEIPT_SIGNER = HARDHAT_ACCOUNTS[2];

export interface ExternalChain {
  node: HardhatNode;
  proxy: TcpProxy;
  contract: string;
  logId: string;
  /** Service environment: RPC through the proxy, registry address, keys. */
  env: Record<string, string>;
  close: () => Promise<void>;
}

/** Starts a node and a proxy, deploys the registry and registers the log under `dataDir`. */
export async function startExternalChain(dataDir: string): Promise<ExternalChain> {
  const node = await HardhatNode.start();
  let proxy: TcpProxy | undefined;
  try {
    proxy = await TcpProxy.start({ host: node.host, port: node.port });
    const chainId = await probeChainId(node.url);
    const provider = makeProvider(node.url, chainId);
    const admin = new Wallet(ADMIN.privateKey);
    try {
      const { client } = await RegistryClient.deploy({ provider, admin });
      const logId = await createLog(dataDir);
      await client.registerLog(admin, {
        logId,
        anchorer: ANCHORER.address,
        receiptSigner: RECEIPT_SIGNER.address,
        operator: "Reliability test log",
      });
      const started = proxy;
      return {
        node,
        proxy: started,
        contract: client.address,
        logId,
        env: {
          DATA_DIR: dataDir,
          CHAIN_MODE: "development",
          EMBEDDED_CHAIN: "false",
          RPC_URL: started.url,
          CONTRACT_ADDRESS: client.address,
          ANCHORER_PRIVATE_KEY: ANCHORER.privateKey,
          RECEIPT_PRIVATE_KEY: RECEIPT_SIGNER.privateKey,
        },
        close: async () => {
          await started.close();
          await node.stop();
        },
      };
    } finally {
      provider.destroy();
    }
  } catch (error) {
    await proxy?.close();
    await node.stop();
    throw error;
  }
}

/** Opens (creating) the log's LevelDB where the service will find it, and returns its logId. */
async function createLog(dataDir: string): Promise<string> {
  const ledger = await Ledger.open({
    location: path.join(dataDir, "ledger"),
    receiptSigner: new Wallet(RECEIPT_SIGNER.privateKey),
    batchMaxEvents: 10_000,
    batchMaxWaitMs: 1_000,
    anchorDeadlineMs: 3_600_000,
    groupCommitMaxEvents: 4_096,
  });
  const logId = ledger.logId;
  await ledger.close();
  return logId;
}

export const RECEIPT_SIGNER_KEY = RECEIPT_SIGNER.privateKey;

/**
 * One institution's log on a Hardhat node, for the tests that trace transfers across two
 * institutions: its own ledger (own receipt signer) and anchor loop (own anchorer) anchoring
 * into the registry the institutions share, started and registered.
 */
import { Wallet } from "ethers";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { DevDeployment } from "../../services/chain/dev-deployment.ts";
import { loadConfig } from "../../services/config.ts";
import { AnchorLoop } from "../../services/anchoring/anchor-loop.ts";
import { ChainSession } from "../../services/anchoring/chain-session.ts";
import { Ledger } from "../../services/ledger/ledger.ts";
import { waitUntil } from "./anchored-log.ts";
import { HARDHAT_ACCOUNTS, type HardhatNode } from "./hardhat-node.ts";

const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
const DEFAULTS = loadConfig({});

/** Which Hardhat accounts anchor and sign receipts; each institution has its own pair. */
export interface InstitutionAccounts {
  anchorer: 1 | 3;
  signer: 2 | 4;
}

export interface InstitutionLog {
  dir: string;
  ledger: Ledger;
  loop: AnchorLoop;
}

/**
 * Opens a ledger in a fresh temporary directory (`<dirPrefix><name>-…`) and starts its anchor
 * loop against `deployment`, resolving once the receipt signer is registered.
 */
export async function startInstitutionLog(
  name: string,
  node: HardhatNode,
  deployment: DevDeployment,
  accounts: InstitutionAccounts,
  dirPrefix: string,
): Promise<InstitutionLog> {
  const dir = await mkdtemp(path.join(tmpdir(), `${dirPrefix}${name}-`));
  const ledger = await Ledger.open({
    location: dir,
    receiptSigner: new Wallet(HARDHAT_ACCOUNTS[accounts.signer].privateKey),
    batchMaxEvents: 100_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: DEFAULTS.ANCHOR_DEADLINE_MS,
    groupCommitMaxEvents: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
  });
  const loop = new AnchorLoop({
    ledger,
    session: new ChainSession({
      rpcUrl: node.url,
      chainMode: "development",
      anchorer: new Wallet(HARDHAT_ACCOUNTS[accounts.anchorer].privateKey),
      admin: ADMIN,
      deployment,
    }),
    confirmations: 1,
    retryMinMs: 50,
    retryMaxMs: 500,
    pollMs: 50,
    tickMs: 100,
  });
  loop.start();
  await waitUntil(
    `${name} registration`,
    async () => loop.status().receiptSignerRegistered === true,
  );
  return { dir, ledger, loop };
}

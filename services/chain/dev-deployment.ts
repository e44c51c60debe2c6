import type { Wallet } from "ethers";
import { RegistryClient } from "./registry-client.ts";

/**
 * The registry on a development chain, which may be reset at any time (the local Hardhat node
 * was restarted: its chain is in memory). `ensure` redeploys when the code is gone.
 *
 * Share one instance between every anchor loop of a process that anchors into the same dev
 * chain: deployments are serialised, so two loops that notice the reset at once end up on one
 * new registry instead of deploying two.
 */
export class DevDeployment {
  private current: string | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly admin: Wallet,
    address?: string,
    private readonly artifactPath?: string,
  ) {
    this.current = address;
  }

  get address(): string | undefined {
    return this.current;
  }

  /**
   * The registry's address on the chain `client` talks to, deploying it (with `admin` as its
   * admin) if there is no code at the known address. `deployed` says whether this call did.
   */
  ensure(client: RegistryClient): Promise<{ address: string; deployed: boolean }> {
    const run = async (): Promise<{ address: string; deployed: boolean }> => {
      if (this.current !== undefined && (await client.at(this.current).hasCode())) {
        return { address: this.current, deployed: false };
      }
      const { client: deployed } = await RegistryClient.deploy({
        provider: client.provider,
        admin: this.admin,
        artifactPath: this.artifactPath,
      });
      this.current = deployed.address;
      return { address: deployed.address, deployed: true };
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

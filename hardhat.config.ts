import path from "node:path";
import { configVariable, defineConfig } from "hardhat/config";
import hardhatToolboxMochaEthers from "@nomicfoundation/hardhat-toolbox-mocha-ethers";

// The compiler comes from the npm package solc@0.8.28, so builds never download one.
export default defineConfig({
  plugins: [hardhatToolboxMochaEthers],
  solidity: {
    version: "0.8.28",
    path: path.resolve("node_modules/solc/soljson.js"),
    settings: {
      optimizer: { enabled: true, runs: 10_000 },
      evmVersion: "cancun",
    },
  },
  paths: {
    tests: { mocha: "test/contracts" },
  },
  networks: {
    // The node `npm start` launches; bound to loopback only.
    localhost: {
      type: "http",
      url: "http://127.0.0.1:8545",
    },
    // A real chain (consortium Besu/Geth or a public L2) for deploying the registry with
    // Ignition. Read only when `--network target` is used; set the variables in the
    // environment or with `hardhat keystore set`.
    target: {
      type: "http",
      url: configVariable("DEPLOY_RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
  },
});

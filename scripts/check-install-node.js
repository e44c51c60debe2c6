// postinstall: npm must itself run on Node 22. On an older Node, npm silently skips the packages
// that need Node 22 (Hardhat's native EDR package among them), the install "succeeds", and
// `npm start` or `npm test` fails much later with Hardhat's HHE27. Fail here instead, with the
// command that works. `npm_node_execpath` is the Node that runs npm (the `node` on PATH during
// this script is the project's pinned Node 22, whatever npm runs on). Only the project's own
// install is checked: `npx veritrail` installs a link to this package in npx's cache, which runs
// this script too, and that works from any Node.
import { execFileSync } from "node:child_process";

const npmNode = process.env.npm_node_execpath;
const command = process.env.npm_command;
if (npmNode && (command === "install" || command === "ci" || command === "update")) {
  const version = execFileSync(npmNode, ["-p", "process.versions.node"], {
    encoding: "utf8",
  }).trim();
  if (Number(version.split(".")[0]) < 22) {
    process.stderr.write(
      `\nnpm ran on Node ${version}: it skipped packages that need Node 22 (Hardhat's native EDR).\n` +
        `Run the install on Node 22 without installing it system-wide:\n\n` +
        `  npx -y -p node@22 -- npm install\n\n` +
        `After that, npm start, npm test and npx veritrail work from Node 20 too.\n`,
    );
    process.exit(1);
  }
}

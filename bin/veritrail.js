#!/usr/bin/env node
// Launcher for the `veritrail` command (package.json "bin"). The project pins Node 22 as a dev
// dependency; started by an older Node (a system Node 20), this file hands itself to that pinned
// Node (same arguments, standard streams and signals, its exit code) instead of refusing. On
// Node 22 it registers tsx, so the TypeScript sources run as they are, and runs
// services/cli/main.ts.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  const pinned = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(
      `veritrail needs Node 22 (this is ${process.version}) and found no pinned Node 22 at ${pinned}: run npm install first (on Node 20: npx -y -p node@22 -- npm install)\n`,
    );
    process.exit(2);
  }
  const { foregroundChild } = await import("foreground-child");
  foregroundChild(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  const { runCli } = await import("../services/cli/main.ts");
  process.exitCode = await runCli(process.argv);
}

#!/usr/bin/env node
// Launcher for the `veritrail` command (package.json "bin"): registers tsx so the TypeScript
// sources run as they are, then hands over to services/cli/main.ts.
const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  process.stderr.write(
    `veritrail needs Node 22 or newer (this is ${process.version}); run it through npm/npx or put node_modules/.bin first on PATH\n`,
  );
  process.exit(2);
}
const { register } = await import("tsx/esm/api");
register();
const { runCli } = await import("../services/cli/main.ts");
process.exitCode = await runCli(process.argv);

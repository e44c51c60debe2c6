/**
 * The `veritrail` command. Each command lives in its own module that exports a
 * `register…Command(program)` function; this file only builds the program and maps the
 * outcome to an exit code (0 success, 1 a negative result such as a failed verification,
 * 2 a usage or input error, 3 content withheld: a proof whose entry verifies but whose content
 * is missing without an erasure record). Commands set their exit code through `CliContext`.
 */
import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { type CliContext, EXIT_OK, EXIT_USAGE } from "./context.ts";
import { registerExportCommand } from "./export-command.ts";
import { registerAuditCommand } from "./audit-command.ts";
import { registerBackupCommands } from "./backup-command.ts";
import { registerKeysCommand } from "./keys-command.ts";
import { registerProvenanceCommand } from "./provenance-command.ts";
import { registerReceiptCommand } from "./receipt-command.ts";
import { registerStatusCommand } from "./status-command.ts";
import { registerTrustCommand } from "./trust-command.ts";
import { registerVerifyCommand } from "./verify-command.ts";

function packageVersion(): string {
  const url = new URL("../../package.json", import.meta.url);
  return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command()
    .name("veritrail")
    .description("Veritrail: tamper-evident audit ledger for health data, anchored on an EVM chain")
    .version(packageVersion())
    .showHelpAfterError()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  registerVerifyCommand(program, ctx);
  registerReceiptCommand(program, ctx);
  registerAuditCommand(program, ctx);
  registerExportCommand(program, ctx);
  registerProvenanceCommand(program, ctx);
  registerKeysCommand(program, ctx);
  registerStatusCommand(program, ctx);
  registerTrustCommand(program, ctx);
  registerBackupCommands(program, ctx);
  return program;
}

/** Runs the CLI on `argv` (process.argv form) and returns the exit code; never calls exit. */
export async function runCli(
  argv: string[],
  io: Omit<CliContext, "exitCode"> = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
  },
): Promise<number> {
  const ctx: CliContext = { ...io, exitCode: EXIT_OK };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    ctx.stderr.write(`veritrail: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_USAGE;
  }
  return ctx.exitCode;
}

/**
 * `veritrail export [--url <api>] --key <auditor key> [--from] [--to] [--organization]`: streams
 * the regulator's export (NDJSON of veritrail-proof/1 bundles) from a Veritrail API to stdout,
 * with progress on stderr: a progress bar on a terminal (out of the log's size, read from
 * GET /v1/status, when the export is not filtered), a line every second otherwise. Check the
 * file afterwards with `veritrail verify export.ndjson --rpc`.
 *
 * Exit code: 0 when the whole export arrived; 1 when the stream broke off; 2 for a usage error,
 * an unreachable API or an error answer.
 */
import { SingleBar } from "cli-progress";
import { type Command, InvalidArgumentError } from "commander";
import { once } from "node:events";
import {
  type ApiOptions,
  ApiCallError,
  apiFetch,
  apiUrl,
  keyOption,
  urlOption,
} from "./api-client.ts";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE } from "./context.ts";
import { fetchStatus } from "./status-command.ts";

export interface ExportCommandOptions extends ApiOptions {
  from?: string;
  to?: string;
  organization?: string;
}

function instant(value: string): string {
  if (!Number.isFinite(Date.parse(value)) || !/^\d{4}-\d{2}-\d{2}T/.test(value))
    throw new InvalidArgumentError("must be an RFC 3339 date-time, e.g. 2024-05-01T00:00:00Z");
  return value;
}

export function registerExportCommand(program: Command, ctx: CliContext): void {
  program
    .command("export")
    .description("export proof bundles (NDJSON) from a Veritrail API to stdout (auditor key)")
    .addOption(urlOption())
    .addOption(keyOption("an auditor API key"))
    .option("--from <instant>", "events recorded at or after this instant", instant)
    .option("--to <instant>", "events recorded before this instant", instant)
    .option("--organization <org>", "only events logged by this organization")
    .action(async (opts: ExportCommandOptions) => {
      ctx.exitCode = await runExport(opts, ctx);
    });
}

export function exportRoute(opts: Omit<ExportCommandOptions, keyof ApiOptions>): string {
  const query = new URLSearchParams();
  if (opts.from !== undefined) query.set("from", opts.from);
  if (opts.to !== undefined) query.set("to", opts.to);
  if (opts.organization !== undefined) query.set("organization", opts.organization);
  const q = query.toString();
  return q === "" ? "/v1/export" : `/v1/export?${q}`;
}

async function write(ctx: CliContext, chunk: Uint8Array): Promise<void> {
  if (!ctx.stdout.write(chunk)) await once(ctx.stdout, "drain");
}

/** An unfiltered export holds every accepted event: the log's size is its total. */
async function expectedBundles(opts: ExportCommandOptions): Promise<number | undefined> {
  if (opts.from !== undefined || opts.to !== undefined || opts.organization !== undefined)
    return undefined;
  try {
    return (await fetchStatus(opts)).events.accepted;
  } catch {
    return undefined; // a server without /v1/status: progress without a total
  }
}

/** Progress on stderr: a bar on a terminal, otherwise a line at most once a second. */
function progress(ctx: CliContext, total: number | undefined) {
  if (ctx.stderr.isTTY === true) {
    const bar = new SingleBar({
      stream: ctx.stderr,
      format:
        total === undefined
          ? "exporting {value} bundles | {duration_formatted}"
          : "exporting {bar} {value}/{total} bundles | {eta_formatted} left",
      hideCursor: true,
    });
    bar.start(total ?? 0, 0);
    return {
      update(lines: number) {
        // Events accepted while the export runs are exported too.
        if (total !== undefined && lines > bar.getTotal()) bar.setTotal(lines);
        bar.update(lines);
      },
      stop: () => bar.stop(),
    };
  }
  let lastReport = Date.now();
  return {
    update(lines: number) {
      if (Date.now() - lastReport < 1_000) return;
      ctx.stderr.write(
        `veritrail export: ${lines}${total === undefined ? "" : ` of ${total}`} bundles…\n`,
      );
      lastReport = Date.now();
    },
    stop: () => undefined,
  };
}

export async function runExport(opts: ExportCommandOptions, ctx: CliContext): Promise<number> {
  let res: Response;
  let total: number | undefined;
  try {
    apiUrl(opts, "/");
    total = await expectedBundles(opts);
    res = await apiFetch(opts, "GET", exportRoute(opts));
  } catch (e) {
    if (!(e instanceof ApiCallError)) throw e;
    ctx.stderr.write(`veritrail export: ${e.message}\n`);
    return EXIT_USAGE;
  }
  if (res.body === null) {
    ctx.stderr.write("veritrail export: the API's answer has no body\n");
    return EXIT_USAGE;
  }
  let lines = 0;
  let lastByte = 0x0a;
  const shown = progress(ctx, total);
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      for (const byte of chunk) if (byte === 0x0a) lines++;
      if (chunk.length > 0) lastByte = chunk[chunk.length - 1]!;
      await write(ctx, chunk);
      shown.update(lines);
    }
  } catch (e) {
    shown.stop();
    ctx.stderr.write(
      `veritrail export: the stream broke off after ${lines} bundles: ${(e as Error).message}\n`,
    );
    return EXIT_NEGATIVE;
  }
  shown.stop();
  // The server ends every complete export with a newline; a cut stream may not.
  if (lastByte !== 0x0a) {
    ctx.stderr.write(`veritrail export: the stream broke off after ${lines} bundles\n`);
    return EXIT_NEGATIVE;
  }
  ctx.stderr.write(`veritrail export: ${lines} bundles exported\n`);
  return EXIT_OK;
}

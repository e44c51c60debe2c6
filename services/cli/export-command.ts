/**
 * `veritrail export --url <api> --key <auditor key> [--from] [--to] [--organization]`: streams
 * the regulator's export (NDJSON of veritrail-proof/1 bundles) from a Veritrail API to stdout,
 * with progress on stderr. Check the file afterwards with `veritrail verify export.ndjson --rpc`.
 *
 * Exit code: 0 when the whole export arrived; 1 when the stream broke off; 2 for a usage error,
 * an unreachable API or an error answer.
 */
import { type Command, InvalidArgumentError } from "commander";
import { once } from "node:events";
import { type CliContext, EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE } from "./main.ts";

export interface ExportCommandOptions {
  url: string;
  key: string;
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
    .requiredOption("--url <api>", "base URL of the Veritrail API, e.g. http://127.0.0.1:8080")
    .requiredOption("--key <key>", "an auditor API key")
    .option("--from <instant>", "events recorded at or after this instant", instant)
    .option("--to <instant>", "events recorded before this instant", instant)
    .option("--organization <org>", "only events logged by this organization")
    .action(async (opts: ExportCommandOptions) => {
      ctx.exitCode = await runExport(opts, ctx);
    });
}

export function exportUrl(opts: ExportCommandOptions): URL {
  const url = new URL("/v1/export", opts.url);
  if (opts.from !== undefined) url.searchParams.set("from", opts.from);
  if (opts.to !== undefined) url.searchParams.set("to", opts.to);
  if (opts.organization !== undefined) url.searchParams.set("organization", opts.organization);
  return url;
}

async function write(ctx: CliContext, chunk: Uint8Array): Promise<void> {
  if (!ctx.stdout.write(chunk)) await once(ctx.stdout, "drain");
}

export async function runExport(opts: ExportCommandOptions, ctx: CliContext): Promise<number> {
  let url: URL;
  try {
    url = exportUrl(opts);
  } catch {
    ctx.stderr.write(`veritrail export: --url is not a URL\n`);
    return EXIT_USAGE;
  }
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${opts.key}` } });
  } catch (e) {
    ctx.stderr.write(`veritrail export: cannot reach ${url.origin}: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (res.status !== 200 || res.body === null) {
    const text = await res.text().catch(() => "");
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (parsed.error) message = `${parsed.error.code}: ${parsed.error.message}`;
    } catch {
      // not JSON: keep the text
    }
    ctx.stderr.write(`veritrail export: the API answered ${res.status}: ${message}\n`);
    return EXIT_USAGE;
  }
  let lines = 0;
  let lastByte = 0x0a;
  let lastReport = Date.now();
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      for (const byte of chunk) if (byte === 0x0a) lines++;
      if (chunk.length > 0) lastByte = chunk[chunk.length - 1]!;
      await write(ctx, chunk);
      if (Date.now() - lastReport >= 1_000) {
        ctx.stderr.write(`veritrail export: ${lines} bundles…\n`);
        lastReport = Date.now();
      }
    }
  } catch (e) {
    ctx.stderr.write(
      `veritrail export: the stream broke off after ${lines} bundles: ${(e as Error).message}\n`,
    );
    return EXIT_NEGATIVE;
  }
  // The server ends every complete export with a newline; a cut stream may not.
  if (lastByte !== 0x0a) {
    ctx.stderr.write(`veritrail export: the stream broke off after ${lines} bundles\n`);
    return EXIT_NEGATIVE;
  }
  ctx.stderr.write(`veritrail export: ${lines} bundles exported\n`);
  return EXIT_OK;
}

/**
 * Options and argument parsers shared by the commands that verify proof bundles against the
 * chain (`veritrail verify`, `veritrail provenance`).
 */
import { InvalidArgumentError, Option } from "commander";

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

export function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n === 0) throw new InvalidArgumentError("must be at least 1");
  return n;
}

/** `--rpc <url>` (required): the node of the chain to verify against. */
export function rpcOption(description: string): Option {
  return new Option("--rpc <url>", description).makeOptionMandatory();
}

/** `--confirmations <n>` (default 1): blocks the anchoring block must have on top. */
export function confirmationsOption(): Option {
  return new Option(
    "--confirmations <n>",
    "blocks the anchoring block must have on top, itself included",
  )
    .default(1)
    .argParser(nonNegativeInt);
}

/** `--timeout <ms>` (default 15 s): timeout of each request. */
export function timeoutOption(description: string): Option {
  return new Option("--timeout <ms>", description).argParser(positiveInt).default(15_000);
}

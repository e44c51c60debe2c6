/**
 * Options, argument parsers and the chain connection shared by the commands that check against
 * the chain (`veritrail verify`, `veritrail receipt check`, `veritrail provenance`,
 * `veritrail audit`).
 */
import { InvalidArgumentError, Option } from "commander";
import type { JsonRpcProvider } from "ethers";
import { RpcUnavailableError, connectRpc } from "../verifier/rpc.ts";

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

/**
 * `--confirmations <n>`: blocks the anchoring block must have on top, at least; the trust
 * policy's `confirmations` for the registry applies too (the larger wins).
 */
export function confirmationsOption(): Option {
  return new Option(
    "--confirmations <n>",
    "blocks the anchoring block must have on top, itself included (at least; the trust policy's number for the registry applies too)",
  ).argParser(nonNegativeInt);
}

/**
 * `--trust <file>` (or VERITRAIL_TRUST): the veritrail-trust/1 policy every verdict is relative
 * to. Without one the commands refuse to verify (exit 2) and say how to get one.
 */
export function trustOption(): Option {
  return new Option(
    "--trust <file>",
    "the trust policy (veritrail-trust/1) naming the registries and logs you accept",
  ).env("VERITRAIL_TRUST");
}

/** `--timeout <ms>` (default 15 s): timeout of each request. */
export function timeoutOption(description: string): Option {
  return new Option("--timeout <ms>", description).argParser(positiveInt).default(15_000);
}

/**
 * Connects to the node `--rpc` names (its chain id probed, `--timeout` per request). A node that
 * cannot be reached is no verdict on anything: the command reports `error` as a usage-level
 * failure (exit 2) in its own words.
 */
export async function connectChain(opts: {
  rpc: string;
  timeout: number;
}): Promise<{ provider: JsonRpcProvider } | { error: string }> {
  try {
    return { provider: await connectRpc(opts.rpc, { timeoutMs: opts.timeout }) };
  } catch (e) {
    return { error: e instanceof RpcUnavailableError ? e.message : String(e) };
  }
}

/** `--confirmations` when given, for the verifiers' options (absent: the trust policy's). */
export function confirmationsGiven(opts: { confirmations?: number }): { confirmations?: number } {
  return opts.confirmations !== undefined ? { confirmations: opts.confirmations } : {};
}

/**
 * Reading and writing `veritrail-trust/1` policy files (DESIGN.md "Trust policy") for the
 * commands and the service. The policy itself — schema, fingerprint, decisions — is pure and
 * lives in services/core/trust-policy.ts (the browser pages use it too).
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { type TrustPolicy, TrustPolicyError, parseTrustPolicy } from "../core/trust-policy.ts";

/** A policy file that cannot be used: unreadable, not JSON, or not a valid policy. */
export class TrustPolicyFileError extends Error {
  override readonly name = "TrustPolicyFileError";
}

/** Where to get a policy, for error messages and help texts. */
export const HOW_TO_GET_A_POLICY =
  "get the trust policy your regulator or consortium publishes (and compare its fingerprint with " +
  "theirs), or build one from a registry you trust with `veritrail trust init --rpc <url> " +
  "--registry <0x…> --out trust.json`";

/**
 * The policy a verifying command was given (`--trust`, or VERITRAIL_TRUST). Without one there
 * is nothing a verdict could be relative to: the command refuses, saying how to get one.
 */
export async function requireTrustPolicy(file: string | undefined): Promise<TrustPolicy> {
  if (file === undefined || file === "")
    throw new TrustPolicyFileError(
      `no trust policy: a proof only shows that some registry holds it, so pass --trust <file> ` +
        `(or set VERITRAIL_TRUST); ${HOW_TO_GET_A_POLICY}`,
    );
  return readTrustPolicyFile(file);
}

/** Reads, parses and fingerprints a policy file; throws TrustPolicyFileError with the reason. */
export async function readTrustPolicyFile(file: string): Promise<TrustPolicy> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new TrustPolicyFileError(
      `cannot read the trust policy ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (e) {
    throw new TrustPolicyFileError(`the trust policy ${file} is not JSON: ${(e as Error).message}`);
  }
  try {
    return parseTrustPolicy(document);
  } catch (e) {
    if (e instanceof TrustPolicyError) throw new TrustPolicyFileError(`${file}: ${e.message}`);
    throw e;
  }
}

/**
 * Writes a policy document (validated first) as pretty JSON, atomically (a reader never sees half
 * a file); returns the parsed policy with its fingerprint.
 */
export async function writeTrustPolicyFile(file: string, document: unknown): Promise<TrustPolicy> {
  const policy = parseTrustPolicy(document);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(document, null, 2)}\n`);
  await rename(tmp, file);
  return policy;
}

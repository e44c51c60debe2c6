/**
 * The service's own trust policy: its registry and its log, with the operator name the registry
 * recorded, written to DATA_DIR/trust.json and served at /.well-known/veritrail-trust.json. It
 * describes this log so that a developer (or the regulator who compiles the real policy) has it
 * at hand; no verifier adopts it silently. POST /v1/verify applies it unless the caller sends a
 * policy of its own.
 *
 * It exists once the registry is deployed and the log registered in it, and it is rebuilt after
 * every (re)registration, so a development chain that was reset gets a fresh file.
 */
import type { Logger } from "pino";
import { type TrustPolicy, parseTrustPolicy } from "../core/trust-policy.ts";
import { jcs } from "../core/jcs.ts";
import { RegistryClient } from "../chain/registry-client.ts";
import { type TrustPolicyDocument, policyFromRegistry } from "../chain/trust-init.ts";
import { writeTrustPolicyFile } from "./trust-policy-file.ts";

export interface ServicePolicy {
  document: TrustPolicyDocument;
  policy: TrustPolicy;
}

export interface ServiceTrustOptions {
  /** Where the policy is written (DATA_DIR/trust.json). */
  file: string;
  rpcUrl: string;
  logId: string;
  /** The registry, once known (the anchor loop deploys it on a development chain). */
  contract: () => string | undefined;
  confirmations: number;
  /** This API's public URL (PUBLIC_URL, else where it listens), recorded as the log's `api`. */
  apiUrl?: () => string | undefined;
  issuer: string;
  logger: Logger;
}

/** A failed rebuild is retried on the next request, but not more than once per this long. */
const RETRY_AFTER_MS = 2_000;

export class ServiceTrust {
  private current: ServicePolicy | undefined;
  private running: Promise<ServicePolicy | undefined> | undefined;
  private lastAttempt = 0;

  constructor(private readonly options: ServiceTrustOptions) {}

  get file(): string {
    return this.options.file;
  }

  /** What GET /v1/status and `veritrail status` show of it: null until it exists. */
  summary(): { fingerprint: string; issuer: string | null; file: string | null } | null {
    const p = this.current?.policy;
    return p ? { fingerprint: p.fingerprint, issuer: p.issuer, file: this.options.file } : null;
  }

  /** The current policy's fingerprint, if there is one. */
  get fingerprint(): string | undefined {
    return this.current?.policy.fingerprint;
  }

  /** The policy, rebuilding it first if there is none yet (throttled). */
  async get(): Promise<ServicePolicy | undefined> {
    if (this.current) return this.current;
    if (Date.now() - this.lastAttempt < RETRY_AFTER_MS) return this.running ?? undefined;
    return this.refresh();
  }

  /** Rebuilds the policy from the chain and writes the file when it changed. */
  refresh(): Promise<ServicePolicy | undefined> {
    this.running ??= this.rebuild().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Waits (polling) until the policy exists, at most `timeoutMs`; undefined if it does not. */
  async ready(timeoutMs: number): Promise<ServicePolicy | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.refresh();
      if (p || Date.now() >= deadline) return p;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private async rebuild(): Promise<ServicePolicy | undefined> {
    this.lastAttempt = Date.now();
    const contract = this.options.contract();
    if (contract === undefined) return this.current;
    const apiUrl = this.options.apiUrl?.();
    let client: RegistryClient | undefined;
    try {
      client = await RegistryClient.connect({
        rpcUrl: this.options.rpcUrl,
        address: contract,
        requestTimeoutMs: 5_000,
      });
      if (!(await client.getLog(this.options.logId)).registered) return this.current;
      const document = await policyFromRegistry(client, {
        issuer: this.options.issuer,
        confirmations: this.options.confirmations,
        logs: [this.options.logId],
        ...(apiUrl ? { api: { [this.options.logId.toLowerCase()]: apiUrl } } : {}),
      });
      if (this.current && jcs(this.current.document) === jcs(document)) return this.current;
      const policy = await writeTrustPolicyFile(this.options.file, document);
      this.current = { document, policy: parseTrustPolicy(document) };
      this.options.logger.info(
        { file: this.options.file, fingerprint: policy.fingerprint },
        "wrote this log's trust policy",
      );
      return this.current;
    } catch (error) {
      this.options.logger.warn({ err: error }, "could not build this log's trust policy yet");
      return this.current;
    } finally {
      client?.destroy();
    }
  }
}

import path from "node:path";
import type { Logger } from "pino";
import { createApp } from "../api/app.ts";
import { startControlSocket } from "../api/control-socket.ts";
import { type RunningServer, startServer } from "../api/server.ts";
import type { JsonRpcProvider } from "ethers";
import { ApiError } from "../api/errors.ts";
import type { BundleVerifier } from "../api/routes/verify.ts";
import type { Config } from "../config.ts";
import { ApiKeys } from "../ledger/api-keys.ts";
import { RpcUnavailableError, connectRpc } from "../verifier/rpc.ts";
import type { AuditChain } from "../ledger/audit.ts";
import { ChainReads } from "../verifier/chain-reads.ts";
import { verifyBundle } from "../verifier/verify-bundle.ts";
import { type RunningSystem, startSystem } from "../system.ts";
import { ServiceTrust } from "./service-trust.ts";

/** How long a start waits for its trust policy (the registry deployed, the log registered). */
const TRUST_READY_MS = 30_000;

export interface RunningService {
  system: RunningSystem;
  server: RunningServer;
  /** This log's trust policy (DATA_DIR/trust.json). */
  trust: ServiceTrust;
  /** The first admin key, when this start created it (shown once, stored hashed). */
  firstAdminKey?: string;
  stop: () => Promise<void>;
}

/**
 * The whole service: chain (embedded or configured), ledger, anchor loop and HTTP API. On the
 * first start of an empty log it creates an admin key and returns it once.
 */
export async function runService(config: Config, logger: Logger): Promise<RunningService> {
  let trust: ServiceTrust | undefined;
  const system = await startSystem(config, logger, {
    // A (re)registration can change the registry (a development chain that was reset).
    onAnchorEvent: (event) => {
      if (event.type === "registered" || event.type === "chain-reset") void trust?.refresh();
    },
  });
  try {
    const keys = ApiKeys.forLedger(system.ledger);
    let firstAdminKey: string | undefined;
    if ((await keys.list()).length === 0) {
      firstAdminKey = (await keys.create({ role: "admin" })).secret;
    }
    /** Where the API listens, once it does (the policy's `api` without PUBLIC_URL). */
    const listening: { url?: string } = {};
    const serviceTrust = new ServiceTrust({
      file: path.join(path.resolve(config.DATA_DIR), "trust.json"),
      rpcUrl: system.rpcUrl,
      logId: system.ledger.logId,
      contract: system.contractAddress,
      confirmations: config.CONFIRMATIONS,
      apiUrl: () => config.PUBLIC_URL ?? listening.url,
      issuer: `this log's own Veritrail service (self-description, not a regulator's policy)`,
      logger,
    });
    trust = serviceTrust;
    const app = createApp({
      ledger: system.ledger,
      apiKeys: keys,
      logger,
      config,
      verifier: chainVerifier(system.rpcUrl, config.CONFIRMATIONS, serviceTrust),
      trustPolicyDocument: async () => (await serviceTrust.get())?.document,
      trustPolicy: () => serviceTrust.summary(),
      audit: { chain: auditChain(system) },
      statusProvider: () => system.anchorLoop.status(),
      processMetrics: true,
    });
    const server = await startServer(app, {
      host: config.HOST,
      port: config.PORT,
      timeouts: config,
    });
    listening.url = server.url;
    // The banner prints the policy's path and fingerprint: wait for the registration a while.
    await serviceTrust.ready(config.CHAIN_MODE === "development" ? TRUST_READY_MS : 5_000);
    // The operator's local commands (veritrail backup) reach the running service here.
    const control = await startControlSocket(system.ledger, config.DATA_DIR, logger).catch(
      (error: unknown) => {
        logger.error(
          { err: error },
          "no control socket: veritrail backup cannot reach this service while it runs",
        );
        return undefined;
      },
    );
    let stopping: Promise<void> | undefined;
    return {
      system,
      server,
      trust: serviceTrust,
      ...(firstAdminKey ? { firstAdminKey } : {}),
      // In-flight requests finish before the ledger closes, so every acknowledged event is
      // on disk and nothing is acknowledged after the store is gone.
      stop: () =>
        (stopping ??= (async () => {
          await control?.close();
          await server.close();
          await system.stop();
        })()),
    };
  } catch (error) {
    await system.stop();
    throw error;
  }
}

/**
 * POST /v1/verify: the standalone verifier bound to the service's own chain, relative to the
 * caller's trust policy or else this log's own. The provider is connected on first use and
 * dropped after a failure, so an RPC outage answers 503 and heals.
 */
function chainVerifier(
  rpcUrl: string,
  confirmations: number,
  serviceTrust: ServiceTrust,
): BundleVerifier {
  let provider: Promise<JsonRpcProvider> | undefined;
  return async (bundle, callerPolicy) => {
    const trust = callerPolicy ?? (await serviceTrust.get())?.policy;
    if (!trust)
      throw new ApiError(
        "UNAVAILABLE",
        "this log's trust policy is not available yet (the log is not registered on-chain); send a policy with the bundle",
      );
    provider ??= connectRpc(rpcUrl, { timeoutMs: 5_000 });
    try {
      return await verifyBundle(bundle, await provider, { trust, confirmations });
    } catch (error) {
      provider = undefined;
      if (error instanceof RpcUnavailableError) throw new ApiError("UNAVAILABLE", error.message);
      throw error;
    }
  };
}

/** POST /v1/audit compares every header with the registry the anchor loop anchors into. */
function auditChain(system: RunningSystem): () => Promise<AuditChain> {
  let provider: Promise<JsonRpcProvider> | undefined;
  return async () => {
    provider ??= connectRpc(system.rpcUrl, { timeoutMs: 5_000 });
    try {
      const contract = system.contractAddress();
      // A fresh reader per audit: it reads the chain head once and caches per audit.
      return { reads: new ChainReads(await provider), ...(contract ? { contract } : {}) };
    } catch (error) {
      provider = undefined;
      if (error instanceof RpcUnavailableError) throw new ApiError("UNAVAILABLE", error.message);
      throw error;
    }
  };
}

/** The fingerprint of the written policy, or why there is none yet. */
function policyLine(service: RunningService): string {
  const fingerprint = service.trust.fingerprint;
  return fingerprint
    ? `fingerprint ${fingerprint}`
    : "(written once the log is registered on-chain; see /readyz)";
}

export function banner(service: RunningService, config: Config): string {
  const url = service.server.url;
  const lines = [
    "",
    "Veritrail is running.",
    `  API            ${url}/v1   (OpenAPI: ${url}/openapi.json, docs: ${url}/docs)`,
    `  verify page    ${url}/verify`,
    `  patient page   ${url}/patient`,
    `  health         ${url}/healthz   ${url}/readyz   metrics: ${url}/metrics`,
    `  chain RPC      ${service.system.rpcUrl}${service.system.chain ? "   (embedded Hardhat node)" : ""}`,
    `  log            ${service.system.ledger.logId}`,
    `  registry       ${service.system.contractAddress() ?? "(deployed on the dev chain once anchoring starts)"}`,
    `  trust policy   ${service.trust.file}   ${policyLine(service)}`,
    `  anchorer       ${service.system.anchorerAddress}   receipt signer ${service.system.ledger.signerAddress}`,
    `  data           ${config.DATA_DIR}`,
    service.system.ledger.logSecretAtRest === "sealed"
      ? "  log secret     sealed at rest"
      : "  log secret     stored in clear in DATA_DIR (development; set LOG_SECRET_KEY to seal it)",
  ];
  if (service.firstAdminKey) {
    lines.push(
      "",
      "First admin key (shown once; only its hash is stored):",
      `  ${service.firstAdminKey}`,
      "",
      "Try it:",
      `  export VT_ADMIN=${service.firstAdminKey}`,
      `  curl -s -X POST ${url}/v1/keys -H "authorization: Bearer $VT_ADMIN" -H 'content-type: application/json' \\`,
      `    -d '{"role":"writer","organization":"org:st-mary-general"}'`,
    );
  }
  lines.push(
    "",
    "Check a proof without trusting this server (the trust policy says whose log, on which registry):",
    `  bin/veritrail.js verify bundle.json --rpc ${service.system.rpcUrl} --trust ${service.trust.file}`,
  );
  lines.push("", "Stop with Ctrl-C.", "");
  return lines.join("\n");
}

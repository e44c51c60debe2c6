/**
 * `npm start`: the whole system on one machine — an embedded Hardhat node on 127.0.0.1:8545
 * (unless RPC_URL is set), the registry (deployed once; its address kept under DATA_DIR), the
 * log registered, the anchor loop, and the API on 127.0.0.1:8080 with LevelDB under ./data.
 */
import { banner, runService } from "../services/cli/serve.ts";
import { ConfigError, loadConfig } from "../services/config.ts";
import { createLogger } from "../services/logger.ts";

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

const logger = createLogger(config.LOG_LEVEL);
const service = await runService(config, logger).catch((error: unknown) => {
  process.stderr.write(`veritrail: could not start: ${(error as Error).message}\n`);
  process.exit(1);
});
process.stdout.write(banner(service, config));

// A second signal forces the exit, but only one sent deliberately: under `npm start` the service
// gets each Ctrl-C twice at once (from the terminal's process group and forwarded by npm).
const FORCE_AFTER_MS = 2_000;
let firstSignalAt: number | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (firstSignalAt !== undefined) {
      if (Date.now() - firstSignalAt < FORCE_AFTER_MS) return;
      process.stderr.write("veritrail: forced exit\n");
      process.exit(130);
    }
    firstSignalAt = Date.now();
    logger.info({ signal }, "stopping: finishing requests in flight, closing the ledger");
    service.stop().then(
      () => {
        process.stdout.write("Veritrail stopped: every acknowledged event is on disk.\n");
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "unclean stop");
        process.exit(1);
      },
    );
  });
}

import type { Bundle } from "./bundle.ts";
import type { NativeEvent } from "./event.ts";

/**
 * One log that can be searched for transfers: a local ledger (ledger/provenance.ts), or another
 * institution's Veritrail API (peers/api-transfer-log.ts). The provenance trace reads only this.
 */
export interface TransferLog {
  /** A name for reports (e.g. the institution); the log id comes from the bundles. */
  name: string;
  /** Every Export and Import event of the log that carries `transfer`. */
  transferEvents(): AsyncIterable<{ seq: number; event: NativeEvent }>;
  prove(seq: number): Promise<Bundle>;
}

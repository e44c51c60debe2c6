import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

/**
 * Deploys the VeritrailRegistry. `admin` receives DEFAULT_ADMIN_ROLE (registers logs, rotates
 * anchorer and receipt-signer keys, pauses anchoring); it defaults to the deploying account.
 * On a shared chain pass a multisig instead. `adminTransferDelay` (seconds, default 3 days) is
 * how long a scheduled transfer of that role waits before the new admin can accept it:
 *   hardhat ignition deploy ignition/modules/VeritrailRegistry.ts --network <net> \
 *     --parameters '{"VeritrailRegistryModule":{"admin":"0x...","adminTransferDelay":259200}}'
 * Logs are registered afterwards with ignition/modules/VeritrailLog.ts or scripts/register-log.ts
 * (both record the log's operator name, which trust policies quote).
 */
export default buildModule("VeritrailRegistryModule", (m) => {
  const admin = m.getParameter("admin", m.getAccount(0));
  const adminTransferDelay = m.getParameter("adminTransferDelay", 3 * 24 * 3600);
  const registry = m.contract("VeritrailRegistry", [admin, adminTransferDelay]);
  return { registry };
});

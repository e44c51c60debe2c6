import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";
import VeritrailRegistryModule from "./VeritrailRegistry.ts";

/**
 * Deploys the registry (VeritrailRegistryModule, or re-uses its earlier deployment) and registers
 * one log in it with the operator name that trust policies and verdicts will show:
 *   hardhat ignition deploy ignition/modules/VeritrailLog.ts --network <net> --parameters \
 *     '{"VeritrailLogModule":{"logId":"0x…","anchorer":"0x…","receiptSigner":"0x…",
 *       "operator":"St Mary General Hospital"}}'
 * The deploying account must hold the registry's DEFAULT_ADMIN_ROLE. scripts/register-log.ts does
 * the same idempotently (and can rename a log's operator) against an existing registry.
 */
export default buildModule("VeritrailLogModule", (m) => {
  const { registry } = m.useModule(VeritrailRegistryModule);
  const logId = m.getParameter<string>("logId");
  const anchorer = m.getParameter<string>("anchorer");
  const receiptSigner = m.getParameter<string>("receiptSigner");
  const operator = m.getParameter<string>("operator");
  m.call(registry, "registerLog", [logId, anchorer, receiptSigner, operator]);
  return { registry };
});

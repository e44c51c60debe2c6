/**
 * The part of the VeritrailRegistry ABI the service and the verifier use, as human-readable
 * fragments. Kept by hand so that the service does not need the build artifacts at run time
 * except to deploy; test/services/chain/registry-abi.test.ts checks every fragment against the
 * compiled artifact.
 */

/** `BatchHeader` as an ABI tuple, in the contract's field order. */
export const BATCH_HEADER_TUPLE =
  "(bytes32 logId, uint64 batchNo, uint64 firstSeq, uint32 count, bytes32 eventsRoot, bytes32 indexRoot)";

export const REGISTRY_ABI = [
  // Writes
  "function registerLog(bytes32 logId, address anchorer, address receiptSigner, string operator)",
  "function renameLogOperator(bytes32 logId, string newOperator)",
  `function anchorBatch(${BATCH_HEADER_TUPLE} header)`,
  "function rotateAnchorer(bytes32 logId, address newAnchorer)",
  "function rotateReceiptSigner(bytes32 logId, address newSigner)",
  "function pause()",
  "function unpause()",
  // Views
  `function headerHash(${BATCH_HEADER_TUPLE} header) pure returns (bytes32)`,
  "function batchCommitment(bytes32 logId, uint64 batchNo) view returns (bytes32)",
  `function isAnchored(${BATCH_HEADER_TUPLE} header) view returns (bool)`,
  "function logHead(bytes32 logId) view returns (uint64 nextBatchNo, uint64 nextSeq)",
  "function getLog(bytes32 logId) view returns (address anchorer, address receiptSigner, uint64 nextBatchNo, uint64 nextSeq, uint64 registeredAt)",
  "function isLogRegistered(bytes32 logId) view returns (bool)",
  "function logOperator(bytes32 logId) view returns (string)",
  "function logCount() view returns (uint256)",
  "function logIdAt(uint256 index) view returns (bytes32)",
  "function signerPeriod(bytes32 logId, address signer) view returns (uint64 validFrom, uint64 validUntil)",
  `function verifyInclusion(${BATCH_HEADER_TUPLE} header, uint256 leafIndex, bytes32 leafHash, bytes32[] proof) view returns (bool)`,
  "function paused() view returns (bool)",
  "function hasRole(bytes32 role, address account) view returns (bool)",
  // The admin role's two-step, delayed transfer (OpenZeppelin AccessControlDefaultAdminRules)
  "function defaultAdmin() view returns (address)",
  "function defaultAdminDelay() view returns (uint48)",
  "function pendingDefaultAdmin() view returns (address newAdmin, uint48 schedule)",
  "function pendingDefaultAdminDelay() view returns (uint48 newDelay, uint48 schedule)",
  "function beginDefaultAdminTransfer(address newAdmin)",
  "function cancelDefaultAdminTransfer()",
  "function acceptDefaultAdminTransfer()",
  "function changeDefaultAdminDelay(uint48 newDelay)",
  "function rollbackDefaultAdminDelay()",
  // Events
  "event LogRegistered(bytes32 indexed logId, address anchorer, address receiptSigner, string operator)",
  "event LogOperatorRenamed(bytes32 indexed logId, string previousOperator, string newOperator)",
  "event BatchAnchored(bytes32 indexed logId, uint64 indexed batchNo, uint64 firstSeq, uint32 count, bytes32 eventsRoot, bytes32 indexRoot)",
  "event AnchorerRotated(bytes32 indexed logId, address previousAnchorer, address newAnchorer)",
  "event ReceiptSignerRotated(bytes32 indexed logId, address previousSigner, address newSigner)",
  "event DefaultAdminTransferScheduled(address indexed newAdmin, uint48 acceptSchedule)",
  "event DefaultAdminTransferCanceled()",
  "event DefaultAdminDelayChangeScheduled(uint48 newDelay, uint48 effectSchedule)",
  "event DefaultAdminDelayChangeCanceled()",
  "event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender)",
  "event RoleRevoked(bytes32 indexed role, address indexed account, address indexed sender)",
  // Errors: the registry's own, then OpenZeppelin's (AccessControl, its default admin rules,
  // Pausable, SafeCast)
  "error VeritrailZeroLogId()",
  "error VeritrailInvalidAnchorer(address anchorer)",
  "error VeritrailInvalidReceiptSigner(address receiptSigner)",
  "error VeritrailReceiptSignerReused(bytes32 logId, address signer)",
  "error VeritrailInvalidOperatorName(uint256 length)",
  "error VeritrailLogAlreadyRegistered(bytes32 logId)",
  "error VeritrailUnknownLog(bytes32 logId)",
  "error VeritrailUnauthorizedAnchorer(bytes32 logId, address caller)",
  "error VeritrailUnexpectedBatch(bytes32 logId, uint64 expected, uint64 got)",
  "error VeritrailUnexpectedFirstSeq(bytes32 logId, uint64 expected, uint64 got)",
  "error VeritrailEmptyBatch(bytes32 logId, uint64 batchNo)",
  "error VeritrailZeroEventsRoot(bytes32 logId, uint64 batchNo)",
  "error VeritrailSeqOverflow(bytes32 logId, uint64 firstSeq, uint32 count)",
  "error VeritrailBatchNoOverflow(bytes32 logId, uint64 batchNo)",
  "error AccessControlUnauthorizedAccount(address account, bytes32 neededRole)",
  "error AccessControlBadConfirmation()",
  "error AccessControlInvalidDefaultAdmin(address defaultAdmin)",
  "error AccessControlEnforcedDefaultAdminRules()",
  "error AccessControlEnforcedDefaultAdminDelay(uint48 schedule)",
  "error SafeCastOverflowedUintDowncast(uint8 bits, uint256 value)",
  "error EnforcedPause()",
  "error ExpectedPause()",
] as const;

/** Where `hardhat build` writes the registry's artifact (bytecode for deployment). */
export const REGISTRY_ARTIFACT_PATH =
  "artifacts/contracts/VeritrailRegistry.sol/VeritrailRegistry.json";

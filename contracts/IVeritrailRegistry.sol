// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/**
 * @title IVeritrailRegistry
 * @notice Registry that anchors the Merkle batch roots of many Veritrail audit logs (one log per
 * institution or region) on an EVM chain, so that anyone can check a Veritrail proof bundle
 * against chain state without trusting the Veritrail server.
 *
 * A log is registered by the admin with an anchorer (the only account that may anchor the log's
 * batches), a receipt signer (the EIP-712 key that signs per-event receipts off-chain) and the
 * name of its operator (the institution that runs it), which verifiers' trust policies quote. The
 * log's batches are contiguous and append-only: batch 0 starts at seq 0, batch n+1 has batchNo
 * n+1 and starts at `firstSeq(n) + count(n)`, and a stored batch can never be overwritten. The
 * registry stores one slot per batch (the header hash) and emits the full header.
 *
 * The admin is the single holder of DEFAULT_ADMIN_ROLE, managed by OpenZeppelin's
 * `IAccessControlDefaultAdminRules`: the role moves only in two steps separated by
 * `defaultAdminDelay()` seconds (`beginDefaultAdminTransfer`, `acceptDefaultAdminTransfer`),
 * each step emitting an event, so a change of who may rotate a log's keys is visible on-chain
 * before it takes effect.
 *
 * @dev Nothing here ever identifies a patient: only batch headers, log ids and addresses are
 * on-chain (DESIGN.md "Never on-chain").
 */
// Event signatures are fixed (consumers filter on logId and batchNo only); indexing more fields
// would change the topics every client decodes.
// solhint-disable gas-indexed-events
interface IVeritrailRegistry {
    /**
     * @notice Header of one sealed batch of a log, as anchored on-chain.
     * @param logId Identifier of the log the batch belongs to (never zero).
     * @param batchNo Position of the batch in its log, from 0, without gaps.
     * @param firstSeq Sequence number of the batch's first event in the log.
     * @param count Number of events (Merkle leaves) in the batch; at least 1.
     * @param eventsRoot RFC 9162 Merkle Tree Hash over the batch's entry leaf hashes, in seq order.
     * @param indexRoot Root of the per-patient completeness index after this batch (zero until
     * the index exists).
     */
    struct BatchHeader {
        bytes32 logId;
        uint64 batchNo;
        uint64 firstSeq;
        uint32 count;
        bytes32 eventsRoot;
        bytes32 indexRoot;
    }

    /**
     * @notice Emitted when the admin registers a new log.
     * @param logId The new log.
     * @param anchorer Account allowed to anchor the log's batches.
     * @param receiptSigner Address whose signatures make the log's per-event receipts valid.
     * @param operator Name of the institution that operates the log.
     */
    event LogRegistered(
        bytes32 indexed logId,
        address anchorer,
        address receiptSigner,
        string operator
    );

    /**
     * @notice Emitted when the admin changes the operator name recorded for a log (a merger, a
     * renamed institution, a typo).
     * @param logId The log.
     * @param previousOperator The name before.
     * @param newOperator The name from now on.
     */
    event LogOperatorRenamed(bytes32 indexed logId, string previousOperator, string newOperator);

    /**
     * @notice Emitted for every anchored batch, with the full header so that indexers can
     * rebuild the header from the event alone.
     * @param logId Log the batch belongs to.
     * @param batchNo Position of the batch in its log.
     * @param firstSeq Sequence number of the batch's first event.
     * @param count Number of events in the batch.
     * @param eventsRoot RFC 9162 root over the batch's leaves.
     * @param indexRoot Completeness-index root after this batch.
     */
    event BatchAnchored(
        bytes32 indexed logId,
        uint64 indexed batchNo,
        uint64 firstSeq,
        uint32 count,
        bytes32 eventsRoot,
        bytes32 indexRoot
    );

    /**
     * @notice Emitted when the admin replaces a log's anchorer.
     * @param logId The log.
     * @param previousAnchorer Anchorer before the rotation; it can no longer anchor this log.
     * @param newAnchorer Anchorer from now on.
     */
    event AnchorerRotated(bytes32 indexed logId, address previousAnchorer, address newAnchorer);

    /**
     * @notice Emitted when the admin replaces a log's receipt signer.
     * @param logId The log.
     * @param previousSigner Signer before the rotation; its validity period ends at this block.
     * @param newSigner Signer from now on; its validity period starts at this block.
     */
    event ReceiptSignerRotated(bytes32 indexed logId, address previousSigner, address newSigner);

    /// @notice The log id zero is reserved (it marks "no log") and cannot be registered.
    error VeritrailZeroLogId();

    /**
     * @notice `anchorer` cannot become a log's anchorer: it is the zero address, or (on
     * rotation) it already is the log's anchorer.
     * @param anchorer The rejected address.
     */
    error VeritrailInvalidAnchorer(address anchorer);

    /**
     * @notice `receiptSigner` cannot become a log's receipt signer: it is the zero address, or
     * (on rotation) it already is the log's receipt signer.
     * @param receiptSigner The rejected address.
     */
    error VeritrailInvalidReceiptSigner(address receiptSigner);

    /**
     * @notice `signer` was a receipt signer of `logId` before and cannot be rotated back in:
     * each address has exactly one validity period per log (see {signerPeriod}).
     * @param logId The log.
     * @param signer The former signer.
     */
    error VeritrailReceiptSignerReused(bytes32 logId, address signer);

    /**
     * @notice An operator name must be 1 to 128 bytes of UTF-8.
     * @param length The rejected name's length in bytes.
     */
    error VeritrailInvalidOperatorName(uint256 length);

    /**
     * @notice `logId` is already registered; registration is one-time.
     * @param logId The log.
     */
    error VeritrailLogAlreadyRegistered(bytes32 logId);

    /**
     * @notice `logId` has not been registered.
     * @param logId The log.
     */
    error VeritrailUnknownLog(bytes32 logId);

    /**
     * @notice `caller` is not the current anchorer of `logId`.
     * @param logId The log.
     * @param caller The account that tried to anchor.
     */
    error VeritrailUnauthorizedAnchorer(bytes32 logId, address caller);

    /**
     * @notice The header's batchNo is not the log's next batch number (a gap, or a repeat of an
     * already anchored batch: anchored batches can never be overwritten).
     * @param logId The log.
     * @param expected The log's next batch number.
     * @param got The header's batchNo.
     */
    error VeritrailUnexpectedBatch(bytes32 logId, uint64 expected, uint64 got);

    /**
     * @notice The header's firstSeq does not continue the log (a gap or an overlap in seq).
     * @param logId The log.
     * @param expected `firstSeq + count` of the previous batch (0 for batch 0).
     * @param got The header's firstSeq.
     */
    error VeritrailUnexpectedFirstSeq(bytes32 logId, uint64 expected, uint64 got);

    /**
     * @notice The header's count is zero; a batch holds at least one event.
     * @param logId The log.
     * @param batchNo The header's batchNo.
     */
    error VeritrailEmptyBatch(bytes32 logId, uint64 batchNo);

    /**
     * @notice The header's eventsRoot is zero, which no non-empty RFC 9162 tree has.
     * @param logId The log.
     * @param batchNo The header's batchNo.
     */
    error VeritrailZeroEventsRoot(bytes32 logId, uint64 batchNo);

    /**
     * @notice Anchoring this batch would move the log's next seq past 2^48 - 1: the registry
     * packs a log's head (anchorer, next batchNo, next seq) into one storage slot.
     * @param logId The log.
     * @param firstSeq The header's firstSeq.
     * @param count The header's count.
     */
    error VeritrailSeqOverflow(bytes32 logId, uint64 firstSeq, uint32 count);

    /**
     * @notice Anchoring this batch would move the log's next batch number past 2^48 - 1.
     * @param logId The log.
     * @param batchNo The header's batchNo.
     */
    error VeritrailBatchNoOverflow(bytes32 logId, uint64 batchNo);

    /**
     * @notice Registers a new log. Its first batch must be batchNo 0 with firstSeq 0.
     * @dev Only DEFAULT_ADMIN_ROLE. Also starts `receiptSigner`'s validity period
     * (see {signerPeriod}), records `operator` ({logOperator}) and appends `logId` to the list
     * of logs ({logCount}, {logIdAt}). Allowed while paused. Emits {LogRegistered}.
     * Reverts with {VeritrailZeroLogId}, {VeritrailInvalidAnchorer} (zero address),
     * {VeritrailInvalidReceiptSigner} (zero address), {VeritrailInvalidOperatorName} or
     * {VeritrailLogAlreadyRegistered}.
     * @param logId Identifier of the new log; not zero.
     * @param anchorer Account allowed to anchor the log's batches; not zero.
     * @param receiptSigner Address that signs the log's receipts; not zero.
     * @param operator Name of the institution that operates the log; 1 to 128 bytes.
     */
    function registerLog(
        bytes32 logId,
        address anchorer,
        address receiptSigner,
        string calldata operator
    ) external;

    /**
     * @notice Changes the operator name recorded for `logId`.
     * @dev Only DEFAULT_ADMIN_ROLE. Allowed while paused. Emits {LogOperatorRenamed}. Reverts
     * with {VeritrailUnknownLog} or {VeritrailInvalidOperatorName}.
     * @param logId The log.
     * @param newOperator The new name; 1 to 128 bytes.
     */
    function renameLogOperator(bytes32 logId, string calldata newOperator) external;

    /**
     * @notice Anchors the next batch of `header.logId`.
     * @dev Only the log's current anchorer, and only while not paused (OpenZeppelin
     * `EnforcedPause()` otherwise). Costs the same gas whatever `header.count` is, and the
     * first batch of a log costs the same as the later ones. Checks, in this order:
     * {VeritrailUnknownLog}, {VeritrailUnauthorizedAnchorer}, {VeritrailUnexpectedBatch},
     * {VeritrailUnexpectedFirstSeq}, {VeritrailEmptyBatch}, {VeritrailZeroEventsRoot},
     * {VeritrailBatchNoOverflow}, {VeritrailSeqOverflow}. Stores {headerHash} as the batch's
     * commitment and emits {BatchAnchored}. Because of the batchNo check a resubmitted batch
     * fails with {VeritrailUnexpectedBatch} instead of being stored twice.
     * @param header The batch header.
     */
    function anchorBatch(BatchHeader calldata header) external;

    /**
     * @notice Replaces the anchorer of `logId`; the previous anchorer is denied from now on.
     * @dev Only DEFAULT_ADMIN_ROLE. Allowed while paused, so a leaked anchorer key can be
     * replaced before anchoring resumes. Emits {AnchorerRotated}. Reverts with
     * {VeritrailUnknownLog}, or {VeritrailInvalidAnchorer} if `newAnchorer` is zero or is
     * already the anchorer. A former anchorer may be rotated back in.
     * @param logId The log.
     * @param newAnchorer The new anchorer.
     */
    function rotateAnchorer(bytes32 logId, address newAnchorer) external;

    /**
     * @notice Replaces the receipt signer of `logId`. The previous signer's period ends and the
     * new signer's period starts at this block's timestamp (see {signerPeriod}).
     * @dev Only DEFAULT_ADMIN_ROLE. Allowed while paused. Emits {ReceiptSignerRotated}. Reverts
     * with {VeritrailUnknownLog}; {VeritrailInvalidReceiptSigner} if `newSigner` is zero or is
     * the current signer; {VeritrailReceiptSignerReused} if `newSigner` was a signer of this log
     * before: a retired key never comes back, so each signer has one period per log and a
     * receipt's validity is a single interval check.
     * @param logId The log.
     * @param newSigner The new receipt signer.
     */
    function rotateReceiptSigner(bytes32 logId, address newSigner) external;

    /**
     * @notice Stops anchoring for every log. Views, registration and rotations keep working.
     * @dev Only DEFAULT_ADMIN_ROLE. Emits OpenZeppelin `Paused(account)`.
     */
    function pause() external;

    /**
     * @notice Resumes anchoring.
     * @dev Only DEFAULT_ADMIN_ROLE. Emits OpenZeppelin `Unpaused(account)`.
     */
    function unpause() external;

    /**
     * @notice The commitment the registry stores for a batch.
     * @param header The batch header.
     * @return keccak256(abi.encode(logId, batchNo, firstSeq, count, eventsRoot, indexRoot)).
     */
    function headerHash(BatchHeader calldata header) external pure returns (bytes32);

    /**
     * @notice The stored commitment ({headerHash}) of batch `batchNo` of `logId`.
     * @param logId The log.
     * @param batchNo The batch number.
     * @return The commitment, or zero if that batch has not been anchored.
     */
    function batchCommitment(bytes32 logId, uint64 batchNo) external view returns (bytes32);

    /**
     * @notice Whether exactly this header has been anchored.
     * @param header The batch header.
     * @return True if the stored commitment for `(header.logId, header.batchNo)` is non-zero and
     * equals {headerHash}`(header)`.
     */
    function isAnchored(BatchHeader calldata header) external view returns (bool);

    /**
     * @notice Where the next batch of `logId` must start.
     * @param logId The log.
     * @return nextBatchNo The batchNo the next anchored batch must have.
     * @return nextSeq The firstSeq the next anchored batch must have (the number of anchored
     * events). Both are 0 for an unregistered log.
     */
    function logHead(bytes32 logId) external view returns (uint64 nextBatchNo, uint64 nextSeq);

    /**
     * @notice Everything the registry knows about `logId`.
     * @param logId The log.
     * @return anchorer Current anchorer (zero if the log is not registered).
     * @return receiptSigner Current receipt signer.
     * @return nextBatchNo See {logHead}.
     * @return nextSeq See {logHead}.
     * @return registeredAt Timestamp of the block that registered the log.
     */
    function getLog(
        bytes32 logId
    )
        external
        view
        returns (
            address anchorer,
            address receiptSigner,
            uint64 nextBatchNo,
            uint64 nextSeq,
            uint64 registeredAt
        );

    /**
     * @notice The operator name recorded for `logId` at registration or by the last rename.
     * @param logId The log.
     * @return The name; empty for an unregistered log.
     */
    function logOperator(bytes32 logId) external view returns (string memory);

    /**
     * @notice How many logs have been registered (a registry never forgets one).
     * @return The number of logs; they are {logIdAt}(0 .. count - 1), in registration order.
     */
    function logCount() external view returns (uint256);

    /**
     * @notice The `index`-th registered log, so a verifier can list a registry's logs from its
     * state alone (event history may be pruned, EIP-4444).
     * @param index From 0 to {logCount} - 1; reverts (panic 0x32) beyond.
     * @return The log id.
     */
    function logIdAt(uint256 index) external view returns (bytes32);

    /**
     * @notice Whether `logId` has been registered.
     * @param logId The log.
     * @return True once {registerLog} succeeded for `logId`.
     */
    function isLogRegistered(bytes32 logId) external view returns (bool);

    /**
     * @notice The period during which `signer` was the receipt signer of `logId`, so a verifier
     * can check that a receipt by a since-rotated signer was issued while it was registered:
     * valid iff `validFrom <= t` and (`validUntil == 0` or `t <= validUntil`).
     * @param logId The log.
     * @param signer The address to look up.
     * @return validFrom Block timestamp at which `signer` became the signer.
     * @return validUntil Block timestamp at which it was rotated out; 0 while it is current.
     * `(0, 0)` means `signer` was never a receipt signer of `logId`.
     */
    function signerPeriod(
        bytes32 logId,
        address signer
    ) external view returns (uint64 validFrom, uint64 validUntil);

    /**
     * @notice Checks that a leaf is in an anchored batch.
     * @dev True only if `header` is anchored ({isAnchored}) and the RFC 9162 section 2.1.3.2
     * audit-path verification of `leafHash` at `leafIndex` in a tree of `header.count` leaves
     * yields `header.eventsRoot`, with interior nodes SHA-256(0x01 || left || right) (sha256
     * precompile). False, never a revert, for `leafIndex >= header.count`, a path of the wrong
     * length or any mismatch.
     * @param header The anchored batch header.
     * @param leafIndex Index of the leaf within the batch (its seq minus `header.firstSeq`).
     * @param leafHash SHA-256(0x00 || entry), computed off-chain.
     * @param proof The audit path, from the leaf's sibling up to the root's child.
     * @return Whether the proof is valid for an anchored batch.
     */
    function verifyInclusion(
        BatchHeader calldata header,
        uint256 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool);
}

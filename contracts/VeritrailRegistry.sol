// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControlDefaultAdminRules} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IVeritrailRegistry} from "./IVeritrailRegistry.sol";

/**
 * @title VeritrailRegistry
 * @notice Anchors the batch roots of many Veritrail logs. See {IVeritrailRegistry}.
 * @dev Storage is laid out for `anchorBatch`, which runs once per batch for the life of every
 * log: it touches exactly two slots, the log's packed {LogHead} (warm read-modify-write after a
 * cold read) and one fresh slot for the batch commitment, plus OpenZeppelin's `_paused` flag.
 * Everything anchoring does not need (receipt signer, registration time, signer history) lives
 * in other slots. No loop depends on the batch size, so the gas does not either.
 *
 * The admin (DEFAULT_ADMIN_ROLE) registers logs and rotates their anchorers and receipt signers
 * at once, so whoever holds it can hand a log's anchoring to another key. OpenZeppelin's
 * {AccessControlDefaultAdminRules} makes that role slow to move and visible: exactly one holder
 * (on a consortium chain, a multisig), handed over in two steps (`beginDefaultAdminTransfer`,
 * then `acceptDefaultAdminTransfer` by the new holder once `defaultAdminDelay` has passed, each
 * step an event everyone can watch and the first cancellable), and the delay itself only changed
 * on a schedule. `grantRole`/`revokeRole` refuse DEFAULT_ADMIN_ROLE.
 */
contract VeritrailRegistry is IVeritrailRegistry, AccessControlDefaultAdminRules, Pausable {
    /// @dev Largest next batch number / next seq a {LogHead} can hold (48-bit fields).
    uint64 private constant _MAX_BATCH_NO = type(uint48).max;
    uint64 private constant _MAX_SEQ = type(uint48).max;

    /// @dev Longest operator name, in bytes: a name for people, not a document.
    uint256 private constant _MAX_OPERATOR_BYTES = 128;

    /// @dev RFC 9162 section 2.1.1: interior nodes are SHA-256(0x01 || left || right).
    bytes1 private constant _NODE_PREFIX = 0x01;

    /**
     * @dev The only per-log state `anchorBatch` reads and writes: 160 + 48 + 48 = 256 bits, one
     * slot. A non-zero anchorer marks a registered log (the anchorer can never be zero).
     * 2^48 batches or events is ~8.9 million per second for a year, so 48 bits are enough.
     */
    struct LogHead {
        address anchorer;
        uint48 nextBatchNo;
        uint48 nextSeq;
    }

    /// @dev Per-log data anchoring never touches: 160 + 64 bits, one slot.
    struct LogConfig {
        address receiptSigner;
        uint64 registeredAt;
    }

    /// @dev One validity interval per (log, signer); see {signerPeriod}.
    struct SignerPeriod {
        uint64 validFrom;
        uint64 validUntil;
    }

    mapping(bytes32 logId => LogHead) private _heads;
    mapping(bytes32 logId => LogConfig) private _configs;
    mapping(bytes32 logId => mapping(uint64 batchNo => bytes32 commitment)) private _batches;
    mapping(bytes32 logId => mapping(address signer => SignerPeriod)) private _signerPeriods;
    // Declared after the mappings above so their slots (and anchorBatch's gas) stay as they were.
    mapping(bytes32 logId => string operator) private _operators;
    bytes32[] private _logIds;

    /**
     * @param admin Receives DEFAULT_ADMIN_ROLE: registers logs, rotates keys, pauses. Not zero
     * (OpenZeppelin `AccessControlInvalidDefaultAdmin` otherwise).
     * @param adminTransferDelay Seconds between scheduling a transfer of the admin role and the
     * earliest moment the new admin can accept it (`defaultAdminDelay`).
     */
    constructor(
        address admin,
        uint48 adminTransferDelay
    ) AccessControlDefaultAdminRules(adminTransferDelay, admin) {}

    /// @inheritdoc IVeritrailRegistry
    function registerLog(
        bytes32 logId,
        address anchorer,
        address receiptSigner,
        string calldata operator
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (logId == bytes32(0)) revert VeritrailZeroLogId();
        if (anchorer == address(0)) revert VeritrailInvalidAnchorer(anchorer);
        if (receiptSigner == address(0)) revert VeritrailInvalidReceiptSigner(receiptSigner);
        _checkOperatorName(operator);
        if (_heads[logId].anchorer != address(0)) revert VeritrailLogAlreadyRegistered(logId);

        uint64 registeredAt = uint64(block.timestamp);
        _heads[logId] = LogHead({anchorer: anchorer, nextBatchNo: 0, nextSeq: 0});
        _configs[logId] = LogConfig({receiptSigner: receiptSigner, registeredAt: registeredAt});
        _signerPeriods[logId][receiptSigner] = SignerPeriod({
            validFrom: registeredAt,
            validUntil: 0
        });
        _operators[logId] = operator;
        _logIds.push(logId);
        emit LogRegistered(logId, anchorer, receiptSigner, operator);
    }

    /// @inheritdoc IVeritrailRegistry
    function renameLogOperator(
        bytes32 logId,
        string calldata newOperator
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_heads[logId].anchorer == address(0)) revert VeritrailUnknownLog(logId);
        _checkOperatorName(newOperator);
        string memory previousOperator = _operators[logId];
        _operators[logId] = newOperator;
        emit LogOperatorRenamed(logId, previousOperator, newOperator);
    }

    /// @inheritdoc IVeritrailRegistry
    function anchorBatch(BatchHeader calldata header) external whenNotPaused {
        bytes32 logId = header.logId;
        LogHead memory head = _heads[logId];
        if (msg.sender != head.anchorer) {
            // Only on the failure path, so the happy path pays for one comparison.
            if (head.anchorer == address(0)) revert VeritrailUnknownLog(logId);
            revert VeritrailUnauthorizedAnchorer(logId, msg.sender);
        }

        uint64 batchNo = header.batchNo;
        // Equality (not >=) is what makes anchored batches immutable: a repeat of batch n
        // after n was stored always fails here.
        if (batchNo != head.nextBatchNo) {
            revert VeritrailUnexpectedBatch(logId, head.nextBatchNo, batchNo);
        }
        uint64 firstSeq = header.firstSeq;
        if (firstSeq != head.nextSeq)
            revert VeritrailUnexpectedFirstSeq(logId, head.nextSeq, firstSeq);
        uint32 count = header.count;
        if (count == 0) revert VeritrailEmptyBatch(logId, batchNo);
        if (header.eventsRoot == bytes32(0)) revert VeritrailZeroEventsRoot(logId, batchNo);
        // batchNo == head.nextBatchNo <= _MAX_BATCH_NO, so only equality can overflow.
        if (batchNo == _MAX_BATCH_NO) revert VeritrailBatchNoOverflow(logId, batchNo);

        uint64 nextSeq;
        unchecked {
            // firstSeq <= 2^48 - 1 and count < 2^32, so this cannot wrap a uint64.
            nextSeq = firstSeq + count;
        }
        if (nextSeq > _MAX_SEQ) revert VeritrailSeqOverflow(logId, firstSeq, count);

        unchecked {
            // batchNo != _MAX_BATCH_NO was checked above.
            _heads[logId] = LogHead({
                anchorer: head.anchorer,
                nextBatchNo: uint48(batchNo + 1),
                nextSeq: uint48(nextSeq)
            });
        }
        _batches[logId][batchNo] = _headerHash(header);
        emit BatchAnchored(logId, batchNo, firstSeq, count, header.eventsRoot, header.indexRoot);
    }

    /// @inheritdoc IVeritrailRegistry
    function rotateAnchorer(
        bytes32 logId,
        address newAnchorer
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        LogHead storage head = _heads[logId];
        address previousAnchorer = head.anchorer;
        if (previousAnchorer == address(0)) revert VeritrailUnknownLog(logId);
        if (newAnchorer == address(0) || newAnchorer == previousAnchorer) {
            revert VeritrailInvalidAnchorer(newAnchorer);
        }
        head.anchorer = newAnchorer;
        emit AnchorerRotated(logId, previousAnchorer, newAnchorer);
    }

    /// @inheritdoc IVeritrailRegistry
    function rotateReceiptSigner(
        bytes32 logId,
        address newSigner
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        LogConfig storage config = _configs[logId];
        address previousSigner = config.receiptSigner;
        if (previousSigner == address(0)) revert VeritrailUnknownLog(logId);
        if (newSigner == address(0) || newSigner == previousSigner) {
            revert VeritrailInvalidReceiptSigner(newSigner);
        }
        mapping(address => SignerPeriod) storage periods = _signerPeriods[logId];
        // Rotating a retired key back in would need a second period for it, and a receipt the
        // old key signed after retirement would then look valid to anyone reading only the
        // latest period. So a retired signer stays retired.
        if (periods[newSigner].validFrom != 0)
            revert VeritrailReceiptSignerReused(logId, newSigner);

        uint64 rotatedAt = uint64(block.timestamp);
        periods[previousSigner].validUntil = rotatedAt;
        periods[newSigner] = SignerPeriod({validFrom: rotatedAt, validUntil: 0});
        config.receiptSigner = newSigner;
        emit ReceiptSignerRotated(logId, previousSigner, newSigner);
    }

    /// @inheritdoc IVeritrailRegistry
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _pause();
    }

    /// @inheritdoc IVeritrailRegistry
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    /// @inheritdoc IVeritrailRegistry
    function headerHash(BatchHeader calldata header) external pure returns (bytes32) {
        return _headerHash(header);
    }

    /// @inheritdoc IVeritrailRegistry
    function batchCommitment(bytes32 logId, uint64 batchNo) external view returns (bytes32) {
        return _batches[logId][batchNo];
    }

    /// @inheritdoc IVeritrailRegistry
    function isAnchored(BatchHeader calldata header) external view returns (bool) {
        return _isAnchored(header);
    }

    /// @inheritdoc IVeritrailRegistry
    function logHead(bytes32 logId) external view returns (uint64 nextBatchNo, uint64 nextSeq) {
        LogHead memory head = _heads[logId];
        return (head.nextBatchNo, head.nextSeq);
    }

    /// @inheritdoc IVeritrailRegistry
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
        )
    {
        LogHead memory head = _heads[logId];
        LogConfig memory config = _configs[logId];
        return (
            head.anchorer,
            config.receiptSigner,
            head.nextBatchNo,
            head.nextSeq,
            config.registeredAt
        );
    }

    /// @inheritdoc IVeritrailRegistry
    function logOperator(bytes32 logId) external view returns (string memory) {
        return _operators[logId];
    }

    /// @inheritdoc IVeritrailRegistry
    function logCount() external view returns (uint256) {
        return _logIds.length;
    }

    /// @inheritdoc IVeritrailRegistry
    function logIdAt(uint256 index) external view returns (bytes32) {
        return _logIds[index];
    }

    /// @inheritdoc IVeritrailRegistry
    function isLogRegistered(bytes32 logId) external view returns (bool) {
        return _heads[logId].anchorer != address(0);
    }

    /// @inheritdoc IVeritrailRegistry
    function signerPeriod(
        bytes32 logId,
        address signer
    ) external view returns (uint64 validFrom, uint64 validUntil) {
        SignerPeriod memory period = _signerPeriods[logId][signer];
        return (period.validFrom, period.validUntil);
    }

    /// @inheritdoc IVeritrailRegistry
    function verifyInclusion(
        BatchHeader calldata header,
        uint256 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        if (!_isAnchored(header)) return false;
        return _verifyAuditPath(leafIndex, header.count, leafHash, proof, header.eventsRoot);
    }

    /// @inheritdoc AccessControlDefaultAdminRules
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return
            interfaceId == type(IVeritrailRegistry).interfaceId ||
            super.supportsInterface(interfaceId);
    }

    function _checkOperatorName(string calldata name) private pure {
        uint256 length = bytes(name).length;
        if (length == 0 || length > _MAX_OPERATOR_BYTES)
            revert VeritrailInvalidOperatorName(length);
    }

    function _headerHash(BatchHeader calldata header) private pure returns (bytes32) {
        // A static struct ABI-encodes as its six fields in order, i.e. exactly
        // abi.encode(logId, batchNo, firstSeq, count, eventsRoot, indexRoot).
        return keccak256(abi.encode(header));
    }

    function _isAnchored(BatchHeader calldata header) private view returns (bool) {
        bytes32 commitment = _batches[header.logId][header.batchNo];
        return commitment != bytes32(0) && commitment == _headerHash(header);
    }

    /**
     * @dev RFC 9162 section 2.1.3.2, step for step. `fn` is the node's index at the current
     * level and `sn` the last index at that level; the path is consumed leaf to root and must
     * end exactly when `sn` reaches 0, which rejects both short and padded paths.
     */
    function _verifyAuditPath(
        uint256 leafIndex,
        uint256 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) private pure returns (bool) {
        // solhint-disable-next-line gas-strict-inequalities
        if (leafIndex >= treeSize) return false;
        uint256 fn = leafIndex;
        uint256 sn = treeSize - 1;
        bytes32 r = leafHash;
        uint256 length = proof.length;
        for (uint256 i = 0; i < length; ++i) {
            if (sn == 0) return false;
            bytes32 p = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                r = _hashChildren(p, r);
                // Skip the levels where this node is the last one and has no right sibling.
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                r = _hashChildren(r, p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r == root;
    }

    function _hashChildren(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return sha256(abi.encodePacked(_NODE_PREFIX, left, right));
    }
}

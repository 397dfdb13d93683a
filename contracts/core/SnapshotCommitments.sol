// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IClearinghouse, MarginAttestation, SnapshotCommitment} from "../interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../interfaces/IClearinghouseEngineHooks.sol";
import {ISnapshotCommitments} from "../interfaces/ISnapshotCommitments.sol";
import {AttestationHashing} from "../libraries/AttestationHashing.sol";

/// @title SnapshotCommitments
/// @notice The registry of posted whole-book commitments (see ISnapshotCommitments).
/// @dev Calls `verifyOracleSignatures`, so it must be one of the clearinghouse's engines. A stored
///      root carries what its leaves must carry — the commitment's snapshot time, deadline and
///      params version — and the signer epoch that signed it: a leaf lives no longer than the
///      commitment's deadline, and no root outlives a signer-set change (as no signature does).
contract SnapshotCommitments is ISnapshotCommitments {
    struct Stored {
        uint64 snapshotTime;
        uint64 deadline; // 0: never posted
        uint32 paramsVersion;
        uint64 signerEpoch;
    }

    /// @notice The clearinghouse whose signer set and domain sign the commitments.
    IClearinghouseEngineHooks public immutable clearinghouse;

    /// @notice What each posted root binds its leaves to.
    mapping(bytes32 root => Stored) public stored;

    constructor(address clearinghouse_) {
        if (clearinghouse_ == address(0)) revert IClearinghouse.ZeroAddress();
        clearinghouse = IClearinghouseEngineHooks(clearinghouse_);
    }

    /// @inheritdoc ISnapshotCommitments
    function postCommitment(SnapshotCommitment calldata c, bytes calldata sigs) external {
        uint64 epoch = clearinghouse.signerEpoch();
        Stored storage s = stored[c.root];
        if (s.deadline != 0 && s.signerEpoch == epoch) return;
        if (!clearinghouse.acceptsParamsVersion(c.paramsVersion)) {
            revert IClearinghouse.WrongParamsVersion(clearinghouse.riskConfig().paramsVersion, c.paramsVersion);
        }
        clearinghouse.verifyOracleSignatures(AttestationHashing.hash(c), c.snapshotTime, c.deadline, sigs);
        stored[c.root] = Stored(c.snapshotTime, c.deadline, c.paramsVersion, epoch);
        emit CommitmentPosted(c.root, msg.sender, c.snapshotTime, c.deadline, c.paramsVersion, c.accounts);
    }

    /// @inheritdoc ISnapshotCommitments
    function verifyLeaf(MarginAttestation calldata att, bytes calldata proof) external view {
        if (msg.sender != address(clearinghouse)) revert NotClearinghouse();
        bytes32 root = bytes32(proof[:32]);
        bytes32 node = AttestationHashing.leaf(att);
        uint256 len = proof.length;
        for (uint256 p = 32; p < len; p += 32) {
            bytes32 sibling = bytes32(proof[p:p + 32]);
            node = node < sibling ? keccak256(abi.encode(node, sibling)) : keccak256(abi.encode(sibling, node));
        }
        if (node != root) revert InvalidProof();
        Stored memory s = stored[root];
        if (s.deadline == 0) revert RootNotPosted(root);
        if (s.signerEpoch != clearinghouse.signerEpoch()) revert RootOfFormerSigners(root);
        if (att.snapshotTime != s.snapshotTime || att.deadline != s.deadline || att.paramsVersion != s.paramsVersion) {
            revert LeafNotOfCommitment(root);
        }
    }

    /// @inheritdoc ISnapshotCommitments
    function rootPosted(bytes32 root) external view returns (bool) {
        Stored memory s = stored[root];
        return s.deadline != 0 && s.signerEpoch == clearinghouse.signerEpoch();
    }

    /// @inheritdoc ISnapshotCommitments
    function commitmentHash(SnapshotCommitment calldata c) external pure returns (bytes32) {
        return AttestationHashing.hash(c);
    }
}

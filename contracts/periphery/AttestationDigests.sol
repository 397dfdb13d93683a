// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {
    IClearinghouse,
    MarginAttestation,
    Order,
    SettlementPrice,
    SnapshotCommitment,
    SnapshotHeartbeat
} from "../interfaces/IClearinghouse.sol";
import {AttestationHashing} from "../libraries/AttestationHashing.sol";

/// @title AttestationDigests
/// @notice What a clearinghouse's signers and makers sign — EIP-712 digests, commitment leaves,
///         a trade's post-state hash — for integrators and tests: the clearinghouse itself only
///         verifies. Deploy one per clearinghouse.
contract AttestationDigests {
    /// @notice The clearinghouse whose EIP-712 domain these digests use.
    IClearinghouse public immutable clearinghouse;

    constructor(address clearinghouse_) {
        clearinghouse = IClearinghouse(clearinghouse_);
    }

    function marginAttestationDigest(MarginAttestation calldata att) external view returns (bytes32) {
        return _digest(AttestationHashing.hash(att));
    }

    function orderDigest(Order calldata order) external view returns (bytes32) {
        return _digest(AttestationHashing.hash(order));
    }

    function settlementPriceDigest(SettlementPrice calldata price) external view returns (bytes32) {
        return _digest(AttestationHashing.hash(price));
    }

    function heartbeatDigest(SnapshotHeartbeat calldata heartbeat) external view returns (bytes32) {
        return _digest(AttestationHashing.hash(heartbeat));
    }

    function commitmentDigest(SnapshotCommitment calldata commitment) external view returns (bytes32) {
        return _digest(AttestationHashing.hash(commitment));
    }

    /// @notice The StandardMerkleTree leaf of `att` in a snapshot commitment.
    function commitmentLeaf(MarginAttestation calldata att) external pure returns (bytes32) {
        return AttestationHashing.leaf(att);
    }

    /// @notice The state hash `account` would have after setting one position to `newSize`:
    ///         what a trade's attestations must name.
    function nextStateHash(address account, uint256 instrumentId, int256 newSize) external view returns (bytes32) {
        return keccak256(abi.encode(clearinghouse.stateHashOf(account), instrumentId, newSize));
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(clearinghouse.domainSeparator(), structHash);
    }
}

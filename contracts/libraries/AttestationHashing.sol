// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {
    MarginAttestation,
    Order,
    SettlementPrice,
    SnapshotCommitment,
    SnapshotHeartbeat
} from "../interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill} from "../interfaces/ILiquidationEngine.sol";

/// @title AttestationHashing
/// @notice EIP-712 struct hashes of everything the oracle or a maker signs, and the Merkle leaves
///         of what the oracle commits to in a tree. The type strings are part of the protocol: the
///         off-chain encoder (offchain/attest/) builds the same ones.
library AttestationHashing {
    bytes32 internal constant MARGIN_ATTESTATION_TYPEHASH = keccak256(
        "MarginAttestation(address account,bytes32 stateHash,int256 value,uint256 initialMargin,"
        "uint256 maintenanceMargin,uint64 snapshotTime,uint64 deadline,uint32 paramsVersion)"
    );

    bytes32 internal constant ORDER_TYPEHASH =
        keccak256("Order(address maker,uint256 instrumentId,int256 size,uint256 price,uint256 nonce,uint64 deadline)");

    bytes32 internal constant SETTLEMENT_PRICE_TYPEHASH =
        keccak256("SettlementPrice(bytes32 underlying,uint64 expiry,uint256 price,uint64 snapshotTime)");

    bytes32 internal constant SNAPSHOT_HEARTBEAT_TYPEHASH = keccak256("SnapshotHeartbeat(uint64 snapshotTime)");

    bytes32 internal constant SNAPSHOT_COMMITMENT_TYPEHASH = keccak256(
        "SnapshotCommitment(bytes32 root,uint64 snapshotTime,uint64 deadline,uint32 paramsVersion,uint32 accounts)"
    );

    bytes32 internal constant ADL_ATTESTATION_TYPEHASH = keccak256(
        "AdlAttestation(address account,bytes32 stateHash,uint256[] instrumentIds,uint256[] marks,"
        "bytes32[] queueRoots,uint64 snapshotTime,uint64 deadline,uint32 paramsVersion)"
    );

    /// @dev Every member is a static type, so abi.encode(struct) is the members' 32-byte words in order.
    function hash(MarginAttestation calldata att) internal pure returns (bytes32) {
        return keccak256(abi.encode(MARGIN_ATTESTATION_TYPEHASH, att));
    }

    function hash(Order calldata order) internal pure returns (bytes32) {
        return keccak256(abi.encode(ORDER_TYPEHASH, order));
    }

    function hash(SettlementPrice calldata price) internal pure returns (bytes32) {
        return keccak256(abi.encode(SETTLEMENT_PRICE_TYPEHASH, price));
    }

    function hash(SnapshotHeartbeat calldata heartbeat) internal pure returns (bytes32) {
        return keccak256(abi.encode(SNAPSHOT_HEARTBEAT_TYPEHASH, heartbeat.snapshotTime));
    }

    function hash(SnapshotCommitment calldata commitment) internal pure returns (bytes32) {
        return keccak256(abi.encode(SNAPSHOT_COMMITMENT_TYPEHASH, commitment));
    }

    /// @dev Arrays are encoded as the hash of their packed elements (EIP-712 `encodeData`).
    function hash(AdlAttestation calldata att) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ADL_ATTESTATION_TYPEHASH,
                att.account,
                att.stateHash,
                keccak256(abi.encodePacked(att.instrumentIds)),
                keccak256(abi.encodePacked(att.marks)),
                keccak256(abi.encodePacked(att.queueRoots)),
                att.snapshotTime,
                att.deadline,
                att.paramsVersion
            )
        );
    }

    /// @dev The StandardMerkleTree leaf of an attestation: the double hash of its ABI encoding.
    function leaf(MarginAttestation calldata att) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(att))));
    }

    /// @dev The leaf of `fill`'s counterparty in the ADL queue of `instrumentId` (the layout is
    ///      AdlAttestation's), hashed like a StandardMerkleTree leaf.
    function leaf(uint256 instrumentId, AdlFill calldata fill) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(keccak256(abi.encode(instrumentId, fill.rank, fill.counterparty, fill.stateHash, fill.value)))
        );
    }
}

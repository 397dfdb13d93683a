// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {
    MarginAttestation,
    Order,
    SettlementPrice,
    SnapshotCommitment
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AttestationHashing} from "../../../contracts/libraries/AttestationHashing.sol";

/// @notice What tests sign, from a clearinghouse's domain (`using Digests for Clearinghouse`).
library Digests {
    function marginAttestationDigest(Clearinghouse ch, MarginAttestation memory att) internal view returns (bytes32) {
        return _digest(ch, keccak256(abi.encode(AttestationHashing.MARGIN_ATTESTATION_TYPEHASH, att)));
    }

    function orderDigest(Clearinghouse ch, Order memory order) internal view returns (bytes32) {
        return _digest(ch, keccak256(abi.encode(AttestationHashing.ORDER_TYPEHASH, order)));
    }

    function settlementPriceDigest(Clearinghouse ch, SettlementPrice memory price) internal view returns (bytes32) {
        return _digest(ch, keccak256(abi.encode(AttestationHashing.SETTLEMENT_PRICE_TYPEHASH, price)));
    }

    function commitmentDigest(Clearinghouse ch, SnapshotCommitment memory c) internal view returns (bytes32) {
        return _digest(ch, keccak256(abi.encode(AttestationHashing.SNAPSHOT_COMMITMENT_TYPEHASH, c)));
    }

    function nextStateHash(Clearinghouse ch, address account, uint256 instrumentId, int256 newSize)
        internal
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(ch.stateHashOf(account), instrumentId, newSize));
    }

    /// @dev The StandardMerkleTree leaf of an attestation.
    function leaf(MarginAttestation memory att) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(att))));
    }

    function _digest(Clearinghouse ch, bytes32 structHash) private view returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(ch.domainSeparator(), structHash);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MarginAttestation, SnapshotCommitment} from "./IClearinghouse.sol";

/// @title ISnapshotCommitments
/// @notice Stores the roots of the oracle's whole-book commitments. A posted root lets anyone pass
///         one account's MarginAttestation with a Merkle proof instead of threshold signatures, so
///         a crash costs one signature check per snapshot instead of one per account.
/// @dev The clearinghouse accepts a proof only through a registry that is one of its engines, so
///      a registry is added or removed through the clearinghouse's timelock. Proof format (the
///      `sigs` argument of any attestation check): the registry's address as a 32-byte word, the
///      root, then the sibling hashes from the leaf up. Leaf and tree layout: IClearinghouse's
///      `SnapshotCommitment`. A root counts only while the signer set that signed it is in
///      office, and only for leaves carrying its own snapshot time, deadline and params version.
interface ISnapshotCommitments {
    /// @notice Thrown when `verifyLeaf` is called by anyone but the clearinghouse.
    error NotClearinghouse();
    /// @notice Thrown when a proof does not lead from the attestation's leaf to the root it names.
    error InvalidProof();
    /// @notice Thrown when a proof's root was never posted here.
    error RootNotPosted(bytes32 root);
    /// @notice Thrown when a root was signed by a signer set that has since been replaced.
    error RootOfFormerSigners(bytes32 root);
    /// @notice Thrown when a leaf's snapshot time, deadline or params version is not its root's.
    error LeafNotOfCommitment(bytes32 root);

    /// @notice Emitted when a root is stored (again only after a signer-set change).
    event CommitmentPosted(
        bytes32 indexed root,
        address indexed poster,
        uint64 snapshotTime,
        uint64 deadline,
        uint32 paramsVersion,
        uint32 accounts
    );

    /// @notice Verifies the oracle's threshold signatures over `commitment` (and the freshness of
    ///         its snapshot, which raises the clearinghouse's freshness floor like a heartbeat)
    ///         and stores its root with the current signer epoch. Anyone may call; posting a root
    ///         already stored by the current signer set is a no-op, so a poster front-run by
    ///         another loses nothing but the call's base cost.
    function postCommitment(SnapshotCommitment calldata commitment, bytes calldata sigs) external;

    /// @notice For the clearinghouse: reverts unless `proof` (root, then siblings from the leaf
    ///         up) proves `att` against a root posted by the signer set in office, and `att`
    ///         carries that commitment's snapshot time, deadline and params version.
    function verifyLeaf(MarginAttestation calldata att, bytes calldata proof) external view;

    /// @notice Whether `root` is stored and was signed by the signer set in office.
    function rootPosted(bytes32 root) external view returns (bool);

    /// @notice The EIP-712 struct hash the oracle signs for `commitment` (the clearinghouse's
    ///         domain applies).
    function commitmentHash(SnapshotCommitment calldata commitment) external pure returns (bytes32);
}

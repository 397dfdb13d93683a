// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IClearinghouse, MarginAttestation} from "../interfaces/IClearinghouse.sol";
import {ISnapshotCommitments} from "../interfaces/ISnapshotCommitments.sol";
import {AttestationHashing} from "../libraries/AttestationHashing.sol";
import {RiskGovernance} from "./RiskGovernance.sol";

/// @title AttestationVerifier
/// @notice Checks the oracle's threshold signatures and the freshness of what they sign.
/// @dev Signatures are 65-byte (r, s, v) records concatenated in ascending signer order, which
///      makes "distinct signers" a single comparison per signature. OpenZeppelin's ECDSA rejects
///      high-s (malleable) signatures and invalid v. The EIP-712 domain binds every digest to
///      this chain id and this contract's address, and is recomputed if the chain id changes.
abstract contract AttestationVerifier is RiskGovernance, EIP712 {
    uint256 internal constant SIGNATURE_LENGTH = 65;

    /// @notice The newest market snapshot time accepted so far; older snapshots are accepted
    ///         only within `snapshotTolerance` of it, so nobody can pick a favourable old price.
    uint64 public latestSnapshotTime;

    constructor() EIP712("DPRE Clearinghouse", "1") {}

    /// @notice The EIP-712 domain separator of this deployment.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ============================================================================ Internal

    /// @dev Reverts unless `sigs` holds at least `signerThreshold` valid signatures of `digest`
    ///      by distinct signers of the current set.
    function _verifySignatures(bytes32 digest, bytes calldata sigs) internal view {
        uint256 len = sigs.length;
        if (len % SIGNATURE_LENGTH != 0) revert IClearinghouse.MalformedSignatures();
        uint256 count = len / SIGNATURE_LENGTH;
        uint256 threshold = signerThreshold;
        if (count < threshold) revert IClearinghouse.NotEnoughSignatures(count, threshold);
        uint64 epoch = signerEpoch;
        address last;
        for (uint256 i; i < count; ++i) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            assembly ("memory-safe") {
                let p := add(sigs.offset, mul(i, SIGNATURE_LENGTH))
                r := calldataload(p)
                s := calldataload(add(p, 32))
                v := byte(0, calldataload(add(p, 64)))
            }
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
            if (err != ECDSA.RecoverError.NoError) revert IClearinghouse.InvalidSignature();
            if (signer <= last) revert IClearinghouse.SignersNotAscending();
            if (_signerEpochOf[signer] != epoch) revert IClearinghouse.UnauthorizedSigner(signer);
            last = signer;
        }
    }

    /// @dev Freshness: not expired, not from the future, not older than `maxSnapshotAge`, and not
    ///      older than the newest accepted snapshot minus `snapshotTolerance`. Records the newest.
    function _checkFresh(uint64 snapshotTime, uint64 deadline) internal {
        if (deadline < block.timestamp) revert IClearinghouse.AttestationExpired(deadline);
        if (snapshotTime > block.timestamp) revert IClearinghouse.SnapshotInFuture(snapshotTime);
        uint256 latest = latestSnapshotTime;
        uint256 maxAge = _config.maxSnapshotAge;
        uint256 tolerance = _config.snapshotTolerance;
        uint256 oldest = block.timestamp > maxAge ? block.timestamp - maxAge : 0;
        if (latest > tolerance && latest - tolerance > oldest) oldest = latest - tolerance;
        if (snapshotTime < oldest) revert IClearinghouse.SnapshotTooOld(snapshotTime, oldest);
        if (snapshotTime > latest) latestSnapshotTime = snapshotTime;
    }

    /// @dev Full check of a margin attestation against the account's current state commitment.
    function _verifyMargin(MarginAttestation calldata att, bytes calldata sigs, address account, bytes32 stateHash)
        internal
    {
        if (att.account != account) revert IClearinghouse.WrongAccount(account, att.account);
        if (att.stateHash != stateHash) revert IClearinghouse.WrongPortfolioState(stateHash, att.stateHash);
        if (!acceptsParamsVersion(att.paramsVersion)) {
            revert IClearinghouse.WrongParamsVersion(_config.paramsVersion, att.paramsVersion);
        }
        _checkFresh(att.snapshotTime, att.deadline);
        if (sigs.length % SIGNATURE_LENGTH == 0) {
            _verifySignatures(_hashTypedDataV4(AttestationHashing.hash(att)), sigs);
        } else {
            _verifyLeaf(att, sigs);
        }
    }

    /// @dev Reverts unless `proof` (registry, root, then siblings from the leaf up) proves `att`
    ///      through a registry that is one of the engines (ISnapshotCommitments.verifyLeaf).
    function _verifyLeaf(MarginAttestation calldata att, bytes calldata proof) internal view {
        uint256 len = proof.length;
        if (len % 32 != 0 || len < 64) revert IClearinghouse.MalformedProof();
        address registry = address(uint160(uint256(bytes32(proof[:32]))));
        if (!isEngine[registry]) revert IClearinghouse.UnknownRegistry(registry);
        ISnapshotCommitments(registry).verifyLeaf(att, proof[32:]);
    }
}

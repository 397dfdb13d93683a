// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice Builds Merkle roots and proofs the way OpenZeppelin's MerkleProof verifies them:
///         each parent is keccak256 of its two children in ascending order; an odd node out
///         moves up a level unchanged. The off-chain builder (offchain/attest/merkle.py) matches.
library MerkleBuilder {
    function leaf(uint256 instrumentId, uint256 rank, address account, bytes32 stateHash, int256 value)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(instrumentId, rank, account, stateHash, value))));
    }

    function root(bytes32[] memory level) internal pure returns (bytes32) {
        require(level.length > 0, "empty tree");
        while (level.length > 1) level = _up(level);
        return level[0];
    }

    function proof(bytes32[] memory level, uint256 index) internal pure returns (bytes32[] memory out) {
        bytes32[] memory tmp = new bytes32[](64);
        uint256 n;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) tmp[n++] = level[sibling];
            level = _up(level);
            index >>= 1;
        }
        out = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = tmp[i];
        }
    }

    function _up(bytes32[] memory level) private pure returns (bytes32[] memory next) {
        next = new bytes32[]((level.length + 1) / 2);
        for (uint256 i; i < next.length; ++i) {
            if (2 * i + 1 < level.length) {
                (bytes32 a, bytes32 b) = (level[2 * i], level[2 * i + 1]);
                next[i] = a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
            } else {
                next[i] = level[2 * i];
            }
        }
    }
}

"""Merkle trees as OpenZeppelin's MerkleProof verifies them: parents hash their two children in
ascending order, an odd node out moves up unchanged; leaves are double-hashed."""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import keccak


def adl_leaf(instrument_id: int, rank: int, account: str) -> bytes:
    """keccak256(keccak256(abi.encode(instrumentId, rank, account))) — LiquidationEngine's leaf."""
    return keccak(keccak(abi_encode(["uint256", "uint256", "address"], [instrument_id, rank, account])))


def _parent(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def _up(level: list[bytes]) -> list[bytes]:
    return [_parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = list(leaves)
    while len(level) > 1:
        level = _up(level)
    return level[0]


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    level, proof = list(leaves), []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _up(level)
        index >>= 1
    return proof


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    node = leaf
    for p in proof:
        node = _parent(node, p)
    return node == root

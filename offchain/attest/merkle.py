"""Merkle trees as OpenZeppelin's MerkleProof verifies them: parents hash their two children in
ascending order, an odd node out moves up unchanged; leaves are double-hashed."""

from __future__ import annotations

from eth_hash.auto import keccak

_MOD = 1 << 256


def _word(n: int) -> bytes:
    """A 32-byte ABI word: uint256, or int256 in two's complement."""
    if not -(1 << 255) <= n < _MOD:
        raise ValueError(f"{n} does not fit in 256 bits")
    return (n % _MOD).to_bytes(32, "big")


def adl_leaf(instrument_id: int, rank: int, account: str, state_hash: bytes, value: int) -> bytes:
    """keccak256(keccak256(abi.encode(instrumentId, rank, account, stateHash, value))) — the
    LiquidationEngine's queue leaf: the counterparty at `rank`, its state hash at the plan's block
    and its attested portfolio value (WAD) at the plan's snapshot, which caps its haircut share."""
    if instrument_id < 0 or rank < 0 or value >= 1 << 255:
        raise ValueError("instrument id and rank are uint256, value is int256")
    address = bytes.fromhex(account.removeprefix("0x"))
    if len(address) != 20 or len(state_hash) != 32:
        raise ValueError("an address is 20 bytes and a state hash 32")
    encoded = _word(instrument_id) + _word(rank) + bytes(12) + address + state_hash + _word(value)
    return keccak(keccak(encoded))


def _parent(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def _up(level: list[bytes]) -> list[bytes]:
    return [_parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]


class MerkleTree:
    """Every level of a tree, built once: its root and any leaf's proof without rehashing."""

    def __init__(self, leaves: list[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.levels = [list(leaves)]
        while len(self.levels[-1]) > 1:
            self.levels.append(_up(self.levels[-1]))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        out = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index >>= 1
        return out


def merkle_root(leaves: list[bytes]) -> bytes:
    return MerkleTree(leaves).root


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    return MerkleTree(leaves).proof(index)


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    node = leaf
    for p in proof:
        node = _parent(node, p)
    return node == root

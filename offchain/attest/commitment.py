"""Whole-book snapshot commitments: one root over every account's MarginAttestation.

Tree layout: OpenZeppelin's StandardMerkleTree (the `@openzeppelin/merkle-tree` npm package), so
anyone can rebuild a root from public data with a standard tool:
- leaf = keccak256(keccak256(abi.encode(account, stateHash, value, initialMargin,
  maintenanceMargin, snapshotTime, deadline, paramsVersion))), the types of MarginAttestation;
- leaves sorted by hash, placed at the end of an array of 2n − 1 nodes in reverse order, each
  parent i = keccak256 of its children 2i + 1 and 2i + 2 in ascending order, the root at 0;
- a proof is the siblings from the leaf up.
What the contract takes in place of signatures (`sigs`): the registry's address as a 32-byte
word, the root, then the proof — `proof_bytes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_hash.auto import keccak

from offchain.attest.messages import MarginAttestation

# abi.encode of MarginAttestation's eight static fields: the leaf encoding the npm package uses
# for StandardMerkleTree.of(values, LEAF_TYPES)
LEAF_TYPES = [m.type for m in MarginAttestation.members()]
_MOD = 1 << 256


def _word(n: int) -> bytes:
    return (n % _MOD).to_bytes(32, "big")


def leaf_of(att: MarginAttestation) -> bytes:
    """The StandardMerkleTree leaf of an attestation (AttestationHashing.leaf on-chain)."""
    if len(att.state_hash) != 32:
        raise ValueError("state_hash: 32 bytes")
    if not -(1 << 255) <= att.value < 1 << 255:
        raise ValueError("value: does not fit an int256")
    address = bytes.fromhex(att.account.removeprefix("0x"))
    encoded = (
        bytes(12)
        + address
        + att.state_hash
        + _word(att.value)
        + _word(att.initial_margin)
        + _word(att.maintenance_margin)
        + _word(att.snapshot_time)
        + _word(att.deadline)
        + _word(att.params_version)
    )
    return keccak(keccak(encoded))


def _parent(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass
class StandardTree:
    """A StandardMerkleTree over given leaf hashes: every node kept, so proofs cost no hashing."""

    leaves: Sequence[bytes]
    nodes: list[bytes] = field(init=False)
    position: dict[bytes, int] = field(init=False)

    def __post_init__(self) -> None:
        if not self.leaves:
            raise ValueError("a tree needs at least one leaf")
        ordered = sorted(self.leaves)
        n = len(ordered)
        nodes = [b""] * (2 * n - 1)
        for i, leaf in enumerate(ordered):
            nodes[len(nodes) - 1 - i] = leaf
        for i in range(len(nodes) - 1 - n, -1, -1):
            nodes[i] = _parent(nodes[2 * i + 1], nodes[2 * i + 2])
        self.nodes = nodes
        self.position = {leaf: len(nodes) - 1 - i for i, leaf in enumerate(ordered)}
        if len(self.position) != n:
            raise ValueError("two leaves are identical")

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def proof(self, leaf: bytes) -> list[bytes]:
        i = self.position[leaf]
        out = []
        while i > 0:
            out.append(self.nodes[i + 1 if i % 2 == 1 else i - 1])
            i = (i - 1) // 2
        return out


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    node = leaf
    for sibling in proof:
        node = _parent(node, sibling)
    return node == root


def proof_bytes(registry: str, root: bytes, proof: Sequence[bytes]) -> bytes:
    """What a contract call passes as `sigs` to use a committed attestation."""
    address = bytes.fromhex(registry.removeprefix("0x"))
    if len(address) != 20:
        raise ValueError("registry: a 20-byte address")
    return bytes(12) + address + root + b"".join(proof)


@dataclass
class BookCommitment:
    """A signer's whole-book commitment: the attestations, their tree, and where each account is."""

    attestations: dict[str, MarginAttestation]  # by checksummed account
    snapshot_time: int
    deadline: int
    params_version: int
    block: int
    tree: StandardTree = field(init=False)
    leaf_by_account: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        for account, att in self.attestations.items():
            if (att.snapshot_time, att.deadline, att.params_version) != (
                self.snapshot_time,
                self.deadline,
                self.params_version,
            ):
                raise ValueError(f"{account}: its attestation is of another snapshot, deadline or version")
        self.leaf_by_account = {a: leaf_of(att) for a, att in self.attestations.items()}
        self.tree = StandardTree(list(self.leaf_by_account.values()))

    @property
    def root(self) -> bytes:
        return self.tree.root

    def proof(self, account: str) -> list[bytes]:
        return self.tree.proof(self.leaf_by_account[account])

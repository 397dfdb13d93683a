"""Liquidating against posted whole-book commitments (README: snapshot commitments).

In a crash the victims' attestations come from one posted root instead of one threshold-signed
attestation each: the keeper asks the oracle for a commitment once, posts its root, and then
proves each victim's leaf. A leaf stays usable while the account's state hash is the one it
names and until its deadline, so one root serves every batch of a crash that leaves those
accounts untouched; only the liquidator's own attestation, which every mined batch outdates, is
asked for per batch. Fractions and bonuses are the contract's formula (offchain/attest/liquidation.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from offchain.attest.commitment import proof_bytes
from offchain.attest.messages import MarginAttestation, SnapshotCommitment, from_wire, to_wire


PROOFS_PER_REQUEST = 200  # the oracle's cap per proofs request


class Oracle(Protocol):
    def get(self, path: str) -> dict[str, Any]: ...
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class Root:
    """A commitment the keeper asked for: its signed message and whether it is on-chain yet."""

    commitment: SnapshotCommitment
    signatures: bytes
    block: int
    posted: bool = False
    proofs: dict[str, tuple[MarginAttestation, bytes]] = field(default_factory=dict)  # account → (leaf, sigs)

    @property
    def root(self) -> bytes:
        return self.commitment.root

    def usable(self, now: int, margin: int) -> bool:
        """Posted, and its leaves not within `margin` seconds of their deadline."""
        return self.posted and self.commitment.deadline > now + margin


class Commitments:
    """The newest root the keeper uses, and the proofs it fetched from it."""

    def __init__(self, registry: str, margin_seconds: int = 24) -> None:
        self.registry = registry
        self.margin = margin_seconds
        self.current: Root | None = None
        self.asked_at_block = -1

    def adopt(self, answer: dict[str, Any]) -> Root:
        """A gateway's signed commitment answer becomes the current root (not posted yet)."""
        item = answer["items"]["commitment"]
        commitment = from_wire(item)
        if not isinstance(commitment, SnapshotCommitment):
            raise ValueError("the oracle answered with another message than a commitment")
        self.current = Root(commitment, bytes.fromhex(str(item["signatures"]).removeprefix("0x")), int(answer["block"]))
        return self.current

    def usable(self, now: int) -> Root | None:
        root = self.current
        return root if root is not None and root.usable(now, self.margin) else None

    def fetch(self, oracle: Oracle, root: Root, accounts: list[str]) -> None:
        """Fetches the leaves and proofs of `accounts` not fetched yet (one request)."""
        wanted = [a for a in accounts if a not in root.proofs]
        for i in range(0, len(wanted), PROOFS_PER_REQUEST):
            chunk = ",".join(wanted[i:i + PROOFS_PER_REQUEST])
            answer = oracle.get(f"/v1/commitments/0x{root.root.hex()}/proofs?accounts={chunk}")
            for account, entry in answer.get("proofs", {}).items():
                att = from_wire(entry["attestation"])
                proof = [bytes.fromhex(str(p).removeprefix("0x")) for p in entry["proof"]]
                root.proofs[account] = (att, proof_bytes(self.registry, root.root, proof))

    @staticmethod
    def item(att: MarginAttestation, sigs: bytes) -> dict[str, Any]:
        """A proven leaf in the wire form of a signed item (its `signatures` are the proof)."""
        return {**to_wire(att), "signatures": "0x" + sigs.hex()}

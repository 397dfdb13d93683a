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

from offchain.attest.commitment import leaf_of, proof_bytes, verify
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
    """The root the keeper proves against (`current`, posted) and its successor being posted
    (`next`), with the proofs fetched from each."""

    def __init__(self, registry: str, margin_seconds: int = 24) -> None:
        self.registry = registry
        self.margin = margin_seconds
        self.current: Root | None = None
        self.next: Root | None = None
        self.asked_at_block = -1

    def ask(self, answer: dict[str, Any]) -> Root:
        """A gateway's signed commitment answer becomes the next root (not posted yet)."""
        item = answer["items"]["commitment"]
        commitment = from_wire(item)
        if not isinstance(commitment, SnapshotCommitment):
            raise ValueError("the oracle answered with another message than a commitment")
        self.next = Root(commitment, bytes.fromhex(str(item["signatures"]).removeprefix("0x")), int(answer["block"]))
        return self.next

    def promote(self, root: Root) -> None:
        """`root` is on-chain: it becomes the one proven against."""
        root.posted = True
        self.current = root
        if self.next is root:
            self.next = None

    def usable(self, now: int) -> Root | None:
        root = self.current
        return root if root is not None and root.usable(now, self.margin) else None

    def fetch(self, oracle: Oracle, root: Root, accounts: list[str]) -> None:
        """Fetches the leaves and proofs of `accounts` not fetched yet. A leaf is kept only if its
        proof leads to the root and it carries the commitment's times and version: whatever one
        signer serves, nothing unprovable reaches a transaction."""
        wanted = [a for a in accounts if a not in root.proofs]
        c = root.commitment
        for i in range(0, len(wanted), PROOFS_PER_REQUEST):
            chunk = ",".join(wanted[i : i + PROOFS_PER_REQUEST])
            answer = oracle.get(f"/v1/commitments/0x{root.root.hex()}/proofs?accounts={chunk}")
            for account, entry in (answer.get("proofs") or {}).items():
                try:
                    att = from_wire(entry["attestation"])
                    proof = [bytes.fromhex(str(p).removeprefix("0x")) for p in entry["proof"]]
                except (KeyError, TypeError, ValueError, AttributeError):
                    continue
                if (
                    not isinstance(att, MarginAttestation)
                    or att.account != account
                    or (att.snapshot_time, att.deadline, att.params_version)
                    != (c.snapshot_time, c.deadline, c.params_version)
                    or not verify(proof, root.root, leaf_of(att))
                ):
                    continue
                root.proofs[account] = (att, proof_bytes(self.registry, root.root, proof))

    @staticmethod
    def item(att: MarginAttestation, sigs: bytes) -> dict[str, Any]:
        """A proven leaf in the wire form of a signed item (its `signatures` are the proof)."""
        return {**to_wire(att), "signatures": "0x" + sigs.hex()}

"""What the keeper keeps of the proofs a signer serves: only leaves that prove against the root
and carry the commitment's times and version (offchain/keeper/commitments.py)."""

from __future__ import annotations

from typing import Any

from offchain.attest.commitment import BookCommitment, leaf_of
from offchain.attest.messages import MarginAttestation, SnapshotCommitment, to_wire
from offchain.keeper.commitments import Commitments

REGISTRY = "0x" + "5c" * 20


def _book() -> BookCommitment:
    atts = {
        f"0x{i:040x}": MarginAttestation(
            f"0x{i:040x}", bytes([i]) * 32, -i * 10**18, 5 * 10**18, 4 * 10**18, 1_000, 1_060, 2
        )
        for i in range(1, 9)
    }
    return BookCommitment(atts, 1_000, 1_060, 2, block=7)


class ServedProofs:
    """What a signer answers to GET /v1/commitments/{root}/proofs: scripted per account."""

    def __init__(self, proofs: dict[str, Any]) -> None:
        self.proofs = proofs
        self.paths: list[str] = []

    def get(self, path: str) -> dict[str, Any]:
        self.paths.append(path)
        return {"proofs": self.proofs}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("no POST expected")


def test_only_leaves_that_prove_against_the_root_are_kept() -> None:
    book = _book()
    c = Commitments(REGISTRY)
    root = c.ask(
        {
            "block": 7,
            "items": {
                "commitment": {
                    **to_wire(SnapshotCommitment(book.root, 1_000, 1_060, 2, 8)),
                    "signatures": "0x" + "00" * 130,
                }
            },
        }
    )
    accounts = list(book.attestations)
    honest = {
        a: {"attestation": to_wire(book.attestations[a]), "proof": ["0x" + p.hex() for p in book.proof(a)]}
        for a in accounts
    }
    richer = MarginAttestation(**{**book.attestations[accounts[1]].__dict__, "value": 10**24})
    later = MarginAttestation(**{**book.attestations[accounts[2]].__dict__, "deadline": 9_999})
    served = {
        accounts[0]: honest[accounts[0]],
        accounts[1]: {**honest[accounts[1]], "attestation": to_wire(richer)},  # a leaf that is not the root's
        accounts[2]: {"attestation": to_wire(later), "proof": honest[accounts[2]]["proof"]},  # other deadline
        accounts[3]: honest[accounts[4]],  # another account's proof under this name
        accounts[5]: {"attestation": "nonsense"},  # malformed
    }
    oracle = ServedProofs(served)
    c.fetch(oracle, root, accounts[:6])
    assert set(root.proofs) == {accounts[0]}
    att, sigs = root.proofs[accounts[0]]
    assert att == book.attestations[accounts[0]] and leaf_of(att) == book.leaf_by_account[accounts[0]]
    assert sigs[:32] == bytes(12) + bytes.fromhex(REGISTRY[2:]) and sigs[32:64] == book.root
    # fetched once: a second fetch asks only for what is still missing
    c.fetch(oracle, root, accounts[:2])
    assert oracle.paths[-1].endswith("accounts=" + accounts[1])
    # promotion makes it the root proven against
    c.promote(root)
    assert c.current is root and c.next is None and c.usable(1_000) is root and c.usable(1_040) is None

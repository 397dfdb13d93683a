"""The whole-book commitment tree matches OpenZeppelin's StandardMerkleTree (its npm package)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from offchain.attest.commitment import LEAF_TYPES, BookCommitment, StandardTree, leaf_of, proof_bytes, verify
from offchain.attest.messages import MarginAttestation

ROOT = Path(__file__).resolve().parents[3]

_NODE = r"""
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const tree = StandardMerkleTree.of(input.values, input.types);
const out = { root: tree.root, proofs: {}, verified: [] };
for (const [i, v] of tree.entries()) out.proofs[v[0]] = tree.getProof(i);
for (const c of input.check) out.verified.push(StandardMerkleTree.verify(c.root, input.types, c.value, c.proof));
console.log(JSON.stringify(out));
"""


def _book(n: int, seed: int) -> dict[str, MarginAttestation]:
    rng = random.Random(seed)
    out = {}
    for _ in range(n):
        account = "0x" + rng.randbytes(20).hex()
        out[account] = MarginAttestation(
            account,
            rng.randbytes(32),
            rng.randint(-(10**24), 10**24),
            rng.randint(0, 10**24),
            rng.randint(0, 10**24),
            1_800_000_000,
            1_800_000_060,
            3,
        )
    return out


def _values(att: MarginAttestation) -> list[str]:
    return [
        att.account,
        "0x" + att.state_hash.hex(),
        str(att.value),
        str(att.initial_margin),
        str(att.maintenance_margin),
        str(att.snapshot_time),
        str(att.deadline),
        str(att.params_version),
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run the npm package")
@pytest.mark.parametrize("n", [1, 2, 7, 64, 301])
def test_root_and_proofs_match_openzeppelin_standard_merkle_tree(n: int) -> None:
    book = _book(n, seed=n)
    mine = BookCommitment(book, 1_800_000_000, 1_800_000_060, 3, block=1)
    accounts = list(book)
    check = [
        {"root": "0x" + mine.root.hex(), "value": _values(book[a]), "proof": ["0x" + p.hex() for p in mine.proof(a)]}
        for a in accounts[:5]
    ]
    # a proof for another account's values must not verify
    if n > 1:
        check.append({**check[0], "value": _values(book[accounts[1]])})
    payload = {"types": LEAF_TYPES, "values": [_values(book[a]) for a in accounts], "check": check}
    done = subprocess.run(
        ["node", "-e", _NODE],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    theirs = json.loads(done.stdout)
    assert theirs["root"] == "0x" + mine.root.hex()
    for account in accounts:
        assert theirs["proofs"][account] == ["0x" + p.hex() for p in mine.proof(account)], account
    assert theirs["verified"] == [True] * min(n, 5) + ([False] if n > 1 else [])


def test_every_leaf_proves_and_nothing_else_does() -> None:
    book = _book(33, seed=7)
    c = BookCommitment(book, 1_800_000_000, 1_800_000_060, 3, block=1)
    for account, att in book.items():
        assert verify(c.proof(account), c.root, leaf_of(att))
    first, second = list(book)[:2]
    assert not verify(c.proof(first), c.root, leaf_of(book[second]))
    richer = MarginAttestation(**{**book[first].__dict__, "value": book[first].value + 1})
    assert not verify(c.proof(first), c.root, leaf_of(richer))


def test_a_leaf_of_another_snapshot_is_refused_and_identical_leaves_are_an_error() -> None:
    book = _book(3, seed=1)
    account = next(iter(book))
    book[account] = MarginAttestation(**{**book[account].__dict__, "deadline": 1_800_000_061})
    with pytest.raises(ValueError, match="another snapshot"):
        BookCommitment(book, 1_800_000_000, 1_800_000_060, 3, block=1)
    leaf = leaf_of(next(iter(_book(1, seed=2).values())))
    with pytest.raises(ValueError, match="identical"):
        StandardTree([leaf, leaf])


def test_proof_bytes_layout() -> None:
    root, sibling = b"\x11" * 32, b"\x22" * 32
    raw = proof_bytes("0x" + "ab" * 20, root, [sibling])
    assert raw == bytes(12) + b"\xab" * 20 + root + sibling
    assert len(raw) % 65 != 0  # the contract reads it as a proof, not signatures
    with pytest.raises(ValueError, match="registry"):
        proof_bytes("0x1234", root, [])

"""The ADL ranking and the Merkle trees it is committed with."""

from __future__ import annotations

import random

from offchain.attest.merkle import adl_leaf, merkle_proof, merkle_root, verify
from offchain.risk.adl import AdlCandidate, adl_score, rank_queue


def test_profitable_leveraged_accounts_rank_first() -> None:
    # same profit, more leverage ranks higher; a loss ranks below any profit
    rich_low_lev = adl_score(equity=150_000, net_deposits=100_000, gross_notional=100_000)
    rich_high_lev = adl_score(equity=150_000, net_deposits=100_000, gross_notional=600_000)
    losing = adl_score(equity=80_000, net_deposits=100_000, gross_notional=600_000)
    assert rich_high_lev > rich_low_lev > 0 > losing


def test_queue_is_opposite_side_only_and_deterministic() -> None:
    cands = [
        AdlCandidate("0x" + "0" * 39 + "1", size=-5, equity=120, net_deposits=100, gross_notional=500),
        AdlCandidate("0x" + "0" * 39 + "2", size=-5, equity=120, net_deposits=100, gross_notional=500),
        AdlCandidate("0x" + "0" * 39 + "3", size=+5, equity=500, net_deposits=100, gross_notional=900),
        AdlCandidate("0x" + "0" * 39 + "4", size=-1, equity=300, net_deposits=100, gross_notional=900),
    ]
    queue = rank_queue(cands, bankrupt_size=+10)
    assert [c.account[-1] for c in queue] == ["4", "1", "2"]  # best score first, ties by address
    assert rank_queue(list(reversed(cands)), bankrupt_size=+10) == queue


def test_merkle_proofs_verify_for_every_rank() -> None:
    rng = random.Random(3)
    for n in (1, 2, 3, 5, 8, 13):
        accounts = ["0x" + rng.randbytes(20).hex() for _ in range(n)]
        states = [rng.randbytes(32) for _ in range(n)]
        values = [rng.randint(-(10**24), 10**24) for _ in range(n)]
        leaves = [adl_leaf(7, r, a, h, v) for r, (a, h, v) in enumerate(zip(accounts, states, values))]
        root = merkle_root(leaves)
        for r in range(n):
            assert verify(merkle_proof(leaves, r), root, leaves[r])
        # a leaf at the wrong rank, or with another state hash or value, does not verify
        if n > 1:
            assert not verify(merkle_proof(leaves, 0), root, adl_leaf(7, 1, accounts[0], states[0], values[0]))
        assert not verify(merkle_proof(leaves, 0), root, adl_leaf(7, 0, accounts[0], rng.randbytes(32), values[0]))
        assert not verify(merkle_proof(leaves, 0), root, adl_leaf(7, 0, accounts[0], states[0], values[0] + 1))


def test_adl_leaf_encoding() -> None:
    """keccak256(keccak256(abi.encode(uint256, uint256, address, bytes32, int256))): a negative
    value is two's complement, as Solidity encodes int256."""
    from eth_utils import keccak

    account = "0x" + "ab" * 20
    word = lambda n: (n % 2**256).to_bytes(32, "big")  # noqa: E731
    encoded = word(5) + word(2) + bytes(12) + bytes.fromhex("ab" * 20) + b"\x11" * 32 + word(-3)
    assert adl_leaf(5, 2, account, b"\x11" * 32, -3) == keccak(keccak(encoded))

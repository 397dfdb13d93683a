"""What the keeper tests check on the chain and ask the keeper: its transactions mined clean
(no revert, no expired attestation), its nonce in step with the chain, its /health."""

from __future__ import annotations

from typing import Any


from offchain.keeper.journal import Journal
from offchain.sim.desk import trader_keys

from offchain.sim.harness import (
    Harness,
    health,
    keeper_address,
    keeper_transactions,
    liquidation_blocks,
    open_leveraged_longs,
    wait_idle,
)
from offchain.sim.http_calls import wait_for

__all__ = [
    "health",
    "keeper_address",
    "liquidation_blocks",
    "wait_idle",
    "wait_for",
]  # probes the tests import from here


def assert_mined_clean(h: Harness, since: int) -> dict[str, int]:
    """No keeper transaction reverted, none carried an attestation past its deadline; counts by
    kind (liquidate / cancel / other)."""
    engine = h.desk.client.engine
    kinds = {"liquidate": 0, "cancel": 0, "other": 0}
    for tx, receipt, block in keeper_transactions(h, since):
        assert receipt["status"] == 1, f"keeper transaction {tx['hash'].hex()} reverted"
        if tx["to"] == keeper_address(h):
            assert tx["value"] == 0
            kinds["cancel"] += 1
            continue
        if tx["to"] != engine.address:
            kinds["other"] += 1
            continue
        fn, args = engine.decode_function_input(tx["input"])
        if fn.fn_name != "liquidate":
            kinds["other"] += 1
            continue
        kinds["liquidate"] += 1
        deadlines = [r["att"]["deadline"] if isinstance(r, dict) else r[1][6] for r in args["requests"]]
        katt = args["liquidatorAtt"]
        deadlines.append(katt["deadline"] if isinstance(katt, dict) else katt[6])
        assert min(deadlines) >= block["timestamp"], "a liquidation with an expired attestation was mined"
    return kinds


def assert_nonce_in_sync(h: Harness) -> None:
    w3, me = h.desk.w3, keeper_address(h)

    def settled() -> bool:
        _, body = health(h)
        return not body.get("pending") and body.get("nonce") in (None, w3.eth.get_transaction_count(me))

    wait_for(settled, 60, "the keeper to have nothing in flight and the chain's nonce")
    assert w3.eth.get_transaction_count(me, "pending") == w3.eth.get_transaction_count(me, "latest")
    journal = Journal(h.stack.workdir / "keeper" / "journal.sqlite").entries
    assert not [k for k, v in journal.items() if v.get("status") == "in_flight"]


def open_longs(h: Harness, seed: int, n: int, deposit: float) -> list[Any]:
    traders = trader_keys(seed, n)
    maker = trader_keys(seed + 1000, 1)[0]
    open_leveraged_longs(h, traders, maker, contracts=10, deposit=deposit)
    return traders

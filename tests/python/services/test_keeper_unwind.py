"""The keeper unwinds what it liquidates, as real processes on Anvil: a market maker (the
reference adapter) quotes the keeper's slice at the mark less its spread, the keeper checks the
price against the oracle's mark and fills the order with the oracle's trade attestations, and
ends flat; a quote worse than the keeper's limit is refused and the slice kept."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account import Account

from offchain.risk.units import WAD
from offchain.sim.desk import trader_keys

from offchain.sim.harness import Harness, open_leveraged_longs
from offchain.sim.http_calls import call, wait_for
from .keeper_checks import assert_mined_clean, assert_nonce_in_sync, keeper_address, liquidation_blocks
from .test_keeper_duties import events, set_markets, start_keeper

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def _market_maker(h: Harness, spread_bps: int) -> Any:
    (mm,) = trader_keys(660, 1)
    h.desk.fund_gas([mm.address])
    h.desk.deposit(mm, 5_000_000)
    proc = h.stack.market_maker(mm.key.hex(), ["--spread-bps", str(spread_bps)]).start()
    proc.wait_healthy()
    return mm


def _mine(h: Harness, blocks: int) -> None:
    for _ in range(blocks):
        h.desk.w3.provider.make_request("evm_mine", [])
        time.sleep(0.4)


def _liquidated_by_an_unwinding_keeper(h: Harness, seed: int, spread_bps: int) -> tuple[Any, Any, int]:
    """A 10-ETH long liquidated at 2,500 by a keeper that unwinds to a market maker quoting
    `spread_bps` from the mark, with a limit of 50 bps; (the long, the market maker, first block)."""
    (x,) = trader_keys(seed, 1)
    maker = trader_keys(seed + 1, 1)[0]
    open_leveraged_longs(h, [x], maker, contracts=10, deposit=8_000)
    mm = _market_maker(h, spread_bps)
    start_keeper(h, ["--market-maker", h.stack.procs["market-maker"].url, "--unwind-max-spread-bps", "50"])
    start = h.desk.client.head()
    set_markets(h, 2_500.0, 0.8)
    wait_for(lambda: liquidation_blocks(h, start).get(x.address), 60, "the liquidation")
    _mine(h, 4)
    return x, mm, start


def test_the_keeper_trades_its_liquidated_slice_to_the_market_maker(h: Harness) -> None:
    client = h.desk.client
    perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
    x, mm, start = _liquidated_by_an_unwinding_keeper(h, 650, spread_bps=25)
    me = keeper_address(h)
    wait_for(lambda: not client.ch.functions.openInstruments(me).call(), 60, "the keeper to unwind to flat")
    assert int(client.ch.functions.positionOf(x.address, perp).call()) < 10 * WAD, "a slice was taken"
    # the market maker holds what the keeper took, bought within its spread of the mark
    fills = [e for e in events(h, "OrderFilled", start) if e.args["maker"] == mm.address]
    assert len(fills) == 1 and fills[0].args["taker"] == me
    held = int(client.ch.functions.positionOf(mm.address, perp).call())
    assert held > 0 and held == int(fills[0].args["makerSizeDelta"])
    price = int(fills[0].args["price"]) / WAD
    assert 2_500.0 * (1 - 0.0025) - 1 <= price < 2_500.0, "bought at the mark less the spread"
    status, marks = call(h.stack.procs["gateway"].url + "/v1/marks")
    assert status == 200 and abs(float(marks["marks"][str(perp)]) - 2_500.0) < 1.0
    assert_mined_clean(h, start)
    assert_nonce_in_sync(h)


def test_a_quote_beyond_the_keepers_limit_is_refused_and_the_slice_kept(h: Harness) -> None:
    client = h.desk.client
    _, mm, start = _liquidated_by_an_unwinding_keeper(h, 652, spread_bps=300)  # 3% below the mark
    wait_for(
        lambda: "more than 50 bps from the mark" in h.stack.procs["keeper"].log_path.read_text(),
        30,
        "the keeper to refuse the quote",
    )
    assert client.ch.functions.openInstruments(keeper_address(h)).call(), "the keeper keeps its slice"
    assert not [e for e in events(h, "OrderFilled", start) if e.args["maker"] == mm.address]
    assert_mined_clean(h, start)


def test_a_keeper_within_its_risk_budget_takes_one_slice_unwinds_it_then_takes_the_next(h: Harness) -> None:
    """7,000 of capital and a budget of 50%: one slice (≈2,720 of IM) fits, two do not. The keeper
    takes one, trades it away, then takes the other — rather than liquidating itself into its own
    margin limit."""
    client = h.desk.client
    traders = trader_keys(670, 2)
    maker = trader_keys(672, 1)[0]
    open_leveraged_longs(h, traders, maker, contracts=10, deposit=8_000)
    mm = _market_maker(h, spread_bps=25)
    h.desk.deposit(Account.from_key(h.stack.keeper_key), 7_000)
    h.stack.keeper(["--market-maker", h.stack.procs["market-maker"].url, "--risk-budget", "0.5"]).start().wait_healthy()
    start = client.head()
    set_markets(h, 2_500.0, 0.8)
    wait_for(lambda: len(liquidation_blocks(h, start)) == 2, 90, "both liquidations")
    me = keeper_address(h)
    wait_for(lambda: not client.ch.functions.openInstruments(me).call(), 60, "the keeper to unwind to flat")
    first, second = sorted(b[0] for b in liquidation_blocks(h, start).values())
    unwinds = sorted(e.block for e in events(h, "OrderFilled", start) if e.args["maker"] == mm.address)
    assert len(unwinds) == 2, unwinds
    assert first < unwinds[0] < second < unwinds[1], "one slice at a time, each traded away before the next"
    assert_mined_clean(h, start)

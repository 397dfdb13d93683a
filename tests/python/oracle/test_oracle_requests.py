"""The oracle's answers to liquidation, trade and heartbeat requests, the params version it signs
and the snapshot time it puts on attestations — all from its replica, no contract reads."""

from __future__ import annotations

import pytest

from offchain.attest.messages import from_wire
from offchain.chain.deploy import OnchainRiskConfig
from offchain.ops.web import status_of
from offchain.oracle.core import OracleError
from offchain.risk.instruments import Instrument
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD

from .fakes import NOW, Book, StaticSource, address, market

PERP = "ETH-PERP"


def liquidation_book(keeper_cash: float = 1_000_000.0) -> tuple[Book, dict[str, str]]:
    book = Book([Instrument.perp("ETH"), Instrument.perp("BTC")])
    who = {k: address(k) for k in ("a", "b", "keeper")}
    book.account(who["a"], cash=11_000 - 30_000, positions={PERP: 10}, deposits=11_000)  # below MM at 2,250
    book.account(who["b"], cash=7_300 - 30_000, positions={PERP: 10}, deposits=7_300)  # bankrupt at 2,250
    book.account(who["keeper"], cash=keeper_cash, positions={"BTC-PERP": 1})
    book.state.fund_balance = 800 * WAD
    return book, who


def _request(who: dict[str, str], *accounts: str) -> dict[str, object]:
    return {"accounts": [who[a] for a in accounts], "liquidator": who["keeper"]}


def test_liquidator_attestation_is_of_its_current_portfolio_with_the_bound_in_extra() -> None:
    book, who = liquidation_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    answer = oracle.attest_liquidation(_request(who, "a", "b"))
    keeper = from_wire(answer["items"]["liquidator"])
    assert keeper.state_hash == book.state.accounts[who["keeper"]].state_hash, "the current state, not a predicted one"
    fractions = answer["extra"]["fractions"]
    assert 0 < int(fractions[who["a"]]["fraction"]) < WAD
    assert fractions[who["b"]] == {
        "fraction": str(WAD),
        "bonus": "0",
        "fee": "0",
        "equity": fractions[who["b"]]["equity"],
    }
    assert int(fractions[who["b"]]["equity"]) < 0, "bankrupt: no bonus, no fee"
    bound = answer["extra"]["liquidator"]
    atts = {a: from_wire(answer["items"][who[a]]) for a in ("a", "b")}
    expected_bound = (
        keeper.initial_margin
        + (-(-atts["a"].initial_margin * int(fractions[who["a"]]["fraction"]) // WAD))
        + atts["b"].initial_margin
    )
    assert int(bound["requirement_bound"]) == expected_bound
    assert int(bound["equity_after"]) == int(bound["equity"]) + int(fractions[who["a"]]["bonus"])


def test_refuses_a_liquidator_that_would_fail_the_bound() -> None:
    book, who = liquidation_book(keeper_cash=-90_000 + 30.0)  # equity 30 with a BTC perp
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    with pytest.raises(OracleError) as refused:
        oracle.attest_liquidation(_request(who, "a"))
    assert (
        status_of(refused.value) == 409
        and "requirement bound" in str(refused.value)
        and "deposit more" in str(refused.value)
    )


def test_refuses_a_liquidator_that_would_exceed_64_positions() -> None:
    instruments = [Instrument.perp(f"X{k:02d}") for k in range(70)]
    book = Book(instruments)
    victim, keeper = address("victim"), address("keeper")
    book.account(keeper, cash=10_000_000.0, positions={f"X{k:02d}-PERP": 1 for k in range(40)})
    book.account(victim, cash=-10_000.0, positions={f"X{k:02d}-PERP": 1 for k in range(30, 70)})
    book.state.fund_balance = 10**9 * WAD
    quotes = market()
    from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface

    data = MarketData(quotes.timestamp, {f"X{k:02d}": UnderlyingMarket(100.0, VolSurface.flat(0.5)) for k in range(70)})
    oracle = book.oracle(StaticSource(data))
    with pytest.raises(OracleError) as refused:
        oracle.attest_liquidation({"accounts": [victim], "liquidator": keeper})
    assert status_of(refused.value) == 409 and "70 open positions" in str(refused.value) and "64" in str(refused.value)


def test_refuses_a_batch_whose_bankruptcies_exceed_the_fund() -> None:
    book, who = liquidation_book()
    book.state.fund_balance = 100 * WAD
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    with pytest.raises(OracleError) as refused:
        oracle.attest_liquidation(_request(who, "a", "b"))
    assert status_of(refused.value) == 409 and "beyond the insurance fund" in str(refused.value)
    assert oracle.attest_liquidation(_request(who, "a"))["items"]


def test_position_cap_from_the_replayed_config_binds_only_trades_opening_a_leg() -> None:
    names = [f"X{k}" for k in range(4)]
    book = Book([Instrument.perp(n) for n in names], config=OnchainRiskConfig(max_positions=2))
    maker, taker = address("maker"), address("taker")
    # the taker holds 3 legs (received in a liquidation): above the cap of 2
    book.account(taker, cash=1_000_000.0, positions={"X0-PERP": 1, "X1-PERP": 1, "X2-PERP": 1})
    book.account(maker, cash=1_000_000.0)
    from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface

    data = MarketData(NOW - 5, {n: UnderlyingMarket(100.0, VolSurface.flat(0.5)) for n in names})
    oracle = book.oracle(StaticSource(data))  # its client refuses any contract call

    def order(name: str, size: int) -> dict[str, object]:
        return {
            "order": {
                "maker": maker,
                "instrument_id": book.ids[name],
                "size": str(size),
                "price": str(100 * WAD),
                "nonce": 1,
                "deadline": NOW + 600,
            },
            "fill_amount": str(abs(size)),
            "taker": taker,
        }

    # adding to or reducing a leg it holds: no cap
    assert oracle.attest_trade(order("X0-PERP", -WAD))["items"]["taker"]
    assert oracle.attest_trade(order("X1-PERP", WAD))["items"]["taker"]
    # opening a fourth leg: refused, saying why
    with pytest.raises(OracleError) as refused:
        oracle.attest_trade(order("X3-PERP", -WAD))
    assert status_of(refused.value) == 409 and "cap of 2" in str(refused.value)
    # a new RiskConfigUpdated raises the cap: the replica is enough
    book.state.risk_config["maxPositions"] = 8
    book.state.version += 1  # as replaying the event does (answers are cached per state version)
    assert oracle.attest_trade(order("X3-PERP", -WAD))["items"]["taker"]


def test_snapshot_time_is_the_market_time_and_deadline_the_block_time_plus_ttl() -> None:
    book, who = liquidation_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0, timestamp=NOW - 700)), ttl_seconds=60)
    att = from_wire(oracle.attest_margin({"account": who["a"]})["items"]["margin"])
    assert att.snapshot_time == NOW - 700
    assert att.deadline == NOW + 60
    heartbeat = from_wire(oracle.attest_heartbeat({})["items"]["heartbeat"])
    assert heartbeat.snapshot_time == NOW - 700
    # no usable market at all: no heartbeat, no attestation
    empty = book.oracle(StaticSource(market(), unavailable={"ETH": "price feed stale", "BTC": "price feed stale"}))
    empty.source.market = type(market())(NOW, {}, {})
    with pytest.raises(OracleError) as refused:
        empty.attest_heartbeat({})
    assert status_of(refused.value) == 503 and "stale" in str(refused.value)


def test_signs_the_params_version_in_force_or_the_previous_one_during_its_grace() -> None:
    v1, v2 = MarginParams(), MarginParams(version=2, im_factor=1.3)
    book, who = liquidation_book()
    state = book.state
    # version 2 executed 100 s ago; the grace window of version 1 is maxSnapshotAge = 3600 s
    state.previous_params_version, state.params_version = 1, 2
    state.params_hash, state.params_changed_block, state.params_changed_at = v2.params_hash(), 90, NOW - 100
    state.risk_config["paramsVersion"] = 2

    holder = book.oracle(StaticSource(market(eth=2250.0)), params=v1, param_sets=[v2])
    att = from_wire(holder.attest_margin({"account": who["a"]})["items"]["margin"])
    assert att.params_version == 2
    assert holder.health()["params"]["mismatch"] is False

    lagging = book.oracle(StaticSource(market(eth=2250.0)), params=v1)
    old = from_wire(lagging.attest_margin({"account": who["a"]})["items"]["margin"])
    assert old.params_version == 1 and old.initial_margin < att.initial_margin
    health = lagging.health()["params"]
    assert health["mismatch"] is True and health["signing"] == 1 and "previous version 1" in health["reason"]

    # a signer holding parameters numbered 2 but not the ones whose hash is on-chain: same as lagging
    impostor = book.oracle(
        StaticSource(market(eth=2250.0)), params=v1, param_sets=[MarginParams(version=2, im_factor=1.9)]
    )
    assert from_wire(impostor.attest_margin({"account": who["a"]})["items"]["margin"]).params_version == 1

    # after the grace window the lagging signer refuses rather than sign what the contract refuses
    state.params_changed_at = NOW - 3601
    state.version += 1  # a state the replica reached by replaying events (answers are cached per version)
    with pytest.raises(OracleError) as refused:
        lagging.attest_margin({"account": who["a"]})
    assert status_of(refused.value) == 503 and "no longer accepted" in str(refused.value)


def test_answers_are_priced_outside_the_replica_lock_and_once_per_state(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import offchain.oracle.core as core

    book, who = liquidation_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    real = core.margin_numbers
    entered, release = threading.Event(), threading.Event()
    priced: list[dict[int, int]] = []

    def slow(positions: dict[int, int], *args: object, **kwargs: object) -> tuple[int, int, int]:
        priced.append(dict(positions))
        if len(priced) == 1:  # the first pricing stalls until released
            entered.set()
            release.wait(10)
        return real(positions, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "margin_numbers", slow)
    first = threading.Thread(target=oracle.attest_margin, args=({"account": who["a"]},))
    first.start()
    assert entered.wait(5)
    other: dict[str, object] = {}
    second = threading.Thread(target=lambda: other.update(oracle.attest_margin({"account": who["keeper"]})))
    second.start()
    second.join(5)
    assert not second.is_alive() and other["items"], "another account is answered while the first is being priced"
    release.set()
    first.join(5)
    count = len(priced)
    for _ in range(3):
        oracle.attest_margin({"account": who["a"]})
    assert len(priced) == count, "the same request on the same state is priced once"
    book.state.version += 1  # a new event applied: priced again
    oracle.attest_margin({"account": who["a"]})
    assert len(priced) == count + 1


def test_orders_differing_only_in_nonce_or_price_share_one_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import offchain.oracle.core as core

    book, who = liquidation_book()
    oracle = book.oracle(StaticSource(market(eth=2250.0)))
    real, priced = core.margin_numbers, []

    def counted(*args: object, **kwargs: object) -> tuple[int, int, int]:
        priced.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "margin_numbers", counted)

    def trade(nonce: int, price: int, size: int) -> dict[str, object]:
        order = {
            "maker": who["keeper"],
            "instrument_id": book.ids["ETH-PERP"],
            "size": str(-size),
            "price": str(price),
            "nonce": nonce,
            "deadline": NOW + 600,
        }
        return oracle.attest_trade({"order": order, "fill_amount": str(size), "taker": who["a"]})

    first = trade(1, 2000 * WAD, WAD)
    assert len(priced) == 2  # maker and taker
    assert trade(2, 2100 * WAD, WAD) == first, "the same attestations: neither nonce nor price enters them"
    assert len(priced) == 2
    other = trade(3, 2000 * WAD, 2 * WAD)
    assert len(priced) == 4 and other["items"]["taker"] != first["items"]["taker"]

"""Feed adapter: the snapshot time is the newest reading, data older than the contract's
maxSnapshotAge is refused, and the settlement price is the round at the expiry (bisection over a
Chainlink proxy's phase-numbered rounds), the same whenever it is asked."""

from __future__ import annotations

from typing import Any

import pytest

from offchain.ops.web import status_of
from offchain.oracle.market_sources import FeedConfig, FeedMarketSource, ScenarioMarketSource, SettlementUnavailable
from offchain.risk.units import WAD, to_wad_down
from offchain.market_path import load_scenario

PHASE = 3 << 64


class _Call:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def call(self, block_identifier: Any = None) -> Any:
        return self.fn()


class FakeFeed:
    """An AggregatorV3 proxy: rounds (answer, updatedAt) numbered PHASE + 1, PHASE + 2, ..."""

    def __init__(self, rounds: list[tuple[float, int]], decimals: int = 8, round_data: bool = True) -> None:
        self.rounds = [(int(a * 10**decimals), t) for a, t in rounds]
        self.decimals, self.round_data, self.reads = decimals, round_data, 0

    def latestRoundData(self) -> _Call:  # noqa: N802
        return _Call(lambda: self._round(PHASE + len(self.rounds)))

    def getRoundData(self, round_id: int) -> _Call:  # noqa: N802
        if not self.round_data:
            return _Call(lambda: (_ for _ in ()).throw(ValueError("execution reverted")))
        return _Call(lambda: self._round(round_id))

    def _round(self, round_id: int) -> tuple[int, int, int, int, int]:
        self.reads += 1
        answer, t = self.rounds[round_id - PHASE - 1]
        return round_id, answer, t, t, round_id


class FakeW3:
    def __init__(self, feeds: dict[str, FakeFeed]) -> None:
        self.feeds = feeds
        self.eth = self

    def contract(self, address: str, abi: Any) -> Any:
        feed = self.feeds[address]

        class Functions:
            def decimals(self) -> _Call:
                return _Call(lambda: feed.decimals)

            def latestRoundData(self) -> _Call:  # noqa: N802
                return feed.latestRoundData()

            def getRoundData(self, round_id: int) -> _Call:  # noqa: N802
                return feed.getRoundData(round_id)

        class Contract:
            functions = Functions()

        return Contract()


def test_snapshot_time_is_the_newest_reading_and_stale_data_is_refused() -> None:
    w3 = FakeW3(
        {"eth": FakeFeed([(3000.0, 1_000)]), "eth-vol": FakeFeed([(0.6, 940)]), "btc": FakeFeed([(90_000.0, 990)])}
    )
    source = FeedMarketSource(w3, {"ETH": FeedConfig("eth", "eth-vol"), "BTC": FeedConfig("btc", vol=0.5)})
    snap = source.snapshot(7, 1_010, {})
    assert snap.data.timestamp == 1_000, "the ETH price reading is the newest (not the block time 1,010)"
    assert set(snap.data.underlyings) == {"ETH", "BTC"}
    # a newer reading of any feed moves the snapshot's time (so the on-chain floor can rise)
    w3.feeds["btc"].rounds.append((90_000 * 10**8, 1_005))
    assert source.snapshot(8, 1_010, {}).data.timestamp == 1_005
    # the contract's maxSnapshotAge (60 s here) binds before the feed's own max_age (3,600 s)
    snap = source.snapshot(7, 1_010, {}, max_age=60)
    assert set(snap.data.underlyings) == {"BTC"} and snap.data.timestamp == 1_005
    assert "vol feed stale" in snap.unavailable["ETH"]


@pytest.mark.parametrize("round_data", [True, False])
def test_settlement_price_is_the_last_round_at_or_before_the_expiry(round_data: bool) -> None:
    expiry = 10_000
    rounds = [(3000.0 + k, 9_000 + 100 * k) for k in range(40)]  # rounds every 100 s across the expiry
    feed = FakeFeed(rounds, round_data=round_data)
    source = FeedMarketSource(FakeW3({"eth": feed}), {"ETH": FeedConfig("eth")})
    if not round_data:
        # without getRoundData the adapter reads the feed's AnswerUpdated events instead
        source._round_at_from_logs = lambda address, expiry_, block: (int(3010.0 * 1e8), 10_000)  # type: ignore[method-assign]
    price, at = source.settlement_price("ETH", expiry, block=123)
    assert (price, at) == (3010 * WAD, 10_000)
    if round_data:
        assert feed.reads <= 10, "bisection, not a walk over every round"
        feed.rounds += [(5000.0, 20_000 + k) for k in range(500)]  # asked much later: the same answer
        assert source.settlement_price("ETH", expiry, block=456) == (price, at)
        with pytest.raises(SettlementUnavailable):
            source.settlement_price("ETH", 8_000, block=456)  # no round at or before it
    with pytest.raises(SettlementUnavailable) as unknown:
        source.settlement_price("DOGE", expiry, block=1)
    assert status_of(unknown.value) == 400


def test_scenario_settlement_price_is_the_scenario_at_the_expiry() -> None:
    scenario = load_scenario("scenarios/smoke.json")
    source = ScenarioMarketSource(scenario, start=1_000, speed=1.0)
    expiry = 1_000 + int(scenario.duration // 2)
    price, at = source.settlement_price("ETH", expiry, block=1)
    assert at == expiry
    assert price == to_wad_down(scenario.at((expiry - 1_000) / scenario.duration)["ETH"][0])


def test_a_reading_the_jump_guard_holds_back_still_dates_the_snapshot() -> None:
    """A crash print on one feed, held back by the jump guard until confirmed, must not move the
    snapshot's time backwards: attestations or heartbeats of the newer time may already have
    raised the on-chain floor, and everything signed below it would be refused."""
    w3 = FakeW3({"eth": FakeFeed([(3000.0, 1_000)]), "btc": FakeFeed([(90_000.0, 990)])})
    source = FeedMarketSource(w3, {"ETH": FeedConfig("eth", vol=0.6), "BTC": FeedConfig("btc", vol=0.5)})
    assert source.snapshot(7, 1_010, {}).data.timestamp == 1_000
    w3.feeds["btc"].rounds.append((45_000 * 10**8, 1_120))  # −50%: held back, unconfirmed
    snap = source.snapshot(8, 1_125, {})
    assert "BTC" in snap.unavailable and set(snap.data.underlyings) == {"ETH"}
    assert snap.data.timestamp == 1_120, "the held-back reading still dates the snapshot"

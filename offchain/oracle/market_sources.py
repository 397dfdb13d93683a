"""Where the oracle's market data comes from. An adapter turns a source into MarketData; a guard
stops attestations for an underlying whose data is stale or implausible rather than sign nonsense.

- FeedMarketSource: Chainlink-style on-chain feeds (AggregatorV3 `latestRoundData`), one for the
  spot and optionally one for the ATM volatility, read at a given block. Usable on any EVM chain
  where such feeds exist; locally, DevPriceFeed contracts stand in for them.
- ScenarioMarketSource: a scenario file replayed against a clock, for local runs and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from offchain.risk.instruments import Instrument
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.scenario import Scenario

AGGREGATOR_ABI = [
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8", "name": ""}]},
    {"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
     "outputs": [{"type": "uint80", "name": "roundId"}, {"type": "int256", "name": "answer"},
                 {"type": "uint256", "name": "startedAt"}, {"type": "uint256", "name": "updatedAt"},
                 {"type": "uint80", "name": "answeredInRound"}]},
]


class MarketUnavailable(Exception):
    """No trustworthy data for an underlying: the oracle refuses to attest what depends on it."""

    def __init__(self, underlying: str, reason: str) -> None:
        super().__init__(f"{underlying}: {reason}")
        self.underlying = underlying
        self.reason = reason


@dataclass
class MarketSnapshot:
    """The underlyings with trustworthy data, and why the others have none."""

    data: MarketData
    unavailable: dict[str, str]


class MarketSource(Protocol):
    def snapshot(self, block: int, timestamp: int, instruments: dict[int, Instrument]) -> MarketSnapshot: ...

    def status(self) -> dict[str, str]: ...


def pillars_for(underlying: str, instruments: dict[int, Instrument], timestamp: int) -> tuple[int, ...]:
    expiries = sorted({i.expiry for i in instruments.values() if i.underlying == underlying and i.is_option and i.expiry > timestamp})
    return tuple(expiries) or (timestamp + 30 * 86400,)


@dataclass
class PriceGuard:
    """Refuses a price that moved more than `max_jump` from the last accepted one, until
    `confirmations` consecutive readings agree with the new level (a real move persists; a bad
    print does not)."""

    max_jump: float = 0.25
    confirmations: int = 3
    accepted: float | None = None
    pending: list[tuple[int, float]] = field(default_factory=list)  # (round, price)

    def check(self, underlying: str, price: float, round_key: int) -> float:
        """`round_key` identifies the feed round: re-reading one round confirms nothing."""
        if price <= 0:
            raise MarketUnavailable(underlying, f"non-positive price {price}")
        if self.accepted is None or abs(price / self.accepted - 1.0) <= self.max_jump:
            self.accepted, self.pending = price, []
            return price
        if self.pending and abs(price / self.pending[-1][1] - 1.0) > self.max_jump / 4:
            self.pending = []
        if not self.pending or self.pending[-1][0] != round_key:
            self.pending.append((round_key, price))
        if len(self.pending) >= self.confirmations:
            self.accepted, self.pending = price, []
            return price
        assert self.accepted is not None
        raise MarketUnavailable(
            underlying,
            f"price {price:g} moved {abs(price / self.accepted - 1):.0%} from the last accepted {self.accepted:g} "
            f"(bound {self.max_jump:.0%}); waiting for {self.confirmations - len(self.pending)} more confirming readings",
        )


@dataclass
class FeedConfig:
    price_feed: str
    vol_feed: str | None = None
    vol: float = 0.6  # ATM vol when there is no vol feed
    skew: float = 0.0
    curvature: float = 0.0
    max_age: int = 3600  # seconds a feed answer stays usable
    max_jump: float = 0.25


class FeedMarketSource:
    def __init__(self, w3: Any, feeds: dict[str, FeedConfig], correlations: dict[tuple[str, str], float] | None = None) -> None:
        self.w3 = w3
        self.feeds = feeds
        self.correlations = correlations or {}
        self.guards = {u: PriceGuard(max_jump=c.max_jump) for u, c in feeds.items()}
        self._contracts: dict[str, Any] = {}
        self._status: dict[str, str] = {u: "no reading yet" for u in feeds}

    def _read(self, address: str, block: int) -> tuple[float, int, int]:
        """(answer, updatedAt, roundId) of a feed at `block`."""
        c = self._contracts.get(address)
        if c is None:
            c = self._contracts[address] = self.w3.eth.contract(address=address, abi=AGGREGATOR_ABI)
        decimals = int(c.functions.decimals().call(block_identifier=block))
        round_id, answer, _, updated_at, _ = c.functions.latestRoundData().call(block_identifier=block)
        return int(answer) / 10**decimals, int(updated_at), int(round_id)

    def snapshot(self, block: int, timestamp: int, instruments: dict[int, Instrument]) -> MarketSnapshot:
        markets, unavailable = {}, {}
        for u, cfg in self.feeds.items():
            try:
                markets[u] = self._underlying(u, cfg, block, timestamp, instruments)
                self._status[u] = "ok"
            except MarketUnavailable as err:
                unavailable[u] = self._status[u] = err.reason
        correlations = {k: v for k, v in self.correlations.items() if k[0] in markets and k[1] in markets}
        return MarketSnapshot(MarketData(timestamp, markets, correlations), unavailable)

    def _underlying(self, u: str, cfg: FeedConfig, block: int, timestamp: int, instruments: dict[int, Instrument]) -> UnderlyingMarket:
        try:
            price, updated, round_id = self._read(cfg.price_feed, block)
        except Exception as err:  # a feed that reverts or is unreachable
            raise MarketUnavailable(u, f"price feed unreadable: {str(err)[:120]}") from None
        if timestamp - updated > cfg.max_age:
            raise MarketUnavailable(u, f"price feed stale: last update {timestamp - updated}s ago (max {cfg.max_age}s)")
        price = self.guards[u].check(u, price, round_id)
        vol = cfg.vol
        if cfg.vol_feed:
            vol, _, _ = self._read(cfg.vol_feed, block)
            if not 0.01 <= vol <= 5.0:
                raise MarketUnavailable(u, f"vol feed answer {vol:g} is implausible")
        pillars = pillars_for(u, instruments, timestamp)
        return UnderlyingMarket(price, VolSurface(pillars, tuple(vol for _ in pillars), cfg.skew, cfg.curvature))

    def status(self) -> dict[str, str]:
        return dict(self._status)


class ScenarioMarketSource:
    """Replays a scenario: `start` is the timestamp of t = 0; `speed` scenario seconds pass per
    second of the clock the snapshots are asked for."""

    def __init__(self, scenario: Scenario, start: int, speed: float = 1.0) -> None:
        self.scenario, self.start, self.speed = scenario, start, speed

    def snapshot(self, block: int, timestamp: int, instruments: dict[int, Instrument]) -> MarketSnapshot:
        fraction = (timestamp - self.start) * self.speed / self.scenario.duration
        markets = {}
        for u, (spot, vol) in self.scenario.at(fraction).items():
            base = self.scenario.underlyings[u]
            pillars = pillars_for(u, instruments, timestamp)
            markets[u] = UnderlyingMarket(spot, VolSurface(pillars, tuple(vol for _ in pillars), base.skew, base.curvature))
        return MarketSnapshot(MarketData(timestamp, markets, dict(self.scenario.correlations)), {})

    def status(self) -> dict[str, str]:
        return {u: "ok" for u in self.scenario.underlyings}

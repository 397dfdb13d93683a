"""Where the oracle's market data comes from. An adapter turns a source into MarketData; a guard
stops attestations for an underlying whose data is stale or implausible rather than sign nonsense.

- FeedMarketSource: Chainlink-style on-chain feeds (AggregatorV3 `latestRoundData`), one for the
  spot and optionally one for the ATM volatility, read at a given block. Usable on any EVM chain
  where such feeds exist; locally, DevPriceFeed contracts stand in for them.
- ScenarioMarketSource: a scenario file replayed against a clock, for local runs and tests.
- FixedMarketSource: one given MarketData whatever the block, for tests and benchmarks.

A snapshot's time is the market data's own time, not the block's: for feeds, the OLDEST
`updatedAt` of every feed read for it (price and vol, every underlying with usable data), so that
every attestation of one snapshot carries the same time. A settlement price is the feed's round
at the expiry — the last round updated at or before it — whatever the time it is asked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils import event_abi_to_log_topic

from offchain.errors import Conflict, DpreError, InvalidInput, Unavailable
from offchain.risk.instruments import Instrument
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.units import WAD, to_wad_down
from offchain.market_path import Scenario

AGGREGATOR_ABI = [
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"type": "uint8", "name": ""}],
    },
    {
        "type": "function",
        "name": "latestRoundData",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [
            {"type": "uint80", "name": "roundId"},
            {"type": "int256", "name": "answer"},
            {"type": "uint256", "name": "startedAt"},
            {"type": "uint256", "name": "updatedAt"},
            {"type": "uint80", "name": "answeredInRound"},
        ],
    },
    {
        "type": "function",
        "name": "getRoundData",
        "stateMutability": "view",
        "inputs": [{"type": "uint80", "name": "_roundId"}],
        "outputs": [
            {"type": "uint80", "name": "roundId"},
            {"type": "int256", "name": "answer"},
            {"type": "uint256", "name": "startedAt"},
            {"type": "uint256", "name": "updatedAt"},
            {"type": "uint80", "name": "answeredInRound"},
        ],
    },
    {
        "type": "event",
        "name": "AnswerUpdated",
        "anonymous": False,
        "inputs": [
            {"type": "int256", "name": "current", "indexed": True},
            {"type": "uint256", "name": "roundId", "indexed": True},
            {"type": "uint256", "name": "updatedAt", "indexed": False},
        ],
    },
]
ANSWER_UPDATED_TOPIC = event_abi_to_log_topic(AGGREGATOR_ABI[3])  # type: ignore[arg-type]  # a plain dict ABI entry


class MarketDataError(DpreError):
    """The market data asked for cannot be given."""


class MarketUnavailable(MarketDataError, Unavailable):
    """No trustworthy data for an underlying: the oracle refuses to attest what depends on it."""

    def __init__(self, underlying: str, reason: str) -> None:
        super().__init__(f"{underlying}: {reason}")
        self.underlying = underlying
        self.reason = reason


@dataclass
class MarketSnapshot:
    """The underlyings with trustworthy data, and why the others have none.

    `data.timestamp` is the snapshot time attestations carry (the market data's own time);
    `key` identifies the readings (equal keys: equal data), e.g. the feed rounds read.
    """

    data: MarketData
    unavailable: dict[str, str]
    key: tuple[Any, ...] = ()


class SettlementUnavailable(MarketDataError):
    """No settlement price can be given: the message says why, the subclass whose fault it is.
    Every subclass takes just the message, so a caller can re-raise one with more context."""


class UnknownUnderlying(SettlementUnavailable, InvalidInput):
    """The request names an underlying this source has no data for."""


class NoSettlementReading(SettlementUnavailable, Conflict):
    """The feed has no usable reading at the expiry: asking again will not change that."""


class FeedUnreadable(SettlementUnavailable, Unavailable):
    """The feed cannot be read now."""


class MarketSource(Protocol):
    def snapshot(
        self, block: int, timestamp: int, instruments: dict[int, Instrument], max_age: int | None = None
    ) -> MarketSnapshot: ...

    def settlement_price(self, underlying: str, expiry: int, block: int) -> tuple[int, int]:
        """(price in WAD, time of the reading) of `underlying` at `expiry`: the same answer for
        any block after the expiry."""
        ...

    def status(self) -> dict[str, str]: ...


def pillars_for(underlying: str, instruments: dict[int, Instrument], timestamp: int) -> tuple[int, ...]:
    expiries = sorted(
        {i.expiry for i in instruments.values() if i.underlying == underlying and i.is_option and i.expiry > timestamp}
    )
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
    def __init__(
        self,
        w3: Any,
        feeds: dict[str, FeedConfig],
        correlations: dict[tuple[str, str], float] | None = None,
        logs_from_block: int = 0,
    ) -> None:
        self.w3 = w3
        self.feeds = feeds
        self.correlations = correlations or {}
        self.logs_from_block = logs_from_block  # where to look for AnswerUpdated events (feeds without getRoundData)
        self.guards = {u: PriceGuard(max_jump=c.max_jump) for u, c in feeds.items()}
        self._contracts: dict[str, Any] = {}
        self._decimals: dict[str, int] = {}
        self._status: dict[str, str] = {u: "no reading yet" for u in feeds}

    def _contract(self, address: str) -> Any:
        c = self._contracts.get(address)
        if c is None:
            c = self._contracts[address] = self.w3.eth.contract(address=address, abi=AGGREGATOR_ABI)
        return c

    def _decimals_of(self, address: str, block: int) -> int:
        if address not in self._decimals:
            self._decimals[address] = int(self._contract(address).functions.decimals().call(block_identifier=block))
        return self._decimals[address]

    def _read_raw(self, address: str, block: int) -> tuple[int, int, int, int]:
        """(raw answer, decimals, updatedAt, roundId) of a feed's latest round at `block`."""
        decimals = self._decimals_of(address, block)
        round_id, answer, _, updated_at, _ = (
            self._contract(address).functions.latestRoundData().call(block_identifier=block)
        )
        return int(answer), decimals, int(updated_at), int(round_id)

    def _read(self, address: str, block: int) -> tuple[float, int, int]:
        """(answer, updatedAt, roundId) of a feed at `block`."""
        answer, decimals, updated_at, round_id = self._read_raw(address, block)
        return answer / 10**decimals, updated_at, round_id

    def snapshot(
        self, block: int, timestamp: int, instruments: dict[int, Instrument], max_age: int | None = None
    ) -> MarketSnapshot:
        """The feeds at `block` (of time `timestamp`). Data older than `max_age` (the contract's
        maxSnapshotAge) or the feed's own max_age is stale: no attestation could use it."""
        readings, unavailable, rounds = {}, {}, []
        seen: list[int] = []  # updatedAt of every fresh reading, trusted or held by the jump guard
        for u, cfg in self.feeds.items():
            try:
                readings[u] = self._underlying(u, cfg, block, timestamp, max_age, seen)
                rounds.append((u, readings[u][3], readings[u][4]))
                self._status[u] = "ok"
            except MarketUnavailable as err:
                unavailable[u] = self._status[u] = err.reason
        # The snapshot's time is its newest reading: the time as of which every feed's latest round
        # is the market. The oldest reading would pin every snapshot to a quiet feed's old time,
        # so a dip snapshot and the recovery after it would carry the same time and the on-chain
        # floor could not retire attestations hoarded from the dip. Each reading's own age is
        # bounded above (stale feeds are unavailable). A reading the jump guard holds back still
        # counts: the other feeds are the market as of it, and dropping it would move the time
        # backwards, below a floor that attestations or heartbeats of it may already have raised.
        snapshot_time = max(seen) if seen else timestamp
        markets = {}
        for u, (price, vol, _, _, _) in readings.items():
            cfg = self.feeds[u]
            pillars = pillars_for(u, instruments, snapshot_time)
            markets[u] = UnderlyingMarket(
                price, VolSurface(pillars, tuple(vol for _ in pillars), cfg.skew, cfg.curvature)
            )
        correlations = {k: v for k, v in self.correlations.items() if k[0] in markets and k[1] in markets}
        key = (snapshot_time, tuple(rounds), tuple(sorted(unavailable)))
        return MarketSnapshot(MarketData(snapshot_time, markets, correlations), unavailable, key)

    def _underlying(
        self, u: str, cfg: FeedConfig, block: int, timestamp: int, max_age: int | None, seen: list[int]
    ) -> tuple[float, float, int, int, int]:
        """(price, vol, newest updatedAt of its feeds, price round, vol round); each feed's own
        reading must be within the max age."""
        limit = cfg.max_age if max_age is None else min(cfg.max_age, max_age)
        try:
            price, updated, round_id = self._read(cfg.price_feed, block)
        except Exception as err:  # a feed that reverts or is unreachable
            raise MarketUnavailable(u, f"price feed unreadable: {str(err)[:120]}") from None
        if timestamp - updated > limit:
            raise MarketUnavailable(u, f"price feed stale: last update {timestamp - updated}s ago (max {limit}s)")
        seen.append(updated)
        price = self.guards[u].check(u, price, round_id)
        vol, newest, vol_round = cfg.vol, updated, 0
        if cfg.vol_feed:
            try:
                vol, vol_updated, vol_round = self._read(cfg.vol_feed, block)
            except Exception as err:
                raise MarketUnavailable(u, f"vol feed unreadable: {str(err)[:120]}") from None
            if timestamp - vol_updated > limit:
                raise MarketUnavailable(u, f"vol feed stale: last update {timestamp - vol_updated}s ago (max {limit}s)")
            seen.append(vol_updated)
            if not 0.01 <= vol <= 5.0:
                raise MarketUnavailable(u, f"vol feed answer {vol:g} is implausible")
            newest = max(newest, vol_updated)
        return price, vol, newest, round_id, vol_round

    # ------------------------------------------------------------------ settlement

    def settlement_price(self, underlying: str, expiry: int, block: int) -> tuple[int, int]:
        """The price feed's round at `expiry`: the last round with updatedAt ≤ expiry, read at
        `block` (any block after the expiry gives the same round). Found with getRoundData by
        bisection over the current phase's rounds; feeds without getRoundData
        are read from their AnswerUpdated events."""
        cfg = self.feeds.get(underlying)
        if cfg is None:
            raise UnknownUnderlying(f"no price feed configured for {underlying}")
        try:
            latest, decimals, updated, round_id = self._read_raw(cfg.price_feed, block)
        except Exception as err:
            raise FeedUnreadable(f"price feed of {underlying} unreadable: {str(err)[:120]}") from None
        if updated <= expiry:
            found: tuple[int, int] | None = (latest, updated)
        else:
            try:
                found = self._round_at(cfg.price_feed, round_id, expiry, block)
            except _NoRoundData:
                found = self._round_at_from_logs(cfg.price_feed, expiry, block)
        if found is None:
            raise NoSettlementReading(f"the price feed of {underlying} has no round at or before the expiry {expiry}")
        answer, at = found
        if answer <= 0:
            raise NoSettlementReading(f"the price feed of {underlying} answered {answer} at the expiry")
        return answer * WAD // 10**decimals, at

    def _round_at(self, address: str, latest_round: int, expiry: int, block: int) -> tuple[int, int] | None:
        """Bisection over the rounds of the latest round's phase (Chainlink proxies number rounds
        phase << 64 | n, contiguous within a phase; updatedAt grows with n)."""
        c = self._contract(address)

        def at(round_id: int) -> tuple[int, int]:
            _, answer, _, updated, _ = c.functions.getRoundData(round_id).call(block_identifier=block)
            return int(answer), int(updated)

        try:
            at(latest_round)
        except Exception:  # the feed has no getRoundData
            raise _NoRoundData() from None
        lo, hi = (latest_round >> 64 << 64) + 1, latest_round - 1  # latest_round itself is after the expiry
        best: tuple[int, int] | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            try:
                answer, updated = at(mid)
            except Exception as err:
                raise FeedUnreadable(f"price feed round {mid} unreadable: {str(err)[:120]}") from None
            if 0 < updated <= expiry:
                best, lo = (answer, updated), mid + 1
            else:
                hi = mid - 1
        return best

    def _round_at_from_logs(self, address: str, expiry: int, block: int) -> tuple[int, int] | None:
        logs = self.w3.eth.get_logs(
            {
                "address": address,
                "fromBlock": self.logs_from_block,
                "toBlock": block,
                "topics": ["0x" + ANSWER_UPDATED_TOPIC.hex()],
            }
        )
        best: tuple[int, int, int] | None = None  # (round, answer, updatedAt)
        for entry in logs:
            answer = int.from_bytes(bytes(entry["topics"][1]), "big", signed=True)
            round_id = int.from_bytes(bytes(entry["topics"][2]), "big")
            updated = int.from_bytes(bytes(entry["data"])[:32], "big")
            if updated <= expiry and (best is None or round_id > best[0]):
                best = (round_id, answer, updated)
        return None if best is None else (best[1], best[2])

    def status(self) -> dict[str, str]:
        return dict(self._status)


class _NoRoundData(Exception):
    pass


class ScenarioMarketSource:
    """Replays a scenario: `start` is the timestamp of t = 0; `speed` scenario seconds pass per
    second of the clock the snapshots are asked for. A snapshot's time is the clock's time."""

    def __init__(self, scenario: Scenario, start: int, speed: float = 1.0) -> None:
        self.scenario, self.start, self.speed = scenario, start, speed

    def _at(self, timestamp: int) -> dict[str, tuple[float, float]]:
        return self.scenario.at((timestamp - self.start) * self.speed / self.scenario.duration)

    def snapshot(
        self, block: int, timestamp: int, instruments: dict[int, Instrument], max_age: int | None = None
    ) -> MarketSnapshot:
        markets = {}
        for u, (spot, vol) in self._at(timestamp).items():
            base = self.scenario.underlyings[u]
            pillars = pillars_for(u, instruments, timestamp)
            markets[u] = UnderlyingMarket(
                spot, VolSurface(pillars, tuple(vol for _ in pillars), base.skew, base.curvature)
            )
        return MarketSnapshot(MarketData(timestamp, markets, dict(self.scenario.correlations)), {}, (timestamp,))

    def settlement_price(self, underlying: str, expiry: int, block: int) -> tuple[int, int]:
        """The scenario's price at the expiry time."""
        values = self._at(expiry)
        if underlying not in values:
            raise UnknownUnderlying(f"the scenario does not describe {underlying}")
        return to_wad_down(values[underlying][0]), expiry

    def status(self) -> dict[str, str]:
        return {u: "ok" for u in self.scenario.underlyings}


class FixedMarketSource:
    """One given market snapshot whatever the block (tests, benchmarks, what-if runs); the
    settlement price of an underlying is its spot, read at the expiry."""

    def __init__(self, market: MarketData, unavailable: dict[str, str] | None = None) -> None:
        self.market, self.unavailable = market, dict(unavailable or {})

    def snapshot(
        self, block: int, timestamp: int, instruments: dict[int, Instrument], max_age: int | None = None
    ) -> MarketSnapshot:
        spots = tuple(sorted((u, m.spot) for u, m in self.market.underlyings.items()))
        return MarketSnapshot(
            self.market, dict(self.unavailable), (self.market.timestamp, spots, tuple(sorted(self.unavailable)))
        )

    def settlement_price(self, underlying: str, expiry: int, block: int) -> tuple[int, int]:
        if underlying not in self.market.underlyings:
            raise UnknownUnderlying(f"no market data for {underlying}")
        return to_wad_down(self.market.get(underlying).spot), expiry

    def status(self) -> dict[str, str]:
        return {u: "ok" for u in self.market.underlyings} | self.unavailable

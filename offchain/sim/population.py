"""A reproducible population of traders with realistic books (same seed, same books).

Book types, drawn with fixed weights: call and put spreads, covered calls, delta-hedged
straddles, naked short puts and strangles, leveraged perpetuals long and short. Each trader
deposits its book's largest initial margin (over the order its legs are traded in) times a
cushion drawn between 1.03 and 2.5, so some books sit just above their requirement and others
far above it. A few market makers take the other side of every leg.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from offchain.risk.book import Portfolio
from offchain.risk.instruments import Instrument
from offchain.risk.margin import margins_of
from offchain.risk.market import MarketData
from offchain.risk.params import MarginParams

BOOK_TYPES: dict[str, float] = {
    "call spread": 0.10,
    "put spread": 0.08,
    "covered call": 0.10,
    "delta-hedged straddle": 0.10,
    "naked short put": 0.12,
    "naked short strangle": 0.08,
    "leveraged long perp": 0.24,
    "leveraged short perp": 0.08,
    "BTC long perp": 0.06,
    "BTC put spread": 0.04,
}


@dataclass
class TraderPlan:
    index: int
    kind: str
    legs: list[tuple[Instrument, float]]  # traded in this order; size > 0 buys
    deposit: float
    withdraw_fraction: float = 0.0  # of the excess over IM, withdrawn after trading
    book: Portfolio = field(default_factory=lambda: Portfolio({}))


@dataclass
class Universe:
    perp_eth: Instrument
    perp_btc: Instrument
    options: dict[tuple[str, int, int, str], Instrument]  # (underlying, expiry, strike, CALL|PUT)
    expiries: dict[str, list[int]]  # underlying → listed expiries, nearest first

    @classmethod
    def listed(cls, instruments: list[Instrument]) -> "Universe":
        opts = [i for i in instruments if i.is_option]
        return cls(
            perp_eth=next(i for i in instruments if i.name == "ETH-PERP"),
            perp_btc=next(i for i in instruments if i.name == "BTC-PERP"),
            options={(i.underlying, i.expiry, int(i.strike), i.kind.name): i for i in opts},
            expiries={u: sorted({i.expiry for i in opts if i.underlying == u}) for u in {i.underlying for i in opts}},
        )

    def series(self, underlying: str, expiry: int) -> tuple[dict[int, Instrument], dict[int, Instrument]]:
        """(calls, puts) of one expiry, by strike."""
        pick = {k: i for k, i in self.options.items() if k[0] == underlying and k[1] == expiry}
        return (
            {k[2]: i for k, i in pick.items() if k[3] == "CALL"},
            {k[2]: i for k, i in pick.items() if k[3] == "PUT"},
        )


def option_strikes(spot: float, wide: bool = False) -> list[int]:
    """The strikes books trade (80% … 120% of spot); `wide` adds 70% and 130% (listed, rarely traded)."""
    steps = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3) if wide else (0.8, 0.9, 1.0, 1.1, 1.2)
    return [int(round(spot * m / 50) * 50) for m in steps]


def _legs(
    kind: str, universe: Universe, rng: np.random.Generator, spot: float, delta_atm: float, btc_spot: float = 0.0
) -> list[tuple[Instrument, float]]:
    k = option_strikes(spot)
    q = float(np.round(rng.lognormal(np.log(5.0), 0.6), 2))  # contracts
    # most option books use the nearest expiry, a quarter the next one
    eth_expiries = universe.expiries.get("ETH", [])
    expiry = eth_expiries[1] if len(eth_expiries) > 1 and rng.random() < 0.25 else (eth_expiries or [0])[0]
    u = _Series(universe, *universe.series("ETH", expiry))
    if kind == "BTC put spread":
        kb = option_strikes(btc_spot)
        _, btc_puts = universe.series("BTC", universe.expiries["BTC"][0])
        qb = round(q / 15, 3)
        return [(btc_puts[kb[2]], qb), (btc_puts[kb[1]], -qb)]
    if kind == "call spread":
        return [(u.calls[k[2]], q), (u.calls[k[3]], -q)]
    if kind == "put spread":
        return [(u.puts[k[2]], q), (u.puts[k[1]], -q)]
    if kind == "covered call":
        return [(u.perp_eth, q), (u.calls[k[3]], -q)]
    if kind == "delta-hedged straddle":
        # long call + put: net delta 2·Δcall − 1, hedged with the perpetual
        return [(u.calls[k[2]], q), (u.puts[k[2]], q), (u.perp_eth, -round(q * (2 * delta_atm - 1), 3))]
    if kind == "naked short put":
        return [(u.puts[k[1]], -q)]
    if kind == "naked short strangle":
        return [(u.puts[k[1]], -q), (u.calls[k[3]], -q)]
    if kind == "leveraged long perp":
        return [(u.perp_eth, q * 2)]
    if kind == "leveraged short perp":
        return [(u.perp_eth, -q * 2)]
    if kind == "BTC long perp":
        return [(u.perp_btc, round(q / 15, 3))]
    raise ValueError(kind)


def make_population(
    n: int, seed: int, instruments: list[Instrument], market: MarketData, params: MarginParams, delta_atm: float
) -> list[TraderPlan]:
    rng = np.random.default_rng(seed)
    kinds = list(BOOK_TYPES)
    weights = np.array([BOOK_TYPES[k] for k in kinds])
    universe = Universe.listed(instruments)
    spot = market.get("ETH").spot
    btc_spot = market.get("BTC").spot
    plans = []
    for i in range(n):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        legs = [(inst, size) for inst, size in _legs(kind, universe, rng, spot, delta_atm, btc_spot) if size != 0]
        # Trading at the mark leaves equity ≈ the deposit, so the deposit must cover the largest
        # IM along the way (legs are traded one at a time), plus the taker fees.
        prefixes = [Portfolio(dict(_merge(legs[: j + 1]))) for j in range(len(legs))]
        result = margins_of(prefixes, market, params)
        fees = 0.001 * sum(
            abs(size) * market.get(inst.underlying).spot * (1.0 if not inst.is_option else 0.1) for inst, size in legs
        )
        need = float(np.max(result.im)) + fees
        cushion = float(rng.choice([rng.uniform(1.03, 1.25), rng.uniform(1.25, 2.5)], p=[0.45, 0.55]))
        plan = TraderPlan(
            i,
            kind,
            legs,
            deposit=round(max(need, 10.0) * cushion + 5.0, 2),
            withdraw_fraction=0.3 if rng.random() < 0.1 else 0.0,
            book=Portfolio(dict(_merge(legs))),
        )
        plans.append(plan)
    return plans


@dataclass
class _Series:
    """One expiry's calls and puts next to the perpetuals, as the book recipes name them."""

    universe: Universe
    calls: dict[int, Instrument]
    puts: dict[int, Instrument]

    @property
    def perp_eth(self) -> Instrument:
        return self.universe.perp_eth

    @property
    def perp_btc(self) -> Instrument:
        return self.universe.perp_btc


def _merge(legs: list[tuple[Instrument, float]]) -> dict[Instrument, float]:
    out: dict[Instrument, float] = {}
    for inst, size in legs:
        out[inst] = out.get(inst, 0.0) + size
    return out

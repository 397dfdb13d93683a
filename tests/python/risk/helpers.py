"""A shared market and random portfolios for the risk-engine tests."""

from __future__ import annotations

import numpy as np

from offchain.risk.book import Portfolio
from offchain.risk.instruments import Instrument, expiry_from_date
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface

NOW = expiry_from_date("20261121")
EXPIRIES = [expiry_from_date(d) for d in ("20261128", "20261225", "20270326")]
SPOTS = {"ETH": 3000.0, "BTC": 90000.0}


def market(eth: float = 3000.0, btc: float = 90000.0) -> MarketData:
    return MarketData(
        NOW,
        {
            "ETH": UnderlyingMarket(eth, VolSurface(tuple(EXPIRIES), (0.70, 0.65, 0.60), skew=-0.1, curvature=0.3)),
            "BTC": UnderlyingMarket(btc, VolSurface(tuple(EXPIRIES), (0.55, 0.50, 0.48), skew=-0.08, curvature=0.25)),
        },
        {("BTC", "ETH"): 0.8},
    )


def universe() -> list[Instrument]:
    out = []
    for u, s in SPOTS.items():
        out.append(Instrument.perp(u))
        for e in EXPIRIES:
            for m in (0.7, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.3):
                for call in (True, False):
                    out.append(Instrument.option(u, e, round(s * m), call))
    return out


UNIVERSE = universe()


def random_portfolio(rng: np.random.Generator, n_positions: int | None = None) -> Portfolio:
    n = int(rng.integers(1, 9)) if n_positions is None else n_positions
    picks = rng.choice(len(UNIVERSE), size=n, replace=False)
    positions = {}
    for i in picks:
        inst = UNIVERSE[int(i)]
        scale = 1.0 if inst.underlying == "ETH" else 0.05
        positions[inst] = float(np.round(rng.normal(0.0, 10.0) * scale, 4)) or 1.0
    return Portfolio(positions, cash=float(rng.uniform(0, 50_000)))


def opt(u: str, expiry_index: int, strike: float, call: bool) -> Instrument:
    return Instrument.option(u, EXPIRIES[expiry_index], strike, call)

"""The stress-scenario grid and the per-instrument valuation under it.

For each underlying: spot moves on an even grid over ±shock × {vol down, unchanged, up}, plus two
extreme moves at ±multiple × shock with vol unchanged, whose losses count at a partial weight.
Vol shocks are relative and larger for short expiries (see MarginParams). The unchanged scenario
(0% move, vol unchanged) is always on the grid, so a worst loss is never negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from offchain.risk import black76
from offchain.risk.errors import RiskError
from offchain.risk.instruments import InstrumentTable
from offchain.risk.market import MarketData
from offchain.risk.params import MarginParams

VOL_DOWN, VOL_FLAT, VOL_UP = -1, 0, 1
_MAX_DOWN_MOVE = -0.95  # a spot cannot fall by 100% or more


@dataclass(frozen=True)
class ScenarioSet:
    spot_moves: NDArray[np.float64]  # relative spot change per scenario
    vol_shock: NDArray[np.int8]  # VOL_DOWN / VOL_FLAT / VOL_UP
    weights: NDArray[np.float64]  # share of the scenario's P&L that counts (1 or extreme_weight)

    def __len__(self) -> int:
        return len(self.spot_moves)

    def label(self, s: int) -> str:
        vol = {VOL_DOWN: "vol down", VOL_FLAT: "vol unchanged", VOL_UP: "vol up"}[int(self.vol_shock[s])]
        extreme = f" (extreme, {self.weights[s]:.0%} weight)" if self.weights[s] < 1 else ""
        return f"spot {self.spot_moves[s]:+.1%}, {vol}{extreme}"


def scenario_set(params: MarginParams, underlying: str) -> ScenarioSet:
    shock = params.spot_shock(underlying)
    grid = np.linspace(-shock, shock, params.spot_points)
    grid[params.spot_points // 2] = 0.0  # exactly zero, not 1e-17
    moves = np.concatenate(
        [np.tile(grid, 3), [max(-params.extreme_multiple * shock, _MAX_DOWN_MOVE), params.extreme_multiple * shock]]
    )
    vol = np.concatenate([np.repeat([VOL_DOWN, VOL_FLAT, VOL_UP], params.spot_points), [VOL_FLAT, VOL_FLAT]]).astype(
        np.int8
    )
    weights = np.concatenate([np.ones(3 * params.spot_points), [params.extreme_weight] * 2])
    return ScenarioSet(moves, vol, weights)


def vol_shock_factors(
    params: MarginParams, years_to_expiry: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Multipliers of the current vol in the up and down scenarios, per option."""
    days = np.maximum(years_to_expiry * 365.0, 1.0)
    tau = params.vol_tau_days / days
    power = np.where(days <= params.vol_tau_days, params.vol_power_short, params.vol_power_long)
    scale = tau**power
    up = 1.0 + params.vol_up * scale
    down = np.maximum(params.vol_down_floor, 1.0 - params.vol_down * scale)
    return up, down


@dataclass(frozen=True)
class InstrumentRisk:
    """Everything the account aggregation needs, computed once per market snapshot.

    marks[i]: value of one contract; greeks are per contract. For underlying u, pnl[u] is the
    (instruments of u) × (scenarios of u) matrix of weighted P&L per contract.
    """

    table: InstrumentTable
    market: MarketData
    params: MarginParams
    spots: NDArray[np.float64]  # per instrument: its underlying's spot
    marks: NDArray[np.float64]
    vols: NDArray[np.float64]  # current vol per option (0 for perps)
    delta: NDArray[np.float64]
    gamma: NDArray[np.float64]
    vega: NDArray[np.float64]
    theta: NDArray[np.float64]
    vol_up: NDArray[np.float64]  # up-shock multiplier per instrument (1 for perps)
    vol_down: NDArray[np.float64]
    scenarios: list[ScenarioSet]  # per underlying
    pnl: list[NDArray[np.float64]]  # per underlying: rows = table.underlying_idx == u, in table order


def price_instruments(table: InstrumentTable, market: MarketData, params: MarginParams) -> InstrumentRisk:
    """Marks, Greeks and the scenario P&L matrix of every instrument (instruments × scenarios)."""
    now = market.timestamp
    n = len(table)
    t = table.time_to_expiry(now)
    expired = table.is_option & (t <= 0)
    if expired.any():
        name = table.instruments[int(np.flatnonzero(expired)[0])].name
        raise RiskError(f"option {name} has expired at the market timestamp; settle it before margining")

    spots = np.empty(n)
    rates = np.empty(n)
    vols = np.zeros(n)
    for u, name in enumerate(table.underlyings):
        m = market.get(name)
        rows = table.underlying_idx == u
        spots[rows] = m.spot
        rates[rows] = m.rate
        opt = rows & table.is_option
        if opt.any():
            forward = m.spot * np.exp(m.rate * t[opt])
            vols[opt] = m.surface.vol(table.strike[opt], table.expiry[opt], forward, now)

    marks = spots.copy()  # a perpetual is marked at the index
    delta = np.ones(n)
    gamma = np.zeros(n)
    vega = np.zeros(n)
    theta = np.zeros(n)
    up = np.ones(n)
    down = np.ones(n)
    opt = table.is_option
    if opt.any():
        g = black76.greeks(spots[opt], table.strike[opt], t[opt], vols[opt], rates[opt], table.is_call[opt])
        marks[opt], delta[opt], gamma[opt], vega[opt], theta[opt] = g.price, g.delta, g.gamma, g.vega, g.theta
        up[opt], down[opt] = vol_shock_factors(params, t[opt])

    scenarios, pnl = [], []
    for u, name in enumerate(table.underlyings):
        sc = scenario_set(params, name)
        rows = np.flatnonzero(table.underlying_idx == u)
        shocked_spot = spots[rows, None] * (1.0 + sc.spot_moves[None, :])
        values = np.broadcast_to(shocked_spot, (len(rows), len(sc))).copy()  # perps: value = spot
        o = table.is_option[rows]
        if o.any():
            r = rows[o]
            vol_mult = np.where(
                sc.vol_shock[None, :] == VOL_UP,
                up[r, None],
                np.where(sc.vol_shock[None, :] == VOL_DOWN, down[r, None], 1.0),
            )
            values[o] = black76.price(
                shocked_spot[o],
                table.strike[r, None],
                t[r, None],
                vols[r, None] * vol_mult,
                rates[r, None],
                table.is_call[r, None],
            )
        pnl.append((values - marks[rows, None]) * sc.weights[None, :])
        scenarios.append(sc)

    return InstrumentRisk(
        table=table,
        market=market,
        params=params,
        spots=spots,
        marks=marks,
        vols=vols,
        delta=delta,
        gamma=gamma,
        vega=vega,
        theta=theta,
        vol_up=up,
        vol_down=down,
        scenarios=scenarios,
        pnl=pnl,
    )

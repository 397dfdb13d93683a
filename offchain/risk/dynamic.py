"""Dynamic margin: shock sizes that follow a volatility forecast, with an anti-procyclical floor.

The forecast is RiskMetrics EWMA on daily log returns (λ = 0.94). The spot shock for an
underlying is multiplier × σ_annual × √(horizon / 365), never below the static shock of the
parameter set (the floor that stops margins collapsing in calm markets, so a calm spell does not
invite leverage that the next storm liquidates) and never above a cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from offchain.risk.errors import RiskError
from offchain.risk.params import MarginParams

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class DynamicSettings:
    decay: float = 0.94  # EWMA λ
    multiplier: float = 3.0  # standard deviations of the horizon move the shock covers
    horizon_days: float = 2.0  # time to liquidate a position in stress
    cap: float = 0.60

    def __post_init__(self) -> None:
        if not 0.5 <= self.decay < 1.0:
            raise RiskError(f"EWMA decay {self.decay} must be in [0.5, 1)")
        if not (0.5 <= self.multiplier <= 10 and 0.1 <= self.horizon_days <= 30 and 0.05 <= self.cap <= 0.9):
            raise RiskError("dynamic margin settings out of bounds")


def ewma_volatility(prices: ArrayLike, decay: float = 0.94, seed_vol: float | None = None) -> NDArray[np.float64]:
    """Annualized EWMA volatility after each daily price (the first entry is the seed).

    seed_vol (annualized) starts the recursion; by default the sample vol of the series.
    """
    p = np.asarray(prices, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2 or np.any(p <= 0):
        raise RiskError("EWMA needs at least two positive daily prices")
    r = np.diff(np.log(p))
    var = (seed_vol**2 / DAYS_PER_YEAR) if seed_vol is not None else float(np.mean(r * r))
    out = np.empty(len(p))
    out[0] = np.sqrt(var * DAYS_PER_YEAR)
    for i, ret in enumerate(r, start=1):
        var = decay * var + (1.0 - decay) * ret * ret
        out[i] = np.sqrt(var * DAYS_PER_YEAR)
    return out


def dynamic_shock(annual_vol: float, floor: float, settings: DynamicSettings = DynamicSettings()) -> float:
    raw = settings.multiplier * annual_vol * np.sqrt(settings.horizon_days / DAYS_PER_YEAR)
    return float(min(max(raw, floor), settings.cap))


def dynamic_params(
    base: MarginParams, annual_vols: dict[str, float], settings: DynamicSettings = DynamicSettings()
) -> MarginParams:
    """The parameter set with each named underlying's shock set from its vol forecast.

    The base set's shocks are the floors, so the result is never less conservative than the base.
    """
    shocks = {u: dynamic_shock(v, base.spot_shock(u), settings) for u, v in annual_vols.items()}
    return base.with_shocks(shocks)

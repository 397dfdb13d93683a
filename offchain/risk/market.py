"""Market data the engine prices with: per underlying a spot (index) price, a rate and a
volatility surface; a correlation matrix between underlyings for the joint (VaR/ES) model.

The surface is an ATM term structure (pillars of expiry → vol, interpolated linearly in total
variance σ²T, flat beyond the ends) with a quadratic smile in log-moneyness k = ln(K/F):
σ(K, T) = σ_atm(T) + skew·k + curvature·k², clipped to [MIN_VOL, MAX_VOL].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from offchain.risk.errors import RiskError
from offchain.risk.instruments import SECONDS_PER_YEAR

MIN_VOL = 0.01
MAX_VOL = 5.0


@dataclass(frozen=True)
class VolSurface:
    pillar_expiries: tuple[int, ...]  # unix seconds, ascending
    pillar_vols: tuple[float, ...]
    skew: float = 0.0
    curvature: float = 0.0

    def __post_init__(self) -> None:
        if not self.pillar_expiries or len(self.pillar_expiries) != len(self.pillar_vols):
            raise RiskError("vol surface needs at least one (expiry, vol) pillar")
        if list(self.pillar_expiries) != sorted(set(self.pillar_expiries)):
            raise RiskError("vol surface pillar expiries must be strictly ascending")
        for v in self.pillar_vols:
            if not (MIN_VOL <= v <= MAX_VOL):
                raise RiskError(f"vol {v!r} is outside [{MIN_VOL}, {MAX_VOL}] (vols are decimals: 0.65 = 65%)")
        if not (np.isfinite(self.skew) and np.isfinite(self.curvature)):
            raise RiskError("vol surface skew and curvature must be finite")

    @staticmethod
    def flat(vol: float, expiry: int = 2**40) -> "VolSurface":
        return VolSurface((expiry,), (vol,))

    def atm_vol(self, expiry: NDArray[np.int64], now: int) -> NDArray[np.float64]:
        t = np.maximum((np.asarray(expiry, dtype=np.float64) - now) / SECONDS_PER_YEAR, 1e-9)
        pillars_t = np.maximum((np.asarray(self.pillar_expiries, dtype=np.float64) - now) / SECONDS_PER_YEAR, 1e-9)
        vols = np.asarray(self.pillar_vols, dtype=np.float64)
        total_var = np.interp(t, pillars_t, vols * vols * pillars_t)
        atm = np.sqrt(total_var / t)
        # Flat vol (not flat total variance) outside the pillars.
        atm = np.where(t < pillars_t[0], vols[0], atm)
        return np.where(t > pillars_t[-1], vols[-1], atm)

    def vol(
        self, strike: NDArray[np.float64], expiry: NDArray[np.int64], forward: NDArray[np.float64], now: int
    ) -> NDArray[np.float64]:
        k = np.log(np.asarray(strike, dtype=np.float64) / forward)
        sigma = self.atm_vol(expiry, now) + self.skew * k + self.curvature * k * k
        clipped: NDArray[np.float64] = np.clip(sigma, MIN_VOL, MAX_VOL)
        return clipped


@dataclass(frozen=True)
class UnderlyingMarket:
    spot: float
    surface: VolSurface
    rate: float = 0.0

    def __post_init__(self) -> None:
        if not (self.spot > 0 and np.isfinite(self.spot)):
            raise RiskError(f"spot must be a positive number, got {self.spot!r}")
        if not (-1.0 < self.rate < 1.0):
            raise RiskError(f"rate {self.rate!r} is outside (-1, 1) (rates are decimals: 0.05 = 5%)")


@dataclass(frozen=True)
class MarketData:
    timestamp: int  # unix seconds of the snapshot
    underlyings: dict[str, UnderlyingMarket]
    correlation: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timestamp <= 0:
            raise RiskError("market timestamp must be a positive unix time")
        for (a, b), rho in self.correlation.items():
            if a not in self.underlyings or b not in self.underlyings:
                raise RiskError(f"correlation {a}/{b} names an underlying with no market data")
            if not (-1.0 <= rho <= 1.0):
                raise RiskError(f"correlation {a}/{b} = {rho!r} is outside [-1, 1]")

    def get(self, underlying: str) -> UnderlyingMarket:
        try:
            return self.underlyings[underlying]
        except KeyError:
            raise RiskError(f"no market data for underlying {underlying!r}") from None

    def correlation_matrix(self, names: list[str]) -> NDArray[np.float64]:
        """Correlation matrix in the order of `names`; pairs not given default to 0.

        Raises if the matrix is not positive semi-definite (it could not come from real returns).
        """
        n = len(names)
        corr = np.eye(n)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i < j:
                    rho = self.correlation.get((a, b), self.correlation.get((b, a), 0.0))
                    corr[i, j] = corr[j, i] = rho
        if n and np.linalg.eigvalsh(corr).min() < -1e-10:
            raise RiskError("the correlation matrix is not positive semi-definite")
        return corr

    def with_spot(self, underlying: str, spot: float) -> "MarketData":
        """A copy with one spot moved (for scenario scripts and tests)."""
        changed = dict(self.underlyings)
        old = self.get(underlying)
        changed[underlying] = UnderlyingMarket(spot=spot, surface=old.surface, rate=old.rate)
        return MarketData(self.timestamp, changed, dict(self.correlation))

"""Black-76 prices and Greeks for European options, vectorized over any broadcastable arrays.

Model: the underlying trades at spot S; the forward to expiry T (years) is F = S·e^{rT} and cash
is discounted by D = e^{-rT}. A call is worth D·(F·N(d1) − K·N(d2)), a put D·(K·N(−d2) − F·N(−d1)),
with d1 = (ln(F/K) + σ²T/2)/(σ√T), d2 = d1 − σ√T.

Greeks are with respect to the spot S (delta, gamma), the volatility σ (vega, per 1.00 of vol)
and calendar time (theta = −∂V/∂T per year, S held fixed). These are the conventions of
QuantLib's BlackCalculator with forward = S·e^{rT} and discount = e^{-rT}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

Array = NDArray[np.float64]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _pdf(x: Array) -> Array:
    pdf: Array = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return pdf


@dataclass(frozen=True)
class Greeks:
    price: Array
    delta: Array
    gamma: Array
    vega: Array
    theta: Array


def _prepare(
    spot: ArrayLike, strike: ArrayLike, expiry: ArrayLike, vol: ArrayLike, rate: ArrayLike, is_call: ArrayLike
) -> tuple[Array, ...]:
    s, k, t, v, r = (np.asarray(x, dtype=np.float64) for x in (spot, strike, expiry, vol, rate))
    c = np.asarray(is_call, dtype=bool)
    s, k, t, v, r, c = np.broadcast_arrays(s, k, t, v, r, c)
    return s, k, t, v, r, c


def _d1_d2(forward: Array, strike: Array, expiry: Array, vol: Array) -> tuple[Array, Array, Array]:
    std = vol * np.sqrt(expiry)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.log(forward / strike) / std + 0.5 * std
    return d1, d1 - std, std


def price(
    spot: ArrayLike, strike: ArrayLike, expiry: ArrayLike, vol: ArrayLike, rate: ArrayLike, is_call: ArrayLike
) -> Array:
    """Option value. expiry is in years and must be > 0; vol > 0."""
    s, k, t, v, r, c = _prepare(spot, strike, expiry, vol, rate, is_call)
    disc = np.exp(-r * t)
    fwd = s / disc
    d1, d2, _ = _d1_d2(fwd, k, t, v)
    call = disc * (fwd * ndtr(d1) - k * ndtr(d2))
    put = disc * (k * ndtr(-d2) - fwd * ndtr(-d1))
    return np.where(c, call, put)


def greeks(
    spot: ArrayLike, strike: ArrayLike, expiry: ArrayLike, vol: ArrayLike, rate: ArrayLike, is_call: ArrayLike
) -> Greeks:
    """Price and first/second-order sensitivities in one pass (shared d1, d2, N(.), n(.))."""
    s, k, t, v, r, c = _prepare(spot, strike, expiry, vol, rate, is_call)
    disc = np.exp(-r * t)
    fwd = s / disc
    d1, d2, std = _d1_d2(fwd, k, t, v)
    sign = np.where(c, 1.0, -1.0)
    n_d1 = ndtr(sign * d1)
    n_d2 = ndtr(sign * d2)
    pdf_d1 = _pdf(d1)
    value = sign * disc * (fwd * n_d1 - k * n_d2)
    # dV/dS: the discount cancels against dF/dS = 1/D.
    delta = sign * n_d1
    gamma = pdf_d1 / (s * std)
    sqrt_t = np.sqrt(t)
    vega = s * pdf_d1 * sqrt_t
    # -dV/dT with S fixed: the time-decay of volatility plus the drift of K's discounting.
    theta = -s * pdf_d1 * v / (2.0 * sqrt_t) - sign * r * k * disc * n_d2
    return Greeks(price=value, delta=delta, gamma=gamma, vega=vega, theta=theta)


def intrinsic(spot: ArrayLike, strike: ArrayLike, is_call: ArrayLike) -> Array:
    s = np.asarray(spot, dtype=np.float64)
    k = np.asarray(strike, dtype=np.float64)
    return np.where(np.asarray(is_call, dtype=bool), np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))


def implied_vol(
    target_price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    *,
    tol: float = 1e-12,
    max_iter: int = 200,
    vol_low: float = 1e-6,
    vol_high: float = 10.0,
) -> Array:
    """Volatility that reproduces target_price, vectorized.

    Safeguarded Newton: each step is kept inside a bracket that shrinks with the sign of the
    pricing error, and falls back to bisection when Newton would leave it, so it always converges
    for prices strictly between the no-arbitrage bounds. Prices outside the bounds give NaN.
    """
    p = np.asarray(target_price, dtype=np.float64)
    s, k, t, _, r, c = _prepare(spot, strike, expiry, np.ones_like(p), rate, is_call)
    p = np.broadcast_to(p, s.shape).astype(np.float64)
    disc = np.exp(-r * t)
    fwd = s / disc
    lower_bound = disc * np.where(c, np.maximum(fwd - k, 0.0), np.maximum(k - fwd, 0.0))
    upper_bound = disc * np.where(c, fwd, k)
    valid = (p > lower_bound) & (p < upper_bound)

    lo = np.full(s.shape, vol_low)
    hi = np.full(s.shape, vol_high)
    vol = np.full(s.shape, 0.5)
    for _ in range(max_iter):
        g = greeks(s, k, t, vol, r, c)
        diff = g.price - p
        done = np.abs(diff) <= tol * np.maximum(p, 1e-300)
        if np.all(done | ~valid):
            break
        hi = np.where(diff > 0, vol, hi)
        lo = np.where(diff <= 0, vol, lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = vol - diff / g.vega
        inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
        vol = np.where(done, vol, np.where(inside, newton, 0.5 * (lo + hi)))
    return np.where(valid, vol, np.nan)

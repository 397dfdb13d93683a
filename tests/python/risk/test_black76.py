"""Black-76 prices and Greeks against QuantLib's BlackCalculator, parity and implied vol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql

from offchain.risk import black76


def _random_inputs(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    spot = rng.uniform(10.0, 100_000.0, n)
    expiry = np.concatenate(
        [
            rng.uniform(1 / (365 * 24), 2 / 365, n // 4),  # one hour to two days
            rng.uniform(2 / 365, 3.0, n - n // 4),
        ]
    )
    vol = rng.uniform(0.05, 3.0, n)
    rate = rng.uniform(-0.02, 0.10, n)
    # log-moneyness from deep in to deep out of the money: up to ±4 standard deviations, with
    # strikes kept within 1/20 … 20 × forward (beyond that, K·N(d2) magnifies the last-digit
    # error of any normal CDF above 1e-9 of the price, QuantLib's included)
    moneyness = np.clip(rng.uniform(-4.0, 4.0, n) * vol * np.sqrt(expiry), -math.log(20), math.log(20))
    strike = spot * np.exp(rate * expiry) * np.exp(moneyness)
    is_call = rng.random(n) < 0.5
    return spot, strike, expiry, vol, rate, is_call


def _quantlib(s: float, k: float, t: float, v: float, r: float, call: bool) -> tuple[float, ...]:
    disc = math.exp(-r * t)
    calc = ql.BlackCalculator(
        ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, k), s / disc, v * math.sqrt(t), disc
    )
    return calc.value(), calc.delta(s), calc.gamma(s), calc.vega(t), calc.theta(s, t)


def _close(ours: float, ref: float, scale: float) -> bool:
    # 1e-9 relative; values far below the instrument's scale (a 4-sigma OTM price of 1e-12 of
    # spot) are compared at 1e-9 of that scale times 1e-6, where both libraries' last digits are noise.
    return abs(ours - ref) <= 1e-9 * max(abs(ref), 1e-6 * scale)


def test_prices_and_greeks_match_quantlib_on_random_inputs() -> None:
    spot, strike, expiry, vol, rate, is_call = _random_inputs(3000, seed=7)
    g = black76.greeks(spot, strike, expiry, vol, rate, is_call)
    bad = []
    for i in range(len(spot)):
        ref = _quantlib(spot[i], strike[i], expiry[i], vol[i], rate[i], bool(is_call[i]))
        ours = (g.price[i], g.delta[i], g.gamma[i], g.vega[i], g.theta[i])
        # each Greek's natural scale: price ~ spot, delta ~ 1, gamma ~ 1/(S σ √T), vega ~ S √T, theta ~ S σ / √T
        scales = (
            spot[i],
            1.0,
            1 / (spot[i] * vol[i] * math.sqrt(expiry[i])),
            spot[i] * math.sqrt(expiry[i]),
            spot[i] * vol[i] / math.sqrt(expiry[i]),
        )
        for name, o, r, sc in zip(("price", "delta", "gamma", "vega", "theta"), ours, ref, scales):
            if not _close(o, r, sc):
                bad.append((i, name, o, r))
    assert not bad, f"{len(bad)} mismatches, first: {bad[:3]}"


def test_price_function_equals_greeks_price() -> None:
    spot, strike, expiry, vol, rate, is_call = _random_inputs(500, seed=8)
    np.testing.assert_allclose(
        black76.price(spot, strike, expiry, vol, rate, is_call),
        black76.greeks(spot, strike, expiry, vol, rate, is_call).price,
        rtol=1e-13,
        atol=0,
    )


def test_put_call_parity() -> None:
    spot, strike, expiry, vol, rate, _ = _random_inputs(2000, seed=9)
    call = black76.price(spot, strike, expiry, vol, rate, True)
    put = black76.price(spot, strike, expiry, vol, rate, False)
    parity = spot - strike * np.exp(-rate * expiry)
    assert np.all(np.abs((call - put) - parity) <= 1e-9 * spot)


def test_deep_moneyness_limits() -> None:
    # deep ITM call is worth the discounted intrinsic; deep OTM is worth ~nothing but never < 0
    s, t, v, r = 2000.0, 0.5, 0.4, 0.0
    assert black76.price(s, 200.0, t, v, r, True) == pytest.approx(1800.0, rel=1e-12)
    deep_otm = black76.price(s, 200_000.0, t, v, r, True)
    assert 0.0 <= deep_otm < 1e-30


def test_implied_vol_round_trip() -> None:
    spot, strike, expiry, vol, rate, is_call = _random_inputs(2000, seed=10)
    g = black76.greeks(spot, strike, expiry, vol, rate, is_call)
    usable = g.vega > 1e-6 * spot  # where the price still carries information about vol
    p = g.price[usable]
    iv = black76.implied_vol(p, spot[usable], strike[usable], expiry[usable], rate[usable], is_call[usable])
    assert np.isfinite(iv).all()
    # the vol error, in price terms (error × vega), is below 1e-9 of spot
    assert np.all(np.abs(iv - vol[usable]) * g.vega[usable] <= 1e-9 * spot[usable])
    repriced = black76.price(spot[usable], strike[usable], expiry[usable], iv, rate[usable], is_call[usable])
    assert np.all(np.abs(repriced - p) <= 1e-10 * spot[usable])


def test_implied_vol_rejects_arbitrage_prices() -> None:
    iv = black76.implied_vol([-1.0, 0.0, 5000.0], 3000.0, 3000.0, 0.1, 0.0, True)
    assert np.isnan(iv).all()

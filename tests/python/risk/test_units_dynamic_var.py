"""On-chain units, dynamic shocks and the Monte Carlo VaR/ES comparison model."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from offchain.risk.book import Book, Portfolio
from offchain.risk.comparison import VarSettings, var_es
from offchain.risk.dynamic import DynamicSettings, dynamic_params, dynamic_shock, ewma_volatility
from offchain.risk.errors import RiskError
from offchain.risk.instruments import Instrument, InstrumentTable
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import price_instruments
from offchain.risk.units import WAD, to_wad_down, to_wad_up

from .helpers import UNIVERSE, market


# --- units ------------------------------------------------------------------------------------


def test_requirements_round_up_values_round_down() -> None:
    assert to_wad_up(1.0) == WAD and to_wad_down(1.0) == WAD
    x = 0.1  # not exact in binary: 0.1000000000000000055…, so the two directions differ by a quantum
    assert to_wad_up(x) == 100_000_001 * 10**9
    assert to_wad_down(x) == 10**17
    assert to_wad_down(-0.1) == -to_wad_up(0.1)  # value floors toward -inf
    assert to_wad_up(1234.5) == 1234_5 * 10**17


def test_conversion_is_deterministic_and_brackets_the_float() -> None:
    rng = np.random.default_rng(1)
    for x in rng.uniform(-1e9, 1e9, 2000):
        up, down = to_wad_up(float(x)), to_wad_down(float(x))
        exact = Decimal(float(x)) * WAD  # the float's exact value in wei
        assert down <= exact <= up
        assert up == to_wad_up(float(x)) and down == to_wad_down(float(x))
        assert 0 <= up - down <= 10**9


def test_conversion_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        to_wad_up(float("nan"))


# --- dynamic margin ---------------------------------------------------------------------------


def test_ewma_matches_the_recursion() -> None:
    prices = [100, 101, 99, 102, 98, 97]
    vols = ewma_volatility(prices, decay=0.9, seed_vol=0.5)
    var = 0.5**2 / 365
    for i, r in enumerate(np.diff(np.log(prices)), start=1):
        var = 0.9 * var + 0.1 * r * r
        assert vols[i] == pytest.approx(np.sqrt(var * 365), rel=1e-12)


def test_floor_holds_in_calm_markets_and_shocks_grow_in_storms() -> None:
    base = MarginParams()
    calm = dynamic_params(base, {"ETH": 0.20})  # 20% annual vol: raw shock 3·0.2·√(2/365) ≈ 4.4%
    assert calm.spot_shock("ETH") == base.spot_shock("ETH")
    storm = dynamic_params(base, {"ETH": 2.5})
    assert storm.spot_shock("ETH") > base.spot_shock("ETH")
    assert dynamic_shock(50.0, 0.18, DynamicSettings()) == DynamicSettings().cap
    assert calm.params_hash() == base.params_hash()
    assert storm.params_hash() != base.params_hash()


def test_ewma_rises_after_a_crash() -> None:
    calm = list(3000 * np.exp(np.cumsum(np.full(60, 0.001))))
    crash = calm + [calm[-1] * 0.6]
    vols = ewma_volatility(crash)
    assert vols[-1] > 3 * vols[-2]


def test_ewma_rejects_bad_prices() -> None:
    with pytest.raises(RiskError):
        ewma_volatility([100.0])
    with pytest.raises(RiskError):
        ewma_volatility([100.0, -1.0])


# --- VaR / ES --------------------------------------------------------------------------------


def _book(portfolios: list[Portfolio]) -> tuple[Book, object]:
    table = InstrumentTable(UNIVERSE)
    book = Book.from_portfolios(portfolios, table)
    return book, price_instruments(table, market(), MarginParams())


def test_var_of_a_perp_matches_the_lognormal_quantile() -> None:
    book, risk = _book([Portfolio({Instrument.perp("ETH"): 1.0})])
    res = var_es(book, risk, VarSettings(paths=200_000))
    eth = [i for i in UNIVERSE if i.underlying == "ETH" and i.is_option]
    sigma = float(np.mean(risk.vols[[risk.table.index[i] for i in eth]])) * np.sqrt(1 / 365)
    expected = 3000 * (1 - np.exp(-2.326348 * sigma - 0.5 * sigma**2))
    assert res.var[0] == pytest.approx(expected, rel=0.02)
    assert res.es[0] > res.var[0]


def test_var_is_reproducible_with_a_seed_and_changes_with_another() -> None:
    book, risk = _book([Portfolio({Instrument.perp("ETH"): 1.0, Instrument.perp("BTC"): -0.1})])
    a = var_es(book, risk, VarSettings(paths=5000, seed=1))
    b = var_es(book, risk, VarSettings(paths=5000, seed=1))
    c = var_es(book, risk, VarSettings(paths=5000, seed=2))
    assert a.var[0] == b.var[0] and a.es[0] == b.es[0]
    assert a.var[0] != c.var[0]


def test_correlation_diversifies_a_long_short_pair() -> None:
    # long ETH vs short BTC of equal notional: with correlation 0.8 the pair is much safer than either leg
    pair = Portfolio({Instrument.perp("ETH"): 10.0, Instrument.perp("BTC"): -1 / 3})
    legs = [Portfolio({Instrument.perp("ETH"): 10.0}), Portfolio({Instrument.perp("BTC"): -1 / 3})]
    book, risk = _book([pair, *legs])
    res = var_es(book, risk, VarSettings(paths=50_000))
    assert res.var[0] < 0.8 * (res.var[1] + res.var[2])

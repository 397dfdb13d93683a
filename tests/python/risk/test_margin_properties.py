"""Properties the enforced portfolio-margin model must have, on randomized portfolios."""

from __future__ import annotations

import numpy as np
import pytest

from offchain.risk import black76
from offchain.risk.book import Book, Portfolio
from offchain.risk.comparison import isolated_and_cross
from offchain.risk.instruments import Instrument, InstrumentTable
from offchain.risk.margin import margin_of, margins_of, portfolio_margin
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import VOL_DOWN, VOL_UP, price_instruments, vol_shock_factors

from .helpers import NOW, UNIVERSE, market, opt, random_portfolio

PARAMS = MarginParams()
MARKET = market()
TABLE = InstrumentTable(UNIVERSE)


def mm(p: Portfolio, params: MarginParams = PARAMS) -> float:
    return float(margins_of([p], MARKET, params, TABLE).mm[0])


@pytest.mark.parametrize("seed", range(40))
def test_positive_homogeneity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = random_portfolio(rng)
    for k in (0.1, 0.5, 3.0, 17.0):
        assert mm(p.scaled(k)) == pytest.approx(k * mm(p), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", range(40))
def test_subadditivity(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    p1, p2 = random_portfolio(rng), random_portfolio(rng)
    assert mm(p1.plus(p2)) <= mm(p1) + mm(p2) + 1e-9


def test_batch_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(5)
    portfolios = [random_portfolio(rng) for _ in range(60)]
    batch = margins_of(portfolios, MARKET, PARAMS, TABLE)
    for i, p in enumerate(portfolios):
        single = margin_of(p, MARKET, PARAMS)
        assert batch.mm[i] == pytest.approx(single.mm[0], rel=1e-12, abs=1e-9)
        assert batch.value[i] == pytest.approx(single.value[0], rel=1e-12, abs=1e-9)


def test_hedged_books_need_less_than_their_legs() -> None:
    call = opt("ETH", 1, 3000, True)
    perp = Instrument.perp("ETH")
    risk = price_instruments(InstrumentTable([call, perp]), MARKET, PARAMS)
    delta = float(risk.delta[0])
    long_call, short_perp = Portfolio({call: 10.0}), Portfolio({perp: -10.0 * delta})
    assert mm(long_call.plus(short_perp)) < 0.5 * (mm(long_call) + mm(short_perp))

    spread_long, spread_short = Portfolio({call: 10.0}), Portfolio({opt("ETH", 1, 3300, True): -10.0})
    assert mm(spread_long.plus(spread_short)) < mm(spread_long) + mm(spread_short)
    # a short call covered by the underlying exposure needs less than the naked short call
    covered = Portfolio({opt("ETH", 1, 3300, True): -1.0, perp: 1.0})
    assert mm(covered) < mm(Portfolio({opt("ETH", 1, 3300, True): -1.0})) + mm(Portfolio({perp: 1.0}))


@pytest.mark.parametrize("seed", range(30))
def test_long_options_never_need_more_than_their_premium(seed: int) -> None:
    rng = np.random.default_rng(2000 + seed)
    options = [i for i in UNIVERSE if i.is_option]
    picks = rng.choice(len(options), size=int(rng.integers(1, 6)), replace=False)
    p = Portfolio({options[int(i)]: float(rng.uniform(0.1, 20)) for i in picks})
    result = margins_of([p], MARKET, PARAMS, TABLE)
    assert result.mm[0] <= result.value[0] + 1e-9


def test_margin_grows_with_shock_size() -> None:
    books = [
        Portfolio({Instrument.perp("ETH"): 3.0}),
        Portfolio({opt("ETH", 1, 3000, True): -2.0, opt("ETH", 1, 3000, False): -2.0}),  # short straddle
        Portfolio({opt("BTC", 2, 81000, False): -1.0}),
        Portfolio({opt("ETH", 0, 3150, True): -5.0, Instrument.perp("ETH"): 2.0}),
    ]
    for p in books:
        margins = [mm(p, PARAMS.scaled(f)) for f in (0.5, 0.75, 1.0, 1.5, 2.0)]
        assert all(a < b for a, b in zip(margins, margins[1:])), margins


def _full_reprice_pnl(p: Portfolio, move: float, vol_shock: int, underlying: str) -> float:
    """P&L of p when `underlying` moves, repricing each position directly (no matrices)."""
    total = 0.0
    m = MARKET.get(underlying)
    for inst, q in p.positions.items():
        if inst.underlying != underlying:
            continue
        if not inst.is_option:
            total += q * m.spot * move
            continue
        t = (inst.expiry - NOW) / (365 * 86400)
        fwd = m.spot * np.exp(m.rate * t)
        sigma = float(m.surface.vol(np.array([inst.strike]), np.array([inst.expiry]), np.array([fwd]), NOW)[0])
        up, down = vol_shock_factors(PARAMS, np.array([t]))
        mult = {VOL_UP: up[0], VOL_DOWN: down[0]}.get(vol_shock, 1.0)
        call = inst.kind.name == "CALL"
        before = float(black76.price(m.spot, inst.strike, t, sigma, m.rate, call))
        after = float(black76.price(m.spot * (1 + move), inst.strike, t, sigma * mult, m.rate, call))
        total += q * (after - before)
    return total


@pytest.mark.parametrize("seed", range(15))
def test_margin_covers_every_grid_scenario(seed: int) -> None:
    rng = np.random.default_rng(3000 + seed)
    p = random_portfolio(rng)
    book = Book.from_portfolios([p], TABLE)
    risk = price_instruments(TABLE, MARKET, PARAMS)
    result = portfolio_margin(book, risk)
    for u, name in enumerate(TABLE.underlyings):
        sc = risk.scenarios[u]
        for s in range(len(sc)):
            loss = -_full_reprice_pnl(p, float(sc.spot_moves[s]), int(sc.vol_shock[s]), name) * sc.weights[s]
            assert result.scenario_loss[0, u] >= loss - 1e-7 * max(1.0, abs(loss))
    assert result.mm[0] >= result.scenario_loss[0].sum()


def test_portfolio_margin_below_isolated_and_cross_for_hedged_books() -> None:
    perp = Instrument.perp("ETH")
    hedged = [
        Portfolio({opt("ETH", 1, 3000, True): 10.0, perp: -5.0}),  # delta-hedged long call
        Portfolio({opt("ETH", 1, 3000, True): 10.0, opt("ETH", 1, 3300, True): -10.0}),  # call spread
        Portfolio({opt("ETH", 1, 3000, True): 10.0, opt("ETH", 1, 3000, False): -10.0, perp: -10.0}),  # conversion
        Portfolio({opt("ETH", 1, 3000, False): 10.0, opt("ETH", 1, 2700, False): -10.0}),  # put spread
        Portfolio({opt("ETH", 1, 2700, False): 5.0, opt("ETH", 1, 3300, True): -5.0, perp: 5.0}),  # collar
        Portfolio(
            {
                opt("ETH", 2, 3000, True): 5.0,
                opt("ETH", 2, 3000, False): 5.0,
                opt("ETH", 0, 3000, True): -5.0,
                opt("ETH", 0, 3000, False): -5.0,
            }
        ),  # calendar straddle
    ]
    book = Book.from_portfolios(hedged, TABLE)
    risk = price_instruments(TABLE, MARKET, PARAMS)
    pm = portfolio_margin(book, risk)
    comp = isolated_and_cross(book, risk)
    assert np.all(pm.im < comp.isolated_im), (pm.im, comp.isolated_im)
    assert np.all(pm.im < comp.cross_im), (pm.im, comp.cross_im)


def test_worst_loss_is_never_negative_and_empty_book_needs_nothing() -> None:
    result = margins_of([Portfolio({})], MARKET, PARAMS, TABLE)
    assert result.mm[0] == 0.0 and result.im[0] == 0.0
    rng = np.random.default_rng(9)
    batch = margins_of([random_portfolio(rng) for _ in range(50)], MARKET, PARAMS, TABLE)
    assert np.all(batch.scenario_loss >= 0)
    assert np.allclose(batch.im, PARAMS.im_factor * batch.mm)

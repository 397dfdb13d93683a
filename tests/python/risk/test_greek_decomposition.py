"""The Greek decomposition agrees with full repricing where a Taylor expansion should."""

from __future__ import annotations

import numpy as np
import pytest

from offchain.risk.book import Book
from offchain.risk.instruments import InstrumentTable
from offchain.risk.margin import greek_margin, portfolio_margin
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import VOL_FLAT, VOL_UP, price_instruments

from .helpers import UNIVERSE, market, random_portfolio

TABLE = InstrumentTable(UNIVERSE)
SMALL = MarginParams(spot_shocks={"ETH": 0.002, "BTC": 0.002}, vol_up=0.0002, vol_down=0.0002)


@pytest.mark.parametrize("seed", range(10))
def test_delta_gamma_vega_match_full_repricing_for_small_shocks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    portfolios = [random_portfolio(rng) for _ in range(20)]
    book = Book.from_portfolios(portfolios, TABLE)
    mk = market()
    risk = price_instruments(TABLE, mk, SMALL)
    g = greek_margin(book, risk)
    for u, block in enumerate(book.blocks):
        sc = risk.scenarios[u]
        full = block.q @ risk.pnl[u]  # (accounts, scenarios), weights are 1 on the main grid
        spot = risk.spots[block.columns[0]] if len(block.columns) else 0.0
        for s in range(len(sc)):
            if sc.weights[s] < 1:
                continue
            move = sc.spot_moves[s]
            if sc.vol_shock[s] == VOL_FLAT:
                # delta-gamma: the error is third order in the move
                approx = g.delta[:, u] * spot * move + 0.5 * g.gamma[:, u] * (spot * move) ** 2
                tolerance = 2e-3
            elif sc.vol_shock[s] == VOL_UP and move == 0.0:
                # vega alone: the error is second order in the vol change (volga)
                cols = block.columns
                approx = block.q @ (risk.vega[cols] * risk.vols[cols] * (risk.vol_up[cols] - 1.0))
                tolerance = 1e-2
            else:
                continue
            # relative to the gross P&L of the positions: offsetting legs must not hide an error
            gross = abs(block.q) @ np.abs(risk.pnl[u][:, s])
            scale = np.maximum(gross, 1e-6 * spot)
            assert np.all(np.abs(full[:, s] - approx) <= tolerance * scale), (s, full[:, s], approx)


def test_components_explain_a_directional_book() -> None:
    rng = np.random.default_rng(3)
    book = Book.from_portfolios([random_portfolio(rng) for _ in range(30)], TABLE)
    mk = market()
    params = MarginParams()
    risk = price_instruments(TABLE, mk, params)
    g = greek_margin(book, risk)
    pm = portfolio_margin(book, risk)
    assert np.all(g.delta_margin >= 0) and np.all(g.gamma_margin >= 0) and np.all(g.vega_margin >= 0)
    # a pure perp book's requirement is all delta: scenario loss == delta margin
    from offchain.risk.book import Portfolio
    from offchain.risk.instruments import Instrument

    perp_book = Book.from_portfolios([Portfolio({Instrument.perp("ETH"): -4.0})], TABLE)
    gp = greek_margin(perp_book, risk)
    pp = portfolio_margin(perp_book, risk)
    u = TABLE.underlyings.index("ETH")
    assert gp.delta_margin[0, u] == pytest.approx(pp.scenario_loss[0, u], rel=1e-12)
    assert gp.gamma_margin[0, u] == 0 and gp.vega_margin[0, u] == 0
    assert pm.mm.shape == (30,)

"""Portfolio margin (the model the contracts enforce) and its Greek decomposition.

Per account and underlying:
    scenario loss  = max(0, −min over scenarios of the weighted scenario P&L)
    short add-on   = short_option_addon × spot × (max(0, short calls − long calls)
                                                  + max(0, short puts − long puts))
    perp add-on    = perp_addon × spot × |net perpetual contracts|
MM = Σ over underlyings of the three (no offsets between underlyings: a crash in one does not
wait for a rally in another); IM = im_factor × MM. Every term is positively homogeneous and
subadditive, so a pro-rata slice f of a portfolio needs exactly f of its margin — the fact the
on-chain partial liquidation relies on — and merging two books never needs more than both.

Account aggregation is a sparse (accounts × instruments) × dense (instruments × scenarios)
product per underlying, done in row chunks so memory stays bounded for millions of accounts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from offchain.risk.book import Book, Portfolio
from offchain.risk.instruments import InstrumentTable, Kind
from offchain.risk.market import MarketData
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import InstrumentRisk, price_instruments

Array = NDArray[np.float64]

DEFAULT_CHUNK_ROWS = 1 << 16


@dataclass
class BookMargin:
    """Per-account results; (accounts × underlyings) arrays follow table.underlyings."""

    value: Array  # mark-to-market value of the positions
    equity: Array  # cash + value
    scenario_loss: Array  # (accounts, underlyings)
    short_option_addon: Array  # (accounts, underlyings)
    perp_addon: Array  # (accounts, underlyings)
    mm: Array
    im: Array
    worst_scenario: NDArray[np.int64] | None = None  # (accounts, underlyings) index into the ScenarioSet

    def below_mm(self) -> NDArray[np.bool_]:
        return self.equity < self.mm


@dataclass
class GreekMargin:
    """Greek exposures and the delta/gamma/vega components of the requirement, (accounts, underlyings)."""

    delta: Array  # net delta in underlying units
    gamma: Array
    vega: Array  # per 1.00 of vol
    theta: Array  # per year
    delta_margin: Array  # |Δ|·S·shock
    gamma_margin: Array  # max(0, −½·Γ·(S·shock)²)
    vega_margin: Array  # worst of the vol-up / vol-down first-order P&L, as a loss

    @property
    def total(self) -> Array:
        return self.delta_margin + self.gamma_margin + self.vega_margin


def _block_loss(
    q_block: sp.csr_matrix, pnl: Array, chunk_rows: int, want_worst: bool
) -> tuple[Array, NDArray[np.int64] | None]:
    n = q_block.shape[0]
    loss = np.empty(n)
    worst = np.empty(n, dtype=np.int64) if want_worst else None

    def run(start: int) -> None:
        stop = min(start + chunk_rows, n)
        scen = q_block[start:stop] @ pnl  # (chunk, scenarios) account P&L
        loss[start:stop] = np.maximum(-scen.min(axis=1), 0.0)
        if worst is not None:
            worst[start:stop] = scen.argmin(axis=1)

    starts = range(0, n, chunk_rows)
    if n > chunk_rows:
        # scipy's sparse products and numpy reductions release the GIL: use both cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(run, starts))
    else:
        for s in starts:
            run(s)
    return loss, worst


def portfolio_margin(
    book: Book, risk: InstrumentRisk, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, want_worst: bool = False
) -> BookMargin:
    table, params = book.table, risk.params
    n, n_u = book.n_accounts, len(table.underlyings)
    scenario_loss = np.zeros((n, n_u))
    short_addon = np.zeros((n, n_u))
    perp_addon = np.zeros((n, n_u))
    worst = np.zeros((n, n_u), dtype=np.int64) if want_worst else None

    is_call = (table.kind == Kind.CALL).astype(np.float64)
    is_put = (table.kind == Kind.PUT).astype(np.float64)
    is_perp = (table.kind == Kind.PERP).astype(np.float64)
    for u, block in enumerate(book.blocks):
        if block.q.nnz == 0:
            continue
        cols = block.columns
        loss, w = _block_loss(block.q, risk.pnl[u], chunk_rows, want_worst)
        scenario_loss[:, u] = loss
        if worst is not None and w is not None:
            worst[:, u] = w
        spot = risk.market.get(table.underlyings[u]).spot
        kinds = np.stack([is_call[cols], is_put[cols]], axis=1)
        longs = block.q_long @ kinds
        shorts = block.q_short @ kinds
        naked = np.maximum(shorts - longs, 0.0).sum(axis=1)
        short_addon[:, u] = params.short_option_addon * spot * naked
        perp_addon[:, u] = params.perp_addon * spot * np.abs(block.q @ is_perp[cols])

    value = book.q @ risk.marks
    mm = (scenario_loss + short_addon + perp_addon).sum(axis=1)
    return BookMargin(
        value=value,
        equity=book.cash + value,
        scenario_loss=scenario_loss,
        short_option_addon=short_addon,
        perp_addon=perp_addon,
        mm=mm,
        im=params.im_factor * mm,
        worst_scenario=worst,
    )


def greek_margin(book: Book, risk: InstrumentRisk) -> GreekMargin:
    table, params = book.table, risk.params
    n, n_u = book.n_accounts, len(table.underlyings)
    out = {k: np.zeros((n, n_u)) for k in ("delta", "gamma", "vega", "theta", "up", "down")}
    for u, block in enumerate(book.blocks):
        cols = block.columns
        per_contract = np.stack(
            [
                risk.delta[cols],
                risk.gamma[cols],
                risk.vega[cols],
                risk.theta[cols],
                risk.vega[cols] * risk.vols[cols] * (risk.vol_up[cols] - 1.0),
                risk.vega[cols] * risk.vols[cols] * (risk.vol_down[cols] - 1.0),
            ],
            axis=1,
        )
        agg = block.q @ per_contract
        for j, k in enumerate(("delta", "gamma", "vega", "theta", "up", "down")):
            out[k][:, u] = agg[:, j]
    spots = np.array([risk.market.get(u).spot for u in table.underlyings])
    moves = spots * np.array([params.spot_shock(u) for u in table.underlyings])
    return GreekMargin(
        delta=out["delta"],
        gamma=out["gamma"],
        vega=out["vega"],
        theta=out["theta"],
        delta_margin=np.abs(out["delta"]) * moves,
        gamma_margin=np.maximum(-0.5 * out["gamma"] * moves * moves, 0.0),
        vega_margin=np.maximum(-np.minimum(out["up"], out["down"]), 0.0),
    )


def margin_of(portfolio: Portfolio, market: MarketData, params: MarginParams) -> BookMargin:
    """Portfolio margin of one portfolio (convenience for tests, the CLI and the oracle)."""
    book = Book.from_portfolios([portfolio])
    return portfolio_margin(book, price_instruments(book.table, market, params), want_worst=True)


def margins_of(
    portfolios: list[Portfolio], market: MarketData, params: MarginParams, table: InstrumentTable | None = None
) -> BookMargin:
    book = Book.from_portfolios(portfolios, table)
    return portfolio_margin(book, price_instruments(book.table, market, params))

"""Margin models the enforced one is compared against, on the same books and market.

- Isolated: every position margined alone with the portfolio-margin scenarios (no offsets at all).
- Cross (standard rates): shared collateral, per-position rates in the style of exchanges'
  standard margin: perps IM 10% / MM 5% of notional; short options IM max(15%·S − OTM, 10%·S),
  MM 7.5%·S; long options nothing beyond their premium (already counted in equity).
- VaR / ES: Monte Carlo over jointly lognormal spot returns (correlated) with a log-vol shock
  that moves against spot, full revaluation of every position, seeded and reproducible.

All figures are requirements beyond the mark-to-market value, as for portfolio margin, so
equity = cash + value is compared with each the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from offchain.risk import black76
from offchain.risk.book import Book
from offchain.risk.instruments import Kind
from offchain.risk.scenarios import InstrumentRisk

Array = NDArray[np.float64]


@dataclass(frozen=True)
class CrossRates:
    perp_im: float = 0.10
    perp_mm: float = 0.05
    short_option_im: float = 0.15
    short_option_im_floor: float = 0.10
    short_option_mm: float = 0.075


@dataclass(frozen=True)
class VarSettings:
    confidence: float = 0.99
    horizon_days: float = 1.0
    paths: int = 20_000
    seed: int = 20200312
    vol_of_vol: float = 1.0  # annualized volatility of log-vol
    spot_vol_correlation: float = -0.5  # vol rises when spot falls


@dataclass
class Comparison:
    isolated_mm: Array
    isolated_im: Array
    cross_mm: Array
    cross_im: Array


def isolated_and_cross(book: Book, risk: InstrumentRisk, rates: CrossRates = CrossRates()) -> Comparison:
    table, params = book.table, risk.params
    # Isolated: the worst loss of one long / one short contract alone, plus its own add-ons.
    loss_long = np.zeros(len(table))
    loss_short = np.zeros(len(table))
    for u in range(len(table.underlyings)):
        rows = np.flatnonzero(table.underlying_idx == u)
        pnl = risk.pnl[u]
        loss_long[rows] = np.maximum(-pnl.min(axis=1), 0.0)
        loss_short[rows] = np.maximum(pnl.max(axis=1), 0.0)
    perp = table.kind == Kind.PERP
    addon_long = np.where(perp, params.perp_addon * risk.spots, 0.0)
    addon_short = np.where(perp, params.perp_addon * risk.spots, params.short_option_addon * risk.spots)
    q_long = book.q.maximum(0).tocsr()
    q_short = (-book.q).maximum(0).tocsr()
    iso_mm = q_long @ (loss_long + addon_long) + q_short @ (loss_short + addon_short)

    # Cross with standard per-position rates.
    s, k = risk.spots, table.strike
    otm = np.where(
        table.kind == Kind.CALL, np.maximum(k - s, 0.0), np.where(table.kind == Kind.PUT, np.maximum(s - k, 0.0), 0.0)
    )
    short_opt_im = np.maximum(rates.short_option_im * s - otm, rates.short_option_im_floor * s)
    im_long = np.where(perp, rates.perp_im * s, 0.0)
    mm_long = np.where(perp, rates.perp_mm * s, 0.0)
    im_short = np.where(perp, rates.perp_im * s, short_opt_im)
    mm_short = np.where(perp, rates.perp_mm * s, rates.short_option_mm * s)
    return Comparison(
        isolated_mm=iso_mm,
        isolated_im=params.im_factor * iso_mm,
        cross_mm=q_long @ mm_long + q_short @ mm_short,
        cross_im=q_long @ im_long + q_short @ im_short,
    )


@dataclass
class VarResult:
    var: Array  # loss at the confidence level, per account (≥ 0)
    es: Array  # mean loss beyond it, per account (≥ 0)
    worst: Array  # worst simulated loss per account


def var_es(book: Book, risk: InstrumentRisk, settings: VarSettings = VarSettings()) -> VarResult:
    """Monte Carlo VaR and Expected Shortfall of each account's positions."""
    table, market = book.table, risk.market
    names = table.underlyings
    n_u = len(names)
    rng = np.random.default_rng(settings.seed)
    dt = settings.horizon_days / 365.0
    corr = market.correlation_matrix(names)
    # Joint factors: one spot and one log-vol factor per underlying; each vol factor is tied to
    # its own spot by spot_vol_correlation and independent of everything else.
    z_spot = rng.standard_normal((settings.paths, n_u)) @ np.linalg.cholesky(corr + 1e-12 * np.eye(n_u)).T
    z_indep = rng.standard_normal((settings.paths, n_u))
    rho = settings.spot_vol_correlation
    z_vol = rho * z_spot + np.sqrt(1.0 - rho * rho) * z_indep

    t = table.time_to_expiry(market.timestamp)
    t_after = np.maximum(t - dt, 1e-6)
    pnl = np.zeros((len(table), settings.paths))
    for u, name in enumerate(names):
        m = market.get(name)
        rows = np.flatnonzero(table.underlying_idx == u)
        opt_rows = rows[table.is_option[rows]]
        ref_vol = float(np.mean(risk.vols[opt_rows])) if len(opt_rows) else m.surface.pillar_vols[0]
        sigma = ref_vol * np.sqrt(dt)
        spot_paths = m.spot * np.exp(sigma * z_spot[:, u] - 0.5 * sigma * sigma)
        vol_mult = np.exp(settings.vol_of_vol * np.sqrt(dt) * z_vol[:, u])
        perp_rows = rows[~table.is_option[rows]]
        pnl[perp_rows] = spot_paths[None, :] - risk.marks[perp_rows, None]
        if len(opt_rows):
            values = black76.price(
                spot_paths[None, :],
                table.strike[opt_rows, None],
                t_after[opt_rows, None],
                risk.vols[opt_rows, None] * vol_mult[None, :],
                m.rate,
                table.is_call[opt_rows, None],
            )
            pnl[opt_rows] = values - risk.marks[opt_rows, None]

    account_pnl = book.q @ pnl  # (accounts, paths)
    losses = -account_pnl
    var = np.quantile(losses, settings.confidence, axis=1, method="higher")
    tail = losses >= var[:, None]
    es = (losses * tail).sum(axis=1) / np.maximum(tail.sum(axis=1), 1)
    return VarResult(var=np.maximum(var, 0.0), es=np.maximum(es, 0.0), worst=np.maximum(losses.max(axis=1), 0.0))

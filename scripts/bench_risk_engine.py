"""Benchmark of the off-chain risk engine. Prints figures and ratios from one run.

    ./dpre bench-risk            (or: .venv/bin/python scripts/bench_risk_engine.py [--accounts N])

1. Full recompute of the portfolio margin of N accounts (default 1,000,000; ~8 positions each over
   ~500 instruments on two underlyings): reprice every instrument under every scenario, then
   aggregate per account as sparse products. Compared with a straightforward per-account loop
   over the same data (each position repriced under its scenarios, account by account), timed on
   a sample and scaled; the loop's results are checked against the fast path's on that sample.
2. Peak memory of the process (ru_maxrss).
3. Greeks throughput: one vectorized call over many options vs one option at a time.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

import numpy as np

from offchain.risk import black76
from offchain.risk.book import Book
from offchain.risk.instruments import Instrument, InstrumentTable, expiry_from_date
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.margin import portfolio_margin
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import VOL_DOWN, VOL_UP, price_instruments, scenario_set, vol_shock_factors

NOW = expiry_from_date("20261121")
EXPIRY_DATES = ("20261128", "20261205", "20261225", "20270129", "20270326", "20270625")
SPOTS = {"BTC": 90_000.0, "ETH": 3_000.0}


def build_market() -> MarketData:
    expiries = tuple(expiry_from_date(d) for d in EXPIRY_DATES)
    return MarketData(
        NOW,
        {
            "BTC": UnderlyingMarket(
                SPOTS["BTC"], VolSurface(expiries, (0.55, 0.53, 0.50, 0.49, 0.48, 0.47), -0.08, 0.25)
            ),
            "ETH": UnderlyingMarket(
                SPOTS["ETH"], VolSurface(expiries, (0.70, 0.68, 0.65, 0.62, 0.60, 0.58), -0.10, 0.30)
            ),
        },
        {("BTC", "ETH"): 0.8},
    )


def build_instruments() -> InstrumentTable:
    out = []
    for u, spot in SPOTS.items():
        out.append(Instrument.perp(u))
        for d in EXPIRY_DATES:
            for m in np.linspace(0.5, 1.5, 21):
                for call in (True, False):
                    out.append(Instrument.option(u, expiry_from_date(d), round(spot * m), call))
    return InstrumentTable(out)


def build_book(table: InstrumentTable, n_accounts: int, per_account: int, seed: int) -> Book:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_accounts, dtype=np.int64), per_account)
    cols = rng.integers(0, len(table), size=n_accounts * per_account)
    scale = np.where(table.underlying_idx[cols] == table.underlyings.index("BTC"), 0.05, 1.0)
    sizes = np.round(rng.normal(0.0, 5.0, size=len(cols)) * scale, 3)
    return Book.from_arrays(table, n_accounts, rows, cols, sizes, cash=rng.uniform(0, 100_000, n_accounts))


def loop_margin(
    book: Book, table: InstrumentTable, market: MarketData, params: MarginParams, accounts: range
) -> np.ndarray:
    """The straightforward way: account by account, position by position."""
    out = np.empty(len(accounts))
    scen = {u: scenario_set(params, u) for u in table.underlyings}
    for n, a in enumerate(accounts):
        start, stop = book.q.indptr[a], book.q.indptr[a + 1]
        pnl: dict[str, np.ndarray] = {}
        short_calls: dict[str, float] = {}
        long_calls: dict[str, float] = {}
        short_puts: dict[str, float] = {}
        long_puts: dict[str, float] = {}
        perps: dict[str, float] = {}
        for col, q in zip(book.q.indices[start:stop], book.q.data[start:stop]):
            inst = table.instruments[col]
            m = market.get(inst.underlying)
            sc = scen[inst.underlying]
            shocked = m.spot * (1.0 + sc.spot_moves)
            if inst.is_option:
                t = (inst.expiry - NOW) / (365 * 86400)
                fwd = m.spot * math.exp(m.rate * t)
                sigma = float(m.surface.vol(np.array([inst.strike]), np.array([inst.expiry]), np.array([fwd]), NOW)[0])
                up, down = vol_shock_factors(params, np.array([t]))
                mult = np.where(sc.vol_shock == VOL_UP, up[0], np.where(sc.vol_shock == VOL_DOWN, down[0], 1.0))
                call = inst.kind.name == "CALL"
                base = float(black76.price(m.spot, inst.strike, t, sigma, m.rate, call))
                values = black76.price(shocked, inst.strike, t, sigma * mult, m.rate, call)
                book_l, book_s = (long_calls, short_calls) if call else (long_puts, short_puts)
                book_l[inst.underlying] = book_l.get(inst.underlying, 0.0) + max(q, 0.0)
                book_s[inst.underlying] = book_s.get(inst.underlying, 0.0) + max(-q, 0.0)
            else:
                base, values = m.spot, shocked
                perps[inst.underlying] = perps.get(inst.underlying, 0.0) + q
            pnl[inst.underlying] = pnl.get(inst.underlying, 0.0) + q * (values - base) * sc.weights
        total = 0.0
        for u, v in pnl.items():
            spot = market.get(u).spot
            naked = max(short_calls.get(u, 0) - long_calls.get(u, 0), 0) + max(
                short_puts.get(u, 0) - long_puts.get(u, 0), 0
            )
            total += max(-float(np.min(v)), 0.0) + params.short_option_addon * spot * naked
            total += params.perp_addon * spot * abs(perps.get(u, 0.0))
        out[n] = total
    return out


def greeks_one_at_a_time(s, k, t, v, r, c) -> list[tuple[float, ...]]:
    out = []
    for i in range(len(s)):
        sq = math.sqrt(t[i])
        std = v[i] * sq
        fwd = s[i] * math.exp(r[i] * t[i])
        d1 = math.log(fwd / k[i]) / std + 0.5 * std
        d2 = d1 - std
        sign = 1.0 if c[i] else -1.0
        ncdf1 = 0.5 * math.erfc(-sign * d1 / math.sqrt(2))
        ncdf2 = 0.5 * math.erfc(-sign * d2 / math.sqrt(2))
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
        disc = math.exp(-r[i] * t[i])
        price = sign * disc * (fwd * ncdf1 - k[i] * ncdf2)
        out.append(
            (
                price,
                sign * ncdf1,
                pdf / (s[i] * std),
                s[i] * pdf * sq,
                -s[i] * pdf * v[i] / (2 * sq) - sign * r[i] * k[i] * disc * ncdf2,
            )
        )
    return out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--positions", type=int, default=8)
    ap.add_argument("--loop-sample", type=int, default=2_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--greeks", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    params = MarginParams()
    market = build_market()
    table = build_instruments()
    print(
        f"instruments: {len(table)} over {len(table.underlyings)} underlyings; "
        f"scenarios per underlying: {len(scenario_set(params, 'ETH'))}",
        flush=True,
    )

    t0 = time.perf_counter()
    book = build_book(table, args.accounts, args.positions, args.seed)
    _ = book.blocks
    t_build = time.perf_counter() - t0
    print(
        f"book: {book.n_accounts:,} accounts, {book.q.nnz:,} positions (built in {t_build:.2f}s, not counted below)",
        flush=True,
    )

    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        risk = price_instruments(table, market, params)
        result = portfolio_margin(book, risk)
        times.append(time.perf_counter() - t0)
        print(f"  full recompute #{i + 1}: {times[-1]:.3f}s", flush=True)
    fast = min(times)
    t0 = time.perf_counter()
    risk = price_instruments(table, market, params)
    t_price = time.perf_counter() - t0

    sample = range(min(args.loop_sample, book.n_accounts))
    t0 = time.perf_counter()
    looped = loop_margin(book, table, market, params, sample)
    t_loop_sample = time.perf_counter() - t0
    loop_total = t_loop_sample / len(sample) * book.n_accounts
    max_diff = float(np.max(np.abs(looped - result.mm[: len(sample)]) / np.maximum(1.0, looped)))

    n_g = args.greeks
    rng = np.random.default_rng(args.seed)
    s = rng.uniform(1000, 100_000, n_g)
    k = s * np.exp(rng.uniform(-0.5, 0.5, n_g))
    t = rng.uniform(1 / 365, 1.0, n_g)
    v = rng.uniform(0.2, 1.5, n_g)
    r = np.zeros(n_g)
    c = rng.random(n_g) < 0.5
    t0 = time.perf_counter()
    black76.greeks(s, k, t, v, r, c)
    t_vec = time.perf_counter() - t0
    n_scalar = min(50_000, n_g)
    t0 = time.perf_counter()
    greeks_one_at_a_time(s[:n_scalar], k[:n_scalar], t[:n_scalar], v[:n_scalar], r[:n_scalar], c[:n_scalar])
    t_scalar = time.perf_counter() - t0

    print()
    print("== portfolio margin, full recompute ==")
    print(f"accounts                      {book.n_accounts:>14,}")
    print(f"positions                     {book.q.nnz:>14,}")
    print(f"instrument repricing          {t_price:>13.3f}s  (instruments x scenarios)")
    print(f"full recompute (best of {args.repeats})    {fast:>13.3f}s  target < 2 s: {'PASS' if fast < 2 else 'FAIL'}")
    print(f"per-account loop, sample      {t_loop_sample:>13.3f}s  for {len(sample):,} accounts")
    print(f"per-account loop, scaled      {loop_total:>13.1f}s  for {book.n_accounts:,} accounts")
    print(
        f"speed-up                      {loop_total / fast:>13.0f}x  target >= 100x: {'PASS' if loop_total / fast >= 100 else 'FAIL'}"
    )
    print(f"loop vs fast path, max rel. difference on the sample: {max_diff:.2e}")
    print(
        f"peak memory (ru_maxrss)       {peak_rss_gib():>13.2f} GiB  target < 4 GiB: {'PASS' if peak_rss_gib() < 4 else 'FAIL'}"
    )
    print(f"accounts below MM             {int(result.below_mm().sum()):>14,}")
    print()
    print("== Greeks (price, delta, gamma, vega, theta) ==")
    print(f"vectorized                    {n_g / t_vec:>14,.0f} options/s  ({n_g:,} in {t_vec:.3f}s)")
    print(f"one at a time (math module)   {n_scalar / t_scalar:>14,.0f} options/s  ({n_scalar:,} in {t_scalar:.3f}s)")
    print(f"ratio                         {(n_g / t_vec) / (n_scalar / t_scalar):>13.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

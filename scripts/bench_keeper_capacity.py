"""How much a keeper can liquidate per unit of capital in a one-way crash, before and after it
unwinds what it takes. Prints figures and ratios from one run.

    ./dpre bench keeper-capacity [--accounts 400] [--capital 100000 1000000] [--spread-bps 25]

A book of levered ETH-PERP longs (12M notional at 3,000 by default) meets a falling ladder
(3,000 → 1,800 in 1% steps). At every step each account below MM is liquidated, weakest first,
by one keeper, with the engine's exact integer terms (`offchain.attest.liquidation`: fraction,
bonus, fee, the liquidator's requirement bound) and margins from the project's risk engine.
Three keepers are compared for each capital:

- *holds*: today's behaviour before unwinding — it keeps every slice, so its inventory loses as
  the price falls and its capacity shrinks until every liquidation fails the bound;
- *unwinds*: after each step it sells what it took to a market maker at the mark less
  `--spread-bps` (the daemon's `--market-maker` adapter), and takes a slice only while its
  requirement stays within `--risk-budget` of its equity (`--risk-budget` in the daemon).

Capacity is the notional liquidated per unit of capital; "stalled" counts liquidations the keeper
had to leave (the backstop's work).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from offchain.attest.liquidation import WAD, LiquidationConfig, NotLiquidatable, slice_im, terms
from offchain.chain.deploy import OnchainRiskConfig
from offchain.risk.book import Portfolio
from offchain.risk.instruments import Instrument
from offchain.risk.margin import margin_of
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.params import MarginParams

PERP = Instrument.perp("ETH")


def unit_margins(price: float, params: MarginParams) -> tuple[int, int]:
    """(IM, MM) of one long ETH-PERP at `price`, in WAD, from the risk engine (perpetual margin
    is homogeneous in size, so a book's margin is its size times these)."""
    market = MarketData(1_800_000_000, {"ETH": UnderlyingMarket(price, VolSurface.flat(0.7))}, {})
    m = margin_of(Portfolio({PERP: 1.0}), market, params)
    return int(float(m.im[0]) * WAD), int(float(m.mm[0]) * WAD)


@dataclass
class Keeper:
    capital: int
    unwind: bool
    budget: int  # requirement ≤ budget × equity (WAD); WAD = only the contract's bound
    spread_bps: int
    cash: int = 0
    size: int = 0  # ETH-PERP, WAD
    liquidated_notional: int = 0
    taken: int = 0
    stalled: int = 0
    stopped_at: float | None = None
    unwind_cost: int = 0
    path: list[tuple[float, int, int, int]] = field(default_factory=list)  # price, equity, inventory notional, stalled

    def __post_init__(self) -> None:
        self.cash = self.capital

    def equity(self, price: int) -> int:
        return self.cash + self.size * price // WAD


def run(
    accounts: int,
    capital: int,
    unwind: bool,
    budget: float,
    spread_bps: int,
    ladder: list[float],
    margins: dict[float, tuple[int, int]],
    cfg: LiquidationConfig,
) -> Keeper:
    # 400 longs of 10 ETH at 3,000 (12M notional), deposits from 6% to 40% of notional: their
    # MM prices are spread over the whole ladder
    sizes = np.full(accounts, 10 * WAD, dtype=object)
    entry = 3_000 * WAD
    deposits = [int(30_000 * (0.06 + 0.34 * i / max(accounts - 1, 1))) * WAD for i in range(accounts)]
    cash = [d - int(s) * entry // WAD for d, s in zip(deposits, sizes)]
    k = Keeper(capital * WAD, unwind, int(budget * WAD) if unwind else WAD, spread_bps)
    for p in ladder:
        price = int(round(p * 1e6)) * 10**12
        im_unit, mm_unit = margins[p]
        rows = []
        for i in range(accounts):
            if sizes[i] == 0:
                continue
            value = int(sizes[i]) * price // WAD
            equity = cash[i] + value
            mm = int(sizes[i]) * mm_unit // WAD
            if equity < mm:
                rows.append((equity / mm if mm else 0.0, i, equity, mm))
        rows.sort()
        for _, i, equity, mm in rows:
            try:
                f, bonus, fee = terms(equity, mm, cfg, WAD)
            except NotLiquidatable:
                continue
            im_i = int(sizes[i]) * im_unit // WAD
            need = slice_im(im_i, f)
            k_equity = k.equity(price)
            k_im = abs(k.size) * im_unit // WAD
            fits = k_equity + bonus >= k_im + need  # the contract's bound
            fits = fits and (k_im + need) * WAD <= k.budget * (k_equity + bonus)  # the keeper's own budget
            if not fits:
                k.stalled += 1
                if k.stopped_at is None:
                    k.stopped_at = p
                continue
            moved = int(sizes[i]) if f >= WAD else -((-int(sizes[i]) * f) // WAD)
            moved = min(moved, int(sizes[i]))
            paid = moved * price // WAD - bonus  # the keeper pays the slice's value less the bonus
            sizes[i] = int(sizes[i]) - moved
            cash[i] += paid - fee
            k.size += moved
            k.cash -= paid
            k.liquidated_notional += moved * price // WAD
            k.taken += 1
        if k.unwind and k.size:
            # the market maker takes the inventory at the mark less the spread
            proceeds = k.size * price // WAD
            cost = abs(proceeds) * k.spread_bps // 10_000
            k.cash += proceeds - cost
            k.unwind_cost += cost
            k.size = 0
        stalled_now = sum(1 for _, i, e, m in rows if sizes[i] != 0 and cash[i] + int(sizes[i]) * price // WAD < m)
        k.path.append((p, k.equity(price), abs(k.size) * price // WAD, stalled_now))
    return k


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=400, help="levered ETH-PERP longs, 10 ETH each (default 400)")
    ap.add_argument("--capital", type=float, nargs="+", default=[100_000, 1_000_000], help="keeper capitals to compare")
    ap.add_argument("--spread-bps", type=int, default=25, help="market maker's spread below the mark (default 25)")
    ap.add_argument(
        "--risk-budget",
        type=float,
        default=0.8,
        help="an unwinding keeper's requirement stays within this fraction of its equity (default 0.8)",
    )
    ap.add_argument("--low", type=float, default=1_800.0, help="the ladder's last price (default 1,800)")
    args = ap.parse_args(argv)
    if args.accounts < 1 or not (0 < args.risk_budget <= 1) or args.spread_bps < 0:
        ap.error("--accounts ≥ 1, 0 < --risk-budget ≤ 1 and --spread-bps ≥ 0")

    ladder, p = [], 3_000.0
    while p * 0.99 >= args.low:
        p = round(p * 0.99, 2)
        ladder.append(p)
    params = MarginParams()
    margins = {p: unit_margins(p, params) for p in ladder}
    cfg = LiquidationConfig.from_risk_config(OnchainRiskConfig())
    im3000, mm3000 = unit_margins(3_000.0, params)
    print(
        f"book: {args.accounts} ETH-PERP longs × 10 ETH = {args.accounts * 30_000:,.0f} notional at 3,000; "
        f"ladder 3,000 → {ladder[-1]:,.0f} in {len(ladder)} steps of 1%; IM/MM per ETH at 3,000: "
        f"{im3000 / WAD:,.0f}/{mm3000 / WAD:,.0f}; bonus {cfg.bonus / WAD:.0%} of the slice MM"
    )
    print(
        f"unwinding keeper: market maker at the mark less {args.spread_bps} bps, risk budget {args.risk_budget:.0%} of equity\n"
    )
    header = (
        f"{'capital':>10}  {'keeper':<8} {'liquidated':>12} {'per capital':>11} {'taken':>6} {'stalled':>8} "
        f"{'first stall':>11} {'end equity':>11} {'unwind cost':>11}"
    )
    print(header)
    results = {}
    for capital in args.capital:
        for unwind in (False, True):
            k = run(args.accounts, int(capital), unwind, args.risk_budget, args.spread_bps, ladder, margins, cfg)
            results[(capital, unwind)] = k
            print(
                f"{capital:>10,.0f}  {'unwinds' if unwind else 'holds':<8} {k.liquidated_notional / WAD:>12,.0f} "
                f"{k.liquidated_notional / WAD / capital:>10.1f}x {k.taken:>6} {k.stalled:>8} "
                f"{'-' if k.stopped_at is None else f'{k.stopped_at:,.0f}':>11} {k.path[-1][1] / WAD:>11,.0f} "
                f"{k.unwind_cost / WAD:>11,.0f}"
            )
    print("\nkeeper equity along the ladder (every 10th step):")
    cols = [(c, u) for c in args.capital for u in (False, True)]
    print(f"{'ETH':>8}  " + "  ".join(f"{f'{c / 1000:,.0f}k ' + ('unwinds' if u else 'holds'):>16}" for c, u in cols))
    for n in range(9, len(ladder), 10):
        print(f"{ladder[n]:>8,.0f}  " + "  ".join(f"{results[c].path[n][1] / WAD:>16,.0f}" for c in cols))
    print()
    for capital in args.capital:
        before, after = results[(capital, False)], results[(capital, True)]
        ratio = after.liquidated_notional / max(before.liquidated_notional, 1)
        print(
            f"capital {capital:,.0f}: capacity {before.liquidated_notional / WAD / capital:.1f}x → "
            f"{after.liquidated_notional / WAD / capital:.1f}x per unit of capital ({ratio:.1f}x); end equity "
            f"{before.path[-1][1] / WAD:,.0f} → {after.path[-1][1] / WAD:,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

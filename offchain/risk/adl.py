"""Auto-deleveraging ranking: who absorbs a bankrupt position first.

BitMEX's rule, per instrument and side: accounts on the opposite side of the bankrupt position
are ranked by
    score = PnL% × effective leverage     when PnL > 0
    score = PnL% / effective leverage     otherwise
with PnL = equity − net deposits, PnL% = PnL / max(net deposits, 1 unit), and effective
leverage = gross notional / max(equity, 1 unit). The most profitable, most leveraged accounts
go first: they gained most from the move that bankrupted the other side and carry the most risk.
Ties break by address, so the queue is a pure function of public data.
"""

from __future__ import annotations

from dataclasses import dataclass

_FLOOR = 1.0  # one collateral unit: keeps the ratios finite


@dataclass(frozen=True)
class AdlCandidate:
    account: str
    size: float  # signed position in the instrument being deleveraged
    equity: float
    net_deposits: float
    gross_notional: float


def adl_score(equity: float, net_deposits: float, gross_notional: float) -> float:
    pnl = equity - net_deposits
    pnl_pct = pnl / max(net_deposits, _FLOOR)
    leverage = gross_notional / max(equity, _FLOOR)
    if pnl > 0:
        return pnl_pct * leverage
    return pnl_pct / max(leverage, 1e-12)


def rank_queue(candidates: list[AdlCandidate], bankrupt_size: float) -> list[AdlCandidate]:
    """Opposite-side candidates, best score first; everyone else is left out."""
    opposite = [c for c in candidates if c.size != 0 and (c.size > 0) != (bankrupt_size > 0)]
    return sorted(
        opposite,
        key=lambda c: (-adl_score(c.equity, c.net_deposits, c.gross_notional), int(c.account, 16)),
    )

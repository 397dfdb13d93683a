"""The liquidation engine's integer arithmetic, mirrored exactly (contracts/core/LiquidationEngine.sol).

The oracle needs it to check, before signing, that the liquidator will pass the contract's
requirement bound and will not exceed the 64-position storage bound; a keeper uses it to predict
the slices it will receive; anyone can use it to check a liquidation. All values are WAD
integers; rounding follows the contract line for line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from offchain.attest.errors import AttestationError

if TYPE_CHECKING:  # for the annotation only: the arithmetic needs nothing of the chain tooling
    from offchain.chain.deploy import OnchainRiskConfig

WAD = 10**18


def mul_wad_down(x: int, y: int) -> int:
    return x * y // WAD


def mul_wad_up(x: int, y: int) -> int:
    return -((-x * y) // WAD)


def div_wad_up(x: int, y: int) -> int:
    return -((-x * WAD) // y)


@dataclass(frozen=True)
class LiquidationConfig:
    buffer: int
    bonus: int
    fee: int
    dust: int

    @classmethod
    def from_risk_config(cls, config: OnchainRiskConfig) -> LiquidationConfig:
        """The liquidation terms of a RiskConfig (offchain/chain/deploy.py: read_risk_config)."""
        return cls(
            buffer=config.liquidation_buffer,
            bonus=config.liquidator_bonus,
            fee=config.insurance_fee,
            dust=config.dust_margin,
        )


MAX_POSITIONS = 64  # PositionBook.MAX_POSITIONS: the storage bound of an account's open list


class NotLiquidatable(AttestationError, ValueError):
    """Equity is not below maintenance margin: there is nothing to liquidate. Also a ValueError,
    so code that catches ValueError around the arithmetic keeps catching it."""


def fraction(equity: int, mm: int, cfg: LiquidationConfig) -> int:
    """The minimal WAD fraction of the portfolio a liquidation takes (LiquidationEngine._fraction)."""
    if equity >= mm:
        raise NotLiquidatable(f"equity {equity} is not below maintenance margin {mm}")
    if equity <= 0:
        return WAD
    one_plus_buffer = WAD + cfg.buffer
    target = mul_wad_up(mm, one_plus_buffer)
    denominator = mul_wad_down(mm, one_plus_buffer - cfg.bonus - cfg.fee)
    f = div_wad_up(target - equity, denominator)
    if f >= WAD or mul_wad_down(mm, WAD - f) < cfg.dust:
        return WAD
    return f


def terms(equity: int, mm: int, cfg: LiquidationConfig, health: int) -> tuple[int, int, int]:
    """(fraction, bonus, fee) as LiquidationEngine.liquidationTerms computes them.

    A bankrupt account (equity ≤ 0) pays no bonus and no fee: the fund pays deficits, never
    bonuses. Otherwise the bonus is never more than the equity (binds only for whole
    liquidations).
    """
    f = fraction(equity, mm, cfg)
    if equity <= 0:
        return WAD, 0, 0
    slice_mm = mul_wad_up(mm, f)
    bonus = min(mul_wad_down(slice_mm, cfg.bonus), equity)
    base_fee = mul_wad_down(slice_mm, cfg.fee)
    wanted = base_fee if health >= WAD else base_fee + mul_wad_down(base_fee, WAD - health)
    remaining_target = 0 if f == WAD else mul_wad_up(mul_wad_up(mm, WAD - f), WAD + cfg.buffer)
    after_bonus = equity - bonus if equity > bonus else 0
    slack = after_bonus - remaining_target if after_bonus > remaining_target else 0
    return f, bonus, min(wanted, slack)


def slice_im(initial_margin: int, f: int) -> int:
    """The IM a slice f of a portfolio adds to the liquidator's requirement bound: IM × f rounded
    up (the whole IM at f = 1)."""
    return initial_margin if f >= WAD else mul_wad_up(initial_margin, f)


def liquidator_check(equity_before: int, im_before: int, executed: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """(equity after, requirement bound) of a liquidator, as LiquidationEngine.liquidate checks
    them: `executed` holds (bonus, slice IM) of each item that executes. Scenario margin is
    subadditive and positively homogeneous, so the requirement after taking the slices is at
    most IM before + Σ slice IMs; equity after (at the attested marks) is equity before + Σ
    bonuses. The contract requires equity after ≥ the bound."""
    return equity_before + sum(b for b, _ in executed), im_before + sum(i for _, i in executed)


def slice_of(size: int, f: int) -> int:
    """size × f rounded away from zero, never beyond size (Clearinghouse._sliceOf)."""
    if f >= WAD:
        return size
    part = min(mul_wad_up(abs(size), f), abs(size))
    return part if size >= 0 else -part


def transfer_slice(
    from_order: Sequence[int], from_sizes: dict[int, int], to_sizes: dict[int, int], f: int
) -> tuple[dict[int, int], dict[int, int], list[tuple[int, int]], list[tuple[int, int]]]:
    """Applies Clearinghouse.engineTransferSlice to copies of two portfolios.

    from_order is the source's open-list order (Clearinghouse.openInstruments). Returns the new
    portfolios and the (instrument id, new size) updates of each, in the order they extend the
    two state-hash chains.
    """
    src, dst = dict(from_sizes), dict(to_sizes)
    src_updates: list[tuple[int, int]] = []
    dst_updates: list[tuple[int, int]] = []
    for instrument_id in from_order:
        size = src.get(instrument_id, 0)
        moved = slice_of(size, f)
        src[instrument_id] = size - moved
        dst[instrument_id] = dst.get(instrument_id, 0) + moved
        src_updates.append((instrument_id, src[instrument_id]))
        dst_updates.append((instrument_id, dst[instrument_id]))
    return ({k: v for k, v in src.items() if v}, {k: v for k, v in dst.items() if v}, src_updates, dst_updates)


def mul_wad_floor(x: int, y: int) -> int:
    """x × y / WAD rounded toward −∞ (LiquidationEngine._mulWadFloor)."""
    return mul_wad_down(x, y) if x >= 0 else -mul_wad_up(-x, y)


def slice_value(value: int, f: int) -> int:
    """The value of a slice f of a portfolio worth `value`, as the engine credits it."""
    return value if f >= WAD else mul_wad_floor(value, f)


def _token_floor(amount: int, decimals: int) -> int:
    """WAD amount rounded down to whole token units, in WAD (FixedPoint.fromWadDown, toWad); a
    token with 18 decimals or more represents every WAD amount exactly."""
    if decimals >= 18:
        return amount
    unit: int = 10 ** (18 - decimals)
    return amount // unit * unit


def _token_ceil(amount: int, decimals: int) -> int:
    if decimals >= 18:
        return amount
    unit: int = 10 ** (18 - decimals)
    return -(-amount // unit) * unit


def fund_covers(deficit: int, balance: int) -> bool:
    """Whether the insurance fund's balance covers a deficit (both WAD): deficit ≤ balance, the
    rule of every contract path that asks it — a whole liquidation beyond the fund is skipped
    (LiquidationEngine._liquidateOne), flagBankruptcy reverts FundCanCover within it, clearFlag of
    an account without positions reverts StillBankrupt beyond it, and deleverage lets the fund
    pay alone within it (_fundContribution). A deficit of zero or less is always covered."""
    return deficit <= balance


def flag_clears(equity: int, has_positions: bool, balance: int) -> bool:
    """Whether LiquidationEngine.clearFlag lets a bankruptcy flag go, the insurance fund holding
    `balance`: an account with positions only at attested equity ≥ 0 (a deficit the fund could
    cover is resolved by liquidating it whole through the fund); one without (`equity` is then
    its cash) when the fund covers its negative cash."""
    if has_positions:
        return equity >= 0
    return fund_covers(-equity, balance)


def fund_fits(
    items: Sequence[tuple[int, int]], fund: int, cfg: LiquidationConfig, health: int, decimals: int
) -> tuple[list[bool], int]:
    """Which items of one LiquidationEngine.liquidate batch execute, as the contract decides them
    one after another: `items` are (equity, MM) in batch order, `fund` the insurance fund's
    balance before the batch, `health` its health then (read once per call). A bankrupt account
    whose deficit exceeds the fund left is skipped (SKIP_FUND_CANNOT_COVER); a covered deficit
    leaves the fund as whole token units rounded up (InsuranceFund.release); a fee joins it as
    whole token units rounded down (Clearinghouse.enginePayOut). Returns the verdicts and the fund
    after the batch. Every item must be below MM."""
    verdicts = []
    for equity, mm in items:
        f, _, fee = terms(equity, mm, cfg, health)
        if f == WAD and equity < 0:
            if not fund_covers(-equity, fund):
                verdicts.append(False)
                continue
            released = _token_ceil(-equity, decimals)
            fund -= released if released <= fund else _token_floor(fund, decimals)
        fund += _token_floor(fee, decimals)
        verdicts.append(True)
    return verdicts, fund

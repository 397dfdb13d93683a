"""The liquidation engine's integer arithmetic, mirrored exactly (contracts/core/LiquidationEngine.sol).

A keeper needs it to predict the slices it will receive — and so the portfolio state its own
post-liquidation attestation must describe — and anyone can use it to check a liquidation.
All values are WAD integers; rounding follows the contract line for line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    def from_risk_config(cls, config: Sequence[int]) -> "LiquidationConfig":
        """From the RiskConfig tuple (Clearinghouse.riskConfig())."""
        return cls(buffer=int(config[5]), bonus=int(config[6]), fee=int(config[7]), dust=int(config[8]))


class NotLiquidatable(ValueError):
    pass


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
    """(fraction, bonus, fee) as LiquidationEngine.liquidationTerms computes them."""
    f = fraction(equity, mm, cfg)
    if equity <= 0:
        return WAD, mul_wad_down(mm, cfg.bonus), 0
    slice_mm = mul_wad_up(mm, f)
    bonus = mul_wad_down(slice_mm, cfg.bonus)
    base_fee = mul_wad_down(slice_mm, cfg.fee)
    wanted = base_fee if health >= WAD else base_fee + mul_wad_down(base_fee, WAD - health)
    remaining_target = 0 if f == WAD else mul_wad_up(mul_wad_up(mm, WAD - f), WAD + cfg.buffer)
    after_bonus = equity - bonus if equity > bonus else 0
    slack = after_bonus - remaining_target if after_bonus > remaining_target else 0
    return f, bonus, min(wanted, slack)


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


def slice_value(value: int, f: int) -> int:
    """value × f rounded toward −∞ (LiquidationEngine._mulWadFloor)."""
    if f >= WAD:
        return value
    return mul_wad_down(value, f) if value >= 0 else -mul_wad_up(-value, f)

"""Conversion between the engine's floats and the contracts' 18-decimal integers (WAD).

Requirements (IM, MM, losses) round up; values credited to an account round down. Floats are
first quantized to QUANTUM (1e-9 of a unit) in the conservative direction, exactly, through
Decimal, so the integer does not depend on float formatting, and so float noise below a
nano-unit cannot flip a result between two machines that agree to 1e-9.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

WAD = 10**18
QUANTUM_DIGITS = 9
_QUANTUM = Decimal(1).scaleb(-QUANTUM_DIGITS)
_SCALE: int = 10 ** (18 - QUANTUM_DIGITS)  # int ** int is typed Any: a negative exponent gives a float


def _to_wad(x: float, rounding: str) -> int:
    if not math.isfinite(x):
        raise ValueError(f"cannot convert {x!r} to an on-chain integer")
    quantized = Decimal(x).quantize(_QUANTUM, rounding=rounding)  # Decimal(float) is exact
    return int(quantized.scaleb(QUANTUM_DIGITS)) * _SCALE


def to_wad_up(x: float) -> int:
    """For requirements: the smallest on-chain integer not below x."""
    return _to_wad(x, ROUND_CEILING)


def to_wad_down(x: float) -> int:
    """For credited values: the largest on-chain integer not above x."""
    return _to_wad(x, ROUND_FLOOR)


def from_wad(n: int) -> float:
    return n / WAD

"""Instruments: perpetual futures and European options, one registry shared on- and off-chain.

Names follow the exchange convention: `ETH-PERP`, `ETH-20261225-3000-C` (underlying, expiry date
at 08:00 UTC, strike, C/P). The on-chain registry assigns each instrument a numeric id; the
off-chain engine keeps them as columns of an InstrumentTable so pricing is one array operation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from offchain.risk.errors import RiskError

SECONDS_PER_YEAR = 365.0 * 24 * 3600
EXPIRY_HOUR_UTC = 8  # options expire at 08:00 UTC, as on the large crypto venues


class Kind(IntEnum):
    """Matches the on-chain enum order."""

    PERP = 0
    CALL = 1
    PUT = 2


@dataclass(frozen=True)
class Instrument:
    underlying: str
    kind: Kind
    strike: float = 0.0
    expiry: int = 0  # unix seconds; 0 for perpetuals

    def __post_init__(self) -> None:
        if not self.underlying or not self.underlying.isalnum():
            raise RiskError(f"instrument underlying {self.underlying!r} must be alphanumeric (e.g. ETH)")
        if self.kind is Kind.PERP:
            if self.strike != 0.0 or self.expiry != 0:
                raise RiskError(f"perpetual {self.underlying}-PERP takes no strike or expiry")
        else:
            if not (self.strike > 0 and np.isfinite(self.strike)):
                raise RiskError(f"option strike must be a positive number, got {self.strike!r}")
            if self.expiry <= 0:
                raise RiskError(f"option expiry must be a positive unix time, got {self.expiry!r}")

    @property
    def is_option(self) -> bool:
        return self.kind is not Kind.PERP

    @property
    def name(self) -> str:
        if self.kind is Kind.PERP:
            return f"{self.underlying}-PERP"
        date = dt.datetime.fromtimestamp(self.expiry, tz=dt.timezone.utc).strftime("%Y%m%d")
        strike = f"{self.strike:g}" if self.strike != int(self.strike) else str(int(self.strike))
        return f"{self.underlying}-{date}-{strike}-{'C' if self.kind is Kind.CALL else 'P'}"

    @staticmethod
    def perp(underlying: str) -> "Instrument":
        return Instrument(underlying, Kind.PERP)

    @staticmethod
    def option(underlying: str, expiry: int, strike: float, call: bool) -> "Instrument":
        return Instrument(underlying, Kind.CALL if call else Kind.PUT, float(strike), int(expiry))


_NAME = re.compile(r"^(?P<u>[A-Za-z0-9]+)-(?:(?P<perp>PERP)|(?P<date>\d{8})-(?P<k>\d+(?:\.\d+)?)-(?P<cp>[CP]))$")


def expiry_from_date(date: str) -> int:
    """YYYYMMDD or YYYY-MM-DD → unix seconds at the 08:00 UTC expiry."""
    digits = date.replace("-", "")
    try:
        day = dt.datetime.strptime(digits, "%Y%m%d").replace(hour=EXPIRY_HOUR_UTC, tzinfo=dt.timezone.utc)
    except ValueError as err:
        raise RiskError(f"expiry date {date!r} is not a valid YYYYMMDD date") from err
    return int(day.timestamp())


def parse_instrument(name: str) -> Instrument:
    match = _NAME.match(name.strip())
    if match is None:
        raise RiskError(
            f"unknown instrument {name!r}",
            hint="use UNDERLYING-PERP or UNDERLYING-YYYYMMDD-STRIKE-C|P, e.g. ETH-PERP, ETH-20261225-3000-C",
        )
    underlying = match["u"].upper()
    if match["perp"]:
        return Instrument.perp(underlying)
    return Instrument.option(underlying, expiry_from_date(match["date"]), float(match["k"]), match["cp"] == "C")


class InstrumentTable:
    """Instruments as parallel arrays (the engine's column layout), with a name → index map."""

    def __init__(self, instruments: list[Instrument]) -> None:
        if len(set(instruments)) != len(instruments):
            raise RiskError("instrument list has duplicates")
        self.instruments = list(instruments)
        self.index = {inst: i for i, inst in enumerate(self.instruments)}
        self.underlyings: list[str] = sorted({inst.underlying for inst in self.instruments})
        u_index = {u: i for i, u in enumerate(self.underlyings)}
        n = len(self.instruments)
        self.underlying_idx = np.fromiter((u_index[i.underlying] for i in self.instruments), np.int64, n)
        self.kind = np.fromiter((int(i.kind) for i in self.instruments), np.int8, n)
        self.strike = np.fromiter((i.strike for i in self.instruments), np.float64, n)
        self.expiry = np.fromiter((i.expiry for i in self.instruments), np.int64, n)
        self.is_option = self.kind != Kind.PERP
        self.is_call = self.kind == Kind.CALL

    def __len__(self) -> int:
        return len(self.instruments)

    def position_of(self, inst: Instrument) -> int:
        try:
            return self.index[inst]
        except KeyError:
            raise RiskError(f"instrument {inst.name} is not listed") from None

    def time_to_expiry(self, now: int) -> NDArray[np.float64]:
        """Years to expiry for options (0 for perps)."""
        return np.where(self.is_option, (self.expiry - now) / SECONDS_PER_YEAR, 0.0)

"""Market scenario files: a base market and a path of spot and volatility multipliers over time.

    {
      "name": "eth-crash-2020-03-12",
      "description": "ETH −40% within a day, implied vol up 2.5x",
      "duration": 86400,                       // scenario seconds the path spans
      "underlyings": {"ETH": {"spot": 3000, "vol": 0.65, "skew": -0.10, "curvature": 0.30}},
      "correlations": {"BTC/ETH": 0.8},
      "path": [                                 // t in [0, 1] of the duration; linear in between
        {"t": 0.0, "ETH": {"spot": 1.00, "vol": 1.0}},
        {"t": 0.6, "ETH": {"spot": 0.60, "vol": 2.5}},
        {"t": 1.0, "ETH": {"spot": 0.66, "vol": 2.0}}
      ]
    }

Multipliers are relative to the base (`spot` 0.6 = 60% of the base spot). Every error names the
field. Shipped scenarios live in scenarios/; write your own in the same format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offchain.errors import UserError
from offchain.risk.io import load_json


@dataclass(frozen=True)
class BaseUnderlying:
    spot: float
    vol: float
    skew: float = 0.0
    curvature: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    underlyings: dict[str, BaseUnderlying]
    correlations: dict[tuple[str, str], float]
    times: np.ndarray  # shape (k,), ascending in [0, 1]
    spot_mult: dict[str, np.ndarray]  # underlying → (k,)
    vol_mult: dict[str, np.ndarray]

    def at(self, fraction: float) -> dict[str, tuple[float, float]]:
        """(spot, atm vol) per underlying at `fraction` ∈ [0, 1] of the path."""
        f = min(max(fraction, 0.0), 1.0)
        out = {}
        for u, base in self.underlyings.items():
            spot = base.spot * float(np.interp(f, self.times, self.spot_mult[u]))
            vol = base.vol * float(np.interp(f, self.times, self.vol_mult[u]))
            out[u] = (spot, vol)
        return out

    def worst_drawdown(self, underlying: str) -> float:
        return 1.0 - float(np.min(self.spot_mult[underlying]))


def _num(value: Any, path: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{path}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise UserError(f"{path}: must be positive, got {value!r}")
    return float(value)


def parse_scenario(data: Any, path: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object")
    unders = data.get("underlyings")
    if not isinstance(unders, dict) or not unders:
        raise UserError(f"{path}.underlyings: needs at least one underlying")
    bases = {}
    for u, b in unders.items():
        p = f"{path}.underlyings.{u}"
        if not isinstance(b, dict):
            raise UserError(f"{p}: expected an object")
        bases[u] = BaseUnderlying(
            spot=_num(b.get("spot"), f"{p}.spot"),
            vol=_num(b.get("vol"), f"{p}.vol"),
            skew=_num(b.get("skew", 0.0), f"{p}.skew", positive=False),
            curvature=_num(b.get("curvature", 0.0), f"{p}.curvature", positive=False),
        )
    steps = data.get("path")
    if not isinstance(steps, list) or len(steps) < 2:
        raise UserError(f"{path}.path: needs at least two points")
    times: list[float] = []
    spot_mult: dict[str, list[float]] = {u: [] for u in bases}
    vol_mult: dict[str, list[float]] = {u: [] for u in bases}
    for i, step in enumerate(steps):
        p = f"{path}.path[{i}]"
        if not isinstance(step, dict):
            raise UserError(f"{p}: expected an object")
        t = _num(step.get("t"), f"{p}.t", positive=False)
        if not 0.0 <= t <= 1.0 or (times and t <= times[-1]):
            raise UserError(f"{p}.t: times must rise strictly within [0, 1]")
        times.append(t)
        for u in bases:
            m = step.get(u, {})
            if not isinstance(m, dict):
                raise UserError(f"{p}.{u}: expected an object of multipliers")
            spot_mult[u].append(_num(m.get("spot", spot_mult[u][-1] if spot_mult[u] else 1.0), f"{p}.{u}.spot"))
            vol_mult[u].append(_num(m.get("vol", vol_mult[u][-1] if vol_mult[u] else 1.0), f"{p}.{u}.vol"))
    if times[0] != 0.0 or times[-1] != 1.0:
        raise UserError(f"{path}.path: must start at t = 0 and end at t = 1")
    correlations = {}
    for pair, rho in (data.get("correlations") or {}).items():
        names = pair.split("/")
        if len(names) != 2 or not all(n in bases for n in names):
            raise UserError(f"{path}.correlations.{pair}: name two underlyings of the scenario as A/B")
        correlations[(names[0], names[1])] = float(rho)
    return Scenario(
        name=str(data.get("name", "unnamed")),
        description=str(data.get("description", "")),
        duration=_num(data.get("duration", 86400), f"{path}.duration"),
        underlyings=bases,
        correlations=correlations,
        times=np.asarray(times),
        spot_mult={u: np.asarray(v) for u, v in spot_mult.items()},
        vol_mult={u: np.asarray(v) for u, v in vol_mult.items()},
    )


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(load_json(path, "scenario"), "scenario")

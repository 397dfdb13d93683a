"""JSON formats of portfolios, market snapshots and risk parameters (see the README).

Every error names the offending field by its path, e.g. `market.underlyings.ETH.spot`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from offchain.risk.book import Portfolio
from offchain.risk.errors import RiskError
from offchain.risk.instruments import expiry_from_date, parse_instrument
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.params import MarginParams


def load_json(path: str | Path, what: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise RiskError(f"cannot read {what} file {path}: {err.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RiskError(
            f"{what} file {path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RiskError(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _num(value: Any, path: str, *, positive: bool = False, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RiskError(f"{path}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise RiskError(f"{path}: must be positive, got {value!r}")
    if low is not None and value < low:
        raise RiskError(f"{path}: must be at least {low}, got {value!r}")
    return float(value)


def _require(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise RiskError(f"{path}.{key}: missing")
    return obj[key]


def parse_time(value: Any, path: str) -> int:
    """Unix seconds, or an ISO-8601 string (UTC if no zone is given)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RiskError(f"{path}: {value!r} is not an ISO-8601 time or unix seconds") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return int(stamp.timestamp())
    raise RiskError(f"{path}: expected unix seconds or an ISO-8601 time, got {value!r}")


def parse_portfolio(data: Any, path: str = "portfolio") -> Portfolio:
    obj = _obj(data, path)
    cash = _num(obj.get("cash", 0.0), f"{path}.cash")
    raw_positions = _require(obj, "positions", path)
    if not isinstance(raw_positions, list):
        raise RiskError(f"{path}.positions: expected a list")
    positions: dict[Any, float] = {}
    for i, entry in enumerate(raw_positions):
        p = f"{path}.positions[{i}]"
        e = _obj(entry, p)
        name = _require(e, "instrument", p)
        if not isinstance(name, str):
            raise RiskError(f"{p}.instrument: expected a name such as ETH-PERP")
        try:
            inst = parse_instrument(name)
        except RiskError as err:
            raise RiskError(f"{p}.instrument: {err}", hint=err.hint) from None
        size = _num(_require(e, "size", p), f"{p}.size")
        positions[inst] = positions.get(inst, 0.0) + size
    account = obj.get("account", "")
    if not isinstance(account, str):
        raise RiskError(f"{path}.account: expected a string")
    return Portfolio(positions, cash, account)


def parse_market(data: Any, path: str = "market") -> MarketData:
    obj = _obj(data, path)
    timestamp = parse_time(_require(obj, "timestamp", path), f"{path}.timestamp")
    unders = _obj(_require(obj, "underlyings", path), f"{path}.underlyings")
    markets: dict[str, UnderlyingMarket] = {}
    for name, raw in unders.items():
        p = f"{path}.underlyings.{name}"
        u = _obj(raw, p)
        spot = _num(_require(u, "spot", p), f"{p}.spot", positive=True)
        rate = _num(u.get("rate", 0.0), f"{p}.rate")
        vol = _obj(_require(u, "vol", p), f"{p}.vol")
        atm = _obj(_require(vol, "atm", f"{p}.vol"), f"{p}.vol.atm")
        if not atm:
            raise RiskError(f"{p}.vol.atm: needs at least one expiry → vol pillar")
        pillars = []
        for date, v in atm.items():
            vp = f"{p}.vol.atm.{date}"
            try:
                expiry = expiry_from_date(date)
            except RiskError as err:
                raise RiskError(f"{vp}: {err}") from None
            sigma = _num(v, vp)
            if sigma <= 0:
                raise RiskError(f"{vp}: volatility must be positive, got {v!r}")
            pillars.append((expiry, sigma))
        pillars.sort()
        try:
            surface = VolSurface(
                tuple(e for e, _ in pillars),
                tuple(s for _, s in pillars),
                skew=_num(vol.get("skew", 0.0), f"{p}.vol.skew"),
                curvature=_num(vol.get("curvature", 0.0), f"{p}.vol.curvature"),
            )
            markets[name] = UnderlyingMarket(spot=spot, surface=surface, rate=rate)
        except RiskError as err:
            raise RiskError(f"{p}: {err}") from None
    correlation: dict[tuple[str, str], float] = {}
    for pair, rho in _obj(obj.get("correlations", {}), f"{path}.correlations").items():
        names = pair.split("/")
        if len(names) != 2:
            raise RiskError(f"{path}.correlations.{pair}: name pairs as A/B, e.g. BTC/ETH")
        correlation[(names[0], names[1])] = _num(rho, f"{path}.correlations.{pair}")
    try:
        return MarketData(timestamp, markets, correlation)
    except RiskError as err:
        raise RiskError(f"{path}: {err}") from None


def parse_params(data: Any, path: str = "params") -> MarginParams:
    obj = _obj(data, path)
    try:
        return MarginParams.from_dict(obj)
    except (TypeError, ValueError) as err:
        raise RiskError(f"{path}: {err}") from None
    except RiskError as err:
        raise RiskError(f"{path}: {err}") from None

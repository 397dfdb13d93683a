"""Bad input to the risk engine raises the engine's own RiskError, naming the input; never the
CLI's UserError, and with no HTTP kind: each caller decides what bad engine input means to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from offchain.attest.builder import margin_numbers
from offchain.attest.errors import AttestationError
from offchain.errors import DpreError, UserError
from offchain.ops.web import status_of
from offchain.risk.book import Book, Portfolio
from offchain.risk.dynamic import ewma_volatility
from offchain.risk.errors import RiskError
from offchain.risk.instruments import Instrument, InstrumentTable, expiry_from_date, parse_instrument
from offchain.risk.io import load_json, parse_market, parse_params, parse_portfolio
from offchain.risk.margin import margin_of
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.params import MarginParams

from .helpers import EXPIRIES, NOW, market

CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("params bounds", lambda: MarginParams(im_factor=9.0), "im_factor"),
    ("params unknown key", lambda: parse_params({"im_fator": 1.2}), "im_fator"),
    ("vol surface", lambda: VolSurface((), ()), "pillar"),
    ("spot", lambda: UnderlyingMarket(-1.0, VolSurface((EXPIRIES[0],), (0.5,))), "spot"),
    ("correlation", lambda: MarketData(NOW, market().underlyings, {("ETH", "SOL"): 0.5}), "ETH/SOL"),
    ("no market data", lambda: market().get("SOL"), "SOL"),
    ("instrument name", lambda: parse_instrument("ETH-SOMEDAY"), "ETH-SOMEDAY"),
    ("expiry date", lambda: expiry_from_date("20261399"), "20261399"),
    ("duplicate instruments", lambda: InstrumentTable([Instrument.perp("ETH")] * 2), "duplicates"),
    (
        "book shape",
        lambda: Book(InstrumentTable([Instrument.perp("ETH")]), sp.csr_matrix((1, 2)), np.zeros(1)),
        "columns",
    ),
    ("position size", lambda: Portfolio({Instrument.perp("ETH"): float("nan")}), "ETH-PERP"),
    (
        "expired option",
        lambda: margin_of(Portfolio({Instrument.option("ETH", NOW - 1, 3000, True): 1.0}), market(), MarginParams()),
        "has expired",
    ),
    ("ewma prices", lambda: ewma_volatility([100.0]), "EWMA"),
    ("portfolio file", lambda: parse_portfolio({"cash": 1}), "positions"),
    ("market file", lambda: parse_market({"timestamp": 1, "underlyings": {"ETH": {"spot": 0}}}), "ETH.spot"),
]


@pytest.mark.parametrize(("what", "call", "named"), CASES, ids=[c[0] for c in CASES])
def test_bad_engine_input_raises_a_risk_error_naming_it(what: str, call: Callable[[], Any], named: str) -> None:
    with pytest.raises(RiskError) as raised:
        call()
    err = raised.value
    assert not isinstance(err, UserError), f"{what}: the engine must not raise the CLI's error"
    assert isinstance(err, DpreError) and named in str(err), (what, str(err))
    assert status_of(err) is None, "no HTTP kind: the oracle turns it into its own refusal"


def test_unreadable_input_file_is_a_risk_error(tmp_path: Path) -> None:
    with pytest.raises(RiskError, match="cannot read portfolio file"):
        load_json(tmp_path / "missing.json", "portfolio")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RiskError, match="not valid JSON"):
        load_json(tmp_path / "bad.json", "portfolio")


def test_an_unlisted_instrument_is_an_attestation_error() -> None:
    with pytest.raises(AttestationError, match="not in the registry") as raised:
        margin_numbers({7: 10**18}, {}, market(), MarginParams())
    assert not isinstance(raised.value, UserError)

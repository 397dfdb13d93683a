"""`dpre margin` as a user runs it: a real process, files on disk, clear errors naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offchain.cli", "margin", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_human_readable_report() -> None:
    out = run(str(EXAMPLES / "portfolio-hedged.json"), "--market", str(EXAMPLES / "market.json"))
    assert out.returncode == 0, out.stderr
    for text in ("initial margin", "maintenance margin", "worst:", "greek margin", "isolated", "cross", "ES  99% 1d"):
        assert text in out.stdout


def test_json_report_is_consistent() -> None:
    out = run(
        str(EXAMPLES / "portfolio-hedged.json"),
        "--market",
        str(EXAMPLES / "market.json"),
        "--json",
        "--var-paths",
        "4000",
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["initial_margin"] == pytest.approx(1.25 * r["maintenance_margin"])
    assert r["equity"] == pytest.approx(r["cash"] + r["value"])
    assert r["maintenance_margin"] == pytest.approx(
        sum(u["scenario_loss"] + u["short_option_addon"] + u["perp_addon"] for u in r["underlyings"])
    )
    assert int(r["onchain"]["initial_margin_wad"]) >= r["initial_margin"] * 10**18 * (1 - 1e-15)
    assert r["comparison"]["portfolio"]["im"] < r["comparison"]["isolated"]["im"]
    assert r["params_hash"].startswith("0x") and len(r["params_hash"]) == 66


def _portfolio(instrument: str = "ETH-PERP", size: Any = 1) -> dict[str, Any]:
    return {"cash": 1000, "positions": [{"instrument": instrument, "size": size}]}


def _market(**eth_overrides: Any) -> dict[str, Any]:
    eth = {"spot": 3000, "vol": {"atm": {"20261225": 0.65}}}
    eth.update(eth_overrides)
    return {"timestamp": "2026-11-21T08:00:00Z", "underlyings": {"ETH": eth}}


@pytest.mark.parametrize(
    ("portfolio", "market", "expected"),
    [
        (_portfolio("ETH-SOMEDAY"), _market(), "portfolio.positions[0].instrument: unknown instrument 'ETH-SOMEDAY'"),
        (_portfolio(size="ten"), _market(), "portfolio.positions[0].size: expected a finite number"),
        (
            _portfolio(),
            _market(vol={"atm": {"20261225": -0.3}}),
            "market.underlyings.ETH.vol.atm.20261225: volatility must be positive",
        ),
        (_portfolio(), _market(spot=0), "market.underlyings.ETH.spot: must be positive"),
        (_portfolio("ETH-20261101-3000-C"), _market(), "option ETH-20261101-3000-C has expired"),
        (_portfolio("SOL-PERP"), _market(), "no market data for underlying 'SOL'"),
        ({"cash": 1}, _market(), "portfolio.positions: missing"),
    ],
)
def test_bad_input_names_the_field(tmp_path: Path, portfolio: Any, market: Any, expected: str) -> None:
    out = run(write(tmp_path, "p.json", portfolio), "--market", write(tmp_path, "m.json", market))
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr


def test_malformed_json_is_reported_with_its_position(tmp_path: Path) -> None:
    out = run(write(tmp_path, "p.json", '{"positions": [}'), "--market", str(EXAMPLES / "market.json"))
    assert out.returncode == 2
    assert "is not valid JSON" in out.stderr and "line 1" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file_is_reported(tmp_path: Path) -> None:
    out = run(str(tmp_path / "nope.json"), "--market", str(EXAMPLES / "market.json"))
    assert out.returncode == 2 and "cannot read portfolio file" in out.stderr


def test_out_of_bounds_params_are_rejected(tmp_path: Path) -> None:
    out = run(
        str(EXAMPLES / "portfolio-hedged.json"),
        "--market",
        str(EXAMPLES / "market.json"),
        "--params",
        write(tmp_path, "params.json", {"im_factor": 0.5}),
    )
    assert out.returncode == 2 and "im_factor = 0.5 is outside its bounds" in out.stderr

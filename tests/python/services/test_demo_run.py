"""The main job at a small size: a few dozen traders through a short crash, end to end, twice.

Checks the reconciliation to the wei, that liquidations happened, that after every scenario
step no account was left below maintenance margin, and that the same seed gives the same
report numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offchain.sim.report import deterministic_summary, write_report
from offchain.sim.run import RunConfig, ScenarioRun

pytestmark = [pytest.mark.chain, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


def small_run(out: Path) -> dict:
    config = RunConfig(
        scenario=ROOT / "scenarios" / "smoke.json", traders=24, seed=11, steps=4, port=0, out=out, fund_seed=50.0
    )
    data = ScenarioRun(config).run()
    write_report(data, out)
    # the run compares the signers' replicas with the contract after the books open, every step
    # and the settlement, and stops at the first difference
    assert data.timings["replica_checks"] == len(data.steps) + 2
    return json.loads(json.dumps(deterministic_summary(data)))


def test_small_run_reconciles_liquidates_and_repeats(tmp_path: Path) -> None:
    first = small_run(tmp_path / "a")
    r = first["reconciliation"]
    assert r["clearinghouse_balanced"] and r["insurance_fund_balanced"]
    assert r["sum_of_account_cash_equals_total"] and r["positions_sum_to_zero"]
    assert first["events"]["liquidations"] > 0
    steps = json.loads((tmp_path / "a" / "steps.json").read_text())
    assert all(s["at_risk_after"] == 0 for s in steps), "an account stayed below MM after the keeper finished"
    assert (tmp_path / "a" / "report.md").read_text().count("balanced to the wei") == 2
    assert (tmp_path / "a" / "price_and_liquidations.png").stat().st_size > 10_000

    second = small_run(tmp_path / "b")
    assert second == first, "same seed and scenario must give the same report numbers"

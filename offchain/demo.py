"""The main job: `./dpre demo` — a market crash played through the whole stack on a local chain."""

from __future__ import annotations

from pathlib import Path

from offchain.sim.report import console_summary, write_report
from offchain.sim.run import RunConfig, ScenarioRun

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = ROOT / "scenarios" / "eth-crash-2020-03-12.json"


def run_demo(
    port: int = 8545,
    traders: int = 200,
    seed: int = 7,
    scenario: str | None = None,
    steps: int = 0,
    out: str | None = None,
    fund_seed: float = 1_000.0,
    settle: bool = True,
) -> int:
    scenario_path = Path(scenario) if scenario else DEFAULT_SCENARIO
    out_dir = Path(out) if out else ROOT / "runs" / f"{scenario_path.stem}-seed{seed}-n{traders}"
    config = RunConfig(
        scenario=scenario_path,
        traders=traders,
        seed=seed,
        steps=steps,
        port=port,
        out=out_dir,
        fund_seed=fund_seed,
        settle=settle,
    )
    data = ScenarioRun(config).run()
    write_report(data, out_dir)
    print(console_summary(data, out_dir), flush=True)
    ok = (
        data.reconciliation.get("clearinghouse_balanced")
        and data.reconciliation.get("insurance_fund_balanced")
        and data.reconciliation.get("positions_sum_to_zero")
    )
    return 0 if ok else 1

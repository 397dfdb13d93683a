"""The risk benchmark script runs end to end at a small size (so it cannot rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_benchmark_runs_and_fast_path_matches_the_loop() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_risk_engine.py"),
            "--accounts",
            "3000",
            "--loop-sample",
            "200",
            "--greeks",
            "2000",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("loop vs fast path"))
    assert float(line.rsplit(":", 1)[1]) < 1e-9
    assert "options/s" in out.stdout

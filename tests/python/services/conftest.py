"""Fixtures of the service tests: a local deployment with the oracle processes and a desk, the
keeper left for the test to start (with the flags it needs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from offchain.sim.harness import Harness, start_harness, stop_harness


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = start_harness(tmp_path, keeper=False)
    try:
        yield harness
    finally:
        stop_harness(harness)


@pytest.fixture
def h_no_fund(tmp_path: Path) -> Iterator[Harness]:
    """The same with an empty insurance fund (bankruptcies go to ADL)."""
    harness = start_harness(tmp_path, keeper=False, fund_seed_units=0)
    try:
        yield harness
    finally:
        stop_harness(harness)

"""Shared fixtures: real Anvil nodes on free ports, and ape connected to them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offchain.chain.anvil import AnvilNode

ROOT = Path(__file__).resolve().parents[2]
# Keep ape's data inside the checkout when pytest is run directly rather than through ./dpre.
os.environ.setdefault("APE_DATA_FOLDER", str(ROOT / ".cache" / "ape"))
os.environ.setdefault("SOLCX_BINARY_PATH", str(ROOT / ".venv" / "solcx"))
Path(os.environ["APE_DATA_FOLDER"]).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """A fresh Anvil node on a free port, stopped after the test."""
    with AnvilNode(port=0, log_path=tmp_path / "anvil.log") as node:
        yield node


@pytest.fixture(scope="session")
def ape_project() -> Any:
    """The compiled project (ape caches; only changed sources recompile)."""
    from offchain.chain.ape_session import compile_contracts

    return compile_contracts()


@pytest.fixture
def ape_chain(anvil: AnvilNode, ape_project: Any) -> Iterator[Any]:
    """ape connected to the test's Anvil node; yields the provider."""
    from offchain.chain.ape_session import connect

    with connect(anvil.url) as provider:
        yield provider

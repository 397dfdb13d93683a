"""Connecting ape (used for compilation and deployment) to a node."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from offchain.errors import UserError


@contextmanager
def connect(network: str) -> Iterator[Any]:
    """Connects ape to `network` for the duration of the block and yields the provider.

    `network` is either an http(s) URL of a running node (a local Anvil) or an ape network
    choice such as "ethereum:sepolia:node" for a testnet configured in ape-config.yaml.
    """
    from ape import networks  # ape's import is slow; only pay for it when a chain is needed

    if network.startswith(("http://", "https://")):
        context = networks.ethereum.local.use_provider(
            "foundry", provider_settings={"host": network, "manage_process": False}
        )
    else:
        try:
            context = networks.parse_network_choice(network)
        except Exception as err:  # ape raises several types here; all mean a bad choice
            raise UserError(
                f"unknown network {network!r}: {err}",
                hint="use a node URL (http://127.0.0.1:8545) or an ape network choice "
                "(`ape networks list` shows them).",
            ) from err
    with context as provider:
        yield provider


def compile_contracts() -> Any:
    """Compiles contracts/ with ape (cached; only changed files are recompiled) and returns the project."""
    from ape import project

    project.load_contracts()
    return project

"""The toolchain end to end: solc-js-compiled contracts deployed through ape on a real Anvil node."""

from __future__ import annotations

from typing import Any

import pytest

from offchain.chain.anvil import AnvilNode, port_in_use
from offchain.errors import UserError

pytestmark = pytest.mark.chain


def test_deploy_mint_and_read_through_ape(ape_chain: Any, ape_project: Any) -> None:
    from ape import accounts
    from ape.exceptions import ContractLogicError

    owner, trader = accounts.test_accounts[0], accounts.test_accounts[1]
    token = owner.deploy(ape_project.DevStablecoin, "Dev USD Coin", "dUSDC", 6, owner.address)
    assert token.decimals() == 6

    token.mint(trader.address, 2_500 * 10**6, sender=owner)
    token.mint(trader.address, 1, sender=owner)
    assert token.balanceOf(trader.address) == 2_500 * 10**6 + 1
    assert token.totalSupply() == 2_500 * 10**6 + 1

    # Ownership is enforced by the deployed bytecode, not by the client.
    with pytest.raises(ContractLogicError):
        token.mint(trader.address, 1, sender=trader)
    assert token.totalSupply() == 2_500 * 10**6 + 1


def test_busy_port_gives_a_clear_error(anvil: AnvilNode) -> None:
    assert port_in_use(anvil.port)
    with pytest.raises(UserError, match=f"port {anvil.port} .* already in use"):
        AnvilNode(port=anvil.port).start()


def test_node_stops_cleanly(anvil: AnvilNode) -> None:
    port = anvil.port
    anvil.stop()
    assert not port_in_use(port)

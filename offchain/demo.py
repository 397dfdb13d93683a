"""The main job: an end-to-end run of DPRE on a local Anvil chain."""

from __future__ import annotations

import time

from offchain.chain.anvil import AnvilNode
from offchain.chain.ape_session import compile_contracts, connect


def run_demo(port: int = 8545) -> int:
    started = time.monotonic()

    def step(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)

    step("compiling contracts (solc-js through ape-solidity) ...")
    project = compile_contracts()

    step(f"starting Anvil on 127.0.0.1:{port or 'a free port'} ...")
    with AnvilNode(port=port) as node, connect(node.url) as provider:
        from ape import accounts

        step(f"chain {provider.chain_id} up at {node.url}")
        deployer, trader = accounts.test_accounts[0], accounts.test_accounts[1]
        token = deployer.deploy(project.DevStablecoin, "Dev USD Coin", "dUSDC", 6, deployer.address)
        step(f"deployed DevStablecoin at {token.address}")
        token.mint(trader.address, 1_000_000 * 10**6, sender=deployer)
        balance = token.balanceOf(trader.address)
        decimals = token.decimals()
        step(f"balanceOf({trader.address}) = {balance} ({balance / 10**decimals:,.2f} dUSDC)")
    step("Anvil stopped; demo finished")
    return 0

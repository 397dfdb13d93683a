"""A whole local venue for the service tests and the benchmarks: an Anvil node behind a TCP proxy
(so a run can cut the services off the chain), the deployment with price feeds, the signers,
the gateway, a keeper and a trading desk; and what they read back from the chain and the keeper."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account

from offchain.chain.anvil import AnvilNode, anvil_key
from offchain.chain.deploy import Deployment, deploy_dev_feeds, deploy_system
from offchain.risk.instruments import EXPIRY_HOUR_UTC, Instrument
from offchain.sim.desk import Desk
from offchain.sim.chain_faults import ManualChain
from offchain.sim.http_calls import call, wait_for
from offchain.sim.stack import LocalStack


@dataclass
class Harness:
    node: AnvilNode
    deployment: Deployment
    deployment_path: Path
    stack: LocalStack
    desk: Desk
    proxy: "Proxy"


def deploy_with_feeds(
    node_url: str,
    workdir: Path,
    signer_addresses: list[str],
    threshold: int,
    fund_seed_units: float = 0,
    eth: float = 3000.0,
    btc: float = 90000.0,
    timelock_delay: int = 3600,
) -> tuple[Deployment, Path]:
    import datetime as dt

    from ape import accounts, chain

    from offchain.chain.ape_session import connect

    with connect(node_url):
        deployer = accounts.test_accounts[0]
        now = chain.blocks.head.timestamp
        day = dt.datetime.fromtimestamp(now + 14 * 86400, tz=dt.timezone.utc).replace(
            hour=EXPIRY_HOUR_UTC, minute=0, second=0
        )
        expiry = int(day.timestamp())
        instruments = [
            Instrument.perp("ETH"),
            Instrument.perp("BTC"),
            Instrument.option("ETH", expiry, 3000, True),
            Instrument.option("ETH", expiry, 3000, False),
            Instrument.option("ETH", expiry, 2700, False),
            Instrument.option("ETH", expiry, 3300, True),
        ]
        deployment = deploy_system(
            deployer,
            signers=signer_addresses,
            threshold=threshold,
            instruments=instruments,
            timelock_delay=timelock_delay,
        )
        deployment.feeds = deploy_dev_feeds(deployer, {"ETH": (eth, 0.65), "BTC": (btc, 0.5)})
        if fund_seed_units:
            from ape import project

            token = project.DevStablecoin.at(deployment.collateral)
            fund = project.InsuranceFund.at(deployment.insurance_fund)
            amount = int(fund_seed_units * 10**deployment.collateral_decimals)
            token.mint(deployer.address, amount, sender=deployer)
            token.approve(fund.address, amount, sender=deployer)
            fund.deposit(amount, sender=deployer)
    path = workdir / "deployment.json"
    deployment.save(path)
    return deployment, path


class Proxy:
    """The TCP proxy as its own process, between the services and the node."""

    def __init__(self, target_port: int) -> None:
        from offchain.chain.anvil import free_port

        self.port, self.target = free_port(), target_port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Proxy":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "offchain.sim.tcpproxy", "--listen", str(self.port), "--target", str(self.target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("proxy did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def start_harness(
    workdir: Path,
    n_signers: int = 3,
    threshold: int = 2,
    keeper: bool = True,
    fund_seed_units: float = 50_000,
    keeper_extra: list[str] | None = None,
    signer_extra: dict[int, list[str]] | None = None,
    timelock_delay: int = 3600,
    gas_limit: int = 60_000_000,
) -> Harness:
    """`signer_extra` maps a signer's index to extra arguments of its process (e.g. --params)."""
    node = AnvilNode(port=0, log_path=workdir / "anvil.log", accounts=10, gas_limit=gas_limit).start()
    proxy = Proxy(node.port).start()
    signer_keys = [Account.create().key.hex() for _ in range(n_signers)]
    signer_addresses = [Account.from_key(k).address for k in signer_keys]
    deployment, path = deploy_with_feeds(
        node.url, workdir, signer_addresses, threshold, fund_seed_units, timelock_delay=timelock_delay
    )
    keeper_key = anvil_key(9)
    # the services reach the node through the proxy, so a test can cut them off
    stack = LocalStack(workdir, proxy.url, path, signer_keys, threshold, keeper_key)
    for i in range(n_signers):
        stack.signer(i, (signer_extra or {}).get(i)).start()
    for i in range(n_signers):
        stack.procs[f"signer{i}"].wait_healthy()
    stack.gateway().start().wait_healthy()
    desk = Desk(node.url, deployment, stack.procs["gateway"].url, anvil_key(0))
    if keeper:
        keeper_account = Account.from_key(keeper_key)
        desk.deposit(keeper_account, 2_000_000)
        stack.keeper(keeper_extra).start().wait_healthy()
    return Harness(node, deployment, path, stack, desk, proxy)


def stop_harness(h: Harness) -> None:
    h.stack.stop_all()
    h.proxy.stop()
    h.node.stop()


def liquidations(h: Harness) -> dict[str, int]:
    """Liquidated events per account, read from the chain."""
    client = h.desk.client
    counts: dict[str, int] = {}
    for entry in client.logs(h.deployment.deploy_block, client.head()):
        if entry.name == "Liquidated":
            counts[entry.args["account"]] = counts.get(entry.args["account"], 0) + 1
    return counts


def open_leveraged_longs(h: Harness, traders: list[Any], maker: Any, contracts: float, deposit: float) -> None:
    desk = h.desk
    desk.fund_gas([t.address for t in traders] + [maker.address])
    desk.deposit(maker, 10_000_000)
    perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
    for t in traders:
        desk.deposit(t, deposit)
        result = desk.fill(maker, t, perp, -contracts, 3000.0)
        if not result.ok:
            raise RuntimeError(f"opening a long for {t.address} failed: {result.reason}")


def keeper_address(h: Harness) -> str:
    return Account.from_key(h.stack.keeper_key).address


def health(h: Harness) -> tuple[int, dict[str, Any]]:
    return call(h.stack.procs["keeper"].url + "/health", timeout=5)


def liquidation_blocks(h: Harness, since: int) -> dict[str, list[int]]:
    """The blocks of each account's Liquidated events since `since`."""
    client = h.desk.client
    out: dict[str, list[int]] = {}
    for entry in client.logs(since, client.head()):
        if entry.name == "Liquidated":
            out.setdefault(entry.args["account"], []).append(entry.block)
    return out


def keeper_transactions(h: Harness, since: int) -> list[tuple[Any, Any, Any]]:
    """(transaction, receipt, block) of every transaction the keeper got mined since `since`."""
    w3, me = h.desk.w3, keeper_address(h)
    out = []
    for n in range(since, w3.eth.block_number + 1):
        block = w3.eth.get_block(n, full_transactions=True)
        txs: list[Any] = list(block["transactions"])  # full transactions, not hashes
        for tx in txs:
            if tx["from"] == me:
                out.append((tx, w3.eth.get_transaction_receipt(tx["hash"]), block))
    return out


def wait_idle(h: Harness, chain: ManualChain) -> None:
    """Until the keeper reports it found nothing left to do at the chain's head."""
    head = chain.head()
    wait_for(lambda: health(h)[1].get("idle_at_block", -1) >= head, 60, "the keeper to be idle")

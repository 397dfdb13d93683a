"""A deployed system on a test Anvil node, with Python-held oracle and trader keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from offchain.attest.eip712 import Domain
from offchain.attest.messages import from_wire
from offchain.attest.signer import LocalSigner, sign_bundle
from offchain.chain.deploy import Deployment, OnchainRiskConfig, deploy_system
from offchain.risk.instruments import EXPIRY_HOUR_UTC, Instrument
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface


def next_expiry(chain_time: int, days: int) -> int:
    day = dt.datetime.fromtimestamp(chain_time + days * 86400, tz=dt.timezone.utc)
    return int(day.replace(hour=EXPIRY_HOUR_UTC, minute=0, second=0, microsecond=0).timestamp())


@dataclass
class System:
    deployment: Deployment
    ch: Any  # ape contract instance
    token: Any
    domain: Domain
    oracle: list[LocalSigner]
    deployer: Any
    registry: dict[int, Instrument]
    ids: dict[str, int]
    fund: Any = None
    engine: Any = None

    def positions(self, account: str) -> dict[int, int]:
        return {int(i): int(self.ch.positionOf(account, i)) for i in self.ch.openInstruments(account)}

    def open_order(self, account: str) -> list[int]:
        return [int(i) for i in self.ch.openInstruments(account)]

    def state_hash(self, account: str) -> bytes:
        return bytes(self.ch.stateHashOf(account))

    def oracle_for(self, rpc_url: str, source: Any, signer: int = 0, **kwargs: Any) -> Any:
        """An in-process oracle (one signer of the set) replaying this deployment from the chain."""
        from offchain.chain.contracts import SystemClient
        from offchain.oracle.core import Oracle

        return Oracle(SystemClient(rpc_url, self.deployment), source, self.oracle[signer], **kwargs)

    def bundle(self, item: Any) -> bytes:
        """Every oracle signer's signature of `item`, as the gateway would combine them."""
        return sign_bundle(self.oracle, self.domain, item)

    def signed(self, answer: dict[str, Any], name: str) -> tuple[Any, bytes]:
        """An item of an oracle answer, with the whole signer set's signatures."""
        item = from_wire(answer["items"][name])
        return item, self.bundle(item)

    def market(self, now: int, eth: float = 3000.0, btc: float = 90000.0) -> MarketData:
        pillars = tuple(sorted({i.expiry for i in self.registry.values() if i.is_option})) or (now + 30 * 86400,)
        return MarketData(
            now,
            {
                "ETH": UnderlyingMarket(eth, VolSurface(pillars, tuple(0.65 for _ in pillars), -0.1, 0.3)),
                "BTC": UnderlyingMarket(btc, VolSurface(pillars, tuple(0.5 for _ in pillars), -0.08, 0.25)),
            },
            {("BTC", "ETH"): 0.8},
        )


def deploy_test_system(
    n_signers: int = 3, threshold: int = 2, decimals: int = 6, config: OnchainRiskConfig | None = None
) -> System:
    from ape import accounts, chain, project

    deployer = accounts.test_accounts[0]
    oracle = sorted((LocalSigner.random() for _ in range(n_signers)), key=lambda s: int(s.address, 16))
    now = chain.blocks.head.timestamp
    expiry = next_expiry(now, 30)
    instruments = [
        Instrument.perp("ETH"),
        Instrument.perp("BTC"),
        Instrument.option("ETH", expiry, 3000, True),
        Instrument.option("ETH", expiry, 3000, False),
        Instrument.option("ETH", expiry, 3300, True),
    ]
    deployment = deploy_system(
        deployer,
        signers=[s.address for s in oracle],
        threshold=threshold,
        instruments=instruments,
        collateral_decimals=decimals,
        config=config,
    )
    ch = project.Clearinghouse.at(deployment.clearinghouse)
    token = project.DevStablecoin.at(deployment.collateral)
    registry = {i: inst for i, inst in zip(sorted(deployment.instruments), instruments)}
    return System(
        fund=project.InsuranceFund.at(deployment.insurance_fund),
        engine=project.LiquidationEngine.at(deployment.liquidation_engine),
        deployment=deployment,
        ch=ch,
        token=token,
        domain=Domain(deployment.chain_id, deployment.clearinghouse),
        oracle=oracle,
        deployer=deployer,
        registry=registry,
        ids={inst.name: i for i, inst in registry.items()},
    )

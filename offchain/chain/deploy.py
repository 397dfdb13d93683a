"""Deploying and wiring DPRE with ape: collateral (or an existing token), the clearinghouse,
the instrument listings. Used by scripts/deploy.py (`ape run deploy`), the tests and the demo.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from offchain.attest.state_hash import instrument_to_chain
from offchain.risk.instruments import Instrument
from offchain.risk.params import MarginParams


@dataclass(frozen=True)
class OnchainRiskConfig:
    """Mirror of the RiskConfig struct (contracts/interfaces/IClearinghouse.sol), in WAD. The
    fields are the struct's members in declaration order; MEMBERS names them as the contract does."""

    MEMBERS: ClassVar[tuple[str, ...]] = (
        "paramsVersion",
        "maxSnapshotAge",
        "snapshotTolerance",
        "maxPositions",
        "takerFee",
        "liquidationBuffer",
        "liquidatorBonus",
        "insuranceFee",
        "dustMargin",
    )

    params_version: int = 1
    # a Chainlink-style feed legitimately stays unchanged for up to its heartbeat (an hour), and an
    # attestation carries the feed's own time: the contract must accept data that old
    max_snapshot_age: int = 3600
    snapshot_tolerance: int = 30
    max_positions: int = 16
    taker_fee: int = 5 * 10**14  # 0.05%
    liquidation_buffer: int = 10**17  # restore equity to MM × 1.10
    liquidator_bonus: int = 5 * 10**16  # 5% of the slice's MM
    insurance_fee: int = 2 * 10**16  # 2% of the slice's MM
    dust_margin: int = 10 * 10**18  # below 10 units of MM a liquidation takes everything

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.params_version,
            self.max_snapshot_age,
            self.snapshot_tolerance,
            self.max_positions,
            self.taker_fee,
            self.liquidation_buffer,
            self.liquidator_bonus,
            self.insurance_fee,
            self.dust_margin,
        )

    def by_member(self) -> dict[str, int]:
        """The struct keyed by the contract's member names (how the replica stores it)."""
        return dict(zip(self.MEMBERS, self.as_tuple()))

    @classmethod
    def from_chain(cls, value: Any) -> OnchainRiskConfig:
        """The struct as the chain tooling hands it over: a mapping by member name (a decoded
        event argument, the replica's stored form), an object with the members as attributes
        (an ape call's result) or a tuple in declaration order (a web3 call's result)."""
        if isinstance(value, Mapping):
            values = [value[m] for m in cls.MEMBERS]
        elif all(hasattr(value, m) for m in cls.MEMBERS):
            values = [getattr(value, m) for m in cls.MEMBERS]
        else:
            values = list(value)
            if len(values) != len(cls.MEMBERS):
                raise ValueError(f"a RiskConfig has {len(cls.MEMBERS)} members, got {len(values)} values")
        return cls(*(int(v) for v in values))


def read_risk_config(clearinghouse: Any, block: int | str = "latest") -> OnchainRiskConfig:
    """The RiskConfig in force at `block`, read from the clearinghouse (a web3 contract)."""
    return OnchainRiskConfig.from_chain(clearinghouse.functions.riskConfig().call(block_identifier=block))


@dataclass
class Deployment:
    """Where everything is; written to a JSON file that the oracle and keeper read."""

    chain_id: int
    clearinghouse: str
    collateral: str
    collateral_decimals: int
    deploy_block: int
    signers: list[str]
    threshold: int
    params_version: int
    params_hash: str
    insurance_fund: str = ""
    liquidation_engine: str = ""
    # the registry of whole-book snapshot commitments (an engine of the clearinghouse)
    commitments: str = ""
    instruments: dict[int, str] = field(default_factory=dict)  # id → name
    # underlying → {"price_feed": address, "vol_feed": address}: Chainlink-style feeds the oracle reads
    feeds: dict[str, dict[str, str]] = field(default_factory=dict)
    # finality on this chain: signers and keepers act on the state `confirmations` blocks below
    # the head, and keep undo records for the last `reorg_window` blocks (README: finality)
    confirmations: int = 0
    reorg_window: int = 128

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Deployment":
        data = json.loads(Path(path).read_text())
        data["instruments"] = {int(k): v for k, v in data["instruments"].items()}
        return cls(**data)


def deploy_system(
    deployer: Any,
    *,
    signers: list[str],
    threshold: int,
    instruments: list[Instrument],
    params: MarginParams | None = None,
    config: OnchainRiskConfig | None = None,
    collateral: str | None = None,
    collateral_decimals: int = 6,
    owner: str | None = None,
    guardian: str | None = None,
    timelock_delay: int = 3600,
    fund_target: int = 0,
) -> Deployment:
    """Deploys the system from `deployer` (an ape account) and lists `instruments`.

    Without `collateral` a DevStablecoin with `collateral_decimals` is deployed (owner: the
    deployer, who can mint it). Signers are sorted, as the contract requires. The insurance
    fund and the liquidation engine are wired in before any deposit (the only time either may be
    set without the timelock), and so is the snapshot-commitment registry: the fund trusts the clearinghouse and the engines it enables;
    `fund_target` (WAD) sets the fund's health target.
    """
    from ape import chain, project

    params = params or MarginParams()
    config = config or OnchainRiskConfig(params_version=params.version)
    owner = owner or deployer.address
    guardian = guardian or deployer.address
    start_block = chain.blocks.head.number
    if collateral is None:
        token = deployer.deploy(project.DevStablecoin, "Dev USD Coin", "dUSDC", collateral_decimals, deployer.address)
        collateral = token.address
    else:
        token = project.DevStablecoin.at(collateral)
    decimals = int(token.decimals())
    ordered = sorted(signers, key=lambda a: int(a, 16))
    ch = deployer.deploy(
        project.Clearinghouse,
        collateral,
        deployer.address,  # owner during set-up; handed over below
        guardian,
        timelock_delay,
        config.as_tuple(),
        params.params_hash(),
        ordered,
        threshold,
    )
    fund = deployer.deploy(project.InsuranceFund, collateral, decimals, ch.address, deployer.address)
    engine = deployer.deploy(project.LiquidationEngine, ch.address, fund.address)
    commitments = deployer.deploy(project.SnapshotCommitments, ch.address)
    ch.bootstrapInsuranceFund(fund.address, sender=deployer)
    ch.bootstrapEngine(engine.address, sender=deployer)
    ch.bootstrapEngine(commitments.address, sender=deployer)
    if fund_target:
        fund.setTarget(fund_target, sender=deployer)
    listed: dict[int, str] = {}
    for inst in instruments:
        receipt = ch.listInstrument(*instrument_to_chain(inst), sender=deployer)
        event = receipt.decode_logs(ch.InstrumentListed)[0]
        listed[int(event.instrumentId)] = inst.name
    if owner != deployer.address:
        # the new owner must call acceptOwnership() on both
        ch.transferOwnership(owner, sender=deployer)
        fund.transferOwnership(owner, sender=deployer)
    return Deployment(
        chain_id=chain.chain_id,
        clearinghouse=ch.address,
        collateral=collateral,
        collateral_decimals=decimals,
        deploy_block=start_block,
        signers=ordered,
        threshold=threshold,
        params_version=params.version,
        params_hash="0x" + params.params_hash().hex(),
        insurance_fund=fund.address,
        liquidation_engine=engine.address,
        commitments=commitments.address,
        instruments=listed,
    )


FEED_DECIMALS = 8


def deploy_dev_feeds(deployer: Any, initial: dict[str, tuple[float, float]]) -> dict[str, dict[str, str]]:
    """Deploys a DevPriceFeed pair (spot, ATM vol) per underlying, set to `initial` (spot, vol)."""
    from ape import project

    feeds = {}
    for name, (spot, vol) in initial.items():
        price = deployer.deploy(project.DevPriceFeed, FEED_DECIMALS, f"{name} / USD", deployer.address)
        volf = deployer.deploy(project.DevPriceFeed, FEED_DECIMALS, f"{name} ATM vol", deployer.address)
        price.setAnswer(round(spot * 10**FEED_DECIMALS), sender=deployer)
        volf.setAnswer(round(vol * 10**FEED_DECIMALS), sender=deployer)
        feeds[name] = {"price_feed": price.address, "vol_feed": volf.address}
    return feeds

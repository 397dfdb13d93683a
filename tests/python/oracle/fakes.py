"""An Oracle without a chain: a replica filled in by the test, a fixed block and market."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak, to_checksum_address

from offchain.attest.liquidation import LiquidationConfig
from offchain.attest.signer import LocalSigner
from offchain.attest.state_hash import next_state_hash
from offchain.chain.deploy import Deployment, OnchainRiskConfig
from offchain.oracle.core import Oracle
from offchain.oracle.market_sources import FixedMarketSource, MarketSnapshot
from offchain.chain.contracts import BlockRef
from offchain.replica.state import AccountState, ChainState
from offchain.risk.instruments import Instrument
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD

NOW = 1_800_000_000
BLOCK = 100


class NoContract:
    """Any contract call is a test failure: the oracle must answer from its replica."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected contract access: {name}")


class _Call:
    def __init__(self, value: Any) -> None:
        self.value = value

    def call(self, block_identifier: Any = None) -> Any:
        return self.value


class FakeEngine:
    """The liquidation engine's two views the backstop check reads: stall reports set by the test."""

    def __init__(self) -> None:
        self.stall_reports: dict[str, tuple[bytes, int, int, int]] = {}  # (state hash, since, confirmed at, mm)
        self.functions = self

    def stalls(self, account: str) -> _Call:
        return _Call(self.stall_reports.get(account, (b"\x00" * 32, 0, 0, 0)))

    def BACKSTOP_DELAY(self) -> _Call:  # noqa: N802
        return _Call(60)


class FakeClient:
    def __init__(self, block: int = BLOCK, now: int = NOW) -> None:
        self.block, self.now = block, now
        self.deployment = Deployment(
            chain_id=31337,
            clearinghouse="0x" + "11" * 20,
            collateral="0x" + "22" * 20,
            collateral_decimals=6,
            deploy_block=1,
            signers=[],
            threshold=1,
            params_version=1,
            params_hash="0x",
        )
        self.ch = NoContract()
        self.w3 = NoContract()
        self.engine = FakeEngine()

    def head(self, attempts: int = 8) -> int:
        return self.block

    def block_time(self, block: int | str = "latest") -> int:
        return self.now

    def logs(self, from_block: int, to_block: int) -> list[Any]:
        return []

    def header(self, block: int | str = "latest", attempts: int = 8) -> BlockRef | None:
        number = self.block if block == "latest" else int(block)
        if number > self.block:
            return None
        return BlockRef(number, f"0x{number:064x}", f"0x{number - 1:064x}", self.now)


class StaticSource(FixedMarketSource):
    """A fixed market; tests may swap `market` between requests."""

    def snapshot(
        self, block: int, timestamp: int, instruments: dict[int, Instrument], max_age: int | None = None
    ) -> MarketSnapshot:
        return FixedMarketSource(self.market, self.unavailable).snapshot(block, timestamp, instruments, max_age)


def market(
    eth: float = 3000.0, btc: float = 90000.0, timestamp: int = NOW - 20, expiries: tuple[int, ...] = ()
) -> MarketData:
    pillars = expiries or (timestamp + 30 * 86400,)
    return MarketData(
        timestamp,
        {
            "ETH": UnderlyingMarket(eth, VolSurface(pillars, tuple(0.65 for _ in pillars), -0.1, 0.3)),
            "BTC": UnderlyingMarket(btc, VolSurface(pillars, tuple(0.5 for _ in pillars), -0.08, 0.25)),
        },
        {("BTC", "ETH"): 0.8},
    )


def address(label: str) -> str:
    return to_checksum_address(keccak(text=label)[:20])


class Book:
    """A replica the test writes: accounts, positions (state hashes chained as the contract
    does), cash, the fund and the risk configuration."""

    def __init__(
        self, instruments: list[Instrument], config: OnchainRiskConfig | None = None, params: MarginParams | None = None
    ) -> None:
        config = config or OnchainRiskConfig()
        params = params or MarginParams()
        self.state = ChainState(block=BLOCK, deployment_key="test")
        self.state.instruments = {i + 1: inst for i, inst in enumerate(instruments)}
        self.ids = {inst.name: i for i, inst in self.state.instruments.items()}
        self.state.risk_config = config.by_member()
        self.state.params_version = config.params_version
        self.state.params_hash = params.params_hash()
        self.state.liquidation_config = LiquidationConfig.from_risk_config(config)

    def account(
        self, who: str, cash: float, positions: dict[str, float] | None = None, deposits: float | None = None
    ) -> str:
        acct = self.state.accounts.setdefault(who, AccountState())
        acct.cash = int(cash * WAD)
        acct.net_deposits = int((cash if deposits is None else deposits) * WAD)
        for name, size in (positions or {}).items():
            self.set(who, name, size)
        return who

    def set(self, who: str, name: str, size: float) -> None:
        acct = self.state.accounts.setdefault(who, AccountState())
        i = self.ids[name]
        new = acct.positions.get(i, 0) + int(size * WAD)
        acct.state_hash = next_state_hash(acct.state_hash, i, new)
        acct.set_position(i, new)
        self.state.version += 1

    def oracle(
        self,
        source: StaticSource | None = None,
        signer: LocalSigner | None = None,
        client: FakeClient | None = None,
        **kwargs: Any,
    ) -> Oracle:
        client = client or FakeClient()
        oracle = Oracle(client, source or StaticSource(market()), signer or LocalSigner(b"\x01" * 32), **kwargs)  # type: ignore[arg-type]
        oracle.state = self.state
        return oracle

"""The main job: a market scenario played through the whole stack on a local chain.

Anvil (deterministic clock) → contracts deployed with ape → 3 oracle signers (2-of-3), the
gateway and the keeper as real processes → a population of traders opens its books through
signed orders → the scenario moves the price feeds step by step, waiting each time until the
keeper has nothing left to do → options expire and settle → a report of what happened.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak

from offchain.chain.anvil import AnvilNode, anvil_key
from offchain.chain.deploy import Deployment, OnchainRiskConfig, deploy_dev_feeds, deploy_system
from offchain.errors import UserError
from offchain.replica.check import check_signers
from offchain.risk.book import Book, Portfolio
from offchain.risk.instruments import EXPIRY_HOUR_UTC, Instrument
from offchain.risk.market import MarketData, UnderlyingMarket, VolSurface
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import price_instruments
from offchain.risk.units import WAD
from offchain.market_path import Scenario, load_scenario
from offchain.sim.desk import Desk
from offchain.sim.population import TraderPlan, make_population, option_strikes
from offchain.sim.stack import LocalStack

GENESIS = 1_800_000_000  # 2027-01-15: a fixed chain clock makes runs reproducible
PARAMS = MarginParams()


@dataclass
class RunConfig:
    scenario: Path
    traders: int = 200
    seed: int = 7
    steps: int = 0  # 0: one price update per point of the scenario's path (keeps its gaps)
    port: int = 8545
    out: Path = Path("runs/demo")
    fund_seed: float = 1_000.0
    settle: bool = True
    market_makers: int = 4


@dataclass
class StepRecord:
    step: int
    fraction: float
    prices: dict[str, float]
    vols: dict[str, float]
    block: int
    fund_balance: float
    liquidations: int
    at_risk_after: int
    keeper_seconds: float


@dataclass
class RunData:
    """Everything the report needs; `deterministic()` is what must repeat for the same seed."""

    config: dict[str, Any]
    scenario: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    initial: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    gas: dict[str, dict[str, float]] = field(default_factory=dict)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    coverage: dict[str, Any] = field(default_factory=dict)
    efficiency: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rejected_trades: int = 0


class Progress:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:7.1f}s] {text}", flush=True)


def _key(seed: int, label: str) -> str:
    return "0x" + keccak(text=f"dpre-{label}-{seed}").hex()


def _market(scenario: Scenario, fraction: float, timestamp: int, expiries: tuple[int, ...]) -> MarketData:
    markets = {}
    for u, (spot, vol) in scenario.at(fraction).items():
        b = scenario.underlyings[u]
        markets[u] = UnderlyingMarket(spot, VolSurface(expiries, tuple(vol for _ in expiries), b.skew, b.curvature))
    return MarketData(timestamp, markets, dict(scenario.correlations))


def _get(url: str) -> dict[str, Any]:
    """A JSON GET; a 503 /health still carries the whole report (the keeper says "stalled")."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        if err.code != 503:
            raise
        return json.loads(err.read())


class ScenarioRun:
    def __init__(self, config: RunConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.say = progress or Progress()
        self.scenario = load_scenario(config.scenario)
        missing = {"ETH", "BTC"} - set(self.scenario.underlyings)
        if missing:
            raise UserError(
                f"scenario {config.scenario} must describe ETH and BTC (missing {', '.join(sorted(missing))})"
            )
        self.out = config.out
        self.out.mkdir(parents=True, exist_ok=True)
        # a fresh chain: nothing of an earlier run in this directory may be resumed
        import shutil

        for stale in [*self.out.glob("signer*-state.*"), self.out / "keeper", self.out / "logs"]:
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        self.data = RunData(
            config={k: str(v) for k, v in asdict(config).items()},
            scenario={"name": self.scenario.name, "description": self.scenario.description},
        )

    # ------------------------------------------------------------------ set-up

    def _deploy(self, node: AnvilNode) -> tuple[Deployment, Path, list[Instrument]]:
        from ape import accounts

        from offchain.chain.ape_session import compile_contracts, connect

        compile_contracts()
        base = self.scenario.at(0.0)

        def expiry_in(days: int) -> int:
            day = dt.datetime.fromtimestamp(GENESIS + days * 86400, tz=dt.timezone.utc)
            return int(day.replace(hour=EXPIRY_HOUR_UTC, minute=0, second=0).timestamp())

        # A venue lists many instruments (several expiries × strikes per underlying): enough that a
        # keeper absorbing slices holds more legs than a trade may open (maxPositions).
        self.expiries = (expiry_in(21), expiry_in(49))
        self.expiry = self.expiries[0]  # the one the run plays through to settlement
        instruments = [Instrument.perp("ETH"), Instrument.perp("BTC")]
        for expiry in self.expiries:
            for k in option_strikes(base["ETH"][0], wide=True):
                instruments += [Instrument.option("ETH", expiry, k, True), Instrument.option("ETH", expiry, k, False)]
        for k in option_strikes(base["BTC"][0]):
            instruments += [
                Instrument.option("BTC", self.expiry, k, True),
                Instrument.option("BTC", self.expiry, k, False),
            ]
        signer_keys = [_key(self.config.seed, f"signer-{i}") for i in range(3)]
        with connect(node.url):
            deployer = accounts.test_accounts[0]
            deployment = deploy_system(
                deployer,
                signers=[Account.from_key(k).address for k in signer_keys],
                threshold=2,
                instruments=instruments,
                config=OnchainRiskConfig(snapshot_tolerance=60),
                fund_target=int(self.config.fund_seed * 20 * WAD),
            )
            deployment.feeds = deploy_dev_feeds(deployer, {u: v for u, v in base.items()})
        path = self.out / "deployment.json"
        deployment.save(path)
        self.signer_keys = signer_keys
        return deployment, path, instruments

    def _wait_idle(self, desk: Desk, keeper_url: str, timeout: float = 600.0) -> float:
        """Seconds until a whole keeper loop that started at the current head found nothing to do."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            head = desk.client.head()
            health = _get(keeper_url + "/health")
            if health.get("idle_at_block", -1) >= head:
                return time.monotonic() - start
            time.sleep(0.1)
        raise UserError(f"the keeper did not settle within {timeout:.0f}s; see {self.out}/logs/keeper.log")

    def _set_markets(self, desk: Desk, fraction: float) -> dict[str, tuple[float, float]]:
        """All feeds move in one block, so no service ever sees half a market move."""
        values = self.scenario.at(fraction)
        desk.client.rpc("evm_setAutomine", [False])
        hashes = []
        for u, (spot, vol) in values.items():
            price_feed, vol_feed = desk.feeds[u]
            for feed, answer in ((price_feed, spot), (vol_feed, vol)):
                hashes.append(
                    desk.send_async(desk.deployer, feed.functions.setAnswer(int(round(answer * 1e8))), "feed")
                )
        desk.client.rpc("evm_mine", [])
        desk.client.rpc("evm_setAutomine", [True])
        for h in hashes:
            desk.w3.eth.wait_for_transaction_receipt(h, timeout=30)
        return values

    def _open_books(
        self, desk: Desk, plans: list[TraderPlan], ids: dict[str, int], market: MarketData
    ) -> dict[str, Any]:
        makers = [Account.from_key(_key(self.config.seed, f"maker-{i}")) for i in range(self.config.market_makers)]
        traders = [Account.from_key(_key(self.config.seed, f"trader-{p.index}")) for p in plans]
        keeper = Account.from_key(self.keeper_key)
        unwinder = Account.from_key(_key(self.config.seed, "unwind-market-maker"))
        desk.fund_gas([a.address for a in makers + traders + [keeper, unwinder]])
        scale = max(1.0, self.config.traders / 100)
        for m in makers + [unwinder]:
            desk.deposit(m, 5_000_000 * scale)
        desk.deposit(keeper, 5_000_000 * scale)
        listed = sorted({inst for p in plans for inst, _ in p.legs}, key=lambda i: i.name)
        book = Book.from_portfolios([Portfolio({i: 1.0}) for i in listed])
        marks = dict(zip(listed, price_instruments(book.table, market, PARAMS).marks))
        marks = {i: float(marks[i]) for i in listed}
        rejected = 0
        for k, (plan, trader) in enumerate(zip(plans, traders)):
            desk.deposit(trader, plan.deposit)
            maker = makers[k % len(makers)]
            for inst, size in plan.legs:
                result = desk.fill(maker, trader, ids[inst.name], -size, round(marks[inst], 6))
                if not result.ok:
                    rejected += 1
            if plan.withdraw_fraction:
                report = _get(f"{self.gateway_url}/v1/accounts/{trader.address}")
                excess = report["equity"] - report["initial_margin"]
                if excess > 1:
                    desk.withdraw(trader, round(excess * plan.withdraw_fraction, 2))
            if (k + 1) % 25 == 0 or k + 1 == len(plans):
                self.say(f"books opened: {k + 1}/{len(plans)} traders ({rejected} legs refused for margin)")
                # attestations carry the feeds' own time: a new round (same values) keeps it fresh
                self._set_markets(desk, 0.0)
        self.data.rejected_trades = rejected
        return {"makers": makers, "traders": traders, "keeper": keeper, "market_maker": unwinder}

    # ------------------------------------------------------------------ the run

    def run(self) -> RunData:
        cfg = self.config
        t_start = time.monotonic()
        self.say(f"scenario: {self.scenario.name} — {self.scenario.description}")
        self.say(f"starting Anvil on 127.0.0.1:{cfg.port or 'a free port'} (deterministic clock) ...")
        node = AnvilNode(
            port=cfg.port, log_path=self.out / "anvil.log", extra_args=["--timestamp", str(GENESIS)]
        ).start()
        node_rpc = node.url
        stack: LocalStack | None = None
        try:
            from web3 import HTTPProvider, Web3
            from web3.types import RPCEndpoint

            Web3(HTTPProvider(node_rpc)).provider.make_request(RPCEndpoint("anvil_setBlockTimestampInterval"), [1])
            self.say("deploying contracts, insurance fund, liquidation engine and price feeds ...")
            deployment, dep_path, instruments = self._deploy(node)
            ids = {name: i for i, name in deployment.instruments.items()}
            self.keeper_key = _key(cfg.seed, "keeper")
            stack = LocalStack(self.out, node_rpc, dep_path, self.signer_keys, 2, self.keeper_key)
            self.say("starting 3 oracle signers (2-of-3) and the gateway ...")
            # The scenarios include gaps of about 30% in one update: the oracle's jump guard
            # (25% by default) is widened to 40% so a modelled crash is priced, not held back.
            overrides = self.out / "feed-overrides.json"
            overrides.write_text(
                json.dumps(
                    {
                        **{u: {"max_jump": 0.40} for u in self.scenario.underlyings},
                        "correlations": {f"{a}/{b}": rho for (a, b), rho in self.scenario.correlations.items()},
                    }
                )
            )
            stack.start_all(keeper=False, signer_extra=["--feeds", str(overrides)])
            self.gateway_url = stack.procs["gateway"].url
            desk = Desk(node_rpc, deployment, self.gateway_url, anvil_key(0))
            if cfg.fund_seed:
                amount = int(cfg.fund_seed * 10**deployment.collateral_decimals)
                desk.send(desk.deployer, desk.client.token.functions.mint(desk.deployer.address, amount), "mint")
                desk.send(
                    desk.deployer, desk.client.token.functions.approve(deployment.insurance_fund, amount), "approve"
                )
                desk.send(desk.deployer, desk.client.fund.functions.deposit(amount), "fund deposit")

            now = desk.now()
            market0 = _market(self.scenario, 0.0, now, self.expiries)
            atm = Instrument.option("ETH", self.expiry, option_strikes(market0.get("ETH").spot)[2], True)
            delta = float(
                price_instruments(Book.from_portfolios([Portfolio({atm: 1.0})]).table, market0, PARAMS).delta[0]
            )
            plans = make_population(cfg.traders, cfg.seed, instruments, market0, PARAMS, delta)
            self.say(f"opening the books of {cfg.traders} traders and {cfg.market_makers} market makers ...")
            people = self._open_books(desk, plans, ids, market0)
            self.say("starting the market maker the keeper unwinds to, and the keeper ...")
            mm = people["market_maker"]
            stack.market_maker(mm.key.hex(), ["--spread-bps", "25", "--max-notional", "5000000"]).start().wait_healthy()
            stack.keeper(
                ["--batch-size", "10", "--market-maker", stack.procs["market-maker"].url, "--risk-budget", "0.8"]
            ).start().wait_healthy()
            keeper_url = stack.procs["keeper"].url
            self._wait_idle(desk, keeper_url)
            self._check_replicas(desk, stack, "books opened")
            self._record_initial(plans, people["traders"])

            fractions = (
                [float(t) for t in self.scenario.times[1:]]
                if cfg.steps == 0
                else [k / cfg.steps for k in range(1, cfg.steps + 1)]
            )
            for k, fraction in enumerate(fractions, start=1):
                values = self._set_markets(desk, fraction)
                block = desk.client.head()
                seconds = self._wait_idle(desk, keeper_url)
                fund = desk.client.fund.functions.fundBalance().call() / WAD
                liq = sum(1 for e in desk.client.logs(block, desk.client.head()) if e.name == "Liquidated")
                risk = _get(f"{self.gateway_url}/v1/risk/accounts?max_ratio=1.0")
                rec = StepRecord(
                    k,
                    fraction,
                    {u: v[0] for u, v in values.items()},
                    {u: v[1] for u, v in values.items()},
                    block,
                    fund,
                    liq,
                    len(risk["accounts"]),
                    seconds,
                )
                self.data.steps.append(rec)
                self._check_replicas(desk, stack, f"step {k}")
                eth0 = self.scenario.underlyings["ETH"].spot
                self.say(
                    f"step {k:>2}/{len(fractions)}  ETH {rec.prices['ETH']:>8,.0f} ({rec.prices['ETH'] / eth0 - 1:+.0%})  "
                    f"vol {rec.vols['ETH']:.0%}  liquidations {liq:>3}  still below MM {rec.at_risk_after:>3}  "
                    f"fund {fund:>10,.2f}  keeper {seconds:5.1f}s"
                )

            if cfg.settle:
                self.say(
                    "options expire: the chain clock jumps to the expiry; the keeper posts the price and settles ..."
                )
                # the feeds' round at the expiry (the settlement price), then fresh rounds after it
                desk.client.rpc("evm_setNextBlockTimestamp", [self.expiry - 30])
                self._set_markets(desk, 1.0)
                desk.client.rpc("evm_setNextBlockTimestamp", [self.expiry + 60])
                self._set_markets(desk, 1.0)
                self._wait_idle(desk, keeper_url)
                self._check_replicas(desk, stack, "settlement")

            self.say("collecting events, reconciling balances, computing coverage and capital efficiency ...")
            from offchain.sim.analysis import analyze_run

            analyze_run(self, desk, deployment, plans, people, market0)
            self.data.timings["wall_seconds"] = time.monotonic() - t_start
            return self.data
        finally:
            if stack is not None:
                stack.stop_all()
            node.stop()

    def _check_replicas(self, desk: Desk, stack: LocalStack, when: str) -> None:
        """Every signer's replica equals the contract's stored state (cash, state hash, open list
        and sizes of every account, read at the replica's block): the run fails otherwise."""
        urls = [p.url for name, p in sorted(stack.procs.items()) if name.startswith("signer")]
        problems = check_signers(desk.client, urls)
        self.data.timings["replica_checks"] = self.data.timings.get("replica_checks", 0) + 1
        if problems:
            raise RuntimeError(f"replica differs from the chain after {when}: " + "; ".join(problems[:5]))

    def _record_initial(self, plans: list[TraderPlan], traders: list[Any]) -> None:
        for plan, trader in zip(plans, traders):
            try:
                r = _get(f"{self.gateway_url}/v1/accounts/{trader.address}")
            except Exception:  # an account whose every leg was refused has no state
                continue
            self.data.initial[trader.address] = {
                "kind": plan.kind,
                "equity": r["equity"],
                "mm": r["maintenance_margin"],
                "im": r["initial_margin"],
                "index": plan.index,
                "positions": r["positions"],
            }
        self.data.plans = [
            {"index": p.index, "kind": p.kind, "deposit": p.deposit, "legs": [(i.name, s) for i, s in p.legs]}
            for p in plans
        ]

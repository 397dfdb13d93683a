"""The loss waterfall on a real Anvil node, with the risk engine as the oracle: a scripted ETH
crash drives one account into partial liquidation, one into a bankruptcy the insurance fund
covers, and one into auto-deleveraging once the fund is drained. The liquidation and ADL
requests are answered by the oracle itself (in process, replaying the chain). Balances
reconcile to the wei.
"""

from __future__ import annotations

from typing import Any

import pytest

from offchain.attest.builder import margin_attestation
from offchain.attest.liquidation import LiquidationConfig, fund_fits, liquidator_check, slice_im, terms
from offchain.attest.messages import AdlAttestation, AdlFill, MarginAttestation, Order
from offchain.attest.signer import sign_bundle
from offchain.attest.state_hash import next_state_hash
from offchain.chain.deploy import OnchainRiskConfig
from offchain.ops.web import status_of
from offchain.oracle.core import Oracle, OracleError
from offchain.oracle.market_sources import FixedMarketSource as StaticSource
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD

from .system import System, deploy_test_system
from .test_clearinghouse_anvil import _sign_order

pytestmark = pytest.mark.chain
PARAMS = MarginParams()


class Desk:
    """The test's trading desk: funds accounts, trades perps, signs what the oracle would."""

    def __init__(self, system: System, rpc_url: str) -> None:
        from ape import chain

        self.s = system
        self.chain = chain
        self.deposits: dict[str, int] = {}
        self.nonce = 0
        self._oracle = system.oracle_for(rpc_url, StaticSource(system.market(self.now())))

    def now(self) -> int:
        return int(self.chain.blocks.head.timestamp)

    def oracle(self, spot: float) -> Oracle:
        """The in-process oracle, its market moved to `spot` now."""
        self._oracle.source = StaticSource(self.s.market(self.now(), eth=spot))
        self._oracle._snapshot = None
        return self._oracle

    def fund(self, account: Any, units: int) -> None:
        amount = units * 10**6
        self.s.token.mint(account.address, amount, sender=self.s.deployer)
        self.s.token.approve(self.s.ch.address, amount, sender=account)
        self.s.ch.deposit(account.address, amount, sender=account)
        self.deposits[account.address] = self.deposits.get(account.address, 0) + amount * 10**12

    def attest(
        self, account: str, spot: float, positions: dict[int, int] | None = None, state: bytes | None = None
    ) -> tuple[MarginAttestation, bytes]:
        positions = self.s.positions(account) if positions is None else positions
        state = self.s.state_hash(account) if state is None else state
        att = margin_attestation(
            account, state, positions, self.s.registry, self.s.market(self.now(), eth=spot), PARAMS
        )
        return att, sign_bundle(self.s.oracle, self.s.domain, att)

    def buy_perp(self, taker: Any, maker: Any, contracts: int, price: float) -> None:
        """`taker` buys `contracts` ETH perpetuals from `maker` at `price`."""
        perp = self.s.ids["ETH-PERP"]
        size = contracts * WAD
        self.nonce += 1
        order = Order(maker.address, perp, -size, int(price * WAD), self.nonce, self.now() + 600)
        atts = []
        for acct, delta in ((maker.address, -size), (taker.address, size)):
            positions = self.s.positions(acct)
            positions[perp] = positions.get(perp, 0) + delta
            state = next_state_hash(self.s.state_hash(acct), perp, positions[perp])
            atts.append(self.attest(acct, price, positions, state))
        self.s.ch.fillOrder(
            order.as_tuple(),
            _sign_order(maker, self.s, order),
            size,
            atts[0][0].as_tuple(),
            atts[0][1],
            atts[1][0].as_tuple(),
            atts[1][1],
            sender=taker,
        )

    def liquidate(self, keeper: Any, account: str, spot: float) -> dict[str, int]:
        """The keeper liquidates `account` with the oracle's answer: the account's attestation and
        the keeper's attestation of its CURRENT portfolio."""
        ch, engine = self.s.ch, self.s.engine
        answer = self.oracle(spot).attest_liquidation({"accounts": [account], "liquidator": keeper.address})
        att, sigs = self.s.signed(answer, account)
        katt, ksigs = self.s.signed(answer, "liquidator")
        assert katt.state_hash == self.s.state_hash(keeper.address)
        equity = int(ch.cashOf(account)) + att.value
        cfg = LiquidationConfig.from_risk_config(OnchainRiskConfig.from_chain(ch.riskConfig()))
        f, bonus, fee = terms(equity, att.maintenance_margin, cfg, int(self.s.fund.health()))
        assert (f, bonus, fee) == tuple(engine.liquidationTerms(equity, att.maintenance_margin)), "mirror"
        assert answer["extra"]["fractions"][account] == {
            "fraction": str(f),
            "bonus": str(bonus),
            "fee": str(fee),
            "equity": str(equity),
        }
        keeper_equity = int(ch.cashOf(keeper.address)) + katt.value
        after, bound = liquidator_check(keeper_equity, katt.initial_margin, [(bonus, slice_im(att.initial_margin, f))])
        assert int(answer["extra"]["liquidator"]["requirement_bound"]) == bound and after >= bound
        engine.liquidate([(account, att.as_tuple(), sigs, WAD)], katt.as_tuple(), ksigs, sender=keeper)
        return {"fraction": f, "bonus": bonus, "fee": fee, "equity": equity, "mm": att.maintenance_margin}

    def reconcile(self, accounts: list[str]) -> None:
        ch, token, fund = self.s.ch, self.s.token, self.s.fund
        assert token.balanceOf(ch.address) * 10**12 == int(ch.totalCash()) + int(ch.protocolFees()) - int(
            ch.netSettlementPayouts()
        )
        assert token.balanceOf(fund.address) * 10**12 == int(fund.fundBalance())
        assert sum(int(ch.cashOf(a)) for a in accounts) == int(ch.totalCash())
        for instrument_id in self.s.registry:
            assert sum(int(ch.positionOf(a, instrument_id)) for a in accounts) == 0


def test_crash_partial_liquidation_fund_bankruptcy_and_adl(anvil: Any, ape_chain: Any) -> None:
    from ape import accounts, reverts

    system = deploy_test_system(n_signers=3, threshold=2)
    desk = Desk(system, anvil.url)
    ch, fund, engine = system.ch, system.fund, system.engine
    deployer = system.deployer
    a, b, c, mm1, mm2, keeper = (accounts.test_accounts[i] for i in range(1, 7))
    everyone = [x.address for x in (a, b, c, mm1, mm2, keeper)]

    # Books at ETH 3,000: three leveraged longs, two well-capitalized market makers short.
    for acct, units in ((a, 11_000), (b, 7_300), (c, 14_400), (mm1, 200_000), (mm2, 200_000), (keeper, 500_000)):
        desk.fund(acct, units)
    system.token.mint(deployer.address, 800 * 10**6, sender=deployer)
    system.token.approve(fund.address, 800 * 10**6, sender=deployer)
    fund.deposit(800 * 10**6, sender=deployer)
    desk.buy_perp(a, mm1, 10, 3000.0)
    desk.buy_perp(b, mm1, 10, 3000.0)
    desk.buy_perp(c, mm2, 20, 3000.0)
    desk.reconcile(everyone)

    # ETH falls 25%.
    spot = 2250.0

    # 1. A is below MM but solvent: a partial liquidation restores it above target.
    result = desk.liquidate(keeper, a.address, spot)
    assert 0 < result["fraction"] < WAD
    after, _ = desk.attest(a.address, spot)
    equity_after = int(ch.cashOf(a.address)) + after.value
    assert equity_after >= after.maintenance_margin * 110 // 100 - 10**9, "restored to MM x 1.1"
    assert int(ch.positionOf(keeper.address, system.ids["ETH-PERP"])) > 0
    desk.reconcile(everyone)

    # 2. B is bankrupt; the fund covers its deficit in full (and no bonus is paid on it).
    fund_before = int(fund.fundBalance())
    result = desk.liquidate(keeper, b.address, spot)
    assert result["equity"] < 0 and result["bonus"] == 0 and result["fee"] == 0
    assert int(ch.positionOf(b.address, system.ids["ETH-PERP"])) == 0
    assert int(ch.cashOf(b.address)) >= 0
    assert int(fund_before) - int(fund.fundBalance()) <= -result["equity"] + 10**12, "the fund paid the deficit only"
    desk.reconcile(everyone)

    # 3. C is bankrupt beyond what is left in the fund: the oracle refuses to attest its
    #    liquidation, the contract skips it, and ADL resolves it.
    oracle = desk.oracle(spot)
    with pytest.raises(OracleError) as refused:
        oracle.attest_liquidation({"accounts": [c.address], "liquidator": keeper.address})
    assert status_of(refused.value) == 409 and "beyond the insurance fund" in str(refused.value)
    att, sigs = desk.attest(c.address, spot)
    katt, ksigs = desk.attest(keeper.address, spot)
    with reverts(engine.NothingLiquidated):
        engine.liquidate([(c.address, att.as_tuple(), sigs, WAD)], katt.as_tuple(), ksigs, sender=keeper)
    engine.flagBankruptcy(c.address, att.as_tuple(), sigs, sender=keeper)
    assert ch.withdrawalsGated()

    perp = system.ids["ETH-PERP"]
    c_size = int(ch.positionOf(c.address, perp))
    plan = desk.oracle(spot).attest_adl({"account": c.address})
    adl, adl_sigs = system.signed(plan, "adl")
    assert isinstance(adl, AdlAttestation) and adl.instrument_ids == (perp,)
    fills = [AdlFill.from_wire(f) for f in plan["extra"]["fills"]]
    assert {f.counterparty for f in fills} <= {mm1.address, mm2.address}, "only opposite-side holders"
    fund_left = int(fund.fundBalance())
    receipt = engine.deleverage(adl.as_tuple(), adl_sigs, [f.as_tuple() for f in fills], sender=keeper)
    completed = receipt.decode_logs(engine.DeleveragingCompleted)[0]
    steps = receipt.decode_logs(engine.Deleveraged)
    assert [s.counterparty for s in steps] == [f.counterparty for f in fills][: len(steps)], "in rank order"
    assert sum(int(s.amount) for s in steps) == c_size, "no more and no less than the bankrupt size"
    assert int(completed.fundContribution) == fund_left, "the fund paid everything it had first"
    expected = plan["extra"]["expected"]
    assert int(completed.uncovered) == int(expected["uncovered"]) == 0
    assert int(completed.haircut) == int(expected["haircut"]), "the oracle predicted the contract's haircut"
    assert int(fund.fundBalance()) == 0
    assert int(ch.positionOf(c.address, perp)) == 0, "exactly the bankrupt size was deleveraged"
    assert int(ch.cashOf(c.address)) >= 0
    assert not ch.withdrawalsGated()
    desk.reconcile(everyone)
    # the oracle's replica saw the flag come and go
    desk.oracle(spot).sync()
    assert c.address not in desk._oracle.state.flagged
    assert desk._oracle.state.hash_mismatches == 0


def test_python_mirrors_of_the_engine_agree(ape_chain: Any) -> None:
    """Python's liquidation terms and ADL struct hash equal the contracts' on random inputs."""
    import random

    from offchain.attest.eip712 import struct_hash

    system = deploy_test_system(n_signers=3, threshold=2)
    cfg = LiquidationConfig.from_risk_config(OnchainRiskConfig.from_chain(system.ch.riskConfig()))
    health = int(system.fund.health())
    rng = random.Random(11)
    for _ in range(150):
        mm = rng.randint(1, 10**30)
        equity = rng.randint(-(10**30), mm - 1)
        assert terms(equity, mm, cfg, health) == tuple(system.engine.liquidationTerms(equity, mm))
    assert terms(-5, 10**18, cfg, health) == (WAD, 0, 0) == tuple(system.engine.liquidationTerms(-5, 10**18))
    for _ in range(5):
        n = rng.randint(1, 4)
        adl = AdlAttestation(
            "0x" + rng.randbytes(20).hex(),
            rng.randbytes(32),
            tuple(rng.randint(1, 2**32) for _ in range(n)),
            tuple(rng.randint(0, 2**128) for _ in range(n)),
            tuple(rng.randbytes(32) for _ in range(n)),
            rng.randint(0, 2**63),
            rng.randint(0, 2**63),
            rng.randint(0, 2**32 - 1),
        )
        assert struct_hash(adl) == bytes(system.engine.hashAdlAttestation(adl.as_tuple()))


def test_fund_cover_mirror_decides_a_batch_as_the_contract_does(anvil: Any, ape_chain: Any) -> None:
    """One batch of three bankruptcies and a partial liquidation with the fund just short of the
    deficits: which accounts the fund covers, with the fund as each earlier item leaves it (the
    partial one's fee included), is predicted exactly by fund_fits — and what it skips, the
    fund cannot cover (flagBankruptcy accepts it)."""
    from ape import accounts

    system = deploy_test_system(n_signers=3, threshold=2)
    desk = Desk(system, anvil.url)
    ch, fund, engine, deployer = system.ch, system.fund, system.engine, system.deployer
    b1, p1, b2, b3, maker, keeper = (accounts.test_accounts[i] for i in range(1, 7))
    for acct, units in ((b1, 7_200), (p1, 11_000), (b2, 7_300), (b3, 7_180), (maker, 500_000), (keeper, 500_000)):
        desk.fund(acct, units)
    for taker in (b1, p1, b2, b3):
        desk.buy_perp(taker, maker, 10, 3000.0)
    spot = 2250.0
    batch = [b1.address, p1.address, b2.address, b3.address]
    signed = {a: desk.attest(a, spot) for a in batch}
    items = [(int(ch.cashOf(a)) + signed[a][0].value, signed[a][0].maintenance_margin) for a in batch]
    cfg = LiquidationConfig.from_risk_config(OnchainRiskConfig.from_chain(ch.riskConfig()))
    health = int(fund.health())
    deficits = [-e for e, _ in items]
    assert deficits[0] > 0 and deficits[2] > 0 and deficits[3] > 0 and deficits[1] < 0
    fee = terms(items[1][0], items[1][1], cfg, health)[2]
    assert fee > 10**18, "the partial liquidation pays the fund a fee"
    # the fund covers b1 and, thanks to p1's fee paid before it, b2; never b3
    seed = (deficits[0] + deficits[2] - fee // 2) // 10**12
    system.token.mint(deployer.address, seed, sender=deployer)
    system.token.approve(fund.address, seed, sender=deployer)
    fund.deposit(seed, sender=deployer)
    before = int(fund.fundBalance())
    verdicts, after = fund_fits(items, before, cfg, int(fund.health()), 6)
    assert verdicts == [True, True, True, False]
    assert fund_fits([items[0], items[2]], before, cfg, int(fund.health()), 6)[0] == [
        True,
        False,
    ], "without the fee of the item between them, b2 would not fit"

    katt, ksigs = desk.attest(keeper.address, spot)
    receipt = engine.liquidate(
        [(a, signed[a][0].as_tuple(), signed[a][1], WAD) for a in batch], katt.as_tuple(), ksigs, sender=keeper
    )
    done = [log.account for log in receipt.decode_logs(engine.Liquidated)]
    skipped = [(log.account, int(log.reason)) for log in receipt.decode_logs(engine.LiquidationSkipped)]
    assert done == [a for a, ok in zip(batch, verdicts) if ok]
    assert skipped == [(b3.address, 3)]
    assert int(fund.fundBalance()) == after, "the mirror's fund after the batch, to the wei"
    assert -items[3][0] > after
    engine.flagBankruptcy(b3.address, signed[b3.address][0].as_tuple(), signed[b3.address][1], sender=keeper)
    assert ch.flagged(b3.address)

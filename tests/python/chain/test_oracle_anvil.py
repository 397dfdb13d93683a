"""The oracle's answers, signed in Python, against the contracts on a real Anvil node: the
snapshot heartbeat that retires a hoarded attestation, the settlement price bound to the
expiry, and a liquidation that a dust deposit in front of it cannot stop."""

from __future__ import annotations

from typing import Any

import pytest

from offchain.attest.builder import margin_attestation
from offchain.attest.eip712 import signer_of
from offchain.attest.messages import MarginAttestation, Order, SettlementPrice, SnapshotHeartbeat
from offchain.attest.state_hash import next_state_hash, underlying_to_bytes32
from offchain.chain.deploy import OnchainRiskConfig, deploy_dev_feeds
from offchain.ops.web import status_of
from offchain.oracle.core import OracleError
from offchain.oracle.market_sources import FeedConfig, FeedMarketSource, FixedMarketSource
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD

from .system import System, deploy_test_system
from .test_clearinghouse_anvil import _fund, _sign_order

pytestmark = pytest.mark.chain
PARAMS = MarginParams()


def _now() -> int:
    from ape import chain

    return int(chain.blocks.head.timestamp)


def _warp(provider: Any, timestamp: int) -> None:
    """Mines an empty block at `timestamp`."""
    _next_block_at(provider, timestamp)
    provider.web3.provider.make_request("evm_mine", [])


def _next_block_at(provider: Any, timestamp: int) -> None:
    provider.web3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def _attest(
    system: System,
    account: str,
    spot: float,
    positions: dict[int, int] | None = None,
    state: bytes | None = None,
    when: int | None = None,
) -> tuple[MarginAttestation, bytes]:
    positions = system.positions(account) if positions is None else positions
    state = system.state_hash(account) if state is None else state
    att = margin_attestation(
        account, state, positions, system.registry, system.market(when or _now(), eth=spot), PARAMS
    )
    return att, system.bundle(att)


def _long_perp(system: System, taker: Any, maker: Any, contracts: int, price: float) -> None:
    perp = system.ids["ETH-PERP"]
    size = contracts * WAD
    order = Order(maker.address, perp, -size, int(price * WAD), 1, _now() + 600)
    atts = []
    for acct, delta in ((maker.address, -size), (taker.address, size)):
        positions = system.positions(acct)
        positions[perp] = positions.get(perp, 0) + delta
        atts.append(
            _attest(system, acct, price, positions, next_state_hash(system.state_hash(acct), perp, positions[perp]))
        )
    system.ch.fillOrder(
        order.as_tuple(),
        _sign_order(maker, system, order),
        size,
        atts[0][0].as_tuple(),
        atts[0][1],
        atts[1][0].as_tuple(),
        atts[1][1],
        sender=taker,
    )


def test_heartbeat_retires_an_attestation_hoarded_from_a_dip(anvil: Any, ape_chain: Any) -> None:
    from ape import accounts, chain, reverts

    system = deploy_test_system(n_signers=3, threshold=2)
    ch, engine = system.ch, system.engine
    trader, maker, keeper = (accounts.test_accounts[i] for i in (1, 2, 3))
    for who, units in ((trader, 7_200), (maker, 200_000), (keeper, 200_000)):
        _fund(system, who, units)
    _long_perp(system, trader, maker, 10, 3000.0)

    # ETH dips to 2,700 for a moment: someone stores what the oracle signed then
    dip = _now()
    hoarded, hoarded_sigs = _attest(system, trader.address, 2700.0, when=dip)
    keeper_att, keeper_sigs = _attest(system, keeper.address, 2700.0, when=dip)
    assert int(ch.cashOf(trader.address)) + hoarded.value < hoarded.maintenance_margin, "below MM at the dip"

    # the price recovers; 45 s later (the stored attestations still within their 60 s deadline,
    # beyond the 30 s snapshot tolerance) the oracle's newest snapshot is from then
    _warp(ape_chain, dip + 45)
    oracle = system.oracle_for(anvil.url, FixedMarketSource(system.market(_now(), eth=3050.0)))
    answer = oracle.attest_heartbeat({})
    heartbeat, sigs = system.signed(answer, "heartbeat")
    assert isinstance(heartbeat, SnapshotHeartbeat) and heartbeat.snapshot_time == dip + 45
    assert (
        signer_of(system.domain, heartbeat, bytes.fromhex(answer["items"]["heartbeat"]["signature"][2:]))
        == system.oracle[0].address
    )
    request = [(trader.address, hoarded.as_tuple(), hoarded_sigs, WAD)]

    # without a heartbeat the stored attestation would still liquidate the recovered account
    before = chain.snapshot()
    engine.liquidate(request, keeper_att.as_tuple(), keeper_sigs, sender=keeper)
    assert int(ch.positionOf(trader.address, system.ids["ETH-PERP"])) < 10 * WAD
    chain.restore(before)

    # anyone posts the heartbeat: the contract's freshness floor rises past the dip
    receipt = ch.postSnapshot(heartbeat.as_tuple(), sigs, sender=accounts.test_accounts[7])
    assert [int(e.snapshotTime) for e in receipt.decode_logs(ch.SnapshotPosted)] == [dip + 45]
    assert int(ch.latestSnapshotTime()) == dip + 45
    with reverts(ch.SnapshotTooOld):
        engine.liquidate(request, keeper_att.as_tuple(), keeper_sigs, sender=keeper)
    # a heartbeat from the future, or signed by too few, is refused
    future = SnapshotHeartbeat(_now() + 3600)
    with reverts(ch.SnapshotInFuture):
        ch.postSnapshot(future.as_tuple(), system.bundle(future), sender=keeper)
    with reverts(ch.NotEnoughSignatures):
        ch.postSnapshot(heartbeat.as_tuple(), system.signed(answer, "heartbeat")[1][:65], sender=keeper)
    # the oracle's replica saw it
    oracle.sync()
    assert oracle.state.latest_posted_snapshot == dip + 45


def test_settlement_price_is_the_feed_round_at_expiry_whenever_asked(anvil: Any, ape_chain: Any) -> None:
    from ape import accounts, project, reverts

    system = deploy_test_system(n_signers=3, threshold=2)
    ch, deployer = system.ch, system.deployer
    expiry = next(i.expiry for i in system.registry.values() if i.is_option)
    feeds = deploy_dev_feeds(deployer, {"ETH": (3000.0, 0.65), "BTC": (90000.0, 0.5)})
    eth = project.DevPriceFeed.at(feeds["ETH"]["price_feed"])
    source = FeedMarketSource(
        ape_chain.web3, {u: FeedConfig(**f) for u, f in feeds.items()}, logs_from_block=system.deployment.deploy_block
    )
    oracle = system.oracle_for(anvil.url, source)
    max_age = OnchainRiskConfig.from_chain(ch.riskConfig()).max_snapshot_age
    for at, price in ((expiry - max_age - 600, 2900), (expiry - 1000, 2950), (expiry - 10, 3010), (expiry + 100, 3500)):
        _next_block_at(ape_chain, at)  # the round is updated at exactly `at`
        eth.setAnswer(price * 10**8, sender=deployer)
        if at < expiry:  # before the expiry there is no settlement price at all
            with pytest.raises(OracleError) as refused:
                oracle.attest_settlement({"underlying": "ETH", "expiry": expiry})
            assert status_of(refused.value) == 409 and "has not passed" in str(refused.value)

    # asked at several times after the expiry (the feed moving on): one price, from the round at expiry
    answers = []
    for later, price in ((expiry + 200, None), (expiry + 2_000, 3600), (expiry + 5 * 86400, 2000)):
        if price:
            _next_block_at(ape_chain, later)
            eth.setAnswer(price * 10**8, sender=deployer)
        else:
            _warp(ape_chain, later)
        answers.append(oracle.attest_settlement({"underlying": "ETH", "expiry": expiry})["items"]["settlement"])
    assert all(a["message"] == answers[0]["message"] for a in answers)
    posted = SettlementPrice(underlying_to_bytes32("ETH"), expiry, 3010 * WAD, expiry - 10)
    assert system.signed({"items": {"s": answers[0]}}, "s")[0] == posted

    # a price not bound to the expiry is refused: a reading after it, or one too old for it
    for wrong in (
        SettlementPrice(posted.underlying, expiry, 3500 * WAD, expiry + 100),
        SettlementPrice(posted.underlying, expiry, 2900 * WAD, expiry - max_age - 600),
    ):
        with reverts(ch.SettlementPriceNotAtExpiry):
            ch.postSettlementPrice(wrong.as_tuple(), system.bundle(wrong), sender=accounts.test_accounts[5])
    ch.postSettlementPrice(posted.as_tuple(), system.bundle(posted), sender=accounts.test_accounts[5])
    assert int(ch.settlementPrices(posted.underlying, expiry)) == 3010 * WAD

    # nothing is signed for an expiry no option of the underlying has (BTC lists none; a day later)
    for underlying, other in (("BTC", expiry), ("ETH", expiry + 86400), ("ETH", 1)):
        with pytest.raises(OracleError) as refused:
            oracle.attest_settlement({"underlying": underlying, "expiry": other})
        assert status_of(refused.value) == 400 and "no listed expiry" in str(refused.value)


def test_dust_deposit_in_front_of_a_liquidation_does_not_stop_it(anvil: Any, ape_chain: Any) -> None:
    """The liquidator's attestation is of its current portfolio: a 1-unit deposit into the victim
    (which changes the fraction, so the slices, so any predicted post-liquidation state) landing
    just before the liquidation changes nothing for it."""
    from ape import accounts

    system = deploy_test_system(n_signers=3, threshold=2)
    ch, engine = system.ch, system.engine
    victim, maker, keeper, griefer = (accounts.test_accounts[i] for i in (1, 2, 3, 4))
    for who, units in ((victim, 7_200), (maker, 200_000), (keeper, 200_000)):
        _fund(system, who, units)
    _long_perp(system, victim, maker, 10, 3000.0)
    _long_perp(system, keeper, maker, 1, 3000.0)  # the keeper has a book of its own

    oracle = system.oracle_for(anvil.url, FixedMarketSource(system.market(_now(), eth=2750.0)))
    answer = oracle.attest_liquidation({"accounts": [victim.address], "liquidator": keeper.address})
    att, sigs = system.signed(answer, victim.address)
    katt, ksigs = system.signed(answer, "liquidator")
    promised = int(answer["extra"]["fractions"][victim.address]["fraction"])
    assert 0 < promised < WAD

    # in front of the liquidation: one token unit (1e-6) deposited into the victim
    system.token.mint(griefer.address, 1, sender=system.deployer)
    system.token.approve(ch.address, 1, sender=griefer)
    ch.deposit(victim.address, 1, sender=griefer)
    receipt = engine.liquidate([(victim.address, att.as_tuple(), sigs, WAD)], katt.as_tuple(), ksigs, sender=keeper)
    done = receipt.decode_logs(engine.Liquidated)
    assert len(done) == 1 and done[0].account == victim.address
    assert 0 < int(done[0].fraction) <= promised, "a smaller slice, and still liquidated"
    assert int(done[0].fraction) != promised, "the deposit did change the fraction"
    assert not receipt.decode_logs(engine.LiquidationSkipped)

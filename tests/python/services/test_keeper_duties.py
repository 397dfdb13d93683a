"""The keeper's duties under the contracts' rules, as a real process on Anvil: expired options
settled payers first with all of an account's legs in one call; the on-chain snapshot floor kept
fresh with heartbeats; a bankruptcy flag cleared once it no longer holds (it gates everyone's
withdrawals); a bankruptcy beyond the fund flagged and deleveraged with the oracle's fills; a
batch item the chain skipped treated as not done; and an account nobody can liquidate reported
stalled and closed by the backstop."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from eth_account import Account

from offchain.attest.messages import from_wire
from offchain.chain.deploy import read_risk_config
from offchain.risk.instruments import parse_instrument
from offchain.risk.units import WAD
from offchain.sim.desk import trader_keys

from offchain.sim.chain_faults import ManualChain
from offchain.sim.harness import Harness, open_leveraged_longs
from .keeper_checks import (
    assert_mined_clean,
    assert_nonce_in_sync,
    keeper_address,
    liquidation_blocks,
    wait_for,
    wait_idle,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def start_keeper(h: Harness, extra: list[str] | None = None) -> None:
    h.desk.deposit(Account.from_key(h.stack.keeper_key), 2_000_000)
    h.stack.keeper(extra).start().wait_healthy()


def events(h: Harness, name: str, since: int = 0) -> list[Any]:
    client = h.desk.client
    return [e for e in client.logs(since, client.head()) if e.name == name]


def set_markets(h: Harness, eth: float, eth_vol: float = 0.65) -> None:
    """Moves the feeds, and has the oracle read them (its jump guard compares each reading with
    the last one it accepted)."""
    h.desk.set_market("ETH", eth, eth_vol)
    h.desk.set_market("BTC", 90_000.0, 0.5)
    for name, proc in h.stack.procs.items():
        if name.startswith("signer"):
            urllib.request.urlopen(proc.url + "/v1/risk/accounts?max_ratio=1.0", timeout=30).close()


def keeper_metric(h: Harness, line: str) -> bool:
    with urllib.request.urlopen(h.stack.procs["keeper"].url + "/metrics", timeout=5) as r:
        return line in r.read().decode()


def at_time(h: Harness, timestamp: int) -> None:
    h.desk.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


# ---------------------------------------------------------------------------------- settlement


def test_expired_options_settle_payers_first_with_all_legs_in_one_call(h: Harness) -> None:
    desk = h.desk
    by_name = {n: i for i, n in h.deployment.instruments.items()}
    put = next(i for n, i in by_name.items() if n.endswith("-3000-P"))
    call = next(i for n, i in by_name.items() if n.endswith("-3300-C"))
    expiry = parse_instrument(h.deployment.instruments[put]).expiry
    seller, buyer = trader_keys(600, 2)
    desk.fund_gas([seller.address, buyer.address])
    desk.deposit(seller, 200_000)
    desk.deposit(buyer, 200_000)
    assert desk.fill(seller, buyer, put, -2.0, 150.0).ok  # the seller writes 2 puts at 3,000
    assert desk.fill(seller, buyer, call, -2.0, 60.0).ok  # and 2 calls at 3,300
    start_keeper(h)
    start = desk.client.head()
    at_time(h, expiry - 600)
    set_markets(h, 2_800.0)  # the last reading before the expiry: the puts pay 200 each
    at_time(h, expiry + 60)
    set_markets(h, 2_850.0)  # after it: not the settlement price
    wait_for(lambda: len(events(h, "PositionSettled", start)) == 4, 90, "all four legs settled")
    posted = events(h, "SettlementPricePosted", start)
    assert [int(e.args["price"]) for e in posted] == [2_800 * WAD]
    settled = events(h, "PositionSettled", start)
    by_account: dict[str, list[Any]] = {}
    for e in settled:
        by_account.setdefault(e.args["account"], []).append(e)
    # one call per account, with every expired leg; the payer first
    assert {a: len({e.tx for e in es}) for a, es in by_account.items()} == {seller.address: 1, buyer.address: 1}
    assert (by_account[seller.address][0].block, by_account[seller.address][0].index) < (
        by_account[buyer.address][0].block,
        by_account[buyer.address][0].index,
    )
    payouts = {(e.args["account"], int(e.args["instrumentId"])): int(e.args["payout"]) for e in settled}
    assert payouts[(seller.address, put)] == -400 * WAD and payouts[(buyer.address, put)] == 400 * WAD
    assert payouts[(seller.address, call)] == 0 == payouts[(buyer.address, call)]
    assert all(desk.client.w3.eth.get_transaction(e.tx)["from"] == keeper_address(h) for e in settled)
    assert_mined_clean(h, start)
    assert_nonce_in_sync(h)


# ---------------------------------------------------------------------------------- heartbeat


def test_heartbeat_raises_the_snapshot_floor_when_it_trails_the_oracle(h: Harness) -> None:
    desk, ch = h.desk, h.desk.client.ch
    start_keeper(h)
    tolerance = read_risk_config(ch).snapshot_tolerance
    before = int(ch.functions.latestSnapshotTime().call())
    start = desk.client.head()
    # time passes and the feeds move on, but nobody uses an attestation
    for _ in range(2):
        desk.w3.provider.make_request("evm_increaseTime", [tolerance * 2])
        first = desk.client.head() + 1
        set_markets(h, 3_000.0)
    oracle_snapshot = int(desk.w3.eth.get_block(first)["timestamp"])  # the oldest feed reading of the last round
    wait_for(
        lambda: int(ch.functions.latestSnapshotTime().call()) >= oracle_snapshot - tolerance // 2,
        60,
        "the floor to follow the oracle's snapshot",
    )
    posted = events(h, "SnapshotPosted", start)
    assert posted and all(desk.w3.eth.get_transaction(e.tx)["from"] == keeper_address(h) for e in posted)
    floor = int(ch.functions.latestSnapshotTime().call())
    assert floor == max(int(e.args["snapshotTime"]) for e in posted) and floor - before > tolerance
    assert_mined_clean(h, start)


# ---------------------------------------------------------------------------------- bankruptcy flags


def test_a_flag_that_no_longer_holds_is_cleared(h_no_fund: Harness) -> None:
    h = h_no_fund
    desk, engine = h.desk, h.desk.client.engine
    (x,) = trader_keys(610, 1)
    maker = trader_keys(611, 1)[0]
    open_leveraged_longs(h, [x], maker, contracts=10, deposit=8_000)
    set_markets(h, 2_500.0, 0.8)
    set_markets(h, 2_100.0, 0.9)  # −30%: equity −1,000 and an empty fund
    resp = desk.oracle.post("/v1/attest/margin", {"account": x.address})
    att, sigs = from_wire(resp["items"]["margin"]), bytes.fromhex(resp["items"]["margin"]["signatures"][2:])
    desk.send(desk.deployer, engine.functions.flagBankruptcy(x.address, att.as_tuple(), sigs), "flag")
    assert desk.client.ch.functions.flagged(x.address).call()
    set_markets(h, 2_500.0, 0.8)
    set_markets(h, 2_900.0, 0.7)  # it recovers: equity ≥ 0, yet withdrawals stay gated for everyone
    start = desk.client.head()
    start_keeper(h)
    wait_for(lambda: not desk.client.ch.functions.flagged(x.address).call(), 60, "the keeper to clear the flag")
    cleared = events(h, "BankruptcyCleared", start)
    assert [e.args["account"] for e in cleared] == [x.address]
    assert desk.w3.eth.get_transaction(cleared[0].tx)["from"] == keeper_address(h)
    assert int(desk.client.ch.functions.flaggedCount().call()) == 0
    assert_mined_clean(h, start)


def test_bankruptcy_beyond_the_fund_is_flagged_and_deleveraged_with_the_oracles_fills(h_no_fund: Harness) -> None:
    h = h_no_fund
    desk = h.desk
    (x,) = trader_keys(620, 1)
    maker = trader_keys(621, 1)[0]
    open_leveraged_longs(h, [x], maker, contracts=10, deposit=8_000)
    set_markets(h, 2_500.0, 0.8)
    set_markets(h, 2_100.0, 0.9)  # bankrupt, the fund empty: deleveraging against the maker
    start = desk.client.head()
    start_keeper(h)
    wait_for(lambda: events(h, "DeleveragingCompleted", start), 90, "the deleveraging")
    assert [e.args["account"] for e in events(h, "BankruptcyFlagged", start)] == [x.address]
    legs = events(h, "Deleveraged", start)
    assert legs and all(e.args["counterparty"] == maker.address for e in legs)
    done = events(h, "DeleveragingCompleted", start)[0]
    assert int(done.args["uncovered"]) == 0 and int(done.args["haircut"]) > 0
    assert not desk.client.ch.functions.openInstruments(x.address).call()
    wait_for(lambda: not desk.client.ch.functions.flagged(x.address).call(), 30, "the flag cleared")
    assert_mined_clean(h, start)
    assert_nonce_in_sync(h)


# ---------------------------------------------------------------------------------- skipped items


def test_an_item_the_chain_skipped_is_not_counted_as_done(h: Harness) -> None:
    desk, engine = h.desk, h.desk.client.engine
    x, y = trader_keys(630, 2)
    maker = trader_keys(631, 1)[0]
    open_leveraged_longs(h, [x, y], maker, contracts=10, deposit=8_000)
    rival = trader_keys(632, 1)[0]
    desk.fund_gas([rival.address])
    desk.deposit(rival, 2_000_000)
    start_keeper(h, ["--poll", "3"])
    chain = ManualChain(h.node.url).start()
    try:
        chain.wait_blocks(2)
        wait_idle(h, chain)
        start = chain.head()
        desk.set_market("ETH", 2_500.0, 0.8)
        chain.pause()  # the keeper's liquidation of x and y waits in the pool
        wait_for(
            lambda: desk.w3.eth.get_transaction_count(keeper_address(h), "pending")
            > desk.w3.eth.get_transaction_count(keeper_address(h), "latest"),
            30,
            "the keeper's liquidation",
        )
        # a rival liquidates x first, with a higher tip: its state moves on before the keeper's lands
        resp = desk.oracle.post("/v1/attest/liquidation", {"accounts": [x.address], "liquidator": rival.address})
        att, sigs = from_wire(resp["items"][x.address]), bytes.fromhex(resp["items"][x.address]["signatures"][2:])
        ratt = from_wire(resp["items"]["liquidator"])
        rsigs = bytes.fromhex(resp["items"]["liquidator"]["signatures"][2:])
        tx = engine.functions.liquidate(
            [(x.address, att.as_tuple(), sigs, WAD)], ratt.as_tuple(), rsigs
        ).build_transaction(
            {
                "from": rival.address,
                "nonce": desk.w3.eth.get_transaction_count(rival.address),
                "gas": 2_000_000,
                "maxFeePerGas": 500 * 10**9,
                "maxPriorityFeePerGas": 100 * 10**9,
                "chainId": h.deployment.chain_id,
            }
        )
        desk.w3.eth.send_raw_transaction(rival.sign_transaction(tx).raw_transaction)
        chain.resume()
        wait_for(lambda: events(h, "LiquidationSkipped", start), 30, "the keeper's batch mined with x skipped")
        skipped = events(h, "LiquidationSkipped", start)
        assert [(e.args["account"], int(e.args["reason"])) for e in skipped] == [(x.address, 1)]
        assert desk.w3.eth.get_transaction(skipped[0].tx)["from"] == keeper_address(h)
        blocks = liquidation_blocks(h, start)
        assert len(blocks[x.address]) == 1 and len(blocks[y.address]) == 1  # x by the rival, y by the keeper
        wait_for(
            lambda: keeper_metric(h, 'keeper_liquidations_total{result="skipped"} 1.0'),
            30,
            "the keeper to count x as skipped",
        )
        assert keeper_metric(h, 'keeper_liquidations_total{result="done"} 1.0')
        # x is not marked done: when it falls below MM again, the keeper liquidates it
        desk.set_market("ETH", 2_250.0, 0.85)
        wait_for(lambda: len(liquidation_blocks(h, start).get(x.address, [])) == 2, 60, "x liquidated by the keeper")
        assert_mined_clean(h, start)
        assert_nonce_in_sync(h)
    finally:
        chain.stop()


# ---------------------------------------------------------------------------------- backstop


def test_an_account_nobody_can_liquidate_is_reported_stalled_and_closed_by_the_backstop(h: Harness) -> None:
    desk, engine, w3 = h.desk, h.desk.client.engine, h.desk.w3
    (x,) = trader_keys(640, 1)
    maker = trader_keys(641, 1)[0]
    open_leveraged_longs(h, [x], maker, contracts=10, deposit=8_000)
    desk.deposit(Account.from_key(h.stack.keeper_key), 50)  # no capital to take a slice
    h.stack.keeper(["--backstop-after", "2", "--retry-max-blocks", "1"]).start().wait_healthy()
    start = desk.client.head()
    set_markets(h, 2_500.0, 0.8)
    for _ in range(6):  # blocks for the attempts to fail in
        w3.provider.make_request("evm_mine", [])
        time.sleep(0.6)
    wait_for(lambda: events(h, "StallReported", start), 30, "the stall report")
    reported = events(h, "StallReported", start)
    assert [e.args["account"] for e in reported] == [x.address]
    assert w3.eth.get_transaction(reported[0].tx)["from"] == keeper_address(h)
    delay = int(engine.functions.BACKSTOP_DELAY().call())
    w3.provider.make_request("evm_increaseTime", [delay + 1])
    set_markets(h, 2_500.0, 0.8)  # fresh readings after the wait
    wait_for(lambda: events(h, "DeleveragingCompleted", start), 60, "the backstop")
    done = events(h, "DeleveragingCompleted", start)[0]
    assert done.args["account"] == x.address and int(done.args["haircut"]) == 0
    assert all(e.args["counterparty"] == maker.address for e in events(h, "Deleveraged", start))
    assert not desk.client.ch.functions.openInstruments(x.address).call()
    assert not liquidation_blocks(h, start)
    assert_mined_clean(h, start)
    assert_nonce_in_sync(h)


# ---------------------------------------------------------------------------------- the fund's edge


def test_crash_with_the_fund_just_short_resolves_every_bankruptcy_within_a_few_blocks(h_no_fund: Harness) -> None:
    """Six bankruptcies, the fund seeded just short of their total: the keeper decides which the
    fund covers with the contract's integer rule (fund_fits), liquidates those through the fund
    and flags and deleverages the rest — nothing it sends reverts, nothing waits unanswered."""
    h = h_no_fund
    desk, client = h.desk, h.desk.client
    traders = trader_keys(660, 6)
    (maker,) = trader_keys(661, 1)
    desk.fund_gas([t.address for t in traders] + [maker.address])
    desk.deposit(maker, 10_000_000)
    perp = next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")
    for k, t in enumerate(traders):
        desk.deposit(t, 7_200 + 120 * k)
        assert desk.fill(maker, t, perp, -10.0, 3000.0).ok
    set_markets(h, 2_650.0, 0.75)
    set_markets(h, 2_200.0, 0.9)
    rows = {r["account"]: r for r in desk.oracle.get("/v1/risk/accounts?max_ratio=1.0")["accounts"]}
    deficits = sorted(-int(rows[t.address]["equity_wei"]) for t in traders)
    assert all(d > 0 for d in deficits)
    seed = (sum(deficits) - deficits[0] // 2) // 10**12  # token units: just short of all of them
    token, fund = client.token.functions, client.fund.functions
    desk.send(desk.deployer, token.mint(desk.deployer.address, seed), "mint")
    desk.send(desk.deployer, token.approve(h.deployment.insurance_fund, seed), "approve")
    desk.send(desk.deployer, fund.deposit(seed), "fund")
    start = client.head()
    start_keeper(h)

    def resolved() -> bool:
        return (
            all(not client.ch.functions.openInstruments(t.address).call() for t in traders)
            and not client.ch.functions.withdrawalsGated().call()
        )

    wait_for(resolved, 120, "every bankruptcy resolved")
    covered = {e.args["account"] for e in events(h, "Liquidated", start)}
    deleveraged = {e.args["account"] for e in events(h, "DeleveragingCompleted", start)}
    assert covered | deleveraged == {t.address for t in traders} and not covered & deleveraged
    assert deleveraged, "the fund was short: at least one went to ADL"
    last = max(e.block for e in events(h, "Liquidated", start) + events(h, "DeleveragingCompleted", start))
    first = min(e.block for e in events(h, "Liquidated", start) + events(h, "BankruptcyFlagged", start))
    assert last - first <= 3 * len(deleveraged) + 2, f"resolved in {last - first + 1} blocks"
    assert_mined_clean(h, start)
    assert_nonce_in_sync(h)

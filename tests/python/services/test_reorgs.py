"""Reorganisations, with real signer, gateway and keeper processes on Anvil (anvil_reorg replaces
the newest blocks, anvil_rollback lowers the head): an orphaned trade, an orphaned liquidation
re-included one block later, an orphaned deposit, a head below the replicas' cursor, a reorg
while a signer is down, and a keeper whose own liquidation is orphaned. After each, every
replica equals a fresh replay of the canonical chain and the contract's stored state, and what
the gateway signs is accepted on-chain."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eth_account import Account

from offchain.attest.messages import from_wire
from offchain.attest.signer import LocalSigner
from offchain.chain.contracts import SystemClient
from offchain.oracle.core import Oracle
from offchain.oracle.market_sources import FeedConfig, FeedMarketSource
from offchain.replica.check import differences, signer_replica
from offchain.replica.state import ChainState
from offchain.risk.units import WAD
from offchain.sim.desk import trader_keys

from offchain.sim.harness import Harness, open_leveraged_longs, start_harness, stop_harness
from offchain.sim.http_calls import wait_for
from .keeper_checks import assert_nonce_in_sync, health, keeper_address

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = start_harness(tmp_path_factory.mktemp("reorgs"), keeper=False)
    try:
        yield harness
    finally:
        stop_harness(harness)


def rpc(h: Harness, method: str, *params: Any) -> Any:
    response = h.desk.w3.provider.make_request(method, list(params))
    assert "error" not in response, response
    return response.get("result")


def reorg(h: Harness, depth: int) -> None:
    """Replaces the newest `depth` blocks with empty ones (same height)."""
    rpc(h, "anvil_reorg", depth, [])
    h.desk.nonces.clear()  # transactions of the replaced blocks are gone


def signer_urls(h: Harness) -> list[str]:
    return [p.url for name, p in sorted(h.stack.procs.items()) if name.startswith("signer") and p.alive()]


def fresh_replay(h: Harness, block: int) -> ChainState:
    client = SystemClient(h.node.url, h.deployment)
    state = ChainState(block=h.deployment.deploy_block - 1)
    state.catch_up(client, block)
    return state


def assert_replicas_follow_the_chain(h: Harness, urls: list[str] | None = None) -> None:
    """Every live signer's replica equals a fresh replay at its block, and the contract's state."""
    client = SystemClient(h.node.url, h.deployment)
    for url in urls or signer_urls(h):
        replica = signer_replica(url)
        assert replica["block"] == client.head(), (url, replica["block"])
        fresh = fresh_replay(h, replica["block"])
        assert replica["digest"] == fresh.digest(), f"{url}: replica differs from a fresh replay"
        assert replica["hash"] == fresh.hashes[fresh.block]
        assert differences(client, replica) == []


def fresh_oracle(h: Harness) -> Oracle:
    """An oracle that has never seen the replaced blocks: it replays the canonical chain now."""
    client = SystemClient(h.node.url, h.deployment)
    source = FeedMarketSource(
        client.w3,
        {u: FeedConfig(**f) for u, f in h.deployment.feeds.items()},
        logs_from_block=h.deployment.deploy_block,
    )
    return Oracle(client, source, LocalSigner(Account.create().key))


def assert_attestations_accepted(h: Harness, accounts: list[str]) -> None:
    """The gateway's margin attestation of each account verifies on-chain (the state hash and
    the signatures), and its numbers are those a fresh replica computes."""
    client = h.desk.client
    fresh = fresh_oracle(h)
    for account in accounts:
        item = h.desk.oracle.post("/v1/attest/margin", {"account": account})["items"]["margin"]
        att, sigs = from_wire(item), bytes.fromhex(item["signatures"][2:])
        mine = from_wire(fresh.attest_margin({"account": account})["items"]["margin"])
        assert (att.state_hash, att.value, att.initial_margin, att.maintenance_margin) == (
            mine.state_hash,
            mine.value,
            mine.initial_margin,
            mine.maintenance_margin,
        ), account
        equity = client.ch.functions.verifyMarginAttestation(account, att.as_tuple(), sigs).call(
            {"from": h.deployment.liquidation_engine}
        )
        assert equity == fresh.state.accounts[account].cash + att.value


def perp(h: Harness) -> int:
    return next(i for i, n in h.deployment.instruments.items() if n == "ETH-PERP")


def synced(h: Harness) -> None:
    """Every signer has applied the head (GET /v1/replica syncs first)."""
    head = h.desk.client.head()
    for url in signer_urls(h):
        assert signer_replica(url)["block"] == head


# ---------------------------------------------------------------------------------- tests


def traded_pair(h: Harness, seed: int, contracts: float) -> tuple[Any, Any]:
    """Two funded accounts; the taker bought `contracts` ETH perpetuals from the maker."""
    maker, taker = trader_keys(seed, 2)
    h.desk.fund_gas([maker.address, taker.address])
    h.desk.deposit(maker, 50_000)
    h.desk.deposit(taker, 50_000)
    assert h.desk.fill(maker, taker, perp(h), -contracts, 3000.0).ok
    return maker, taker


def test_orphaned_trade_leaves_both_accounts_free(h: Harness) -> None:
    desk = h.desk
    maker, taker = traded_pair(h, 7101, 2.0)
    synced(h)  # the signers applied the trade's block
    reorg(h, 1)  # ... which is replaced by an empty one: the trade never happened
    assert desk.client.ch.functions.openInstruments(taker.address).call() == []
    assert_replicas_follow_the_chain(h)
    # the check itself sees a difference of one wei, or one leg
    replica = signer_replica(signer_urls(h)[0])
    row = replica["rows"][taker.address]
    tampered = {
        **replica,
        "rows": {
            **replica["rows"],
            taker.address: {**row, "cash": str(int(row["cash"]) + 1)},
            maker.address: {**replica["rows"][maker.address], "order": [1], "positions": ["5"]},
        },
    }
    found = differences(SystemClient(h.node.url, h.deployment), tampered)
    assert len(found) == 2 and "cash" in found[[taker.address in f for f in found].index(True)]
    assert_attestations_accepted(h, [maker.address, taker.address])
    assert desk.withdraw(taker, 1_000).ok and desk.withdraw(maker, 1_000).ok
    # and they trade again, attested on the canonical state
    assert desk.fill(maker, taker, perp(h), -1.0, 3000.0).ok
    assert_replicas_follow_the_chain(h)


def test_orphaned_liquidation_reincluded_a_block_later_is_applied_once(h: Harness) -> None:
    desk = h.desk
    traders = trader_keys(7201, 1)
    maker, liquidator = trader_keys(7202, 2)
    open_leveraged_longs(h, traders, maker, contracts=10, deposit=8_000)
    desk.fund_gas([liquidator.address])
    desk.deposit(liquidator, 2_000_000)
    desk.set_market("ETH", 2_500.0, 0.8)  # the long falls below MM
    victim = traders[0].address
    resp = desk.oracle.post("/v1/attest/liquidation", {"accounts": [victim], "liquidator": liquidator.address})
    att, sigs = from_wire(resp["items"][victim]), bytes.fromhex(resp["items"][victim]["signatures"][2:])
    katt = from_wire(resp["items"]["liquidator"])
    ksigs = bytes.fromhex(resp["items"]["liquidator"]["signatures"][2:])
    call = desk.client.engine.functions.liquidate([(victim, att.as_tuple(), sigs, WAD)], katt.as_tuple(), ksigs)
    receipt = desk.send(liquidator, call, "liquidate", gas=3_000_000)
    raw = rpc(
        h,
        "eth_getRawTransactionByHash",
        receipt["transactionHash"].hex()
        if receipt["transactionHash"].hex().startswith("0x")
        else "0x" + receipt["transactionHash"].hex(),
    )
    synced(h)  # the signers applied the liquidation
    reorg(h, 1)
    assert desk.client.ch.functions.openInstruments(liquidator.address).call() == []
    rpc(h, "eth_sendRawTransaction", raw)  # the same transaction, one block later
    assert desk.client.ch.functions.openInstruments(liquidator.address).call() != []
    assert_replicas_follow_the_chain(h)
    assert_attestations_accepted(h, [victim, liquidator.address])
    desk.set_market("ETH", 3_000.0, 0.65)


def test_orphaned_deposit_is_forgotten(h: Harness) -> None:
    desk = h.desk
    (newcomer,) = trader_keys(7301, 1)
    desk.fund_gas([newcomer.address])
    desk.deposit(newcomer, 12_345)
    synced(h)
    reorg(h, 1)  # the deposit (the last of its three transactions) is gone
    assert desk.client.ch.functions.cashOf(newcomer.address).call() == 0
    assert_replicas_follow_the_chain(h)
    for url in signer_urls(h):
        with urllib.request.urlopen(f"{url}/v1/replica?detail=1", timeout=30) as r:
            assert newcomer.address not in json.loads(r.read())["rows"]


def test_head_below_the_cursor_then_new_blocks(h: Harness) -> None:
    desk = h.desk
    a, b, c = trader_keys(7401, 3)
    desk.fund_gas([a.address, b.address, c.address])
    desk.deposit(a, 5_000)
    head = desk.client.head()
    synced(h)
    rpc(h, "anvil_rollback", 3)  # the head is now below every replica's cursor
    desk.nonces.clear()
    assert desk.client.head() == head - 3
    desk.deposit(b, 7_000)  # replacement blocks
    desk.deposit(c, 3_000)
    assert_replicas_follow_the_chain(h)
    assert_attestations_accepted(h, [b.address, c.address])
    (maker,) = trader_keys(7402, 1)
    desk.fund_gas([maker.address])
    desk.deposit(maker, 50_000)
    assert desk.fill(maker, b, perp(h), -1.0, 3000.0).ok  # trade attestations work on the new chain


def test_signer_down_during_a_reorg_notices_it_at_start(h: Harness) -> None:
    desk = h.desk
    maker, taker = traded_pair(h, 7501, 3.0)
    synced(h)
    down = h.stack.procs["signer2"]
    down.stop()  # saves its state: the trade's block, with its hash
    reorg(h, 1)
    desk.deposit(taker, 1_000)  # the chain moves on while it is down; 2 of 3 still sign
    assert_attestations_accepted(h, [maker.address, taker.address])
    down.start().wait_healthy()
    replica = signer_replica(down.url)
    assert replica["reorgs"] >= 1  # found at start, from the block hashes it saved
    assert_replicas_follow_the_chain(h)


def test_keeper_whose_liquidation_is_orphaned_liquidates_again(tmp_path: Path) -> None:
    k = start_harness(tmp_path, keeper=True)
    try:
        desk = k.desk
        traders = trader_keys(7601, 2)
        (maker,) = trader_keys(7602, 1)
        open_leveraged_longs(k, traders, maker, contracts=10, deposit=8_000)
        start = desk.client.head()
        client = desk.client

        def liquidated() -> set[str]:
            return {e.args["account"] for e in client.logs(start, client.head()) if e.name == "Liquidated"}

        desk.set_market("ETH", 2_500.0, 0.8)
        wait_for(lambda: liquidated() == {t.address for t in traders}, 60, "the keeper's liquidations")
        nonce = desk.w3.eth.get_transaction_count(keeper_address(k))
        # the blocks holding the keeper's liquidations are replaced: they and its nonce are gone
        depth = client.head() - min(e.block for e in client.logs(start, client.head()) if e.name == "Liquidated") + 1
        reorg(k, depth)
        assert liquidated() == set() and desk.w3.eth.get_transaction_count(keeper_address(k)) < nonce
        wait_for(lambda: liquidated() == {t.address for t in traders}, 90, "the keeper to liquidate them again")
        assert_nonce_in_sync(k)
        assert_replicas_follow_the_chain(k)
        head = client.head()
        wait_for(lambda: health(k)[1]["replica"]["block"] == head, 30, "the keeper's replica at the head")
        assert health(k)[1]["replica"]["digest"] == fresh_replay(k, head).digest()
    finally:
        stop_harness(k)

"""The keeper as a real process on Anvil when the chain turns hostile: a fee spike (base fee ×50,
every block bought by higher bids) during a crash, a fee cap below the base fee, lost answers and
RPC errors on sends, a keeper without the capital to take a slice, a dry run, a kill -9. Every
account below MM is liquidated soon after the obstacle goes, exactly once; the loop keeps serving
while its transaction waits; no transaction with an expired attestation is mined; the keeper's
nonce matches the chain's; /health says "stalled" (503) while accounts stay unhandled."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from offchain.keeper.journal import Journal

from offchain.sim.chain_faults import FaultyRpc, ManualChain, set_market_urgently
from offchain.sim.harness import Harness
from .keeper_checks import (
    assert_mined_clean,
    assert_nonce_in_sync,
    health,
    keeper_address,
    liquidation_blocks,
    open_longs,
    wait_for,
    wait_idle,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]


# ---------------------------------------------------------------------------------- fee spike


def test_fee_spike_during_a_crash_liquidates_everyone_soon_after_it_ends(h: Harness) -> None:
    desk = h.desk
    crashed = open_longs(h, 500, 6, deposit=8_000)  # below MM at 2,500
    later = open_longs(h, 510, 2, deposit=10_000)  # near MM at 2,500 (margin call), below at 2,400
    desk.deposit(Account.from_key(h.stack.keeper_key), 2_000_000)
    keeper = h.stack.keeper(["--max-fee-gwei", "300", "--stall-blocks", "60"]).start()
    keeper.wait_healthy()
    chain = ManualChain(h.node.url).start()
    try:
        chain.wait_blocks(3)
        wait_idle(h, chain)
        start = chain.head()
        chain.spike()  # base fee 1 → 50 gwei, blocks bought by 1,000 gwei tips
        chain.wait_blocks(1)
        set_market_urgently(desk, "ETH", 2_500.0, 0.8)
        wait_for(
            lambda: any(p["action"] == "liquidation" for p in health(h)[1].get("pending", [])),
            30,
            "a liquidation in flight",
        )
        chain.wait_blocks(3)
        assert not liquidation_blocks(h, start), "outbid: nothing gets in during the spike"
        # meanwhile the loop goes on: it answers, and it warns the accounts near MM
        status, body = health(h)
        assert status == 200 and body["seconds_since_loop"] < 5, body
        outbox = h.stack.workdir / "keeper" / "margin-calls.jsonl"
        wait_for(
            lambda: outbox.exists() and all(t.address in outbox.read_text() for t in later),
            30,
            "margin calls sent while the liquidation waits",
        )
        set_market_urgently(desk, "ETH", 2_400.0, 0.85)  # two more accounts below MM, still in the spike
        chain.wait_blocks(6)  # the first attestations expire (60 s = 5 blocks) while it waits

        def in_flight() -> set[str]:
            return {a for p in health(h)[1].get("pending", []) for a in p["accounts"]}

        # tried while the spike lasts: the newcomers are in the liquidation waiting in the pool
        wait_for(lambda: {t.address for t in crashed + later} <= in_flight(), 30, "every account in flight")
        chain.wait_blocks(2)
        assert not liquidation_blocks(h, start)
        end = chain.head()
        chain.calm()
        everyone = crashed + later
        wait_for(
            lambda: all(t.address in liquidation_blocks(h, start) for t in everyone),
            90,
            "every account below MM liquidated after the spike",
        )
        blocks = liquidation_blocks(h, start)
        last = max(b for t in everyone for b in blocks[t.address])
        assert last - end <= 6, f"the last liquidation came {last - end} blocks after the spike ended"
        assert all(len(blocks[t.address]) == 1 for t in everyone), blocks
        kinds = assert_mined_clean(h, start)
        assert kinds["liquidate"] >= 1
        assert kinds["cancel"] >= 1, "it gave up a transaction whose attestation would have expired"
        assert_nonce_in_sync(h)
    finally:
        chain.stop()
    wait_for(lambda: health(h)[0] == 200, 30, "/health back to 200")


# ---------------------------------------------------------------------------------- fee cap, RPC errors


def test_fee_cap_below_the_base_fee_and_rpc_errors_on_sends_keep_the_nonce_in_sync(h: Harness) -> None:
    desk = h.desk
    traders = open_longs(h, 520, 6, deposit=8_000)
    desk.deposit(Account.from_key(h.stack.keeper_key), 2_000_000)
    faulty = FaultyRpc(h.node.url)
    keeper = h.stack.keeper(
        [
            "--rpc",
            faulty.url,
            "--max-fee-gwei",
            "40",
            "--batch-size",
            "3",
            "--retry-max-blocks",
            "4",
            "--stall-blocks",
            "60",
        ]
    ).start()
    keeper.wait_healthy()
    # a block a second: what is measured is blocks, so the keeper's loop (wall time) must not be
    # what the bound depends on on a loaded machine
    chain = ManualChain(h.node.url, interval=1.0).start()
    try:
        chain.wait_blocks(3)
        wait_idle(h, chain)
        start = chain.head()
        chain.spike()  # 50 gwei: above what this keeper will ever pay
        chain.wait_blocks(1)
        set_market_urgently(desk, "ETH", 2_500.0, 0.8)
        chain.wait_blocks(3)
        faulty.down = True  # the keeper's node is unreachable for a while
        time.sleep(1.5)
        faulty.down = False
        chain.wait_blocks(2)
        assert not liquidation_blocks(h, start)
        status, body = health(h)
        assert any(
            "not sent" in (t.get("last_error") or "") or "Unaffordable" in (t.get("last_error") or "")
            for t in body["retrying"]
        ), body["retrying"]
        # what the keeper's next sends meet: a refusal for a base fee that moved, an answer lost
        # after the node took the transaction, a false "nonce too low", a request lost on the way
        faulty.inject("eth_sendRawTransaction", "error", "max fee per gas less than block base fee")
        faulty.inject("eth_sendRawTransaction", "lose_answer")
        faulty.inject("eth_sendRawTransaction", "error", "nonce too low")
        faulty.inject("eth_sendRawTransaction", "drop")
        end = chain.head()
        chain.calm()
        wait_for(
            lambda: all(t.address in liquidation_blocks(h, start) for t in traders),
            90,
            "every account below MM liquidated after the spike",
        )
        blocks = liquidation_blocks(h, start)
        last = max(b for t in traders for b in blocks[t.address])
        assert last - end <= 12, f"the last liquidation came {last - end} blocks after the spike ended"
        assert all(len(blocks[t.address]) == 1 for t in traders), blocks
        assert len(faulty.applied) == 4, faulty.applied
        kinds = assert_mined_clean(h, start)
        assert kinds["liquidate"] == 2
        assert_nonce_in_sync(h)
    finally:
        chain.stop()
        faulty.close()


# ---------------------------------------------------------------------------------- never abandoned


def test_failed_attempts_are_retried_not_abandoned_and_health_says_stalled(h: Harness) -> None:
    desk, w3 = h.desk, h.desk.w3
    first = open_longs(h, 530, 2, deposit=8_000)  # below MM at 2,500
    second = open_longs(h, 540, 2, deposit=10_000)  # below MM at 2,400
    me = keeper_address(h)
    desk.deposit(Account.from_key(h.stack.keeper_key), 50)  # far too little to take a slice
    journal = h.stack.workdir / "keeper" / "journal.sqlite"
    log = h.stack.workdir / "logs" / "keeper.log"

    def mine(n: int) -> None:
        for _ in range(n):
            w3.provider.make_request("evm_mine", [])
            time.sleep(0.6)  # a keeper loop per block

    keeper = h.stack.keeper(["--stall-blocks", "6", "--retry-max-blocks", "2", "--backstop-after", "0"]).start()
    keeper.wait_healthy()
    desk.set_market("ETH", 2_500.0, 0.8)
    mine(2)
    wait_for(
        lambda: any("cannot absorb" in w for w in health(h)[1].get("warnings", [])),
        30,
        "a warning that the keeper's equity cannot absorb the next slice",
    )
    mine(7)
    wait_for(lambda: health(h)[0] == 503, 30, "/health to answer 503 while the accounts stay unhandled")
    status, body = health(h)
    assert body["error"] == "stalled" and body["status"] == "stalled"
    assert {t.address for t in first} <= {u["account"] for u in body["unhandled"]}
    assert all(u["attempts"] >= 2 for u in body["unhandled"]), body["unhandled"]
    assert body["capital"]["ok"] is False
    # kill -9 and restart: nothing was marked done, so it is still tried
    keeper.kill9()
    keeper.start().wait_healthy()
    mine(3)
    assert not liquidation_blocks(h, 0)
    assert _attempts(log) >= 6
    # the keeper gets collateral: tried again at once, without waiting out its backoff
    desk.deposit_for(me, 2_000_000)
    wait_for(lambda: all(t.address in liquidation_blocks(h, 0) for t in first), 60, "the liquidations")
    wait_for(lambda: health(h)[0] == 200, 30, "/health back to 200")
    keeper.stop()

    # a dry run logs what it would send, again after new blocks, and journals nothing; the real
    # keeper started after it still liquidates
    entries = Journal(journal).entries
    dry = h.stack.keeper(["--dry-run", "--retry-max-blocks", "2"]).start()
    dry.wait_healthy()
    before = log.read_text().count("dry run: would send liquidation")
    desk.set_market("ETH", 2_400.0, 0.85)
    mine(6)
    assert log.read_text().count("dry run: would send liquidation") - before >= 2
    dry.stop()
    assert Journal(journal).entries == entries
    h.stack.keeper().start().wait_healthy()
    wait_for(
        lambda: all(t.address in liquidation_blocks(h, 0) for t in second), 60, "the liquidations after the dry run"
    )
    assert_nonce_in_sync(h)


def _attempts(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if "will retry" in line)

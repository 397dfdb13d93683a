"""The keeper's transaction sender on a real Anvil node that mines only when told to: stuck
transactions are replaced with both fees raised, evicted ones sent again, ones whose attestation
expires replaced by a fresh plan or cancelled (never mined late), answers lost on the way do not
cost a second nonce, the nonce follows transactions sent from elsewhere, and a restarted sender
adopts what its predecessor left in the pool."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3RPCError

from offchain.chain.anvil import AnvilNode, anvil_key
from offchain.keeper.fees import GWEI, FeePolicy
from offchain.keeper.journal import Journal
from offchain.keeper.txsender import Pending, Plan, Result, TxSender

pytestmark = pytest.mark.chain

DEAD = "0x000000000000000000000000000000000000dEaD"
BEEF = "0x000000000000000000000000000000000000bEEF"


@dataclass
class Chain:
    w3: Web3
    node: AnvilNode

    def rpc(self, method: str, *params: Any) -> Any:
        return self.w3.provider.make_request(method, list(params))

    def mine(self, seconds: int = 12) -> None:
        latest = self.w3.eth.get_block("latest")
        self.rpc("evm_mine", int(latest["timestamp"]) + seconds)

    def head(self) -> tuple[int, int]:
        block = self.w3.eth.get_block("latest")
        return int(block["number"]), int(block["timestamp"])


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    with AnvilNode(port=0, log_path=tmp_path / "anvil.log", extra_args=["--no-mining"]) as node:
        yield Chain(Web3(HTTPProvider(node.url)), node)


def poll(sender: TxSender, chain: Chain) -> list[Result]:
    return sender.poll(*chain.head())


def transfer(to: str = DEAD, value: int = 12_345, deadline: int | None = None) -> Plan:
    return Plan("transfer", to, "0x", 21_000, value, deadline, None, {"kind": "transfer"})


class Filler:
    """Fills every block with higher-tip transfers from another key (a gas limit of two)."""

    def __init__(self, chain: Chain, tip: int = 200 * GWEI) -> None:
        self.chain, self.tip = chain, tip
        self.account = Account.from_key(anvil_key(5))
        self.nonce = chain.w3.eth.get_transaction_count(self.account.address, "pending")
        chain.rpc("evm_setBlockGasLimit", hex(2 * 21_000 + 10_000))

    def fill(self) -> None:
        for _ in range(2):
            tx = {
                "to": BEEF,
                "value": 1,
                "gas": 21_000,
                "nonce": self.nonce,
                "chainId": self.chain.w3.eth.chain_id,
                "maxFeePerGas": 2 * self.tip,
                "maxPriorityFeePerGas": self.tip,
            }
            self.chain.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
            self.nonce += 1

    def stop(self) -> None:
        self.chain.rpc("evm_setBlockGasLimit", hex(30_000_000))


def test_stuck_transaction_is_replaced_with_both_fees_raised(chain: Chain) -> None:
    account = Account.from_key(anvil_key(3))
    sender = TxSender(chain.w3, account, policy=FeePolicy(max_fee=1_000 * GWEI), bump_blocks=1)
    poll(sender, chain)
    p = sender.submit(transfer())
    first = p.current.fees
    filler = Filler(chain)
    for _ in range(3):  # outbid for three blocks: the tip market moves up, the sender follows
        filler.fill()
        chain.mine()
        assert poll(sender, chain) == []
    assert len(p.variants) >= 2, "replaced while stuck"
    filler.stop()
    chain.mine()
    (result,) = poll(sender, chain)
    assert result.status == "mined" and result.nonce == 0
    tx = chain.w3.eth.get_transaction(result.tx)
    assert tx["maxFeePerGas"] >= first.max_fee * 1.125 and tx["maxPriorityFeePerGas"] >= first.tip * 1.125
    assert chain.w3.eth.get_balance(DEAD) == 12_345  # paid once
    assert sender.next_nonce == 1 == chain.w3.eth.get_transaction_count(account.address)


def test_transaction_evicted_by_a_base_fee_spike_is_sent_again(chain: Chain) -> None:
    account = Account.from_key(anvil_key(3))
    sender = TxSender(chain.w3, account, policy=FeePolicy(max_fee=1_000 * GWEI))
    poll(sender, chain)
    p = sender.submit(transfer())
    assert p.current.fees.max_fee < 50 * GWEI
    chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(50 * GWEI))  # ×50 in one block
    chain.mine()
    assert chain.w3.eth.get_transaction_count(account.address, "pending") == 0, "the node dropped it"
    assert poll(sender, chain) == []
    assert p.current.fees.max_fee > 50 * GWEI and len(p.variants) == 2  # sent again at the new price
    chain.mine()
    (result,) = poll(sender, chain)
    assert result.status == "mined"
    assert chain.w3.eth.get_balance(DEAD) == 12_345
    assert sender.next_nonce == chain.w3.eth.get_transaction_count(account.address) == 1


def test_expiring_attestation_without_a_fresh_plan_is_cancelled_never_mined_late(chain: Chain) -> None:
    account = Account.from_key(anvil_key(3))
    sender = TxSender(chain.w3, account, policy=FeePolicy(max_fee=1_000 * GWEI), bump_blocks=10)
    poll(sender, chain)
    _, now = chain.head()
    sender.submit(transfer(deadline=now + 40))
    filler = Filler(chain, tip=900 * GWEI)
    for _ in range(3):
        filler.fill()
        chain.mine(12)
        assert poll(sender, chain) == []
    p = sender.pending[0]
    assert p.cancelled, "cancelled before its deadline could pass"
    filler.stop()
    chain.mine(12)
    (result,) = poll(sender, chain)
    assert result.status == "cancelled" and result.plan.action == "transfer"
    tx = chain.w3.eth.get_transaction(result.tx)
    assert tx["to"] == account.address and tx["value"] == 0
    assert chain.w3.eth.get_balance(DEAD) == 0  # the expired action never landed
    assert sender.next_nonce == 1


def test_expiring_attestation_is_replaced_by_a_fresh_plan(chain: Chain) -> None:
    account = Account.from_key(anvil_key(3))
    refreshed: list[int] = []

    def refresh(p: Pending) -> Plan:
        _, now = chain.head()
        refreshed.append(p.nonce)
        return transfer(BEEF, 777, deadline=now + 120)

    sender = TxSender(chain.w3, account, policy=FeePolicy(max_fee=2_000 * GWEI), refresh=refresh, bump_blocks=10)
    poll(sender, chain)
    _, now = chain.head()
    sender.submit(transfer(deadline=now + 30))
    filler = Filler(chain, tip=900 * GWEI)
    filler.fill()
    chain.mine(12)
    assert poll(sender, chain) == []
    assert refreshed == [0]
    filler.stop()
    chain.mine(12)
    (result,) = poll(sender, chain)
    assert result.status == "mined" and result.plan.to == BEEF and result.plan.value == 777
    assert chain.w3.eth.get_balance(DEAD) == 0


def test_nonce_follows_transactions_sent_from_elsewhere(chain: Chain) -> None:
    account = Account.from_key(anvil_key(3))
    sender = TxSender(chain.w3, account)
    poll(sender, chain)
    p = sender.submit(transfer())
    # the same key, another process: replaces our nonce 0 and takes nonce 1
    for nonce in (0, 1):
        tx = {
            "to": BEEF,
            "value": 1,
            "gas": 21_000,
            "nonce": nonce,
            "chainId": chain.w3.eth.chain_id,
            "maxFeePerGas": 100 * GWEI,
            "maxPriorityFeePerGas": 50 * GWEI,
        }
        chain.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    chain.mine()
    # a node may count a transaction before its receipt can be read: the sender concludes only
    # once a later block still has no receipt of its own for the nonce
    assert poll(sender, chain) == []
    chain.mine()
    assert poll(sender, chain) == []
    (result,) = poll(sender, chain)
    assert result.status == "replaced" and result.nonce == p.nonce == 0
    q = sender.submit(transfer())  # local nonce 1 is taken: "nonce too low", resynchronised
    assert q.nonce == 2
    chain.mine()
    (result,) = poll(sender, chain)
    assert result.status == "mined" and sender.next_nonce == 3 == chain.w3.eth.get_transaction_count(account.address)


def test_a_lost_answer_costs_no_second_nonce_and_a_lost_send_is_repeated(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account.from_key(anvil_key(3))
    sender = TxSender(chain.w3, account)
    poll(sender, chain)
    real = chain.w3.eth.send_raw_transaction

    def arrives_but_no_answer(raw: bytes) -> Any:
        real(raw)
        raise requests.exceptions.ReadTimeout("read timed out")

    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", arrives_but_no_answer)
    p = sender.submit(transfer())
    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", real)
    assert p.nonce == 0 and sender.next_nonce == 1

    def never_arrives(raw: bytes) -> Any:
        raise requests.exceptions.ConnectionError("connection reset")

    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", never_arrives)
    q = sender.submit(transfer(BEEF, 5))
    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", real)
    assert q.nonce == 1

    def retried_by_a_layer_below(raw: bytes) -> Any:  # the first try got through; the retry is refused
        real(raw)
        raise Web3RPCError("{'code': -32003, 'message': 'nonce too low'}")

    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", retried_by_a_layer_below)
    r = sender.submit(transfer(BEEF, 7))
    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", real)
    assert r.nonce == 2, "its own transaction, not a nonce taken elsewhere"
    chain.mine()
    results = poll(sender, chain)  # nonces 0 and 2 mined... 2 waits behind 1, which never arrived
    assert [r.nonce for r in results] == [0]
    chain.mine()  # nonce 1 sent again at the last poll: now 1 and 2 are mined
    results = poll(sender, chain)
    assert [(r.nonce, r.status) for r in results] == [(1, "mined"), (2, "mined")]
    assert chain.w3.eth.get_balance(DEAD) == 12_345 and chain.w3.eth.get_balance(BEEF) == 12
    assert sender.next_nonce == 3 == chain.w3.eth.get_transaction_count(account.address)


def test_a_restarted_sender_adopts_what_is_still_in_the_pool(chain: Chain, tmp_path: Path) -> None:
    account = Account.from_key(anvil_key(3))
    journal = Journal(tmp_path / "journal.sqlite")
    first = TxSender(chain.w3, account, journal)
    poll(first, chain)
    first.submit(transfer())
    assert Journal(tmp_path / "journal.sqlite").in_flight(), "journaled before it left the process"
    # the process dies here; a new one starts from the journal
    second = TxSender(chain.w3, account, Journal(tmp_path / "journal.sqlite"))
    assert sorted(second.pending) == [0]
    second.sync_nonce()
    assert second.next_nonce == 1
    chain.mine()
    (result,) = poll(second, chain)
    assert result.status == "mined"
    assert Journal(tmp_path / "journal.sqlite").seen(Journal.nonce_key(0))["status"] == "mined"


def test_transactions_orphaned_by_a_reorg_free_their_nonces_and_nothing_waits_behind_a_gap(chain: Chain) -> None:
    account = Account.from_key(anvil_key(3))
    sender = TxSender(chain.w3, account)
    poll(sender, chain)
    sender.submit(transfer(value=1))
    sender.submit(transfer(value=2))
    chain.mine()
    assert [r.status for r in poll(sender, chain)] == ["mined", "mined"]
    assert sender.next_nonce == 2
    chain.rpc("anvil_reorg", 1, [])  # the block holding both is replaced by an empty one: they are gone
    assert chain.w3.eth.get_transaction_count(account.address) == 0
    # sent before the sender noticed: nonce 2 would wait forever behind the orphaned 0 and 1
    late = sender.submit(transfer(value=3))
    assert late.nonce == 2
    sender.sync_nonce()  # (what the keeper does when its replica sees the reorg)
    poll(sender, chain)  # the gap is noticed; a node that put 0 and 1 back would mine them now
    assert sorted(sender.pending) == [2]
    chain.mine()
    poll(sender, chain)  # still open a block later: 0 and 1 get transfers to ourselves
    assert sorted(sender.pending) == [0, 1, 2]
    chain.mine()
    results = poll(sender, chain)
    assert sorted((r.nonce, r.status) for r in results) == [(0, "cancelled"), (1, "cancelled"), (2, "mined")]
    assert chain.w3.eth.get_transaction_count(account.address) == 3 == sender.next_nonce
    assert chain.w3.eth.get_balance(DEAD) == 3  # the orphaned transfers were not repeated; the late one landed
    # with nothing in flight, a reorg lowers the next nonce to the chain's count
    chain.rpc("anvil_reorg", 1, [])
    poll(sender, chain)
    assert sender.next_nonce == chain.w3.eth.get_transaction_count(account.address) == 0

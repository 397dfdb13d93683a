"""The replica under reorganisations, on a scripted chain: random forks of random depths at
random moments (some deeper than the undo window, some while the replica is saved and reloaded)
leave it equal to a fresh replay of the chain as it is; a wrong emitted state hash marks the
account diverged until it is read back from the contract."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from offchain.attest.state_hash import next_state_hash
from offchain.chain.contracts import AccountOnChain, BlockRef, DecodedLog
from offchain.replica.state import ChainState

ACCOUNTS = ["0x" + f"{k:02x}" * 20 for k in range(1, 6)]


@dataclass
class Block:
    number: int
    hash: str
    parent: str
    logs: list[DecodedLog] = field(default_factory=list)


class ScriptedChain:
    """A chain whose newest blocks can be replaced (a fork of any depth, or a lower head)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.blocks: list[Block] = [Block(0, self._hash(), "0x" + "00" * 32)]
        self.calls = 0

    def _hash(self) -> str:
        return "0x" + self.rng.randbytes(32).hex()

    # the client interface ChainState.catch_up uses
    def header(self, block: int | str = "latest", attempts: int = 8) -> BlockRef | None:
        self.calls += 1
        n = len(self.blocks) - 1 if block == "latest" else int(block)
        if n >= len(self.blocks):
            return None
        b = self.blocks[n]
        return BlockRef(b.number, b.hash, b.parent, 1_000 + b.number)

    def logs(self, start: int, stop: int) -> list[DecodedLog]:
        self.calls += 1
        return [e for b in self.blocks[start : stop + 1] for e in b.logs]

    def account_at(self, account: str, block_hash: str) -> AccountOnChain:
        n = next(b.number for b in self.blocks if b.hash == block_hash)
        truth = self.replay(n).accounts[account]
        return AccountOnChain(truth.cash, truth.state_hash, list(truth.order), dict(truth.positions))

    def replay(self, upto: int | None = None) -> ChainState:
        s = ChainState(block=0)
        for b in self.blocks[1 : (upto if upto is not None else len(self.blocks) - 1) + 1]:
            for e in b.logs:
                s.apply(e)
            s.block = b.number
        return s

    # building blocks
    def mine(self, events: int, corrupt: bool = False) -> None:
        """A block of random deposits and position changes, consistent with the chain so far."""
        state = self.replay()
        number = len(self.blocks)
        b = Block(number, self._hash(), self.blocks[-1].hash)
        for index in range(events):
            account = self.rng.choice(ACCOUNTS)
            acct = state.touch(account)
            if self.rng.random() < 0.4 and not corrupt:
                amount = self.rng.randint(1, 10**20)
                entries = [
                    ("Deposited", {"account": account, "amount": amount}),
                    ("CashUpdated", {"account": account, "cash": acct.cash + amount}),
                ]
            else:
                instrument = self.rng.randint(1, 4)
                size = self.rng.choice([0, self.rng.randint(-(10**19), 10**19)])
                emitted = next_state_hash(acct.state_hash, instrument, size)
                if corrupt:
                    emitted = b"\x66" * 32
                entries = [
                    (
                        "PositionUpdated",
                        {"account": account, "instrumentId": instrument, "size": size, "stateHash": emitted},
                    )
                ]
            for name, args in entries:
                e = DecodedLog(number, len(b.logs), "clearinghouse", name, args, f"0x{number:04x}{index:04x}", b.hash)
                b.logs.append(e)
                state.apply(e)
        self.blocks.append(b)

    def reorg(self, depth: int, new_blocks: int) -> None:
        del self.blocks[len(self.blocks) - depth :]
        for _ in range(new_blocks):
            self.mine(self.rng.randint(0, 3))


def followed(seed: int, blocks: int, events: int, window: int = 128) -> tuple[ScriptedChain, ChainState]:
    """A chain of `blocks` blocks of `events` events each, and a replica that has caught up."""
    chain = ScriptedChain(seed)
    for _ in range(blocks):
        chain.mine(events)
    state = ChainState(block=0, reorg_window=window)
    follow(state, chain)
    return chain, state


def follow(state: ChainState, chain: ScriptedChain) -> None:
    head = chain.header("latest")
    assert head is not None
    state.catch_up(chain, head.number, head=head)


def test_random_forks_leave_the_replica_equal_to_a_fresh_replay() -> None:
    for seed in range(12):
        chain = ScriptedChain(seed)
        state = ChainState(block=0, reorg_window=16)
        for step in range(40):
            r = chain.rng.random()
            if r < 0.25 and len(chain.blocks) > 6:
                depth = chain.rng.randint(1, 5)
                chain.reorg(depth, chain.rng.randint(0, depth + 1))  # the head may end below the cursor
            else:
                for _ in range(chain.rng.randint(1, 3)):
                    chain.mine(chain.rng.randint(0, 3))
            if chain.rng.random() < 0.6:
                follow(state, chain)
                fresh = chain.replay()
                assert state.block == fresh.block and state.digest() == fresh.digest(), (seed, step)
                assert state.hashes[state.block] == chain.blocks[-1].hash
            if chain.rng.random() < 0.2:  # a restart from the saved file
                state = ChainState.from_json(state.to_json())
                state.reorg_window = 16
        follow(state, chain)
        assert state.digest() == chain.replay().digest() and not state.diverged and state.hash_mismatches == 0


def test_a_reorg_deeper_than_the_window_replays_from_the_deployment() -> None:
    chain, state = followed(99, 30, 2, window=4)
    chain.reorg(12, 14)
    follow(state, chain)
    assert state.digest() == chain.replay().digest()
    assert state.last_reorg is not None and state.last_reorg["how"] == "replay from deployment"


def test_a_restarted_replica_undoes_blocks_replaced_while_it_was_down() -> None:
    chain, state = followed(5, 10, 3)
    saved = state.to_json()
    chain.reorg(3, 5)  # while it is down
    again = ChainState.from_json(saved)
    follow(again, chain)
    assert again.reorgs == 1 and again.last_reorg["blocks_undone"] == 3
    assert again.digest() == chain.replay().digest()


def test_an_idle_chain_costs_one_call_and_a_replaced_tip_is_noticed() -> None:
    chain, state = followed(3, 5, 2)
    chain.calls = 0
    follow(state, chain)
    assert chain.calls == 1  # the head: same number, same hash
    chain.reorg(1, 1)  # same height, another block
    follow(state, chain)
    assert state.reorgs == 1 and state.digest() == chain.replay().digest()


def test_a_wrong_emitted_hash_marks_the_account_diverged_until_read_back() -> None:
    chain, state = followed(11, 4, 3)
    chain.mine(1, corrupt=True)  # the chain says a state hash the replay does not reach
    account = chain.blocks[-1].logs[0].args["account"]

    class Unreachable(ScriptedChain):
        def account_at(self, account: str, block_hash: str) -> Any:
            raise ConnectionError("node unavailable")

    down = Unreachable(0)
    down.blocks = chain.blocks
    follow(state, down)
    assert state.diverged == {account} and state.hash_mismatches == 1  # nothing is signed about it
    state._resync_tried = ("", 0.0)  # (a failed read is retried at the next block or 2 s later)
    follow(state, chain)  # the contract answers: read back, no longer diverged
    truth = chain.account_at(account, chain.blocks[-1].hash)
    acct = state.accounts[account]
    assert not state.diverged
    assert (acct.cash, acct.state_hash, acct.order, acct.positions) == (
        truth.cash,
        truth.state_hash,
        truth.order,
        truth.positions,
    )


def test_an_account_read_back_in_an_undone_block_is_read_back_again() -> None:
    chain = ScriptedChain(21)
    for _ in range(3):
        chain.mine(2)
    chain.blocks[-1].logs.clear()
    state = ChainState(block=0)
    follow(state, chain)
    x = ACCOUNTS[0]
    state.touch(x).state_hash = b"\x13" * 32  # the replica is wrong about x (an earlier fault)
    b = Block(len(chain.blocks), chain._hash(), chain.blocks[-1].hash)
    truth = chain.replay().account(x)
    b.logs.append(
        DecodedLog(
            b.number,
            0,
            "clearinghouse",
            "PositionUpdated",
            {"account": x, "instrumentId": 1, "size": 5, "stateHash": next_state_hash(truth.state_hash, 1, 5)},
            "0xaa",
            b.hash,
        )
    )
    chain.blocks.append(b)
    follow(state, chain)  # the event exposes it: diverged, read back in the same catch-up
    assert not state.diverged and state.digest() == chain.replay().digest()
    chain.reorg(1, 1)  # that block is replaced: undoing it restores the wrong x
    follow(state, chain)
    assert state.digest() == chain.replay().digest() and not state.diverged


def test_after_the_head_falls_the_replica_stays_below_the_confirmation_depth() -> None:
    chain = ScriptedChain(8)
    for _ in range(20):
        chain.mine(1)
    state = ChainState(block=0)
    head = chain.header("latest")
    state.catch_up(chain, head.number - 3)
    chain.reorg(4, 0)  # the head falls to below the replica's cursor
    head = chain.header("latest")
    state.catch_up(chain, head.number - 3, head=head)
    assert state.block == head.number - 3 and state.digest() == chain.replay(head.number - 3).digest()

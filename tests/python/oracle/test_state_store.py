"""The state store: a replica saved block by block (only what changed), through reorgs, loaded
back equal — in SQLite and in a real PostgreSQL server; another deployment's store is ignored;
a crash between saves leaves the previous save intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from offchain.errors import UserError
from offchain.replica.state import ChainState
from offchain.replica.store import SqlStore, open_store

from .pgserver import postgres_bin, postgres_server
from .test_replica_reorgs import ScriptedChain, follow, followed


def exercise(target: str) -> None:
    """Follows a chain with forks, saving after each catch-up; after each save a fresh load
    equals the live replica (accounts, hashes, undo records, cursor)."""
    chain = ScriptedChain(31)
    store = open_store(target)
    state = ChainState(block=0, deployment_key="31337:0xabc", reorg_window=16)
    for step in range(30):
        if chain.rng.random() < 0.25 and len(chain.blocks) > 6:
            depth = chain.rng.randint(1, 4)
            chain.reorg(depth, chain.rng.randint(0, depth + 1))
        else:
            for _ in range(chain.rng.randint(1, 3)):
                chain.mine(chain.rng.randint(0, 4))
        follow(state, chain)
        store.save(state)
        again = open_store(target, writer=False).load("31337:0xabc")
        assert again is not None, step
        assert (again.block, again.digest(), again.hashes, again.undo, again.undo_floor) == (
            state.block,
            state.digest(),
            state.hashes,
            state.undo,
            state.undo_floor,
        ), step
        if step % 7 == 6:
            state = again  # a restart: the loaded replica goes on
            state.reorg_window = 16
    assert state.digest() == chain.replay().digest()
    assert open_store(target, writer=False).load("1:0xother") is None, "another deployment's replica is ignored"
    store.close()


def test_sqlite_store_saves_what_changed_and_loads_it_back_through_reorgs(tmp_path: Path) -> None:
    exercise(str(tmp_path / "replica.sqlite"))


def test_a_save_writes_only_the_accounts_and_blocks_that_changed(tmp_path: Path) -> None:
    chain, state = followed(4, 10, 3)
    state.deployment_key = "k"
    store = open_store(tmp_path / "r.sqlite")
    store.save(state)
    assert state.changes() == (set(), set(), False)
    chain.mine(1)
    follow(state, chain)
    accounts, blocks, everything = state.changes()
    assert len(accounts) == 1 and blocks == {chain.blocks[-1].number} and not everything
    store.save(state)
    rows = sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT COUNT(*) FROM replica_accounts").fetchone()[0]
    assert rows == len(state.accounts)


def test_a_failed_save_leaves_the_previous_one(tmp_path: Path) -> None:
    chain, state = followed(6, 5, 3)
    state.deployment_key = "k"
    store = open_store(tmp_path / "r.sqlite")
    assert isinstance(store, SqlStore)
    store.save(state)
    saved = state.digest()
    chain.mine(3)
    follow(state, chain)
    state.accounts["0x" + "ee" * 20] = None  # type: ignore[assignment]  # a save that fails half-way
    state._touched.add("0x" + "ee" * 20)
    with pytest.raises(AttributeError):
        store.save(state)
    loaded = open_store(tmp_path / "r.sqlite", writer=False).load("k")
    assert loaded is not None and loaded.digest() == saved


def test_store_targets_are_checked() -> None:
    with pytest.raises(UserError, match="state store"):
        open_store("/tmp/replica.txt")


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed (apt-get install postgresql)")
def test_postgres_store_against_a_real_server() -> None:
    with postgres_server() as url:
        exercise(url)
        shared(url)


def test_a_replica_built_outside_replay_is_saved_whole(tmp_path: Path) -> None:
    """A state assembled directly (a benchmark's synthetic book, a migration) is written in full
    on its first save, not only the accounts marked as touched."""
    from offchain.replica.state import AccountState

    state = ChainState(block=5, deployment_key="k")
    for k in range(50):
        acct = AccountState(cash=k * 10**18, state_hash=bytes([k]) * 32)
        acct.set_position(1 + k % 3, (k + 1) * 10**17)
        state.accounts[f"0x{k:040x}"] = acct
    store = open_store(tmp_path / "r.sqlite")
    store.save(state)
    loaded = open_store(tmp_path / "r.sqlite", writer=False).load("k")
    assert loaded is not None and len(loaded.accounts) == 50 and loaded.digest() == state.digest()


def shared(target: str) -> None:
    """Two signers' replicas in one database stay apart; a second process opening the same
    replica takes it over and the first refuses to save; a dropped connection is reopened."""
    from offchain.replica.store import ReplicaTakenOver

    chain = ScriptedChain(41)
    for _ in range(8):
        chain.mine(3)
    a, b = ChainState(block=0, deployment_key="k"), ChainState(block=0, deployment_key="k")
    follow(a, chain)
    follow(b, chain)
    store_a, store_b = open_store(target, name="signer-a"), open_store(target, name="signer-b")
    store_a.save(a)
    chain.reorg(2, 3)
    follow(b, chain)  # b is ahead, on the new chain
    store_b.save(b)
    for name, state in (("signer-a", a), ("signer-b", b)):
        loaded = open_store(target, name=name, writer=False).load("k")
        assert loaded is not None and loaded.block == state.block and loaded.digest() == state.digest(), name
    intruder = open_store(target, name="signer-a")
    follow(a, chain)
    with pytest.raises(ReplicaTakenOver):
        store_a.save(a)
    intruder.save(a)
    assert isinstance(store_b, SqlStore)
    store_b.conn.close()  # the database goes away under it
    chain.mine(2)
    follow(b, chain)
    with pytest.raises(Exception):
        store_b.save(b)
    assert b.changes()[0], "a failed save keeps what it did not write"
    store_b.save(b)  # reconnects
    loaded = open_store(target, name="signer-b", writer=False).load("k")
    assert loaded is not None and loaded.digest() == b.digest() == chain.replay().digest()


def test_replicas_share_a_sqlite_file_safely(tmp_path: Path) -> None:
    shared(str(tmp_path / "shared.sqlite"))

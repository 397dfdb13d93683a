"""Where a replica (ChainState) is kept between runs: one small interface, three backends.

- **SQLite** (the default: a path ending in `.sqlite` or `.db`, or `sqlite:///path`) — WAL
  journal, one transaction per save that writes only what changed since the last one: the
  accounts touched, the rows of the undo window's blocks, and one row of globals. A crash
  mid-save leaves the previous save intact.
- **PostgreSQL** (`postgresql://user@host:port/dbname`) — the same tables, for an operator whose
  state outgrows one machine's disk or who keeps it on a managed database.
- **A JSON file** (a path ending in `.json`) — the whole state rewritten atomically each save;
  for small deployments and older installs.

`open_store(target, name)` picks the backend. Each replica in a database has a name (a signer's
address, the keeper's): several signers may share one PostgreSQL database. One process writes a
replica: opening it takes it over (a writer token in its meta row), and a process whose token
was taken refuses to save rather than mix its rows with another's. A replica holds one
deployment: loading it for another returns None (the caller replays from the deployment block).
A save that fails (the database unreachable) raises; the next one reconnects.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from offchain.errors import UserError
from offchain.ops.logs import event
from offchain.replica.state import AccountState, ChainState

log = logging.getLogger("store")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replica_meta (replica TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "PRIMARY KEY (replica, key))",
    "CREATE TABLE IF NOT EXISTS replica_accounts (replica TEXT NOT NULL, address TEXT NOT NULL, cash TEXT NOT NULL, "
    "state_hash TEXT NOT NULL, book TEXT NOT NULL, net_deposits TEXT NOT NULL, PRIMARY KEY (replica, address))",
    "CREATE TABLE IF NOT EXISTS replica_blocks (replica TEXT NOT NULL, number BIGINT NOT NULL, hash TEXT, undo TEXT, "
    "PRIMARY KEY (replica, number))",
)
UPSERT_ACCOUNT = (
    "INSERT INTO replica_accounts (replica, address, cash, state_hash, book, net_deposits) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (replica, address) DO UPDATE SET cash = excluded.cash, "
    "state_hash = excluded.state_hash, book = excluded.book, net_deposits = excluded.net_deposits"
)
UPSERT_BLOCK = (
    "INSERT INTO replica_blocks (replica, number, hash, undo) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (replica, number) DO UPDATE SET hash = excluded.hash, undo = excluded.undo"
)
UPSERT_META = (
    "INSERT INTO replica_meta (replica, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (replica, key) DO UPDATE SET value = excluded.value"
)


class ReplicaTakenOver(UserError):
    """Another process opened this replica for writing since this one did."""


class StateStore(Protocol):
    def load(self, deployment_key: str) -> ChainState | None: ...

    def save(self, state: ChainState) -> None: ...

    def close(self) -> None: ...


def open_store(target: str | Path, name: str = "default", writer: bool = True) -> StateStore:
    """The store at `target` for the replica `name`; `writer=False` only reads (inspection,
    benchmarks) and leaves the writing process in place."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return SqlStore(lambda: _postgres(text), "%s", text.split("@")[-1], name, writer)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    path = Path(text)
    if path.suffix == ".json":
        return JsonStore(path)
    if path.suffix not in (".sqlite", ".db", ".sqlite3"):
        raise UserError(f"state store {text!r}: a path ending in .sqlite (or .db, .json), or a postgresql:// URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqlStore(lambda: _sqlite(path), "?", str(path), name, writer)


def _sqlite(path: Path) -> Any:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; a crash loses at most the last saves
    return conn


def _postgres(url: str) -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the lock file installs it
        raise UserError("a postgresql:// state store needs psycopg (installed by ./dpre)") from None
    # bounded waits: a stalled database must not hold the caller (a signer saves under its lock)
    return psycopg.connect(url, autocommit=True, connect_timeout=5, options="-c statement_timeout=20000")


def _account_row(address: str, a: AccountState) -> tuple[str, str, str, str, str]:
    book = json.dumps([[i, str(a.positions[i])] for i in a.order])
    return address, str(a.cash), a.state_hash.hex(), book, str(a.net_deposits)


def _account_from_row(row: Any) -> AccountState:
    _, cash, state_hash, book, net = row
    pairs = json.loads(book)
    return AccountState(
        int(cash), bytes.fromhex(state_hash), {int(i): int(z) for i, z in pairs}, [int(i) for i, _ in pairs], int(net)
    )


class SqlStore:
    """SQLite or PostgreSQL through DB-API: `mark` is the driver's placeholder."""

    def __init__(self, connect: Callable[[], Any], mark: str, where: str, name: str, writer: bool = True) -> None:
        self.connect, self.mark, self.where, self.name = connect, mark, where, name
        self.conn: Any = None
        self.token = secrets.token_hex(8) if writer else ""
        self._open()
        if writer:
            self._put_meta(self.conn.cursor(), "writer", self.token)  # this process writes the replica now

    def _open(self) -> None:
        self.conn = self.connect()
        for statement in SCHEMA:
            self.conn.execute(statement)

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.mark)

    def _put_meta(self, cur: Any, key: str, value: str) -> None:
        cur.execute(self._sql(UPSERT_META), (self.name, key, value))

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute(
            self._sql("SELECT value FROM replica_meta WHERE replica = ? AND key = ?"), (self.name, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def load(self, deployment_key: str) -> ChainState | None:
        raw = self._meta("state")
        if raw is None:
            return None
        meta = json.loads(raw)
        if meta.get("deployment") != deployment_key:
            event(
                log,
                "ignoring a stored replica of another deployment",
                logging.WARNING,
                store=self.where,
                replica=self.name,
                stored=meta.get("deployment"),
                deployment=deployment_key,
            )
            return None
        state = ChainState.from_json({**meta, "accounts": {}, "hashes": {}, "undo": {}})
        state.accounts = {
            r[0]: _account_from_row(r)
            for r in self.conn.execute(
                self._sql(
                    "SELECT address, cash, state_hash, book, net_deposits FROM replica_accounts WHERE replica = ?"
                ),
                (self.name,),
            )
        }
        for number, block_hash, undo in self.conn.execute(
            self._sql("SELECT number, hash, undo FROM replica_blocks WHERE replica = ?"), (self.name,)
        ):
            if block_hash:
                state.hashes[int(number)] = block_hash
            if undo:
                state.undo[int(number)] = json.loads(undo)
        state.mark_saved()
        return state

    def save(self, state: ChainState) -> None:
        """One transaction: the accounts and blocks touched since the last save, and the globals.
        Raises (and keeps the changes for the next save) if the database fails; reconnects then."""
        if self.conn is None:
            self._open()
        try:
            self._save(state)
        except ReplicaTakenOver:
            raise
        except Exception:
            try:
                self.close()
            except Exception:  # already gone
                self.conn = None
            raise
        state.mark_saved()

    def _save(self, state: ChainState) -> None:
        accounts, blocks, everything = state.changes()
        if everything:
            accounts, blocks = set(state.accounts), set(state.hashes) | set(state.undo)
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        try:
            if not self.token or self._meta("writer") != self.token:
                raise ReplicaTakenOver(
                    f"replica {self.name!r} in {self.where} was opened by another process; "
                    f"this one no longer saves it (run one process per replica name)"
                )
            name = self.name
            if everything:
                cur.execute(self._sql("DELETE FROM replica_accounts WHERE replica = ?"), (name,))
                cur.execute(self._sql("DELETE FROM replica_blocks WHERE replica = ?"), (name,))
            rows = [(name, *_account_row(a, state.accounts[a])) for a in accounts if a in state.accounts]
            if rows:
                cur.executemany(self._sql(UPSERT_ACCOUNT), rows)
            gone = [(name, a) for a in accounts if a not in state.accounts]
            if gone:
                cur.executemany(self._sql("DELETE FROM replica_accounts WHERE replica = ? AND address = ?"), gone)
            if state.undone_after is not None:
                cur.execute(
                    self._sql("DELETE FROM replica_blocks WHERE replica = ? AND number > ?"), (name, state.undone_after)
                )
            kept = set(state.hashes) | set(state.undo)
            cur.execute(
                self._sql("DELETE FROM replica_blocks WHERE replica = ? AND (number > ? OR number < ?)"),
                (name, state.block, min(kept) if kept else state.block),
            )
            rows_b = [
                (name, b, state.hashes.get(b), json.dumps(state.undo[b]) if b in state.undo else None)
                for b in sorted(blocks)
                if b in kept
            ]
            if rows_b:
                cur.executemany(self._sql(UPSERT_BLOCK), rows_b)
            self._put_meta(cur, "state", json.dumps(state.to_json(accounts=False)))
            cur.execute("COMMIT")
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except Exception:  # the connection itself failed: the original error says why
                pass
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class JsonStore:
    """The whole state in one JSON file, rewritten atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, deployment_key: str) -> ChainState | None:
        return ChainState.load(self.path, deployment_key)

    def save(self, state: ChainState) -> None:
        state.save(self.path)
        state.mark_saved()

    def close(self) -> None:
        pass

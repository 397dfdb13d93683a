"""The keeper's memory across restarts: its transactions, keyed by nonce.

An entry is written before a transaction leaves the process (status `in_flight`, with every
signed variant: the first send and its replacements) and updated once the nonce is mined
(`mined`, `reverted`, or `cancelled` when our 0-value replacement took it). A nonce that a
transaction from elsewhere took is removed. Nothing else is recorded: an action that failed in
simulation, was unprofitable, or was only logged in a dry run leaves no trace, so it is tried
again. After a crash the sender adopts the `in_flight` entries: it finds them mined, still in the
pool (and keeps following them), or gone (and sends them again or cancels them). The contracts
refuse a request bound to a state that has moved on, so nothing is applied twice.

Kept in SQLite (one row per nonce, WAL, each change its own committed transaction, so a change
costs one row however long the history), with the keeper's replica in the same directory. Mined
entries beyond the newest `keep` are pruned. A `journal.json` left by an older version beside it
is imported once."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path, keep: int = 2_000) -> None:
        self.path, self.keep = path, keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an entry is on disk before its transaction leaves
        self.db.execute("CREATE TABLE IF NOT EXISTS journal (key TEXT PRIMARY KEY, entry TEXT NOT NULL)")
        self.entries: dict[str, dict[str, Any]] = {
            k: json.loads(v) for k, v in self.db.execute("SELECT key, entry FROM journal")
        }
        legacy = path.with_name("journal.json")
        if not self.entries and legacy.exists() and legacy != path:
            # renamed first: a crash after it cannot import the same file again later
            imported = legacy.rename(legacy.with_name("journal.json.imported"))
            self._commit(json.loads(imported.read_text()), [])

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def nonce_key(nonce: int) -> str:
        return f"nonce:{nonce:012d}"

    def seen(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def in_flight(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.entries.items() if v.get("status") == "in_flight"}

    def record(self, key: str, **fields: Any) -> None:
        previous = self.entries.get(key, {})
        self._commit({key: {"ts": previous.get("ts", time.time()), **fields}}, [])

    def update(self, key: str, **fields: Any) -> None:
        entry = dict(self.entries.get(key, {"ts": time.time()}))
        for k, v in fields.items():
            if v is None:
                entry.pop(k, None)
            else:
                entry[k] = v
        dropped = self._to_prune({**self.entries, key: entry})
        self._commit({} if key in dropped else {key: entry}, dropped)

    def remove(self, key: str) -> None:
        if key in self.entries:
            self._commit({}, [key])

    def _to_prune(self, entries: dict[str, dict[str, Any]]) -> list[str]:
        done = [k for k, v in entries.items() if v.get("status") != "in_flight"]
        return sorted(done)[: max(0, len(done) - self.keep)]

    def _commit(self, changed: dict[str, dict[str, Any]], dropped: list[str]) -> None:
        """Writes `changed` and deletes `dropped` in one transaction, then mirrors it in memory.
        A failed write (a value that is not JSON, a locked database) is rolled back and raised:
        memory and disk stay equal, and the connection is ready for the next write."""
        rows = [(k, json.dumps(v)) for k, v in changed.items()]  # serialised before the transaction
        with self._lock:
            try:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO journal VALUES (?, ?)", rows)
                self.db.executemany("DELETE FROM journal WHERE key = ?", [(k,) for k in dropped])
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        self.entries.update(changed)
        for k in dropped:
            self.entries.pop(k, None)

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
            k: json.loads(v) for k, v in self.db.execute("SELECT key, entry FROM journal")}
        legacy = path.with_name("journal.json")
        if not self.entries and legacy.exists() and legacy != path:
            self.entries = json.loads(legacy.read_text())
            with self._lock:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO journal VALUES (?, ?)",
                                    [(k, json.dumps(v)) for k, v in self.entries.items()])
                self.db.execute("COMMIT")
            legacy.rename(legacy.with_name("journal.json.imported"))

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
        self.entries[key] = {"ts": previous.get("ts", time.time()), **fields}
        self._write([key], [])

    def update(self, key: str, **fields: Any) -> None:
        entry = self.entries.setdefault(key, {"ts": time.time()})
        for k, v in fields.items():
            if v is None:
                entry.pop(k, None)
            else:
                entry[k] = v
        self._write([key], self._prune())

    def remove(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self._write([], [key])

    def _prune(self) -> list[str]:
        done = [k for k, v in self.entries.items() if v.get("status") != "in_flight"]
        dropped = sorted(done)[: max(0, len(done) - self.keep)]
        for k in dropped:
            del self.entries[k]
        return dropped

    def _write(self, changed: list[str], dropped: list[str]) -> None:
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO journal VALUES (?, ?)",
                                [(k, json.dumps(self.entries[k])) for k in changed if k in self.entries])
            self.db.executemany("DELETE FROM journal WHERE key = ?", [(k,) for k in dropped])
            self.db.execute("COMMIT")

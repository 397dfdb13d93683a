"""The keeper's memory across restarts: its transactions, keyed by nonce.

An entry is written before a transaction leaves the process (status `in_flight`, with every
signed variant: the first send and its replacements) and updated once the nonce is mined
(`mined`, `reverted`, or `cancelled` when our 0-value replacement took it). A nonce that a
transaction from elsewhere took is removed. Nothing else is recorded: an action that failed in
simulation, was unprofitable, or was only logged in a dry run leaves no trace, so it is tried
again. After a crash the sender adopts the `in_flight` entries: it finds them mined, still in the
pool (and keeps following them), or gone (and sends them again or cancels them). The contracts
refuse a request bound to a state that has moved on, so nothing is applied twice.

Mined entries beyond the newest `keep` are dropped, so the file stays small."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path, keep: int = 2_000) -> None:
        self.path, self.keep = path, keep
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.entries = json.loads(path.read_text())

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
        self._save()

    def update(self, key: str, **fields: Any) -> None:
        entry = self.entries.setdefault(key, {"ts": time.time()})
        for k, v in fields.items():
            if v is None:
                entry.pop(k, None)
            else:
                entry[k] = v
        self._prune()
        self._save()

    def remove(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self._save()

    def _prune(self) -> None:
        done = [k for k, v in self.entries.items() if v.get("status") != "in_flight"]
        if len(done) > self.keep:
            for k in sorted(done)[: len(done) - self.keep]:
                del self.entries[k]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.entries, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

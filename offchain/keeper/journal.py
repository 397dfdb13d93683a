"""The keeper's memory across restarts: every action it started, keyed by what it acted on.

An action is recorded before its transaction is sent and marked done once mined. After a
crash, a recorded action on an account whose state hash has not changed is not repeated blindly:
the daemon asks the chain what happened first. (The contracts also refuse a liquidation bound to
a state hash that has moved on, so nothing can be applied twice.)"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.entries = json.loads(path.read_text())

    @staticmethod
    def key(kind: str, account: str, state_hash: str) -> str:
        return f"{kind}:{account}:{state_hash}"

    def seen(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def record(self, key: str, **fields: Any) -> None:
        self.entries[key] = {"status": "pending", "ts": time.time(), **fields}
        self._save()

    def update(self, key: str, **fields: Any) -> None:
        self.entries.setdefault(key, {}).update(fields)
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.entries, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

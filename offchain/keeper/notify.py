"""Margin-call notifications: users are told before they are liquidated.

Each warning goes to a JSON-lines file (tail it, or point a log shipper at it) and is POSTed to
any configured webhook URLs. One warning per account and portfolio state, so a user is not
flooded while nothing changes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx

from offchain.ops.logs import event

log = logging.getLogger("keeper.notify")


class MarginCallNotifier:
    def __init__(self, outbox: Path | None, webhooks: list[str]) -> None:
        self.outbox, self.webhooks = outbox, webhooks
        self.sent: set[tuple[str, str]] = set()

    def warn(self, row: dict[str, Any], block: int) -> bool:
        key = (row["account"], row["state_hash"])
        if key in self.sent:
            return False
        self.sent.add(key)
        message = {
            "type": "margin_call",
            "block": block,
            "account": row["account"],
            "equity": row["equity"],
            "maintenance_margin": row["mm"],
            "ratio": round(row["ratio"], 4),
            "advice": "deposit collateral or reduce positions: liquidation starts below maintenance margin",
        }
        if self.outbox:
            self.outbox.parent.mkdir(parents=True, exist_ok=True)
            with self.outbox.open("a") as f:
                f.write(json.dumps(message) + "\n")
        for url in self.webhooks:
            try:
                httpx.post(url, json=message, timeout=2).raise_for_status()
            except httpx.HTTPError as err:
                event(log, "webhook failed", logging.WARNING, url=url, error=f"{type(err).__name__}: {err}")
        event(log, "margin call", account=row["account"], ratio=round(row["ratio"], 4))
        return True

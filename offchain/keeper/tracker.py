"""Which at-risk accounts still need the keeper, and when to try each again.

Nothing is ever marked done by the keeper's own say-so: an account leaves the tracker only when
the oracle no longer lists it below maintenance margin (it was liquidated, deleveraged, or
recovered). Until then every failed, skipped, unprofitable or cancelled attempt schedules the
next one with exponential backoff in blocks, capped at `max_backoff` blocks — so each account
below MM is tried again within a bounded number of blocks — and any change in what the attempt
depends on (the account's state hash, its margin ratio, the keeper's own collateral) makes it due
at once. `stalled` lists the accounts that stayed unhandled for a given number of blocks.
Reasons an account moves on elsewhere (a bankruptcy the fund can no longer cover goes from
liquidation to deleveraging) are not failures: `defer` looks again next block, without backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tracked:
    key: str
    first_block: int
    attempts: int = 0
    next_block: int = 0
    fingerprint: Any = None
    last_error: str = ""
    in_flight: int | None = None  # nonce of the transaction acting on it
    info: dict[str, Any] = field(default_factory=dict)

    def view(self, head: int) -> dict[str, Any]:
        return {
            "account": self.key,
            "since_block": self.first_block,
            "blocks": head - self.first_block,
            "attempts": self.attempts,
            "next_try_block": self.next_block,
            "in_flight_nonce": self.in_flight,
            "last_error": self.last_error,
            **self.info,
        }


class RetryTracker:
    def __init__(self, max_backoff: int = 8) -> None:
        self.max_backoff = max(1, max_backoff)
        self.items: dict[str, Tracked] = {}

    def observe(self, keys: dict[str, Any], head: int) -> None:
        """`keys`: every key that needs the keeper now → its fingerprint. Keys no longer listed
        are handled and forgotten."""
        for gone in set(self.items) - set(keys):
            del self.items[gone]
        for key, fingerprint in keys.items():
            item = self.items.get(key)
            if item is None:
                self.items[key] = Tracked(key, head, fingerprint=fingerprint)
            elif item.fingerprint != fingerprint:
                item.fingerprint = fingerprint
                item.next_block = min(item.next_block, head)  # what it depends on changed: due now

    def ensure(self, key: str, head: int, fingerprint: Any = None) -> Tracked:
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = Tracked(key, head, fingerprint=fingerprint)
        return item

    def forget(self, key: str) -> None:
        self.items.pop(key, None)

    def due(self, key: str, head: int) -> bool:
        item = self.items.get(key)
        return item is None or (item.in_flight is None and head >= item.next_block)

    def sent(self, key: str, nonce: int) -> None:
        if key in self.items:
            self.items[key].in_flight = nonce
            self.items[key].last_error = ""

    def landed(self, key: str, head: int) -> None:
        """Its transaction was mined and acted on it: due again from the next block if the
        oracle still lists it (this block's list predates the transaction)."""
        item = self.items.get(key)
        if item is not None:
            item.in_flight = None
            item.attempts = 0
            item.next_block = head + 1

    def defer(self, key: str, head: int, why: str) -> None:
        """Not a failure of the attempt (the account is on its way elsewhere, e.g. from
        liquidation to deleveraging): looked at again from the next block, no backoff."""
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = Tracked(key, head)
        item.in_flight = None
        item.last_error = why[:300]
        item.next_block = head + 1

    def failed(self, key: str, head: int, error: str, retry_now: bool = False) -> int:
        """Schedules the next attempt; returns its block."""
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = Tracked(key, head)
        item.in_flight = None
        item.attempts += 1
        item.last_error = error[:300]
        item.next_block = head + (0 if retry_now else min(2 ** (item.attempts - 1), self.max_backoff))
        return item.next_block

    def stalled(self, head: int, blocks: int, progress_block: int = -1) -> list[Tracked]:
        """Keys that needed the keeper for `blocks` blocks or more and either failed their last
        attempt or saw no progress at all (nothing landed since `progress_block`): a key merely
        queued behind others while the keeper works through them is not stalled."""
        idle = head - progress_block >= blocks
        return sorted(
            (t for t in list(self.items.values()) if head - t.first_block >= blocks and (t.attempts > 0 or idle)),
            key=lambda t: t.first_block,
        )

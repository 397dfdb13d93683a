"""Every account's portfolio, rebuilt from the contracts' events (restart-safe: replay from the
deployment block, or resume from a saved snapshot).

The replica mirrors the contracts exactly — the open-position order of PositionBook, the slice
rule of engineTransferSlice, the risk configuration and params version in force, the bankruptcy
flags, settlement shortfalls — and checks its state hashes against the ones the events carry.

It follows the chain as it is, not as it was: for every block of the last `reorg_window` blocks
it keeps the block's hash and an undo record (what the block's events changed, as it was
before). Before each catch-up it checks that the last block it applied is still on the chain; if
not (a block replaced, the head below it), it walks back to the newest block it knows that still
is, undoes every later block, and replays from there — or, beyond the window, replays from the
deployment. An account whose replayed state hash differs from the one its event carries is
marked diverged (the oracle signs nothing about it) and read back from the contract.

What each event changes is in offchain/replica/events.py (one handler per event); what the oracle
and the keeper read is offchain/replica/interface.py's Replica, which ChainState implements.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offchain.attest.liquidation import LiquidationConfig, fund_covers
from offchain.attest.state_hash import ZERO_HASH
from offchain.chain.contracts import BlockRef, DecodedLog
from offchain.chain.deploy import Deployment, OnchainRiskConfig
from offchain.ops.logs import event
from offchain.replica.events import HANDLERS
from offchain.risk.instruments import Instrument, Kind
from offchain.risk.units import WAD

if TYPE_CHECKING:
    from offchain.replica.store import StateStore

log = logging.getLogger("state")

# RiskConfig's members in declaration order (contracts/interfaces/IClearinghouse.sol)
RISK_CONFIG_FIELDS = OnchainRiskConfig.MEMBERS


@dataclass(slots=True)  # a million of them: no per-instance __dict__
class AccountState:
    cash: int = 0
    state_hash: bytes = ZERO_HASH
    positions: dict[int, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # open-list order, as PositionBook keeps it
    net_deposits: int = 0

    def set_position(self, instrument_id: int, size: int) -> None:
        old = self.positions.get(instrument_id, 0)
        if size == 0:
            if old != 0:
                place = self.order.index(instrument_id)
                self.order[place] = self.order[-1]  # the last open id moves into the freed place
                self.order.pop()
                del self.positions[instrument_id]
            return
        if old == 0:
            self.order.append(instrument_id)
        self.positions[instrument_id] = size


@dataclass
class ChainState:
    block: int = -1  # last block applied
    accounts: dict[str, AccountState] = field(default_factory=dict)
    instruments: dict[int, Instrument] = field(default_factory=dict)
    settlement_prices: dict[tuple[str, int], float] = field(default_factory=dict)
    fund_balance: int = 0
    fund_target: int = 0
    params_version: int = 0
    liquidation_config: LiquidationConfig | None = None
    flagged: set[str] = field(default_factory=set)
    deployment_key: str = ""  # chain id and clearinghouse the snapshot belongs to
    hash_mismatches: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    # the rest of the RiskConfig in force (RiskConfigUpdated), and the params-version grace window
    risk_config: dict[str, int] | None = None  # RISK_CONFIG_FIELDS → value
    params_hash: bytes = b""
    previous_params_version: int = 0
    params_changed_block: int = -1  # block of the last version change (-1: none since deployment)
    params_changed_at: int = 0  # its block time (resolve_times)
    latest_posted_snapshot: int = 0  # newest SnapshotPosted (the contract also raises it on every attestation)
    # option settlement: open interest when an instrument's settlement started, and its shortfall
    settlement_open_interest: dict[int, int] = field(default_factory=dict)
    settlement_shortfall: dict[int, int] = field(default_factory=dict)
    # every event applied bumps this: two states with the same version (in one process) are equal
    version: int = 0
    # the settlement call being replayed: (tx, payer, [(instrument id, what it paid)]), for the
    # deficit its winners absorb in the same call
    settling: tuple[str, str, list[tuple[int, int]]] | None = field(default=None, repr=False)
    # following the chain: where a full replay starts, the hashes of recent blocks (each block
    # with events and each tip), one undo record per recent block with events
    origin: int | None = None
    hashes: dict[int, str] = field(default_factory=dict)
    undo: dict[int, dict[str, Any]] = field(default_factory=dict)
    undo_floor: int = -1  # the replica can roll back to any block ≥ this
    tip_time: int = 0  # time of the last block applied (0: not read)
    reorg_window: int = 128
    diverged: set[str] = field(default_factory=set)  # accounts whose replica differs from the chain
    reorgs: int = 0
    last_reorg: dict[str, Any] | None = None
    _resync_tried: tuple[str, float] = field(default=("", 0.0), repr=False)
    _applying: int = field(default=-1, repr=False)  # block of the event being applied
    # what changed since the last save (a state store writes only that)
    _touched: set[str] = field(default_factory=set, repr=False)
    _touched_blocks: set[int] = field(default_factory=set, repr=False)
    _everything: bool = field(default=True, repr=False)
    _undone_after: int | None = field(default=None, repr=False)  # lowest rollback target since the last save

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = self.block

    def account(self, address: str) -> AccountState | None:
        """The account as the contract holds it (None: never seen). Read only: changes go
        through touch()."""
        return self.accounts.get(address)

    def touch(self, address: str) -> AccountState:
        """The account, created if new, marked as changed for the next save (event handlers use
        it to change the account)."""
        self._touched.add(address)
        return self.accounts.setdefault(address, AccountState())

    def changes(self) -> tuple[set[str], set[int], bool]:
        """(accounts, blocks) changed since the last save, and whether everything must be written."""
        return set(self._touched), set(self._touched_blocks), self._everything

    @property
    def undone_after(self) -> int | None:
        """Every stored block row above this one was undone since the last save (None: none)."""
        return self._undone_after

    def mark_saved(self) -> None:
        self._touched.clear()
        self._touched_blocks.clear()
        self._everything = False
        self._undone_after = None

    def fund_health(self) -> int:
        """InsuranceFund.health(): balance over target in WAD (the maximum with no target)."""
        if self.fund_target == 0:
            return 2**256 - 1
        return self.fund_balance * WAD // self.fund_target

    def fund_covers(self, deficit: int) -> bool:
        """Whether the insurance fund, as replayed, covers a deficit of `deficit` WAD (the
        contract's rule: attest/liquidation.py fund_covers)."""
        return fund_covers(deficit, self.fund_balance)

    @property
    def max_positions(self) -> int | None:
        """The governance cap on the open positions a trade may leave (None until replayed)."""
        return None if self.risk_config is None else self.risk_config["maxPositions"]

    @property
    def max_snapshot_age(self) -> int | None:
        return None if self.risk_config is None else self.risk_config["maxSnapshotAge"]

    @property
    def snapshot_tolerance(self) -> int | None:
        return None if self.risk_config is None else self.risk_config["snapshotTolerance"]

    def accepts_params_version(self, version: int, timestamp: int) -> bool:
        """RiskGovernance.acceptsParamsVersion at a block of time `timestamp`: the version in force,
        or the previous one for maxSnapshotAge seconds after the change."""
        if version == self.params_version:
            return True
        age = self.max_snapshot_age or 0
        return (
            version != 0
            and version == self.previous_params_version
            and self.params_changed_block >= 0
            and timestamp <= self.params_changed_at + age
        )

    def settlement_cut(self, instrument_id: int, size: int, payout: int) -> int:
        """What LiquidationEngine._longPayout withholds from a long's payout of an expired option: its
        pro-rata share of the instrument's settlement shortfall (rounded up, at most the payout)."""
        shortfall = self.settlement_shortfall.get(instrument_id, 0)
        oi = self.settlement_open_interest.get(instrument_id, 0)
        if size <= 0 or shortfall == 0 or oi == 0 or payout <= 0:
            return 0
        return min(-((-shortfall * size) // oi), payout)

    def snapshot(self, accounts: Iterable[str] | None = None) -> "ChainState":
        """A copy no replay touches: computations run on it outside the replica's lock. With
        `accounts`, only those accounts come along (the rest of the copy is O(instruments))."""
        view = copy.copy(self)
        chosen = self.accounts.keys() if accounts is None else [a for a in accounts if a in self.accounts]
        view.accounts = {
            k: AccountState(v.cash, v.state_hash, dict(v.positions), list(v.order), v.net_deposits)
            for k in chosen
            for v in (self.accounts[k],)
        }
        view.instruments = dict(self.instruments)
        view.settlement_prices = dict(self.settlement_prices)
        view.flagged = set(self.flagged)
        view.counters = dict(self.counters)
        view.risk_config = None if self.risk_config is None else dict(self.risk_config)
        view.settlement_open_interest = dict(self.settlement_open_interest)
        view.settlement_shortfall = dict(self.settlement_shortfall)
        view.diverged = set(self.diverged)
        view.hashes, view.undo = {}, {}  # a view never follows the chain, nor is saved
        view._touched, view._touched_blocks = set(), set()
        view.settling = None
        return view

    # ------------------------------------------------------------------ replay

    def apply(self, entry: DecodedLog) -> None:
        """Applies one event through its handler (offchain/replica/events.py); an event no
        handler names is only counted."""
        self._applying = entry.block
        if entry.block > self.undo_floor:
            self._remember(entry)
        name = f"{entry.contract}.{entry.name}"
        self.counters[name] = self.counters.get(name, 0) + 1
        self.version += 1
        handler = HANDLERS.get(name)
        if handler is not None:
            handler(self, entry)
        self.block = max(self.block, entry.block)

    def verify_hash(self, address: str, acct: AccountState, computed: bytes, emitted: bytes) -> None:
        """A replayed state hash that differs from the event's means the replica is wrong about
        this account: it is marked diverged (nothing is signed about it) until read back from the
        contract (resync_diverged) — the emitted hash is never taken as proof of the positions."""
        if computed != emitted:
            self.hash_mismatches += 1
            self.diverged.add(address)
            record = self.undo.get(self._applying)
            if record is not None and address not in record["suspects"]:
                record["suspects"].append(address)
                self._touched_blocks.add(self._applying)
            event(
                log,
                "state hash mismatch: replica diverged from the chain",
                logging.ERROR,
                account=address,
                computed="0x" + computed.hex(),
                emitted="0x" + emitted.hex(),
            )
        acct.state_hash = emitted

    # ------------------------------------------------------------------ following the chain

    def catch_up(self, client: Any, to_block: int, chunk: int = 2_000, head: BlockRef | None = None) -> None:
        """Applies every event of blocks (self.block, to_block] of the chain as it is now, first
        undoing what a reorganisation replaced. A client without `header` (a bare log source)
        is followed without reorg checks."""
        if not hasattr(client, "header"):
            self._replay(client, self.block + 1, to_block, chunk)
            self.resolve_times(client)
            return
        if (
            head is not None
            and head.number == self.block
            and self.hashes.get(self.block) == head.hash
            and not self.diverged
        ):
            return  # nothing new, nothing replaced: one RPC per request when the chain is idle
        self.detect_reorg(client)
        if self.block > to_block >= self.undo_floor:
            # the head fell: never stand above the confirmation depth the caller asked for
            ref = client.header(to_block)
            if ref is not None:
                self.rollback(to_block)
                self.hashes[to_block], self.tip_time = ref.hash, ref.timestamp
                self._touched_blocks.add(to_block)
        recent = max(self.block + 1, to_block - self.reorg_window + 1)
        # blocks older than the window are final: replayed in chunks, no undo kept
        self._replay(client, self.block + 1, recent - 1, chunk, undo=False)
        for _ in range(8):
            if self.block >= to_block or self._apply_recent(client, to_block):
                break
            self.detect_reorg(client)  # the chain changed under the read: look again
        self._prune()
        self.resync_diverged(client)
        self.resolve_times(client)

    def _replay(self, client: Any, start: int, to_block: int, chunk: int, undo: bool = True) -> None:
        while start <= to_block:
            stop = min(start + chunk - 1, to_block)
            if not undo:
                self.undo_floor = max(self.undo_floor, stop)
            for entry in client.logs(start, stop):
                self.apply(entry)
            self.block = stop
            start = stop + 1

    def _apply_recent(self, client: Any, to_block: int) -> bool:
        """Applies (self.block, to_block] if the chain held still while it was read: the block
        applied last and `to_block` have the same hashes before and after the logs were read
        (then every log is of the chain that ends at `to_block`)."""
        tip = client.header(to_block)
        if tip is None:
            return True  # the head fell below to_block meanwhile: the next catch-up sees it
        entries = client.logs(self.block + 1, to_block)
        known = self.hashes.get(self.block)
        if known is not None:
            cursor = client.header(self.block)
            if cursor is None or cursor.hash != known:
                return False
        again = client.header(to_block)
        if again is None or again.hash != tip.hash:
            return False
        for entry in entries:
            self.apply(entry)
            if entry.block_hash:
                self.hashes[entry.block] = entry.block_hash
                self._touched_blocks.add(entry.block)
        self.block = to_block
        self.hashes[to_block] = tip.hash
        self._touched_blocks.add(to_block)
        self.tip_time = tip.timestamp
        return True

    def detect_reorg(self, client: Any) -> int:
        """Checks that the last block applied is still on the chain; if it is not, undoes back to
        the newest recorded block that still is (or replays from the deployment when that is
        beyond the undo window). Returns the number of blocks undone (0: no reorg)."""
        known = self.hashes.get(self.block)
        if known is None:
            return 0  # nothing recorded yet (a fresh replica, or a state saved without hashes)
        now = client.header(self.block)
        if now is not None and now.hash == known:
            return 0
        ancestor = None
        for n in sorted((n for n in self.hashes if n < self.block), reverse=True):
            h = client.header(n)
            if h is not None and h.hash == self.hashes[n]:
                ancestor = n
                break
        was = self.block
        if ancestor is not None and ancestor >= self.undo_floor:
            self.rollback(ancestor)
            how = "undone"
        else:
            self.reset()
            how = "replay from deployment"
        depth = was - self.block
        self.reorgs += 1
        self.last_reorg = {
            "detected_at_block": was,
            "common_ancestor": self.block,
            "blocks_undone": depth,
            "how": how,
            "head": now.number if now is not None else None,
        }
        event(log, "chain reorganisation: replica rolled back", logging.WARNING, **self.last_reorg)
        return depth

    def rollback(self, ancestor: int) -> None:
        """Undoes every block after `ancestor` (which must be ≥ undo_floor)."""
        if ancestor < self.undo_floor:
            raise ValueError(f"cannot undo to block {ancestor}: undo records start after block {self.undo_floor}")
        suspects: set[str] = set()
        for b in sorted((b for b in self.undo if b > ancestor), reverse=True):
            record = self.undo.pop(b)
            self._load_globals(record["globals"])
            for address, saved in record["accounts"].items():
                self._touched.add(address)
                if saved is None:
                    self.accounts.pop(address, None)
                else:
                    self.accounts[address] = _account_from_json(saved)
            for i, saved in record.get("instruments", {}).items():
                if saved is None:
                    self.instruments.pop(int(i), None)
                else:
                    self.instruments[int(i)] = _instrument_from_json(saved)
            for key, price in record.get("prices", {}).items():
                u, e = key.rsplit("|", 1)
                if price is None:
                    self.settlement_prices.pop((u, int(e)), None)
                else:
                    self.settlement_prices[(u, int(e))] = float(price)
            self.diverged = set(record.get("diverged", ()))
            suspects.update(record.get("suspects", ()))
        # an account found wrong (or read back) in an undone block was already wrong before it:
        # what the undo restores is that wrong state, so it is read back from the contract again
        self.diverged |= suspects
        for b in [b for b in self.hashes if b > ancestor]:
            del self.hashes[b]
        self._undone_after = ancestor if self._undone_after is None else min(self._undone_after, ancestor)
        self.block = ancestor
        self.tip_time = 0
        self.version += 1
        self.settling = None

    def reset(self) -> None:
        """Back to the deployment: the next catch-up replays everything."""
        fresh = ChainState(
            block=self.origin if self.origin is not None else -1,
            deployment_key=self.deployment_key,
            reorg_window=self.reorg_window,
        )
        keep = {"hash_mismatches": self.hash_mismatches, "reorgs": self.reorgs, "version": self.version + 1}
        self.__dict__.update(fresh.__dict__)
        self.__dict__.update(keep)

    def _remember(self, entry: DecodedLog) -> None:
        """The undo record of the entry's block: the small globals before its first event, and
        each account the entry names as it was before the block touched it (instruments and
        settlement prices: note_instrument, note_price)."""
        record = self._undo_record(entry.block)
        for key in ("account", "from", "to"):
            address = entry.args.get(key)
            if isinstance(address, str):
                self._remember_account(record, address)

    def note_instrument(self, instrument_id: int) -> None:
        """Keeps the instrument as it was before the block being applied changed it, for undoing."""
        if self._applying > self.undo_floor:
            inst = self.instruments.get(instrument_id)
            self._undo_record(self._applying)["instruments"].setdefault(
                str(instrument_id), None if inst is None else _instrument_json(inst)
            )

    def note_price(self, key: tuple[str, int]) -> None:
        """Keeps the settlement price of (underlying, expiry) as it was before the block being
        applied changed it, for undoing."""
        if self._applying > self.undo_floor:
            self._undo_record(self._applying)["prices"].setdefault(
                f"{key[0]}|{key[1]}", self.settlement_prices.get(key)
            )

    def _undo_record(self, block: int) -> dict[str, Any]:
        self._touched_blocks.add(block)
        record = self.undo.get(block)
        if record is None:
            record = self.undo[block] = {
                "globals": self._globals_json(listings=False),
                "accounts": {},
                "instruments": {},
                "prices": {},
                "diverged": sorted(self.diverged),
                "suspects": [],
            }
        return record

    def _remember_account(self, record: dict[str, Any], address: str) -> None:
        if address not in record["accounts"]:
            acct = self.accounts.get(address)
            record["accounts"][address] = None if acct is None else _account_json(acct)

    def _prune(self) -> None:
        """Forgets undo records and hashes older than the window (those blocks are final)."""
        floor = self.block - self.reorg_window
        for b in [b for b in self.undo if b < floor]:
            del self.undo[b]
        for b in [b for b in self.hashes if b < floor and b != self.block]:
            del self.hashes[b]
        self.undo_floor = max(self.undo_floor, floor - 1)

    def resync_diverged(self, client: Any) -> None:
        """Reads every diverged account back from the contract at the last block applied."""
        block_hash = self.hashes.get(self.block)
        if not self.diverged or block_hash is None or not hasattr(client, "account_at"):
            return
        now = time.monotonic()
        if self._resync_tried[0] == block_hash and now - self._resync_tried[1] < 2.0:
            return  # failed at this block a moment ago: not again on every request
        self._resync_tried = (block_hash, now)
        for address in sorted(self.diverged):
            try:
                onchain = client.account_at(address, block_hash)
            except Exception as err:  # the block was replaced meanwhile, or an RPC outage: next time
                event(
                    log,
                    "cannot resynchronise a diverged account yet",
                    logging.WARNING,
                    account=address,
                    error=str(err)[:200],
                )
                continue
            if self.block > self.undo_floor:
                record = self._undo_record(self.block)
                self._remember_account(record, address)
                if address not in record["suspects"]:
                    record["suspects"].append(address)
            acct = self.touch(address)
            acct.cash, acct.state_hash = onchain.cash, onchain.state_hash
            acct.order, acct.positions = list(onchain.order), dict(onchain.positions)
            self.diverged.discard(address)
            self.version += 1
            event(
                log,
                "diverged account resynchronised from the contract",
                logging.WARNING,
                account=address,
                block=self.block,
                positions=len(onchain.order),
            )

    def resolve_times(self, client: Any) -> None:
        """The grace window of the previous params version runs from the change's block time:
        looked up once, from a client that can (callers passing a bare log source resolve it later)."""
        if self.params_changed_block >= 0 and not self.params_changed_at and hasattr(client, "block_time"):
            self.params_changed_at = int(client.block_time(self.params_changed_block))

    # ------------------------------------------------------------------ comparing replicas

    def account_rows(self) -> dict[str, dict[str, Any]]:
        """Every account as the contract stores it (cash, state hash, open list, sizes) plus the
        replayed net deposits: exact integers as decimal strings."""
        return {
            a: {
                "cash": str(v.cash),
                "state_hash": "0x" + v.state_hash.hex(),
                "order": list(v.order),
                "positions": [str(v.positions[i]) for i in v.order],
                "net_deposits": str(v.net_deposits),
            }
            for a, v in sorted(self.accounts.items())
        }

    def digest(self) -> str:
        """One hash of every account and of the fund, flags and shortfalls: two replicas at the
        same block agree exactly when their digests are equal."""
        payload = {
            "accounts": self.account_rows(),
            "fund": [str(self.fund_balance), str(self.fund_target)],
            "flagged": sorted(self.flagged),
            "shortfall": sorted(self.settlement_shortfall.items()),
            "params": self.params_version,
        }
        return "0x" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    # ------------------------------------------------------------------ persistence

    def _globals_json(self, listings: bool = True) -> dict[str, Any]:
        """Everything but the accounts, the cursor and the follower's own records (without the
        instrument listings and settlement prices unless `listings`: undo records keep those
        entry by entry)."""
        out: dict[str, Any] = {}
        if listings:
            out["instruments"] = {str(i): _instrument_json(inst) for i, inst in self.instruments.items()}
            out["settlement_prices"] = [[u, e, p] for (u, e), p in self.settlement_prices.items()]
        return out | {
            "fund_balance": str(self.fund_balance),
            "fund_target": str(self.fund_target),
            "params_version": self.params_version,
            "liquidation_config": None if self.liquidation_config is None else vars(self.liquidation_config),
            "flagged": sorted(self.flagged),
            "risk_config": self.risk_config,
            "params_hash": self.params_hash.hex(),
            "previous_params_version": self.previous_params_version,
            "params_changed_block": self.params_changed_block,
            "params_changed_at": self.params_changed_at,
            "latest_posted_snapshot": self.latest_posted_snapshot,
            "settlement_open_interest": {str(k): str(v) for k, v in self.settlement_open_interest.items()},
            "settlement_shortfall": {str(k): str(v) for k, v in self.settlement_shortfall.items()},
            "counters": dict(self.counters),
        }

    def _load_globals(self, d: dict[str, Any]) -> None:
        if "instruments" in d:
            self.instruments = {int(i): _instrument_from_json(v) for i, v in d["instruments"].items()}
            self.settlement_prices = {(u, int(e)): float(p) for u, e, p in d["settlement_prices"]}
        self.fund_balance, self.fund_target = int(d["fund_balance"]), int(d["fund_target"])
        self.params_version = int(d["params_version"])
        self.liquidation_config = (
            LiquidationConfig(**{k: int(v) for k, v in d["liquidation_config"].items()})
            if d.get("liquidation_config")
            else None
        )
        self.flagged = set(d.get("flagged", []))
        self.risk_config = {k: int(v) for k, v in d["risk_config"].items()} if d.get("risk_config") else None
        self.params_hash = bytes.fromhex(d.get("params_hash", ""))
        self.previous_params_version = int(d.get("previous_params_version", 0))
        self.params_changed_block = int(d.get("params_changed_block", -1))
        self.params_changed_at = int(d.get("params_changed_at", 0))
        self.latest_posted_snapshot = int(d.get("latest_posted_snapshot", 0))
        self.settlement_open_interest = {int(k): int(v) for k, v in d.get("settlement_open_interest", {}).items()}
        self.settlement_shortfall = {int(k): int(v) for k, v in d.get("settlement_shortfall", {}).items()}
        self.counters = {k: int(v) for k, v in d.get("counters", {}).items()}

    def to_json(self, accounts: bool = True) -> dict[str, Any]:
        """The whole state (without the accounts, block hashes and undo records unless
        `accounts`: a state store keeps those in rows of their own)."""
        rows: dict[str, Any] = (
            {
                "accounts": {k: _account_json(v) for k, v in self.accounts.items()},
                "hashes": {str(b): h for b, h in self.hashes.items()},
                "undo": {str(b): r for b, r in self.undo.items()},
            }
            if accounts
            else {}
        )
        return {
            "deployment": self.deployment_key,
            "block": self.block,
            "origin": self.origin,
            **rows,
            **self._globals_json(),
            "undo_floor": self.undo_floor,
            "tip_time": self.tip_time,
            "diverged": sorted(self.diverged),
            "reorgs": self.reorgs,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ChainState":
        s = cls(
            block=int(d["block"]),
            deployment_key=str(d.get("deployment", "")),
            origin=int(d["origin"]) if d.get("origin") is not None else None,
        )
        s.accounts = {k: _account_from_json(v) for k, v in d["accounts"].items()}
        s._load_globals(d)
        s.hashes = {int(b): str(h) for b, h in d.get("hashes", {}).items()}
        s.undo = {int(b): r for b, r in d.get("undo", {}).items()}
        # a state saved without undo records cannot be rolled back past its cursor
        s.undo_floor = int(d.get("undo_floor", s.block))
        s.tip_time = int(d.get("tip_time", 0))
        s.diverged = set(d.get("diverged", []))
        s.reorgs = int(d.get("reorgs", 0))
        return s

    def save(self, path: Path) -> None:
        """Atomic write: a crash mid-save leaves the previous snapshot intact."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, deployment_key: str) -> "ChainState | None":
        """The saved snapshot, if it belongs to this deployment (else None: replay from scratch)."""
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if "hashes" not in data:
            # saved without block hashes: a reorg while it was down could not be noticed
            event(
                log,
                "state snapshot records no block hashes; replaying from the deployment",
                logging.WARNING,
                path=str(path),
            )
            return None
        state = cls.from_json(data)
        if state.deployment_key != deployment_key:
            event(
                log,
                "ignoring a state snapshot of another deployment",
                logging.WARNING,
                path=str(path),
                snapshot=state.deployment_key,
                deployment=deployment_key,
            )
            return None
        return state

    @staticmethod
    def key_of(chain_id: int, clearinghouse: str) -> str:
        return f"{chain_id}:{clearinghouse.lower()}"


def open_replica(deployment: Deployment, store: StateStore | None = None) -> ChainState:
    """The replica of `deployment`: resumed from `store` when it holds one of this deployment,
    else empty before the deployment block (the first catch-up replays from there)."""
    key = ChainState.key_of(deployment.chain_id, deployment.clearinghouse)
    state = (store.load(key) if store is not None else None) or ChainState(
        block=deployment.deploy_block - 1, deployment_key=key
    )
    state.origin = deployment.deploy_block - 1
    state.reorg_window = deployment.reorg_window
    return state


def _instrument_json(inst: Instrument) -> list[Any]:
    return [inst.underlying, int(inst.kind), inst.strike, inst.expiry]


def _instrument_from_json(v: list[Any]) -> Instrument:
    u, kind, strike, expiry = v
    return Instrument(u, Kind(kind), float(strike), int(expiry))


def _account_json(a: AccountState) -> dict[str, Any]:
    return {
        "cash": str(a.cash),
        "state_hash": a.state_hash.hex(),
        "order": list(a.order),
        "positions": {str(i): str(z) for i, z in a.positions.items()},
        "net_deposits": str(a.net_deposits),
    }


def _account_from_json(v: dict[str, Any]) -> AccountState:
    return AccountState(
        cash=int(v["cash"]),
        state_hash=bytes.fromhex(v["state_hash"]),
        order=[int(i) for i in v["order"]],
        positions={int(i): int(z) for i, z in v["positions"].items()},
        net_deposits=int(v["net_deposits"]),
    )

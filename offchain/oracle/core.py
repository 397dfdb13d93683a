"""The risk oracle: chain state + market data + risk engine → signed attestations.

One Oracle is one signer. It answers for the portfolio the chain says an account has — or, for
a trade, the exact portfolio that trade would leave — never for a portfolio a caller describes.
Every answer carries the block it was computed at.

Times: an attestation's `snapshotTime` is the market data's own time (the newest feed reading of
the snapshot, each reading within its feed's max age; the same for every attestation of the
snapshot); its deadline is the block time + TTL.

Locking: the replica (ChainState) and the market snapshot are guarded by `lock`. Requests about
a few accounts (margin, trade, liquidation, settlement, heartbeat) compute under it; requests
that scan the book (ADL plans, the at-risk list) take an immutable copy of the state under the
lock and compute outside it, so they never delay the others. ADL plans are computed once per
(account, state hash, market snapshot, book state) and cached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_utils import is_address, to_checksum_address

from offchain.attest.builder import margin_numbers, margin_numbers_batch
from offchain.attest.commitment import BookCommitment
from offchain.attest.eip712 import Domain
from offchain.attest.errors import AttestationError
from offchain.attest.liquidation import (
    MAX_POSITIONS,
    NotLiquidatable,
    fund_fits,
    liquidator_check,
    mul_wad_down,
    mul_wad_floor,
    mul_wad_up,
    slice_im,
    terms,
    transfer_slice,
)
from offchain.attest.merkle import MerkleTree, adl_leaf
from offchain.attest.messages import (
    AdlAttestation,
    AdlFill,
    MarginAttestation,
    Order,
    SettlementPrice,
    SnapshotCommitment,
    SnapshotHeartbeat,
    to_wire,
)
from offchain.attest.signer import LocalSigner
from offchain.attest.state_hash import ZERO_HASH, next_state_hash, underlying_to_bytes32
from offchain.chain.contracts import BlockRef, SystemClient
from offchain.oracle.schemas import DECIMAL
from offchain.chain.deploy import OnchainRiskConfig, read_risk_config
from offchain.errors import Conflict, DpreError, InvalidInput, NotFound, Unavailable
from offchain.ops.logs import event
from offchain.oracle.cosign import tolerance
from offchain.oracle.market_sources import MarketSnapshot, MarketSource, SettlementUnavailable
from offchain.replica import ChainState, Replica, open_replica, open_store
from offchain.risk.adl import AdlCandidate, rank_queue
from offchain.risk.black76 import intrinsic
from offchain.risk.errors import RiskError
from offchain.risk.instruments import Instrument
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD, to_wad_down

log = logging.getLogger("oracle")
T = TypeVar("T")


class OracleError(DpreError):
    """A request the oracle cannot answer; the subclass says what kind of refusal it is. A refusal
    that only the passing of time can lift (`lasting=False`) is never cached."""

    def __init__(self, message: str, lasting: bool = True) -> None:
        super().__init__(message)
        self.lasting = lasting


class OracleBadRequest(OracleError, InvalidInput):
    """The request is malformed: the message starts with the field."""


class OracleNotFound(OracleError, NotFound):
    """The request is about an account or commitment the oracle does not know."""


class OracleConflict(OracleError, Conflict):
    """The request is impossible in the current state (not liquidatable, expired, over a cap)."""


class OracleUnavailable(OracleError, Unavailable):
    """The oracle cannot answer now: no trustworthy market data, the node unreachable, its
    replica of the account in doubt, or no parameters in force it holds."""


@dataclass
class SignedItem:
    item: Any  # a message dataclass

    def wire(self, signer: LocalSigner, domain: Domain) -> dict[str, Any]:
        return {**to_wire(self.item), "signature": "0x" + signer.sign(domain, self.item).hex()}


@dataclass(frozen=True)
class Context:
    """What one answer is computed from: a state (the live replica under the lock, or an
    immutable copy), the market snapshot, the parameters in force, the block and its time."""

    state: Replica
    market: MarketSnapshot
    params: MarginParams
    block: int
    block_time: int

    @property
    def snapshot_time(self) -> int:
        return self.market.data.timestamp


@dataclass(frozen=True)
class AdlPlan:
    """The block-independent part of an ADL answer (what is cached)."""

    instrument_ids: tuple[int, ...]
    marks: tuple[int, ...]
    roots: tuple[bytes, ...]
    fills: tuple[AdlFill, ...]
    expected: dict[str, str]
    fills_wire: tuple[dict[str, Any], ...] = ()  # the fills' JSON form, built once


class Memo:
    """A bounded cache that computes each key once, even under concurrent requests (the others
    wait for the first). Lasting refusals (OracleError) are cached like answers."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._done: OrderedDict[Any, tuple[bool, Any]] = OrderedDict()
        self._pending: dict[Any, threading.Event] = {}
        self.hits = self.misses = 0

    def _release(self, key: Any) -> None:
        waiter = self._pending.pop(key, None)
        if waiter is not None:
            waiter.set()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    self.hits += 1
                    ok, value = self._done[key]
                    if ok:
                        return value
                    raise value
                waiter = self._pending.get(key)
                if waiter is None:
                    self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            waiter.wait()
            with self._lock:
                if key not in self._done:  # the first computation failed or was not kept: compute here
                    self._pending.setdefault(key, threading.Event())
                    break
        try:
            result: tuple[bool, Any] = (True, compute())
        except OracleError as err:
            result = (False, err)
        except BaseException:
            with self._lock:
                self._release(key)
            raise
        with self._lock:
            if result[0] or result[1].lasting:
                self._done[key] = result
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
            self._release(key)
        if result[0]:
            return result[1]
        raise result[1]


class Oracle:
    def __init__(
        self,
        client: SystemClient,
        source: MarketSource,
        signer: LocalSigner,
        params: MarginParams | None = None,
        state_path: Path | None = None,
        ttl_seconds: int = 60,
        param_sets: Iterable[MarginParams] = (),
        confirmations: int | None = None,
    ) -> None:
        self.client = client
        self.source = source
        self.signer = signer
        self.params = params or MarginParams()
        # every parameter version this signer holds: it signs the one in force on-chain
        self.param_sets: dict[int, MarginParams] = {self.params.version: self.params}
        for p in param_sets:
            self.param_sets[p.version] = p
        self._param_hashes = {v: p.params_hash() for v, p in self.param_sets.items()}
        self.state_path = state_path
        self.ttl = ttl_seconds
        self.domain = Domain(client.deployment.chain_id, client.deployment.clearinghouse)
        self.lock = threading.RLock()
        # where the replica is kept between runs (SQLite by default; offchain/replica/store.py)
        self.store = open_store(state_path, name=signer.address) if state_path else None
        self.state = open_replica(client.deployment, self.store)
        # signs for the state this many blocks below the head (the deployment's finality policy)
        self.confirmations = client.deployment.confirmations if confirmations is None else confirmations
        self._snapshot: tuple[tuple[int, str], int, MarketSnapshot] | None = None  # ((block, hash), time, snapshot)
        self._view: tuple[int, ChainState] | None = None  # (state version, immutable copy)
        self._last_save = time.monotonic()
        self.save_failures = 0
        self.head_seen = 0  # the node's head at the last sync (for the lag metric)
        self.authorized = True  # whether the on-chain signer set holds this signer (kept by its process)
        self._head: tuple[BlockRef, float] | None = None  # the last head read, and when it started
        self.adl_plans = Memo(256)
        self._risk_rows = Memo(8)
        self._answers = Memo(1024)  # margin, trade and liquidation answers per (request, state)
        self._books = Memo(4)  # whole-book commitments per (state, market, params, block time)
        self.commitments: OrderedDict[bytes, BookCommitment] = OrderedDict()  # own, by root, newest last
        # co-signed books apart: nobody's co-sign requests can push this signer's own books out
        self.cosigned: OrderedDict[bytes, BookCommitment] = OrderedDict()
        self._signatures: Memo = Memo(4096)
        self._books_lock = threading.Lock()  # guards self.commitments and self.cosigned

    # ------------------------------------------------------------------ chain

    def sync(self, min_block: int | None = None, asked_at: float | None = None) -> int:
        """Replays events up to `min_block` (or the head), never past the head less the
        confirmation depth; undoes first what a reorganisation replaced.

        `asked_at` (time.monotonic() when the request arrived): a head read that started after
        it is as fresh as one of its own, so requests queued behind one another share a read."""
        if min_block is not None and (not isinstance(min_block, int) or isinstance(min_block, bool) or min_block < 0):
            raise OracleBadRequest(f"min_block: {min_block!r} is not a block number")
        with self.lock:
            if asked_at is not None and self._head is not None and self._head[1] >= asked_at:
                head = self._head[0]
            else:
                started = time.monotonic()
                try:
                    # a request fails fast (503) when the node is unreachable, never holding the lock long
                    read = self.client.header("latest", attempts=3)
                except Exception as err:
                    raise OracleUnavailable(
                        f"the chain node is unreachable ({type(err).__name__})", lasting=False
                    ) from None
                if read is None:
                    raise OracleUnavailable("the node returned no head block", lasting=False)
                head, self._head = read, (read, started)
            self.head_seen = head.number
            final = head.number - self.confirmations
            target = final if min_block is None else min(max(min_block, self.state.block), final)
            self.state.catch_up(self.client, max(target, self.state.origin or 0), head=head)
            if self.store and time.monotonic() - self._last_save > 5:
                self._last_save = time.monotonic()
                self._save_quietly()
            return self.state.block

    def _block_snapshot(self) -> tuple[int, int, MarketSnapshot]:
        """The market snapshot of the block the replica stands on, keyed by the block's hash: a
        block replaced by a reorg gets a snapshot of its own."""
        with self.lock:
            block = self.state.block
            key = (block, self.state.hashes.get(block, ""))
            if self._snapshot is None or self._snapshot[0] != key:
                timestamp = self.state.tip_time if key[1] and self.state.tip_time else self.client.block_time(block)
                snapshot = self.source.snapshot(
                    block, timestamp, self.state.instruments, max_age=self.state.max_snapshot_age
                )
                self._snapshot = (key, timestamp, snapshot)
            return block, self._snapshot[1], self._snapshot[2]

    def market(self) -> MarketSnapshot:
        return self._block_snapshot()[2]

    def _context(self) -> Context:
        """The live replica (the caller holds the lock)."""
        block, block_time, snapshot = self._block_snapshot()
        return Context(self.state, snapshot, self._params_in_force(block_time), block, block_time)

    def _snapshot_context(self, min_block: Any = None) -> Context:
        """An immutable copy of the replica at the synced block, taken under the lock (one copy
        per state version), for computations that run outside it."""
        with self.lock:
            self.sync(min_block)
            block, block_time, snapshot = self._block_snapshot()
            if self._view is None or self._view[0] != self.state.version:
                self._view = (self.state.version, self.state.snapshot())
            return Context(self._view[1], snapshot, self._params_in_force(block_time), block, block_time)

    # ------------------------------------------------------------------ params version

    def params_status(self, block_time: int | None = None) -> dict[str, Any]:
        """Which model version the chain wants, whether this signer holds it, what it signs."""
        state = self.state
        version, onchain = state.params_version, state.params_hash
        held = self.param_sets.get(version)
        matches = held is not None and (not onchain or self._param_hashes[version] == onchain)
        status: dict[str, Any] = {
            "in_force": version,
            "onchain_hash": "0x" + onchain.hex(),
            "held": sorted(self.param_sets),
            "mismatch": not matches,
        }
        if version == 0 or matches:
            status["signing"] = version if version else self.params.version
            return status
        prev = state.previous_params_version
        now = block_time if block_time is not None else (self._snapshot[1] if self._snapshot else 0)
        if prev in self.param_sets and state.accepts_params_version(prev, now):
            status["signing"] = prev
            status["reason"] = (
                f"holds no parameters matching version {version} (hash {status['onchain_hash']}); "
                f"signing the previous version {prev} while the contract accepts it"
            )
        else:
            status["signing"] = None
            status["reason"] = (
                f"holds no parameters matching version {version} (hash {status['onchain_hash']}) "
                f"and the previous version {prev} is no longer accepted"
            )
        return status

    def _params_in_force(self, block_time: int) -> MarginParams:
        status = self.params_status(block_time)
        if status["signing"] is None:
            raise OracleUnavailable(f"no attestation: this signer {status['reason']}")
        return self.param_sets.get(status["signing"], self.params)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def address(raw: Any, field: str) -> str:
        if not isinstance(raw, str) or not is_address(raw):
            raise OracleBadRequest(f"{field}: {raw!r} is not an address (0x followed by 40 hex digits)")
        return to_checksum_address(raw)

    @staticmethod
    def _known(state: Replica, account: str) -> None:
        if account not in state.accounts:
            raise OracleNotFound(f"account {account} has never deposited or traded on this deployment")
        Oracle._agrees(state, account)

    @staticmethod
    def _agrees(state: Replica, account: str) -> None:
        """Nothing is signed about an account whose replica differs from the chain."""
        if account in state.diverged:
            raise OracleUnavailable(
                f"no attestation: this signer's replica of {account} differs from the chain "
                f"(state hash mismatch); it is being read back from the contract",
                lasting=False,
            )

    @staticmethod
    def _needs(ctx: Context, positions: Iterable[int]) -> None:
        """Refuses (503) when an underlying of the portfolio has no trustworthy market data."""
        unavailable = ctx.market.unavailable
        for instrument_id in positions:
            inst = ctx.state.instruments.get(instrument_id)
            if inst is not None and inst.underlying in unavailable:
                raise OracleUnavailable(
                    f"no attestation: market data for {inst.underlying} is unavailable "
                    f"({unavailable[inst.underlying]})"
                )
        if not ctx.market.data.underlyings:
            reasons = "; ".join(f"{u}: {r}" for u, r in sorted(unavailable.items())) or "no feeds"
            raise OracleUnavailable(f"no attestation: no usable market data ({reasons})")

    @staticmethod
    def _cut(ctx: Context, positions: dict[int, int]) -> int:
        """Settlement shortfall the contract will withhold from this portfolio's expired longs."""
        state, total = ctx.state, 0
        if not state.settlement_shortfall:
            return 0
        for instrument_id, size in positions.items():
            inst = state.instruments.get(instrument_id)
            if (
                size <= 0
                or instrument_id not in state.settlement_shortfall
                or inst is None
                or not inst.is_option
                or inst.expiry > ctx.snapshot_time
            ):
                continue
            price = state.settlement_prices.get((inst.underlying, inst.expiry))
            if price is None:
                continue
            payout = mul_wad_down(size, to_wad_down(float(intrinsic(price, inst.strike, inst.kind.name == "CALL"))))
            total += state.settlement_cut(instrument_id, size, payout)
        return total

    def _numbers(self, ctx: Context, positions: dict[int, int]) -> tuple[int, int, int]:
        self._needs(ctx, positions)
        try:
            value, im, mm = margin_numbers(
                positions, ctx.state.instruments, ctx.market.data, ctx.params, ctx.state.settlement_prices
            )
        except (RiskError, AttestationError) as err:
            raise OracleUnavailable(f"cannot value the portfolio: {err}") from None
        return value - self._cut(ctx, positions), im, mm

    def _numbers_batch(self, ctx: Context, portfolios: dict[str, dict[int, int]]) -> dict[str, tuple[int, int, int]]:
        """The same integers as _numbers, for many accounts at once (accounts holding an
        underlying without market data are left out)."""
        if not ctx.market.data.underlyings:
            return {}
        numbers = margin_numbers_batch(
            portfolios, ctx.state.instruments, ctx.market.data, ctx.params, ctx.state.settlement_prices
        )
        if ctx.state.settlement_shortfall:
            numbers = {a: (v - self._cut(ctx, portfolios[a]), im, mm) for a, (v, im, mm) in numbers.items()}
        return numbers

    def _attestation(
        self,
        ctx: Context,
        account: str,
        state_hash: bytes,
        positions: dict[int, int],
        numbers: tuple[int, int, int] | None = None,
    ) -> MarginAttestation:
        """`numbers`: (value, IM, MM) already computed for these positions in a batch."""
        self._agrees(ctx.state, account)
        if numbers is not None:
            self._needs(ctx, positions)
        value, im, mm = numbers if numbers is not None else self._numbers(ctx, positions)
        return MarginAttestation(
            account, state_hash, value, im, mm, ctx.snapshot_time, ctx.block_time + self.ttl, ctx.params.version
        )

    def _sign(self, item: Any) -> bytes:
        """Signatures are cached per item: a flood of identical requests costs one signature."""
        return self._signatures.get(item, lambda: self.signer.sign(self.domain, item))

    def _response(
        self, ctx: Context | int, items: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "block": ctx if isinstance(ctx, int) else ctx.block,
            "signer": self.signer.address,
            "items": {k: {**to_wire(v), "signature": "0x" + self._sign(v).hex()} for k, v in items.items()},
            "extra": extra or {},
        }

    def _risk_config(self) -> OnchainRiskConfig:
        """The replayed RiskConfig (read once from the contract if an old state file lacks it)."""
        if self.state.risk_config is None:
            self.state.risk_config = read_risk_config(self.client.ch, self.state.block).by_member()
        return OnchainRiskConfig.from_chain(self.state.risk_config)

    # ------------------------------------------------------------------ attestations

    def _answer_key(self, name: str, body: dict[str, Any]) -> tuple[Any, ...]:
        """What an answer depends on: the request and the replica at its block (the market
        snapshot, the parameters in force and the deadline follow from the block). Answers are
        cached under it, so a flood of the same requests between two blocks costs one
        computation. The caller holds the lock and has synced."""
        state = self.state
        request = json.dumps({k: v for k, v in body.items() if k != "min_block"}, sort_keys=True, default=str)
        block_hash = state.hashes.get(state.block)
        return (name, request, state.version, state.block, block_hash, state.reorgs, len(state.diverged))

    def _light_context(self, accounts: list[str]) -> Context:
        """The context of an answer about `accounts` only, copied (O(instruments)) so that it is
        computed outside the lock. The caller holds the lock and has synced."""
        block, block_time, snapshot = self._block_snapshot()
        view = self.state.snapshot(accounts)
        return Context(view, snapshot, self._params_in_force(block_time), block, block_time)

    def attest_margin(self, body: dict[str, Any]) -> dict[str, Any]:
        account = self.address(body.get("account"), "account")
        asked_at = time.monotonic()
        with self.lock:
            self.sync(body.get("min_block"), asked_at)
            key = self._answer_key("margin", body)
            ctx = self._light_context([account])
        # priced and signed outside the lock, once per (request, state)
        return self._answers.get(key, lambda: self._margin_answer(ctx, account))

    def _margin_answer(self, ctx: Context, account: str) -> dict[str, Any]:
        self._known(ctx.state, account)
        acct = ctx.state.accounts[account]
        return self._response(ctx, {"margin": self._attestation(ctx, account, acct.state_hash, dict(acct.positions))})

    def attest_trade(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("order")
        if not isinstance(raw, dict):
            raise OracleBadRequest("order: expected an object with maker, instrument_id, size, price, nonce, deadline")
        try:
            order = Order(
                self.address(raw.get("maker"), "order.maker"),
                int(raw["instrument_id"]),
                int(raw["size"]),
                int(raw["price"]),
                int(raw["nonce"]),
                int(raw["deadline"]),
            )
            fill = int(body["fill_amount"])
        except (KeyError, TypeError, ValueError) as err:
            raise OracleBadRequest(f"order: missing or non-integer field ({err})") from None
        taker = self.address(body.get("taker"), "taker")
        asked_at = time.monotonic()
        with self.lock:
            self.sync(body.get("min_block"), asked_at)
            # the nonce and price enter neither the attestations nor any refusal: orders that
            # differ only there share one answer
            same = {k: v for k, v in raw.items() if k not in ("nonce", "price")}
            key = self._answer_key("trade", {**body, "order": same})
            ctx = self._light_context([order.maker, taker])
            cap = self._risk_config().max_positions
        # priced and signed outside the lock, once per (request, state)
        return self._answers.get(key, lambda: self._trade_answer(ctx, cap, order, fill, taker))

    def _trade_answer(self, ctx: Context, cap: int, order: Order, fill: int, taker: str) -> dict[str, Any]:
        inst = ctx.state.instruments.get(order.instrument_id)
        if inst is None:
            raise OracleBadRequest(f"order.instrument_id: no instrument {order.instrument_id} is listed")
        if order.size == 0 or fill <= 0 or fill > abs(order.size):
            raise OracleBadRequest(f"fill_amount: must be in (0, |order.size|] = (0, {abs(order.size)}]")
        if order.maker == taker:
            raise OracleBadRequest("taker: a maker cannot fill its own order")
        if order.deadline <= ctx.block_time:
            raise OracleBadRequest(f"order.deadline: {order.deadline} has passed (chain time {ctx.block_time})")
        if inst.is_option and inst.expiry <= ctx.block_time:
            raise OracleConflict(f"{inst.name} has expired: it can no longer be traded")
        delta = fill if order.size > 0 else -fill
        items = {}
        for role, account, d in (("maker", order.maker, delta), ("taker", taker, -delta)):
            acct = ctx.state.accounts.get(account)
            positions = dict(acct.positions) if acct else {}
            old_size = positions.get(order.instrument_id, 0)
            new_size = old_size + d
            if new_size:
                positions[order.instrument_id] = new_size
            else:
                positions.pop(order.instrument_id, None)
            # the cap binds a trade that opens a new leg only (receipts may hold more)
            if old_size == 0 and len(positions) > cap:
                raise OracleConflict(
                    f"{role} would hold {len(positions)} open positions; a trade may not open "
                    f"a new one beyond the cap of {cap}"
                )
            state = next_state_hash(acct.state_hash if acct else ZERO_HASH, order.instrument_id, new_size)
            items[role] = self._attestation(ctx, account, state, positions)
        return self._response(ctx, items)

    def attest_liquidation(self, body: dict[str, Any]) -> dict[str, Any]:
        """Attestations of the accounts to liquidate and of the liquidator's CURRENT portfolio.

        Refuses (409, saying why) what the contract would not execute: an account not below MM,
        one bankrupt beyond the insurance fund (it goes to flagBankruptcy and ADL), a liquidator
        that would end with more than 64 open positions or below the contract's requirement bound
        (equity + Σ bonus ≥ IM + Σ fraction × IM of the accounts).
        """
        accounts = body.get("accounts")
        if not isinstance(accounts, list) or not accounts or len(accounts) > 50:
            raise OracleBadRequest("accounts: a list of 1 to 50 addresses")
        targets = [self.address(a, f"accounts[{i}]") for i, a in enumerate(accounts)]
        if len(set(targets)) != len(targets):
            raise OracleBadRequest("accounts: each account at most once")
        liquidator = self.address(body.get("liquidator"), "liquidator")
        if liquidator in targets:
            raise OracleBadRequest("liquidator: cannot liquidate itself")
        asked_at = time.monotonic()
        with self.lock:
            self.sync(body.get("min_block"), asked_at)
            # a liquidation's checks read the fund and the whole batch as the contract will: under the lock
            key = self._answer_key("liquidation", body)
            return self._answers.get(key, lambda: self._liquidation_answer(targets, liquidator))

    def _liquidation_answer(self, targets: list[str], liquidator: str) -> dict[str, Any]:
        cfg = self.state.liquidation_config
        if cfg is None:
            raise OracleUnavailable("risk configuration not seen yet")
        ctx = self._context()
        keeper_acct = self.state.accounts.get(liquidator)
        keeper_positions = dict(keeper_acct.positions) if keeper_acct else {}
        keeper_hash = keeper_acct.state_hash if keeper_acct else ZERO_HASH
        keeper_att = self._attestation(ctx, liquidator, keeper_hash, keeper_positions)
        keeper_equity = (keeper_acct.cash if keeper_acct else 0) + keeper_att.value
        items: dict[str, Any] = {}
        extra: dict[str, Any] = {"fractions": {}}
        fund = self.state.fund_balance
        health = self.state.fund_health()
        decimals = self.client.deployment.collateral_decimals
        received = dict(keeper_positions)
        executed: list[tuple[int, int]] = []
        # every target priced in one pass (one repricing of the instruments, not one per account)
        batch = (
            self._numbers_batch(
                ctx, {a: dict(self.state.accounts[a].positions) for a in targets if a in self.state.accounts}
            )
            if len(targets) > 1
            else {}
        )
        for account in targets:
            self._known(self.state, account)
            acct = self.state.accounts[account]
            self._refuse_expired_legs(ctx, account, acct.positions)
            att = self._attestation(ctx, account, acct.state_hash, dict(acct.positions), batch.get(account))
            equity = acct.cash + att.value
            try:
                f, bonus, fee = terms(equity, att.maintenance_margin, cfg, health)
            except NotLiquidatable:
                raise OracleConflict(
                    f"{account} is not liquidatable: equity {equity / WAD:.2f} ≥ MM "
                    f"{att.maintenance_margin / WAD:.2f}"
                ) from None
            # the fund as the contract will see it at this item: after the batch's earlier ones
            (fits,), left = fund_fits([(equity, att.maintenance_margin)], fund, cfg, health, decimals)
            if not fits:
                raise OracleConflict(
                    f"{account} is bankrupt beyond the insurance fund (deficit {-equity / WAD:.2f} > "
                    f"fund {fund / WAD:.2f} left for it): flag it and deleverage it instead"
                )
            fund = left
            _, received, _, _ = transfer_slice(acct.order, acct.positions, received, f)
            executed.append((bonus, slice_im(att.initial_margin, f)))
            items[account] = att
            extra["fractions"][account] = {
                "fraction": str(f),
                "bonus": str(bonus),
                "fee": str(fee),
                "equity": str(equity),
            }
        if len(received) > MAX_POSITIONS:
            raise OracleConflict(
                f"the liquidator would hold {len(received)} open positions after these "
                f"liquidations; an account holds at most {MAX_POSITIONS}: liquidate fewer at once"
            )
        equity_after, bound = liquidator_check(keeper_equity, keeper_att.initial_margin, executed)
        if equity_after < bound:
            raise OracleConflict(
                f"the liquidator would fail the contract's margin check: equity after "
                f"{equity_after / WAD:.2f} (equity {keeper_equity / WAD:.2f} + bonuses) < requirement "
                f"bound {bound / WAD:.2f} (its IM {keeper_att.initial_margin / WAD:.2f} + the slices' "
                f"IM); deposit more collateral or liquidate less at once"
            )
        items["liquidator"] = keeper_att
        extra["liquidator"] = {
            "equity": str(keeper_equity),
            "equity_after": str(equity_after),
            "requirement_bound": str(bound),
            "open_positions_after": len(received),
        }
        return self._response(ctx, items, extra)

    # ------------------------------------------------------------------ ADL

    def attest_adl(self, body: dict[str, Any]) -> dict[str, Any]:
        """The deleveraging plan of an account bankrupt beyond the insurance fund (409 otherwise):
        marks, per leg the Merkle root of the ranked opposite-side queue, and the fills."""
        account = self.address(body.get("account"), "account")
        ctx = self._snapshot_context(body.get("min_block"))
        self._known(ctx.state, account)
        acct = ctx.state.accounts[account]
        if not acct.positions:
            raise OracleConflict(f"{account} has no positions to deleverage")
        self._needs(ctx, acct.positions)
        key = (
            account,
            acct.state_hash,
            ctx.market.key or (ctx.snapshot_time, ctx.block),
            ctx.state.version,
            ctx.params.version,
        )
        plan = self.adl_plans.get(key, lambda: self._plan_adl(ctx, account))
        att = AdlAttestation(
            account,
            acct.state_hash,
            plan.instrument_ids,
            plan.marks,
            plan.roots,
            ctx.snapshot_time,
            ctx.block_time + self.ttl,
            ctx.params.version,
        )
        return self._response(ctx, {"adl": att}, {"fills": list(plan.fills_wire), "expected": dict(plan.expected)})

    def _refuse_expired_legs(self, ctx: Context, account: str, positions: dict[int, int]) -> None:
        """An expired option never moves between accounts (Clearinghouse._requireLive): an account
        holding one is settled first (LiquidationEngine.settle), then liquidated or deleveraged."""
        for i in sorted(positions):
            inst = ctx.state.instruments.get(i)
            if inst is not None and inst.is_option and inst.expiry <= ctx.block_time:
                raise OracleConflict(f"{account} holds {inst.name}, expired and not settled yet: settle it first")

    def _plan_adl(self, ctx: Context, account: str) -> AdlPlan:
        state = ctx.state
        acct = state.accounts[account]
        self._refuse_expired_legs(ctx, account, acct.positions)
        ids = tuple(sorted(acct.positions))
        mark_of = self._marks(ctx)
        marks = tuple(max(0, to_wad_down(mark_of[i])) for i in ids)
        # LiquidationEngine._fundContribution: equity at the plan's marks, negative beyond the fund
        equity = acct.cash + sum(mul_wad_floor(acct.positions[i], m) for i, m in zip(ids, marks))
        deficit, fund = max(0, -equity), state.fund_balance
        unit = 10 ** (18 - self.client.deployment.collateral_decimals)
        if state.fund_covers(deficit):
            # Only the backstop closes such an account: a due stall report for this very state.
            self._require_backstop_due(ctx, account, acct.state_hash, equity, fund)
            # the fund releases whole token units, rounded up unless that exceeds its balance
            contribution = -(-deficit // unit) * unit
            if contribution > fund:
                contribution = fund // unit * unit
            haircut = 0
        else:
            contribution = fund // unit * unit  # the fund releases whole token units
            haircut = deficit - contribution

        legs = set(ids)
        holders = {
            a: s.positions
            for a, s in state.accounts.items()
            if a != account and any(s.positions.get(i, 0) * acct.positions[i] < 0 for i in legs)
        }
        # a queue without a holder the replica is unsure of would differ from other signers' and
        # let that holder escape: no plan until it is read back
        unsure = sorted(set(holders) & state.diverged)
        if unsure:
            raise OracleUnavailable(
                f"no ADL plan: the replica of {len(unsure)} opposite-side account(s) differs from "
                f"the chain ({unsure[0]}, …); it is being read back from the contract",
                lasting=False,
            )
        numbers = self._numbers_batch(ctx, holders)
        roots: list[bytes] = []
        chains: list[list[tuple[int, str, int, bytes, int, list[bytes], int]]] = []
        for leg, i in enumerate(ids):
            candidates = []
            for other, positions in holders.items():
                if other not in numbers or positions.get(i, 0) * acct.positions[i] >= 0:
                    continue
                s = state.accounts[other]
                equity_other = (s.cash + numbers[other][0]) / WAD
                gross = sum(abs(z) / WAD * abs(mark_of.get(j, 0.0)) for j, z in positions.items())
                candidates.append(AdlCandidate(other, positions[i] / WAD, equity_other, s.net_deposits / WAD, gross))
            queue = rank_queue(candidates, acct.positions[i] / WAD)
            if not queue:
                raise OracleConflict(f"no opposite-side account with market data to deleverage instrument {i} against")
            entries = [(q.account, state.accounts[q.account].state_hash, numbers[q.account][0]) for q in queue]
            tree = MerkleTree([adl_leaf(i, r, a, h, v) for r, (a, h, v) in enumerate(entries)])
            roots.append(tree.root)
            remaining, chain = abs(acct.positions[i]), []
            for r, (other, h, v) in enumerate(entries):
                if remaining <= 0:
                    break
                amount = min(remaining, abs(state.accounts[other].positions[i]))
                chain.append((leg, other, r, h, v, tree.proof(r), amount))
                remaining -= amount
            if remaining > 0:
                raise OracleConflict(
                    f"the queue for instrument {i} cannot absorb the whole position "
                    f"({remaining / WAD:g} contracts left)"
                )
            chains.append(chain)

        sizes = [acct.positions[i] for i in ids]
        gross_w = sum(mul_wad_up(abs(z), m) for z, m in zip(sizes, marks))
        total_size = sum(abs(z) for z in sizes)

        def share(leg: int, amount: int) -> int:
            # LiquidationEngine._charge: the fill's share of the haircut, spread over the legs by notional
            if gross_w:
                return -((-mul_wad_up(amount, marks[leg]) * haircut) // gross_w)
            return -((-amount * haircut) // total_size)

        def room(other: str, left: dict[str, int], value: int) -> int:
            # the counterparty's equity at the marks (its leaf's value), less what this
            # deleveraging already charged it on another leg (LiquidationEngine._charge)
            return left[other] if other in left else max(0, state.accounts[other].cash + value)

        # Order across legs (rank order within each): fills that need more than their room first,
        # the ones with spare room last, so what a capped fill cannot carry reaches spare room.
        heads, order = [0] * len(chains), []
        planned: dict[str, int] = {}
        while any(h < len(c) for h, c in zip(heads, chains)):
            best = None
            for leg, chain in enumerate(chains):
                if heads[leg] < len(chain):
                    f = chain[heads[leg]]
                    d = share(leg, f[6]) - room(f[1], planned, f[4])
                    if best is None or d > best[0]:
                        best = (d, leg)
            assert best is not None
            f = chains[best[1]][heads[best[1]]]
            heads[best[1]] += 1
            planned[f[1]] = max(0, room(f[1], planned, f[4]) - share(best[1], f[6]))
            order.append(f)

        # what the contract will do with this order: charges capped at each room, carry forward
        carry = charged = 0
        cash = acct.cash + contribution
        left: dict[str, int] = {}
        last_room = 0
        for leg, other, _, _, value, _, amount in order:
            wanted = share(leg, amount) + carry
            r = room(other, left, value)
            charge = min(wanted, r)
            left[other] = r - charge
            carry, charged, last_room = wanted - charge, charged + charge, r - charge
            mark = marks[leg]
            cash += mul_wad_down(amount, mark) + charge if sizes[leg] > 0 else charge - mul_wad_up(amount, mark)
        if 0 < -cash <= last_room:
            charged, cash = charged - cash, 0
        uncovered = max(0, -cash)
        fills = tuple(AdlFill(leg, other, r, h, v, tuple(proof)) for leg, other, r, h, v, proof, _ in order)
        expected = {
            "deficit": str(deficit),
            "fund_contribution": str(contribution),
            "haircut": str(charged),
            "uncovered": str(uncovered),
        }
        return AdlPlan(ids, marks, tuple(roots), fills, expected, tuple(f.to_wire() for f in fills))

    def _require_backstop_due(self, ctx: Context, account: str, state_hash: bytes, equity: int, fund: int) -> None:
        """LiquidationEngine._requireBackstopDue: a stall report for the account's current state,
        confirmed at least BACKSTOP_DELAY after it was made and at most BACKSTOP_DELAY before
        the snapshot's block, and equity still below the confirmed MM."""
        engine = self.client.engine.functions
        reported_hash, since, confirmed_at, mm = engine.stalls(account).call(block_identifier=ctx.block)
        if not since or bytes(reported_hash) != state_hash:
            if equity >= 0:
                raise OracleConflict(
                    f"{account} is not bankrupt at the current marks (equity {equity / WAD:.2f} "
                    f"≥ 0) and has no stall report for its current state: liquidate it instead"
                )
            raise OracleConflict(
                f"the insurance fund ({fund / WAD:.2f}) covers the deficit of {account} "
                f"({-equity / WAD:.2f}): liquidate it whole instead of deleveraging"
            )
        delay = int(engine.BACKSTOP_DELAY().call(block_identifier=ctx.block))
        due = int(since) + delay
        if int(confirmed_at) < due or ctx.block_time > int(confirmed_at) + delay:
            # the same key becomes answerable with time alone: not a refusal to keep
            raise OracleConflict(
                f"the backstop for {account} needs a stall report confirmed between {due} and "
                f"{delay}s before the block (confirmed at {int(confirmed_at)}, block time "
                f"{ctx.block_time})",
                lasting=False,
            )
        if equity >= int(mm):
            raise OracleConflict(
                f"{account} is no longer below the reported MM ({equity / WAD:.2f} ≥ {int(mm) / WAD:.2f})"
            )

    def _marks(self, ctx: Context) -> dict[int, float]:
        """Mark of one contract of every listed instrument at the snapshot, priced at once (an
        option past expiry: its intrinsic value at the posted settlement price)."""
        from offchain.risk.instruments import InstrumentTable
        from offchain.risk.scenarios import price_instruments

        market, state = ctx.market.data, ctx.state
        live = {
            i: inst
            for i, inst in state.instruments.items()
            if inst.underlying in market.underlyings and not (inst.is_option and inst.expiry <= market.timestamp)
        }
        marks: dict[int, float] = {}
        if live:
            table = InstrumentTable(list(live.values()))
            priced = price_instruments(table, market, ctx.params).marks
            marks = {i: float(priced[table.index[inst]]) for i, inst in live.items()}
        for i, inst in state.instruments.items():
            if i not in marks and inst.is_option and inst.expiry <= market.timestamp:
                price = state.settlement_prices.get((inst.underlying, inst.expiry), 0.0)
                marks[i] = float(intrinsic(price, inst.strike, inst.kind.name == "CALL"))
        return marks

    # ------------------------------------------------------------------ settlement and heartbeat

    def attest_settlement(self, body: dict[str, Any]) -> dict[str, Any]:
        """The price at the expiry: the price feed's last round at or before it (the same for
        every signer, whenever asked), with that round's time as the snapshot time."""
        underlying = body.get("underlying")
        expiry = body.get("expiry")
        if not isinstance(underlying, str) or not isinstance(expiry, int) or isinstance(expiry, bool):
            raise OracleBadRequest("underlying (a name such as ETH) and expiry (unix seconds) are required")
        try:
            name = underlying_to_bytes32(underlying)
        except ValueError as err:
            raise OracleBadRequest(f"underlying: {err}") from None
        with self.lock:
            self.sync(body.get("min_block"))
            listed = {i.expiry for i in self.state.instruments.values() if i.is_option and i.underlying == underlying}
            if expiry not in listed:
                raise OracleBadRequest(f"expiry: {expiry} is no listed expiry of an {underlying} option")
            block, block_time, _ = self._block_snapshot()
            if block_time < expiry:
                raise OracleConflict(f"expiry {expiry} has not passed (chain time {block_time})")
            try:
                price, at = self.source.settlement_price(underlying, expiry, block)
            except SettlementUnavailable as err:  # the same kind of error, saying what was asked
                raise type(err)(f"no settlement price: {err}") from None
            max_age = self._risk_config().max_snapshot_age
            if at > expiry or at + max_age < expiry:
                raise OracleConflict(
                    f"no settlement price: the last {underlying} reading at or before the expiry "
                    f"{expiry} is from {at}, {expiry - at}s before it; the contract accepts one at "
                    f"most maxSnapshotAge = {max_age}s old"
                )
            return self._response(block, {"settlement": SettlementPrice(name, expiry, price, at)})

    def attest_heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The time of this signer's newest market snapshot, for Clearinghouse.postSnapshot:
        posted, it stops attestations of older snapshots (a price dip hoarded for later)."""
        with self.lock:
            self.sync(body.get("min_block"))
            block, _, market = self._block_snapshot()
            if not market.data.underlyings:
                reasons = "; ".join(f"{u}: {r}" for u, r in sorted(market.unavailable.items())) or "no feeds"
                raise OracleUnavailable(f"no heartbeat: no usable market data ({reasons})")
            return self._response(block, {"heartbeat": SnapshotHeartbeat(market.data.timestamp)})

    # ------------------------------------------------------------------ whole-book commitments

    def attest_commitment(self, body: dict[str, Any]) -> dict[str, Any]:
        """One signed commitment to every account's margin at the replica's block and market
        snapshot (offchain/attest/commitment.py). Accounts this signer cannot attest (a diverged
        replica, an underlying without market data) are left out and listed in `extra`."""
        ctx = self._snapshot_context(body.get("min_block"))
        book, left_out = self._own_book(ctx)
        return self._commit(ctx, book, left_out)

    def _own_book(self, ctx: Context) -> tuple[BookCommitment, list[str]]:
        """This signer's own whole-book commitment at `ctx`, built once per state version, market
        snapshot, params version and block time."""
        self._needs(ctx, ())
        key = (ctx.state.version, ctx.market.key or (ctx.snapshot_time, ctx.block), ctx.params.version, ctx.block_time)
        return self._books.get(key, lambda: self._book(ctx))

    def _book(
        self, ctx: Context, numbers: dict[str, tuple[int, int, int]] | None = None
    ) -> tuple[BookCommitment, list[str]]:
        state = ctx.state
        accounts = {a: s for a, s in state.accounts.items() if a not in state.diverged}
        if numbers is None:
            numbers = self._numbers_batch(ctx, {a: s.positions for a, s in accounts.items() if s.positions})
        deadline = ctx.block_time + self.ttl
        attestations = {}
        for account, acct in accounts.items():
            if not acct.positions:
                value, im, mm = 0, 0, 0
            elif account in numbers:
                value, im, mm = numbers[account]
            else:
                continue  # an underlying without market data
            attestations[account] = MarginAttestation(
                account, acct.state_hash, value, im, mm, ctx.snapshot_time, deadline, ctx.params.version
            )
        if not attestations:
            raise OracleConflict("no account to commit to yet")
        left_out = sorted(set(state.accounts) - set(attestations))
        return BookCommitment(attestations, ctx.snapshot_time, deadline, ctx.params.version, ctx.block), left_out

    def _commit(
        self, ctx: Context, book: BookCommitment, left_out: list[str], cosigned: bool = False
    ) -> dict[str, Any]:
        kept, size = (self.cosigned, 16) if cosigned else (self.commitments, 16)
        with self._books_lock:
            kept[book.root] = book
            kept.move_to_end(book.root)
            while len(kept) > size:
                kept.popitem(last=False)
        item = SnapshotCommitment(
            book.root, book.snapshot_time, book.deadline, book.params_version, len(book.attestations)
        )
        return self._response(ctx, {"commitment": item}, {"left_out": left_out})

    def commitment_numbers(self, root: str) -> dict[str, Any]:
        """(value, IM, MM) per account of a commitment this signer built: what another signer
        checks, number by number within the float tolerance, before it co-signs this root."""
        book = self._book_of(root)
        return {
            "root": "0x" + book.root.hex(),
            "block": book.block,
            "numbers": {
                a: [str(t.value), str(t.initial_margin), str(t.maintenance_margin)]
                for a, t in book.attestations.items()
            },
        }

    def commitment_proof(self, root: str, account: str) -> dict[str, Any]:
        """An account's committed attestation and its proof (siblings from the leaf up)."""
        book = self._book_of(root)
        account = self.address(account, "account")
        if account not in book.attestations:
            raise OracleNotFound(f"account {account} is not in commitment {root}")
        return {
            "root": "0x" + book.root.hex(),
            "block": book.block,
            "attestation": to_wire(book.attestations[account]),
            "proof": ["0x" + p.hex() for p in book.proof(account)],
        }

    def commitment_proofs(self, root: str, accounts: str) -> dict[str, Any]:
        """Leaves and proofs of several accounts (comma-separated, at most 200) of one commitment;
        accounts not in it are listed under `missing`."""
        book = self._book_of(root)
        wanted = [a for a in str(accounts).split(",") if a]
        if not 1 <= len(wanted) <= 200:
            raise OracleBadRequest("accounts: 1 to 200 comma-separated addresses")
        proofs, missing = {}, []
        for i, raw in enumerate(wanted):
            account = self.address(raw, f"accounts[{i}]")
            if account not in book.attestations:
                missing.append(account)
                continue
            proofs[account] = {
                "attestation": to_wire(book.attestations[account]),
                "proof": ["0x" + p.hex() for p in book.proof(account)],
            }
        return {"root": "0x" + book.root.hex(), "block": book.block, "proofs": proofs, "missing": missing}

    def _book_of(self, root: str) -> BookCommitment:
        try:
            raw = bytes.fromhex(str(root).removeprefix("0x"))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise OracleBadRequest(f"root: {root!r} is not 32 bytes of hex")
        with self._books_lock:
            book = self.commitments.get(raw) or self.cosigned.get(raw)
        if book is None:
            raise OracleNotFound(f"commitment {root} is not among this signer's recent ones")
        return book

    def cosign_commitment(self, request: dict[str, Any], proposal_root: bytes, numbers: Any) -> dict[str, Any]:
        """This signer's own commitment, or — when its root differs from the proposal's only by
        float noise — the proposal rebuilt from the proposer's numbers, each within the tolerance
        of this signer's own (offchain/oracle/cosign.py) and over exactly the same accounts."""
        ctx = self._snapshot_context(request.get("min_block"))
        book, left_out = self._own_book(ctx)
        if book.root == proposal_root:
            return self._commit(ctx, book, left_out)
        if not isinstance(numbers, dict) or set(numbers) != set(book.attestations):
            raise OracleConflict("refusing to co-sign: the proposal covers other accounts than this signer's")
        theirs: dict[str, tuple[int, int, int]] = {}
        for account, mine in book.attestations.items():
            entry = numbers[account]
            if (
                not isinstance(entry, list)
                or len(entry) != 3
                or not all(isinstance(x, str) and DECIMAL.fullmatch(x) for x in entry)
            ):
                raise OracleBadRequest(f"numbers.{account}: three integers as decimal strings (value, IM, MM)")
            value, im, mm = (int(x) for x in entry)
            for name, t, o in (
                ("value", value, mine.value),
                ("initialMargin", im, mine.initial_margin),
                ("maintenanceMargin", mm, mine.maintenance_margin),
            ):
                if abs(t - o) > tolerance(o):
                    raise OracleConflict(
                        f"refusing to co-sign: {account}.{name} is {t - o:+d} from own {o}, "
                        f"beyond the tolerance {tolerance(o)}"
                    )
            theirs[account] = (value, im, mm)
        rebuilt, _ = self._book(ctx, theirs)
        if rebuilt.root != proposal_root:
            raise OracleConflict("refusing to co-sign: the proposer's numbers do not give the proposed root")
        return self._commit(ctx, rebuilt, left_out, cosigned=True)

    # ------------------------------------------------------------------ risk views (unsigned)

    def risk_accounts(self, max_ratio: float) -> dict[str, Any]:
        ctx = self._snapshot_context()
        key = (ctx.state.version, ctx.market.key or (ctx.snapshot_time, ctx.block), ctx.params.version)
        rows, skipped = self._risk_rows.get(key, lambda: self._risk_table(ctx))
        return {
            "block": ctx.block,
            "fund_balance": ctx.state.fund_balance / WAD,
            "accounts": [r for r in rows if r["ratio"] < max_ratio],
            "unpriced_accounts": skipped,
            "market_unavailable": ctx.market.unavailable,
            "diverged_accounts": sorted(ctx.state.diverged),
            "flagged": sorted(ctx.state.flagged),
        }

    def _risk_table(self, ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
        state = ctx.state
        portfolios = {a: s.positions for a, s in state.accounts.items() if s.positions and a not in state.diverged}
        numbers = self._numbers_batch(ctx, portfolios)
        rows: list[dict[str, Any]] = []
        for account, (value, im, mm) in numbers.items():
            equity = state.accounts[account].cash + value
            ratio = equity / mm if mm else float("inf")
            rows.append(
                {
                    "account": account,
                    "equity": equity / WAD,
                    "mm": mm / WAD,
                    "im": im / WAD,
                    "ratio": ratio,
                    "state_hash": "0x" + state.accounts[account].state_hash.hex(),
                    "equity_wei": str(equity),
                    "mm_wei": str(mm),
                }
            )
        rows.sort(key=lambda r: r["ratio"])
        return rows, sorted(set(portfolios) - set(numbers))

    def marks(self) -> dict[str, Any]:
        """Marks of every listed instrument at the snapshot (unsigned: for quoting, not settling)."""
        ctx = self._snapshot_context()
        return {
            "block": ctx.block,
            "block_time": ctx.block_time,
            "snapshot_time": ctx.snapshot_time,
            "marks": {str(i): m for i, m in sorted(self._marks(ctx).items())},
        }

    def account_report(self, account: str) -> dict[str, Any]:
        account = self.address(account, "address")
        with self.lock:
            self.sync()
            self._known(self.state, account)
            ctx = self._context()
            acct = self.state.accounts[account]
            value, im, mm = self._numbers(ctx, dict(acct.positions)) if acct.positions else (0, 0, 0)
            return {
                "account": account,
                "block": self.state.block,
                "cash": acct.cash / WAD,
                "value": value / WAD,
                "equity": (acct.cash + value) / WAD,
                "initial_margin": im / WAD,
                "maintenance_margin": mm / WAD,
                "net_deposits": acct.net_deposits / WAD,
                "state_hash": "0x" + acct.state_hash.hex(),
                "flagged": account in self.state.flagged,
                "positions": {
                    self.state.instruments[i].name: s / WAD
                    for i, s in acct.positions.items()
                    if i in self.state.instruments
                },
            }

    def is_signer(self, address: str) -> bool:
        """Whether the clearinghouse's signer set holds `address` now (asked of the chain; a
        node that cannot answer means no)."""
        try:
            return bool(self.client.ch.functions.isSigner(address).call())
        except Exception:
            return False

    def lag(self) -> int:
        """Blocks the replica stands behind the head (less the confirmation depth) at the last sync."""
        return max(0, self.head_seen - self.confirmations - self.state.block)

    def health(self) -> dict[str, Any]:
        try:  # a probe answers at once: an unreachable node is a 503, not a hung health check
            head = self.client.head(attempts=2)
        except Exception as err:
            raise OracleUnavailable(f"the chain node is unreachable ({type(err).__name__})", lasting=False) from None
        self.head_seen = head
        snapshot = self._snapshot
        state = self.state
        return {
            "status": "unauthorized" if not self.authorized else "degraded" if state.diverged else "ok",
            "signer": self.signer.address,
            "authorized": self.authorized,
            "block": state.block,
            "head": head,
            "lag_blocks": max(0, head - self.confirmations - state.block),
            "confirmations": self.confirmations,
            "market": self.source.status(),
            "snapshot_time": snapshot[2].data.timestamp if snapshot else None,
            "params": self.params_status(),
            "hash_mismatches": state.hash_mismatches,
            "diverged_accounts": sorted(state.diverged),
            "reorgs": state.reorgs,
            "last_reorg": state.last_reorg,
            "state_save_failures": self.save_failures,
            "adl_plans": {"computed": self.adl_plans.misses, "cached_answers": self.adl_plans.hits},
        }

    def replica(self, detail: bool = False) -> dict[str, Any]:
        """The replica as it stands (block, its hash, digest; with `detail`, every account in exact
        integers), for comparing signers with each other and with the chain."""
        with self.lock:
            self.sync()
            state = self.state
            out: dict[str, Any] = {
                "block": state.block,
                "hash": state.hashes.get(state.block),
                "digest": state.digest(),
                "accounts": len(state.accounts),
                "diverged": sorted(state.diverged),
                "reorgs": state.reorgs,
            }
            if detail:
                out["rows"] = state.account_rows()
            return out

    def _save_quietly(self) -> None:
        """What changed since the last save, in one transaction; a store that fails (a database
        unreachable) is logged and tried again later — the replica in memory keeps serving."""
        try:
            self.store.save(self.state)  # type: ignore[union-attr]
        except Exception as err:
            self.save_failures += 1
            event(
                log,
                "saving the replica failed; serving on, will try again",
                logging.ERROR,
                error=f"{type(err).__name__}: {str(err)[:300]}",
            )

    def save(self) -> None:
        if self.store:
            with self.lock:
                self.store.save(self.state)
                event(log, "state saved", block=self.state.block, path=str(self.state_path))


def instrument_names(instruments: dict[int, Instrument]) -> dict[int, str]:
    return {i: inst.name for i, inst in instruments.items()}

"""The keeper loop: each new block, find accounts near or below MM, warn, liquidate (batched),
deleverage bankruptcies the fund cannot cover, clear bankruptcy flags that no longer hold, keep
the on-chain snapshot floor fresh, and settle expired options.

The loop never waits on a transaction: sending is asynchronous (`TxSender`), transactions in
flight are followed per nonce while every other account is served. Nothing counts as done until
the chain says so: an account leaves the keeper's attention only when the oracle no longer lists
it below maintenance margin; every failed, skipped, unprofitable or cancelled attempt is retried
with backoff in blocks (`RetryTracker`). /health answers 503 "stalled" when accounts stay
unhandled for `--stall-blocks` blocks.

Restart-safe: a chain-state snapshot (the cursor) and a journal of transactions mined or in
flight are written to --state-dir; a killed keeper resumes where it stopped, adopts the
transactions it left in the pool, and never repeats a mined action.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from web3.logs import DISCARD

from offchain.attest.keys import load_signer
from offchain.attest.liquidation import NotLiquidatable, flag_clears, fund_covers, fund_fits, slice_im, terms
from offchain.attest.messages import AdlFill, MarginAttestation, from_wire
from offchain.chain.contracts import RPC_FAILURES, SystemClient
from offchain.chain.deploy import Deployment, OnchainRiskConfig, read_risk_config
from offchain.errors import UserError
from offchain.keeper.errors import ErrorDecoder
from offchain.keeper.fees import GWEI, FeePolicy
from offchain.keeper.commitments import Commitments
from offchain.keeper.journal import Journal
from offchain.keeper.notify import MarginCallNotifier
from offchain.keeper.tracker import RetryTracker
from offchain.oracle.client import OracleClient, OracleRefused
from offchain.keeper.unwind import MarketMakerClient, QuoteRefused, check_quote, largest_position
from offchain.keeper.txsender import Pending, Plan, Result, SendFailed, SimulationFailed, TxSender, Unaffordable
from offchain.ops.web import HttpError, HttpLimits, HttpService, create_app, ok
from offchain.ops.logs import event, setup
from offchain.replica import Replica, open_replica, open_store
from offchain.risk.units import WAD

log = logging.getLogger("keeper")

SKIP_REASONS = {
    1: "its state moved on since the attestation",
    2: "it is no longer below maintenance margin",
    3: "the fund cannot cover its deficit (goes to deleveraging)",
}


@dataclass
class KeeperConfig:
    oracle_url: str
    batch_size: int = 50  # accounts per liquidation transaction (the oracle attests at most 50 at once)
    batch_gas: int = 12_000_000  # and at most this much gas (a share of the block, leaving room for others)
    margin_call_ratio: float = 1.2
    poll_seconds: float = 0.5
    dry_run: bool = False
    liquidate_unprofitable: bool = False
    min_profit: float = 0.0  # collateral units the bonus must exceed the gas cost by
    collateral_per_eth: float = 3000.0  # to price gas in collateral for the profitability check
    webhooks: list[str] = field(default_factory=list)
    stall_blocks: int = 20  # /health answers 503 when an account stays unhandled this long
    retry_max_blocks: int = 8  # the longest backoff between two attempts on one account
    max_fee_gwei: float = 500.0  # ceiling of maxFeePerGas for anything the keeper sends
    tip_percentile: float = 60.0  # tip = this percentile of recent blocks' tips (eth_feeHistory)
    bump_blocks: int = 2  # blocks a transaction may stay unmined before its fees are raised
    max_pending: int = 16  # transactions in flight at once
    backstop_after: int = 3  # failed attempts before an account is reported stalled (0: never)
    market_maker: str | None = None  # URL of a market maker that takes what the keeper liquidated
    unwind_max_spread_bps: int = 100  # worst price accepted from it, from the oracle's mark
    risk_budget: float = 1.0  # liquidations keep the keeper's requirement within this share of its equity
    confirmations: int | None = None  # act on the state this many blocks below the head (None: the deployment's)
    proofs: bool = False  # victims' attestations from a posted whole-book commitment (offchain/keeper/commitments.py)
    proofs_min: int = 20  # with proofs: smaller batches still go with signed attestations (a root costs a block)


SIGNED_BATCH = 50  # the oracle signs at most this many liquidation attestations per request


def _signed(item: dict[str, Any]) -> tuple[Any, bytes]:
    return from_wire(item), bytes.fromhex(item["signatures"][2:])


def _wad(units: float) -> int:
    return int(round(units * WAD))


def _row_equity(row: dict[str, Any]) -> int:
    """A risk row's equity in WAD: exact when the oracle gives it (equity_wei)."""
    return int(row["equity_wei"]) if "equity_wei" in row else _wad(row["equity"])


def _row_mm(row: dict[str, Any]) -> int:
    return int(row["mm_wei"]) if "mm_wei" in row else _wad(row["mm"])


class _LogTap:
    """The client as ChainState.catch_up sees it, noting the flag events as they replay."""

    def __init__(self, client: SystemClient, flags: set[str]) -> None:
        self.client, self.flags = client, flags

    def __getattr__(self, name: str) -> Any:  # header, account_at, block_time: the client's
        return getattr(self.client, name)

    def logs(self, from_block: int, to_block: int) -> Any:
        entries = self.client.logs(from_block, to_block)
        for e in entries:
            if e.contract == "engine" and e.name == "BankruptcyFlagged":
                self.flags.add(e.args["account"])
        return entries


class Keeper:
    def __init__(
        self, client: SystemClient, oracle: OracleClient, account: Any, config: KeeperConfig, state_dir: Path
    ) -> None:
        self.client, self.oracle, self.account, self.config = client, oracle, account, config
        self.me = account.address
        self.state_dir = state_dir
        self.store = open_store(state_dir / "chain-state.sqlite", name=f"keeper:{account.address}")
        self.extra_path = state_dir / "keeper-state.json"
        # the keeper's own replica: it drives the catch-up and the saves, and reads it as `replica`
        self.state = open_replica(client.deployment, self.store)
        self.confirmations = client.deployment.confirmations if config.confirmations is None else config.confirmations
        self.flag_watch: set[str] = set(self._load_extra().get("flag_watch", []))
        self._saved_flags = set(self.flag_watch)
        self.journal = Journal(state_dir / "journal.sqlite")
        self.decoder = ErrorDecoder(
            [client.ch.abi, client.engine.abi, client.fund.abi]
            + ([client.commitments.abi] if client.commitments is not None else [])
        )
        if config.proofs and client.commitments is None:
            raise UserError("--proofs: this deployment has no commitment registry (its file has no `commitments`)")
        self.commitments = Commitments(client.deployment.commitments) if config.proofs else None
        policy = FeePolicy(percentile=config.tip_percentile, max_fee=int(config.max_fee_gwei * GWEI))
        # a dry run sends nothing: it neither journals nor takes over transactions left in flight
        self.sender = TxSender(
            client.w3,
            account,
            None if config.dry_run else self.journal,
            self.decoder,
            policy,
            refresh=self._refresh,
            on_replaced=self._replaced,
            bump_blocks=config.bump_blocks,
        )
        self.notifier = MarginCallNotifier(state_dir / "margin-calls.jsonl", config.webhooks)
        self.accounts = RetryTracker(config.retry_max_blocks)  # accounts below MM (liquidation, ADL)
        self.duties = RetryTracker(config.retry_max_blocks)  # prices, settlements, flags, heartbeats
        self.market_maker = MarketMakerClient(config.market_maker) if config.market_maker else None
        self.stop = threading.Event()
        self.last_loop = 0.0
        self.loops = 0
        self.head = -1
        self.head_time = 0
        self.seen_block = -1  # the newest block known to hold the keeper's own mined transactions
        self.risk_block = -1  # the block of the newest risk list
        self.progress_block = -1  # the last block where it liquidated, flagged or deleveraged something
        self.sent_this_step = False
        self.no_room_for_slice = False  # this loop, a slice did not fit the keeper's capital
        self.below: dict[str, dict[str, Any]] = {}  # below MM, weakest first (latest risk list)
        self._fund: tuple[int, int, int] | None = None
        # the contract's latest word on whether the fund covers an account: (state hash, fund, beyond)
        self.verdicts: dict[str, tuple[str, int, bool]] = {}
        self._replica_summary: tuple[Any, dict[str, Any]] = (None, {})  # ((state version, block), for /health)
        self._replica_at = 0.0
        self.capital: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._risk_config: tuple[int, OnchainRiskConfig] | None = None  # (head read at, config)
        self._backstop_delay: int | None = None
        self._heartbeat_off_until = -1
        # head block at the start of the latest loop that found nothing to do (drivers wait on it)
        self.idle_at_block = -1
        self.registry = CollectorRegistry()
        r = self.registry
        self.m_lag = Gauge("keeper_block_lag", "Head minus the last block the keeper processed", registry=r)
        self.m_at_risk = Gauge("keeper_accounts_at_risk", "Accounts below maintenance margin", registry=r)
        self.m_near = Gauge("keeper_accounts_near_mm", "Accounts between MM and the margin-call ratio", registry=r)
        self.m_unhandled = Gauge(
            "keeper_accounts_stalled", "Accounts below MM for --stall-blocks blocks or more", registry=r
        )
        self.m_liq = Counter(
            "keeper_liquidations_total", "Accounts liquidated (done) or not (skipped, failed)", ["result"], registry=r
        )
        self.m_adl = Counter("keeper_deleveragings_total", "Deleveragings", ["result"], registry=r)
        self.m_settle = Counter("keeper_settlements_total", "Accounts settled", ["result"], registry=r)
        self.m_flags = Counter("keeper_flags_total", "Bankruptcy flags set and cleared", ["action"], registry=r)
        self.m_heartbeats = Counter("keeper_heartbeats_total", "Snapshot heartbeats posted", registry=r)
        self.m_calls = Counter("keeper_margin_calls_total", "Margin-call warnings sent", registry=r)
        self.m_tx = Counter("keeper_transactions_total", "Transactions resolved", ["status"], registry=r)
        self.m_pending = Gauge("keeper_transactions_pending", "Transactions in flight", registry=r)
        self.m_balance = Gauge("keeper_balance_eth", "Gas balance of the keeper", registry=r)
        self.m_cash = Gauge("keeper_cash", "The keeper's collateral cash in the clearinghouse", registry=r)
        self.m_headroom = Gauge(
            "keeper_margin_headroom", "The keeper's equity minus its IM (collateral units)", registry=r
        )
        self.m_att = Histogram(
            "keeper_attestation_seconds",
            "Oracle round-trip for attestations",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.m_errors = Counter("keeper_loop_errors_total", "Loop iterations that failed", registry=r)
        self.m_reorgs = Counter("keeper_reorgs_total", "Chain reorganisations the keeper recovered from", registry=r)
        self.m_rpc = Gauge("keeper_rpc_failures", "RPC calls that failed and were retried with backoff", registry=r)
        self.m_rpc.set_function(lambda: float(RPC_FAILURES[0]))
        self.m_pending.set_function(lambda: float(len(self.sender.pending)))

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        delay = self.config.poll_seconds
        while not self.stop.is_set():
            try:
                self.step()
                delay = self.config.poll_seconds
            except Exception as err:  # RPC or oracle outage: back off, keep running
                self.m_errors.inc()
                event(
                    log,
                    "loop failed; backing off",
                    logging.WARNING,
                    error=f"{type(err).__name__}: {str(err)[:300]}",
                    retry_in=round(delay, 2),
                )
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self.sent_this_step and not self.sender.pending:
                continue  # what was sent is mined already: look again at once
            self.stop.wait(self.config.poll_seconds)
        self.store.save(self.state)
        self._save_extra()
        event(log, "keeper stopped", block=self.replica.block, in_flight=sorted(self.sender.pending))

    def sync(self) -> int:
        ref = self.client.header("latest")
        if ref is None:
            raise RuntimeError("the node returned no head block")
        head = ref.number
        reorgs = self.state.reorgs
        self.state.catch_up(_LogTap(self.client, self.flag_watch), max(head - self.confirmations, 0), head=ref)
        self.m_lag.set(max(0, head - self.confirmations - self.state.block))
        if self.state.reorgs != reorgs or head < self.head:
            self._after_reorg(head)
        if head != self.head:
            self.head, self.head_time = head, ref.timestamp
        self.seen_block = max(self.seen_block, head)
        return head

    def _summarise_replica(self) -> None:
        """The replica's block and digest for /health (to compare with the signers'). The digest
        reads the whole book: recomputed when the state changed, at most every 30 s beyond
        100,000 accounts."""
        key = (self.replica.version, self.replica.block)
        if self._replica_summary[0] == key:
            return
        big = len(self.replica.accounts) > 100_000
        if big and time.monotonic() - self._replica_at < 30:
            return
        self._replica_at = time.monotonic()
        self._replica_summary = (
            key,
            {
                "block": self.replica.block,
                "digest": self.replica.digest(),
                "reorgs": self.replica.reorgs,
                "diverged": sorted(self.replica.diverged),
            },
        )

    def _after_reorg(self, head: int) -> None:
        """Blocks were replaced: transactions of ours mined there may be gone. The nonce is read
        again from the chain, blocks seen are forgotten down to the head, and every account is
        due again at once (what was done there is done only if the new chain says so)."""
        self.m_reorgs.inc()
        self.seen_block = min(self.seen_block, head)
        self.risk_block = min(self.risk_block, head)
        self.progress_block = min(self.progress_block, head)
        self.head = min(self.head, head)
        self.sender.head = min(self.sender.head, head)
        self._fund = None
        nonce = self.sender.sync_nonce()
        for tracker in (self.accounts, self.duties):
            for item in tracker.items.values():
                if item.in_flight is None or item.in_flight >= nonce:
                    item.next_block = min(item.next_block, head)
        event(
            log,
            "chain reorganisation: keeper resynchronised",
            logging.WARNING,
            head=head,
            nonce=nonce,
            in_flight=sorted(self.sender.pending),
            last_reorg=self.replica.last_reorg,
        )

    def step(self) -> None:
        self.sent_this_step = False
        self.no_room_for_slice = False
        self.warnings = []
        head = self.sync()
        self._drain(head)
        risk = self.oracle.get(f"/v1/risk/accounts?max_ratio={self.config.margin_call_ratio}")
        # what is liquidated now was seen at this block: a root to prove it against is no older
        self.risk_block = max(self.risk_block, int(risk.get("block") or 0))
        rows = risk["accounts"]
        mine = [r for r in rows if r["account"] == self.me]
        if mine and mine[0]["ratio"] < 1.0:
            self.warnings.append(f"the keeper itself is below maintenance margin (ratio {mine[0]['ratio']:.3f})")
        rows = [r for r in rows if r["account"] != self.me]
        below = [r for r in rows if r["ratio"] < 1.0]
        near = [r for r in rows if r["ratio"] >= 1.0]
        self.m_at_risk.set(len(below))
        self.m_near.set(len(near))
        for r in near:
            if self.notifier.warn(r, head):
                self.m_calls.inc()
        self.below = {r["account"]: r for r in below}
        keeper_fp = self._keeper_fingerprint()
        self.accounts.observe({r["account"]: (r["state_hash"], round(r["ratio"], 2), keeper_fp) for r in below}, head)
        self.m_unhandled.set(len(self.accounts.stalled(head, self.config.stall_blocks, self.progress_block)))

        self.heartbeat()
        # Over its risk budget the keeper unwinds before it takes more; otherwise it liquidates
        # first and unwinds once nobody waits for a liquidation but for room in its book (so what
        # it does follows the chain's state, not the timing of its loop).
        first = self._over_budget()
        if first:
            self.unwind()
        self.liquidate_all(head)
        if not first and (self.no_room_for_slice or self._waiting_for_room()):
            self.unwind()
        self.backstop()
        for r in list(self.bankrupt.values()):
            self.deleverage(r)
        self.clear_flags(risk)
        self.settle_expired()
        self.update_capital()

        try:
            self.store.save(self.state)
        except Exception as err:  # the replica in memory goes on; the next loop saves again
            self.warnings.append(f"saving the replica failed: {type(err).__name__}")
            event(log, "saving the replica failed", logging.ERROR, error=f"{type(err).__name__}: {str(err)[:300]}")
        self._summarise_replica()
        if self.flag_watch != self._saved_flags:
            self._save_extra()
        self.last_loop = time.time()
        self.loops += 1
        if not self.sent_this_step and not self.sender.pending:
            self.idle_at_block = head
        if self.loops % 10 == 1:
            self.m_balance.set(self.client.w3.eth.get_balance(self.me) / 1e18)
        acct = self.replica.account(self.me)
        self.m_cash.set((acct.cash if acct else 0) / WAD)

    @property
    def replica(self) -> Replica:
        """The chain state as the keeper reads it: its replica, at the confirmed block."""
        return self.state

    # A bankruptcy the fund can cover is liquidated whole (the fund pays the deficit); one beyond
    # the fund is flagged and deleveraged. Which is which follows the fund as it pays: its
    # on-chain balance, read again after each of the keeper's transactions lands, compared in
    # WAD integers by the contract's own rule (fund_covers, flag_clears).

    def fund_wei(self) -> int:
        return self._fund_state()[1]

    def fund_health(self) -> int:
        return self._fund_state()[2]

    def _fund_state(self) -> tuple[int, int, int]:
        """(block, balance, health) of the insurance fund as the next transaction meets it: read
        from the chain, once per block the keeper has seen (not from its replica, which may stand
        `confirmations` blocks lower)."""
        if self._fund is None or self._fund[0] != self.seen_block:
            fund = self.client.fund.functions
            self._fund = (self.seen_block, int(fund.fundBalance().call()), int(fund.health().call()))
        return self._fund

    def _beyond_fund(self, row: dict[str, Any]) -> bool:
        """Bankrupt beyond the fund, decided with the contract's integers: not fund_covers
        (flagBankruptcy's rule). The contract's own latest verdict on the same state and fund
        (a simulation that said FundCanCover, a batch that skipped it as beyond the fund) wins
        over this estimate from the oracle's risk snapshot."""
        equity = _row_equity(row)
        if equity >= 0:
            return False
        fund = self.fund_wei()
        verdict = self.verdicts.get(row["account"])
        if verdict is not None and verdict[:2] == (row["state_hash"], fund):
            return verdict[2]
        return not fund_covers(-equity, fund)

    def _verdict(self, account: str, beyond: bool) -> None:
        row = self.below.get(account)
        if row is not None:
            self.verdicts[account] = (row["state_hash"], self.fund_wei(), beyond)

    @property
    def partial(self) -> dict[str, dict[str, Any]]:
        """Below MM and liquidatable now (the fund covers a bankrupt one)."""
        return {a: r for a, r in self.below.items() if not self._beyond_fund(r)}

    @property
    def bankrupt(self) -> dict[str, dict[str, Any]]:
        """Bankrupt beyond what the fund holds now."""
        return {a: r for a, r in self.below.items() if self._beyond_fund(r)}

    def _keeper_fingerprint(self) -> tuple[int, str]:
        acct = self.replica.account(self.me)
        return (acct.cash, acct.state_hash.hex()) if acct else (0, "")

    # ------------------------------------------------------------------ sending

    def _attest(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return self.oracle.post(f"/v1/attest/{endpoint}", body)
        finally:
            self.m_att.observe(time.perf_counter() - start)

    def _drain(self, head: int | None = None) -> None:
        """Collects what became of the transactions in flight."""
        for result in self.sender.poll(head, self.head_time if head is not None else None):
            self._on_result(result)

    def _room(self) -> bool:
        return len(self.sender.pending) < self.config.max_pending

    def _send(self, plan: Plan, tracker: RetryTracker, keys: list[str]) -> Pending | None:
        """Submits `plan` (asynchronously). Failures reschedule `keys` with backoff."""
        if self.config.dry_run:
            event(
                log,
                f"dry run: would send {plan.action}",
                gas=plan.gas,
                deadline=plan.deadline,
                worth_wei=plan.worth_wei,
                **{k: v for k, v in plan.meta.items() if k != "kind"},
            )
            for k in keys:
                tracker.failed(k, self.head, "dry run: not sent")
            return None
        try:
            p = self.sender.submit(plan)
        except (Unaffordable, SimulationFailed, SendFailed) as err:
            level = logging.ERROR if isinstance(err, SendFailed) else logging.WARNING
            for k in keys:
                nxt = tracker.failed(k, self.head, f"{type(err).__name__}: {err}")
            event(
                log,
                f"{plan.action} not sent",
                level,
                error=f"{type(err).__name__}: {err}"[:300],
                retry_at_block=nxt if keys else None,
                **{k: v for k, v in plan.meta.items() if k != "kind"},
            )
            if isinstance(err, SendFailed) and "insufficient funds" in str(err):
                self.warnings.append("the keeper's gas balance cannot pay for its transactions")
            return None
        self.sent_this_step = True
        for k in keys:
            tracker.sent(k, p.nonce)
        self._drain()  # on a chain that mines at once, the result is already there
        return p

    def _on_result(self, r: Result) -> None:
        self.m_tx.labels(r.status).inc()
        if r.receipt is not None:  # attestations from now on must see this block (the keeper's own state)
            self.seen_block = max(self.seen_block, int(r.receipt["blockNumber"]))
            if r.ok and r.plan.meta.get("kind") in ("liquidate", "adl", "flag"):
                self.progress_block = max(self.progress_block, int(r.receipt["blockNumber"]))
        kind = r.plan.meta.get("kind")
        keys_a = [k for k, t in self.accounts.items.items() if t.in_flight == r.nonce]
        keys_d = [k for k, t in self.duties.items.items() if t.in_flight == r.nonce]
        why = r.reason or f"transaction {r.status}"
        if r.status == "reverted":
            why = f"reverted: {self._revert_reason(r)}"
        if kind == "liquidate" and r.ok:
            done = {
                e["args"]["account"]
                for e in self.client.engine.events.Liquidated().process_receipt(r.receipt, errors=DISCARD)
            }
            skipped = {
                e["args"]["account"]: int(e["args"]["reason"])
                for e in self.client.engine.events.LiquidationSkipped().process_receipt(r.receipt, errors=DISCARD)
            }
            for a in keys_a:
                if a in done:
                    self.accounts.landed(a, self.head + self.confirmations)
                    self.m_liq.labels("done").inc()
                elif a in skipped:
                    reason = skipped[a]
                    why = f"skipped on-chain: {SKIP_REASONS.get(reason, reason)}"
                    if reason == 3:  # the fund paid the batch's earlier deficits: deleverage it
                        self._verdict(a, True)
                        self.accounts.defer(a, self.head, why)
                    else:
                        self.accounts.failed(a, self.head, why, retry_now=reason == 1)
                    self.m_liq.labels("skipped").inc()
                    event(
                        log,
                        "liquidation skipped on-chain; not done",
                        logging.WARNING,
                        account=a,
                        reason=SKIP_REASONS.get(reason, reason),
                    )
                else:
                    self.accounts.failed(a, self.head, "not in the mined batch", retry_now=True)
            return
        if kind == "liquidate":
            self.m_liq.labels("failed").inc(len(keys_a))
        elif kind == "adl":
            self.m_adl.labels("done" if r.ok else "failed").inc()
        elif kind == "settle":
            self.m_settle.labels("done" if r.ok else "failed").inc()
        elif kind == "flag" and r.ok:
            self.m_flags.labels("flagged").inc()
        elif kind == "clear_flag" and r.ok:
            self.m_flags.labels("cleared").inc()
        elif kind == "heartbeat" and r.ok:
            self.m_heartbeats.inc()
        elif (
            kind == "commitment"
            and self.commitments is not None
            and self.commitments.next is not None
            and "0x" + self.commitments.next.root.hex() == r.plan.meta.get("root")
        ):
            if r.ok:
                self.commitments.promote(self.commitments.next)
            else:
                self.commitments.next = None  # ask for a fresh one
        again = r.status in ("cancelled", "replaced")  # nothing happened on-chain: try afresh now
        for k in keys_a:
            if r.ok:
                self.accounts.landed(k, self.head + self.confirmations)
            else:
                self.accounts.failed(k, self.head, why, retry_now=again)
        for k in keys_d:
            if r.ok:
                self.duties.forget(k)
            else:
                self.duties.failed(k, self.head, why)

    def _revert_reason(self, r: Result) -> str:
        """Why a mined transaction reverted: the call replayed on the state it met."""
        try:
            block = int(r.receipt["blockNumber"])
            call: dict[str, Any] = {"from": self.me, "to": r.plan.to, "data": r.plan.data, "value": r.plan.value}
            self.client.w3.eth.call(call, block - 1)  # type: ignore[arg-type]  # web3's TxParams wants NewTypes
        except Exception as err:
            return self.decoder.describe(err)
        return "unknown (the call succeeds on the previous block's state)"

    def _refresh(self, p: Pending) -> Plan | None:
        """A fresh plan for a nonce whose attestation is about to expire or whose call would now
        revert (the sender cancels the nonce when this returns None)."""
        kind = p.original.meta.get("kind")
        if kind == "liquidate":
            partial = self.partial
            keep = [a for a in p.accounts() if a in partial]
            extra = [a for a in partial if a not in keep and self.accounts.due(a, self.head)]
            rows = self._fund_fit(sorted((partial[a] for a in keep + extra), key=lambda r: r["ratio"]))
            if not rows:
                return None
            plan, errors = self._plan_liquidation(rows)
            if plan is not None:
                plan.notes["errors"] = errors
        elif kind in ("adl", "flag"):
            account = p.original.meta["account"]
            backstop = bool(p.original.meta.get("backstop")) and account in self.partial
            if account not in self.bankrupt and not backstop:
                return None
            plan = self._plan_adl(account) if kind == "adl" else self._plan_flag(account)
            if plan is not None and backstop:
                plan.meta["backstop"] = True
        elif kind == "clear_flag":
            plan = self._plan_clear_flag(p.original.meta["account"])
        elif kind == "stall_report":
            account = p.original.meta["account"]
            plan = self._plan_stall_report(account) if account in self.partial else None
        else:
            return None  # prices, settlements and heartbeats carry no expiring attestation
        return plan

    def _replaced(self, p: Pending, plan: Plan) -> None:
        """A fresh plan took p's nonce: what it acts on is in flight there, what it dropped is
        rescheduled."""
        tracker = self.accounts if plan.meta.get("kind") in ("liquidate", "adl", "flag") else self.duties
        self._record_errors(plan.notes.get("errors", {}))
        for k in plan.meta.get("keys", plan.meta.get("accounts", [])):
            tracker.ensure(k, self.head)
            tracker.sent(k, p.nonce)

    # ------------------------------------------------------------------ liquidation

    def liquidate_all(self, head: int) -> None:
        """Liquidates the accounts below MM, weakest first, one batch transaction in flight at
        a time: the liquidator's attestation describes its current portfolio, which every mined
        liquidation changes."""
        for _ in range(1000):
            candidates = [r for a, r in self.partial.items() if self.accounts.due(a, self.head)]
            if not candidates:
                return
            busy = self.sender.serial_in_flight()
            if busy is not None:
                self._maybe_merge(busy, candidates)
                return
            if not self._room():
                return
            batch = self._fund_fit(candidates)
            if not batch:
                return
            plan, errors = self._plan_liquidation(batch)
            self._record_errors(errors)
            if plan is None:
                continue  # every account of the batch was rescheduled: try the next ones
            p = self._send(plan, self.accounts, plan.meta["accounts"])
            if p is None or p.nonce in self.sender.pending:
                return  # in flight: the next batch waits for it

    def _fund_fit(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Up to --batch-size of `rows`, in order, the bankrupt ones only while the fund covers
        their deficits one after another, the fees of earlier items included (fund_fits: the
        contract's rule, in integers)."""
        cfg = self.replica.liquidation_config
        if cfg is None:
            return rows[: self.config.batch_size]
        fund, health, decimals = self.fund_wei(), self.fund_health(), self.client.deployment.collateral_decimals
        batch = []
        for r in rows:
            try:
                (fits,), after = fund_fits([(_row_equity(r), _row_mm(r))], fund, cfg, health, decimals)
            except NotLiquidatable:
                continue
            if not fits:
                continue
            fund = after
            batch.append(r)
            if len(batch) >= self.config.batch_size:
                break
        return batch

    def _maybe_merge(self, p: Pending, candidates: list[dict[str, Any]]) -> None:
        """While a liquidation waits in the pool, accounts that fell below MM since join it
        when its fees are raised anyway (a replacement must raise them)."""
        if p.cancelled or p.original.meta.get("kind") != "liquidate":
            return
        inside = p.accounts()
        newcomers = [r for r in candidates if r["account"] not in inside]
        if (
            not newcomers
            or len(p.plan.meta.get("accounts", [])) >= self.config.batch_size
            or p.plan.meta.get("gas_capped")
        ):
            return  # full, or cut to the gas budget: a replacement would carry the same accounts
        if self.head - p.sent_block < self.sender.bump_blocks:
            return
        self.sender.replace(p, f"{len(newcomers)} more accounts below maintenance margin", optional=True)

    def _liquidation_quotes(self, accounts: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """Attestations for as many of `accounts` as can go in one batch: proven leaves of a
        posted commitment (--proofs, batches of at least --proofs-min), else the oracle's signed
        attestations."""
        if self.commitments is not None and len(accounts) >= self.config.proofs_min:
            return self._committed_quotes(accounts)
        return self._signed_quotes(accounts)

    def _signed_quotes(self, accounts: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """The oracle's attestations for as many of `accounts` as it will sign: one request (of
        at most 50), or one per account when it refuses the batch."""
        if len(accounts) > SIGNED_BATCH:
            later = {a: "deferred: signed attestations come 50 accounts at a time" for a in accounts[SIGNED_BATCH:]}
            first = self._signed_quotes(accounts[:SIGNED_BATCH])
            return first[0], first[1], {**first[2], **later}
        body = {"accounts": accounts, "liquidator": self.me, "min_block": self.seen_block}
        try:
            resp = self._attest("liquidation", body)
            return resp["items"], resp["extra"]["fractions"], {}
        except OracleRefused as err:
            if len(accounts) == 1 or err.status not in (404, 409):
                return {}, {}, {a: str(err) for a in accounts}
        items: dict[str, Any] = {}
        fractions: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for a in accounts:  # the liquidator's attestation is of its current state: any one serves all
            try:
                resp = self._attest("liquidation", {**body, "accounts": [a]})
            except OracleRefused as err:
                errors[a] = str(err)
                continue
            items[a] = resp["items"][a]
            items.setdefault("liquidator", resp["items"]["liquidator"])
            fractions[a] = resp["extra"]["fractions"][a]
        return items, fractions, errors

    def _committed_quotes(self, accounts: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """Victims proven against the posted commitment, fractions by the contract's formula, and
        the liquidator's own signed attestation (its state changes with every batch). Until a
        root is posted — and for victims it cannot prove — the batch goes signed, so a missing,
        evicted or lying root costs speed, never liveness."""
        assert self.commitments is not None
        root = self.commitments.usable(self.head_time)
        registry = self.client.commitments
        assert registry is not None  # --proofs needs a deployment with the registry (checked at start)
        if root is not None and not registry.functions.rootPosted(root.root).call():
            self.commitments.current = None  # its post was reorganised away, or the signer set changed
            root = None
        if root is None:
            self._try_ensure_root()
            return self._signed_quotes(accounts)
        cfg = self.replica.liquidation_config
        if cfg is None:
            return self._signed_quotes(accounts)
        try:
            self.commitments.fetch(self.oracle, root, accounts)
        except Exception as err:  # refused, malformed, timed out: whatever the answer, go signed
            event(
                log,
                "no proofs for the posted root; signed attestations meanwhile",
                logging.WARNING,
                error=f"{type(err).__name__}: {err}"[:300],
            )
            self.commitments.current = None
            self._try_ensure_root()
            return self._signed_quotes(accounts)
        items: dict[str, Any] = {}
        fractions: dict[str, Any] = {}
        unproven: list[str] = []
        why: dict[str, str] = {}
        health = self.fund_health()
        for a in accounts:
            proven, acct = root.proofs.get(a), self.replica.account(a)
            if proven is None or acct is None or proven[0].state_hash != acct.state_hash:
                unproven.append(a)  # not in the root, or its state moved since
                why[a] = "no leaf" if proven is None else "no account" if acct is None else "state moved"
                continue
            att, sigs = proven
            equity = acct.cash + att.value
            try:
                f, bonus, fee = terms(equity, att.maintenance_margin, cfg, health)
            except NotLiquidatable:
                unproven.append(a)  # the root predates what put it below MM (the risk list is newer)
                why[a] = "not below MM in the root"
                continue
            items[a] = self.commitments.item(att, sigs)
            fractions[a] = {"fraction": str(f), "bonus": str(bonus), "fee": str(fee), "equity": str(equity)}
        if unproven:
            event(
                log,
                "accounts not provable against the posted root; signed instead",
                root_block=root.block,
                accounts=len(unproven),
                why=sorted(set(why.values())),
            )
            self._try_ensure_root(newer_than=root.block)  # a newer root in the background; this one stays in use
        if not items:
            return self._signed_quotes(unproven)
        try:
            own = self._attest("margin", {"account": self.me, "min_block": self.seen_block})
        except OracleRefused as err:
            return {}, {}, {a: str(err) for a in accounts}
        items["liquidator"] = own["items"]["margin"]
        return items, fractions, {a: "deferred: not provable against the posted commitment yet" for a in unproven}

    def _try_ensure_root(self, newer_than: int = -1) -> None:
        """_ensure_root, whose failures (a malformed or slow oracle answer, an RPC error) cost the
        next root, never the batch in hand."""
        try:
            self._ensure_root(newer_than)
        except Exception as err:
            assert self.commitments is not None
            self.commitments.next = None
            event(log, "no new commitment this block", logging.WARNING, error=f"{type(err).__name__}: {err}"[:300])

    def _ensure_root(self, newer_than: int = -1) -> None:
        """Makes sure a commitment newer than `newer_than` and not near its deadline is posted or
        on its way: asks the oracle for one (once per block) and posts it. The root in use stays
        in use until its successor is posted."""
        assert self.commitments is not None
        c = self.commitments
        current = c.current
        if (
            current is not None
            and current.posted
            and current.block > newer_than
            and current.commitment.deadline > self.head_time + c.margin
        ):
            return
        nxt = c.next
        if nxt is not None and (nxt.block <= newer_than or nxt.commitment.deadline <= self.head_time + c.margin):
            nxt = c.next = None  # outdated before it was posted
        if nxt is None:
            if c.asked_at_block >= self.head:
                return
            c.asked_at_block = self.head
            try:
                # at least the block of the risk list the keeper acts on
                at = max(self.seen_block, self.head, self.risk_block)
                nxt = c.ask(self._attest("commitment", {"min_block": at}))
            except (OracleRefused, ValueError, KeyError) as err:
                event(log, "no commitment from the oracle", logging.WARNING, error=str(err)[:300])
                return
        registry = self.client.commitments
        assert registry is not None
        if registry.functions.rootPosted(nxt.root).call():
            c.promote(nxt)  # posted (by us, or by someone else)
            return
        if any(p.plan.meta.get("kind") == "commitment" for p in self.sender.pending.values()):
            return
        call = registry.functions.postCommitment(nxt.commitment.as_tuple(), nxt.signatures)
        try:
            plan = self.sender.plan(
                call,
                "post commitment",
                meta={"kind": "commitment", "root": "0x" + nxt.root.hex(), "keys": ["commitment"]},
            )
        except SimulationFailed as err:
            # e.g. a snapshot already too old: the next block asks for a fresh commitment
            event(log, "commitment would not post", logging.WARNING, error=err.reason)
            c.next = None
            return
        self.duties.ensure("commitment", self.head)
        self._send(plan, self.duties, ["commitment"])

    def _plan_liquidation(self, rows: list[dict[str, Any]]) -> tuple[Plan | None, dict[str, str]]:
        """A simulated, capital-checked liquidation of as many of `rows` as can go in one batch,
        and why each of the others cannot."""
        accounts = [r["account"] for r in rows]
        started = time.perf_counter()
        items, fractions, errors = self._liquidation_quotes(accounts)
        attested = time.perf_counter()
        chosen: list[str] = []
        if "liquidator" in items:
            katt, ksigs = _signed(items["liquidator"])
            own = self.replica.account(self.me)
            equity = (own.cash if own else 0) + katt.value
            requirement = katt.initial_margin
            for a in accounts:
                if a not in items:
                    continue
                att = from_wire(items[a])
                bonus, need = int(fractions[a]["bonus"]), slice_im(att.initial_margin, int(fractions[a]["fraction"]))
                if equity + bonus >= requirement + need and requirement + need <= self.config.risk_budget * (
                    equity + bonus
                ):
                    chosen.append(a)
                    equity, requirement = equity + bonus, requirement + need
                else:
                    errors[a] = (
                        f"keeper capital: equity {(equity + bonus) / WAD:,.2f} after the bonus does not cover "
                        f"its IM bound {(requirement + need) / WAD:,.2f} with this slice within the risk "
                        f"budget {self.config.risk_budget:.0%} (deposit collateral, or unwind)"
                    )
        plan = None
        while chosen:
            plan, failed = self._build_liquidation(chosen, items, fractions)
            if plan is not None:
                break
            errors.update(failed)
            chosen = [a for a in chosen if a not in failed]
        if plan is not None and any(e.startswith("deferred: the batch is over") for e in errors.values()):
            plan.meta["gas_capped"] = True
        # where a crash's seconds go: the oracle's attestations, then simulating and pricing the batch
        event(
            log,
            "liquidation planned",
            accounts=len(chosen) if plan is not None else 0,
            asked=len(accounts),
            attest_s=round(attested - started, 3),
            simulate_s=round(time.perf_counter() - attested, 3),
        )
        return plan, errors

    def _record_errors(self, errors: dict[str, str]) -> None:
        for a, error in errors.items():
            if "beyond the insurance fund" in error or error.startswith("deferred:"):
                # the fund paid others first (deleverage it), or the next batch takes it: not a failure
                self.accounts.defer(a, self.head, error)
                continue
            nxt = self.accounts.failed(a, self.head, error)
            event(
                log,
                "liquidation not possible now; will retry",
                logging.WARNING,
                account=a,
                error=error[:300],
                retry_at_block=nxt,
            )
        if any("keeper capital" in e for e in errors.values()):
            self.no_room_for_slice = True
            self.warnings.append("the keeper's equity cannot absorb the next liquidation slice")

    def _build_liquidation(
        self, accounts: list[str], items: dict[str, Any], fractions: dict[str, Any]
    ) -> tuple[Plan | None, dict[str, str]]:
        """(plan, {}) when the batch simulates; else (None, the accounts to drop with why)."""
        katt, ksigs = _signed(items["liquidator"])
        requests, deadlines = [], [katt.deadline]
        for a in accounts:
            att, sigs = _signed(items[a])
            requests.append((a, att.as_tuple(), sigs, WAD))
            deadlines.append(att.deadline)
        call = self.client.engine.functions.liquidate(requests, katt.as_tuple(), ksigs)
        try:
            gas = self.sender.estimate(call)  # fails as a simulation does, with the contract's error decoded
            if gas > self.config.batch_gas and len(accounts) > 1:
                # over the gas budget: the tail waits for the next batch (weakest first stay)
                keep = max(1, len(accounts) * self.config.batch_gas // gas)
                return None, {a: "deferred: the batch is over --batch-gas" for a in accounts[keep:]}
        except SimulationFailed as err:
            if len(accounts) == 1:
                return None, {accounts[0]: f"would revert: {err.reason}"}
            if err.error_name == "GasCap":
                # more than the node lets one call use: half waits for the next batch
                return None, {
                    a: "deferred: the batch is over the node's gas cap" for a in accounts[len(accounts) // 2 :]
                }
            if err.error_name == "LiquidatorBelowInitialMargin":
                return None, {accounts[-1]: f"would revert: {err.reason} (keeper capital)"}
            failed = {}
            for a in accounts:  # find the items that sink the batch
                single = self.client.engine.functions.liquidate([requests[accounts.index(a)]], katt.as_tuple(), ksigs)
                try:
                    self.sender.simulate(single)
                except SimulationFailed as one:
                    failed[a] = f"would revert: {one.reason}"
            return None, failed or {a: f"would revert in a batch: {err.reason}" for a in accounts[1:]}
        bonuses = [int(fractions[a]["bonus"]) for a in accounts]
        gain = sum(bonuses) / WAD
        duty = self.config.liquidate_unprofitable or any(b == 0 for b in bonuses)  # bankrupt: the fund pays
        worth = None if duty else int(max(0.0, gain - self.config.min_profit) / self.config.collateral_per_eth * 1e18)
        plan = self.sender.plan(
            call,
            "liquidation",
            gas,
            deadline=min(deadlines),
            worth_wei=worth,
            serial=True,
            meta={
                "kind": "liquidate",
                "accounts": list(accounts),
                "fractions": {a: int(fractions[a]["fraction"]) / WAD for a in accounts},
                "gain": round(gain, 6),
            },
        )
        return plan, {}

    # ------------------------------------------------------------------ bankruptcy beyond the fund

    def _flagged(self, account: str) -> bool:
        return bool(self.client.ch.functions.flagged(account).call())

    def _plan_flag(self, account: str) -> Plan | None:
        att, sigs = _signed(
            self._attest("margin", {"account": account, "min_block": self.seen_block})["items"]["margin"]
        )
        call = self.client.engine.functions.flagBankruptcy(account, att.as_tuple(), sigs)
        self.sender.simulate(call)
        return self.sender.plan(
            call,
            "bankruptcy flag",
            deadline=att.deadline,
            meta={"kind": "flag", "account": account, "accounts": [account]},
        )

    def _plan_adl(self, account: str) -> Plan | None:
        plan = self._attest("adl", {"account": account, "min_block": self.seen_block})
        att, sigs = _signed(plan["items"]["adl"])
        fills = [AdlFill.from_wire(f) for f in plan["extra"]["fills"]]
        call = self.client.engine.functions.deleverage(att.as_tuple(), sigs, [f.as_tuple() for f in fills])
        self.sender.simulate(call)
        return self.sender.plan(
            call,
            "deleveraging",
            deadline=att.deadline,
            serial=True,
            meta={"kind": "adl", "account": account, "accounts": [account], "fills": len(fills)},
        )

    def deleverage(self, row: dict[str, Any]) -> None:
        account = row["account"]
        if not self.accounts.due(account, self.head) or not self._room():
            return
        if self.sender.serial_in_flight() is not None:
            return  # its plan must see the portfolios the transaction in flight changes
        try:
            if account not in self.replica.flagged and not self._flagged(account):
                plan = self._plan_flag(account)
                if plan is None or self._send(plan, self.accounts, [account]) is None:
                    return
                if not self.accounts.due(account, self.head):
                    return  # the flag first (in flight, or mined this block): deleverage next loop
            if self.sender.serial_in_flight() is not None:
                return  # a liquidation or deleveraging went out meanwhile: next loop
            plan = self._plan_adl(account)
            if plan is None:
                return
            self._send(plan, self.accounts, [account])
        except (OracleRefused, SimulationFailed, KeyError, ValueError) as err:
            if isinstance(err, SimulationFailed) and err.error_name in ("FundCanCover", "NotBankrupt"):
                self._verdict(account, False)  # the fund covers it now: liquidate it through the fund
                self.accounts.defer(account, self.head, err.reason)
                return
            nxt = self.accounts.failed(account, self.head, f"{type(err).__name__}: {err}")
            event(
                log,
                "deleveraging not possible now; will retry",
                logging.WARNING,
                account=account,
                error=str(err)[:300],
                retry_at_block=nxt,
            )
            self.m_adl.labels("refused").inc()

    def _plan_clear_flag(self, account: str) -> Plan | None:
        if self.client.ch.functions.openInstruments(account).call():
            att, sigs = _signed(
                self._attest("margin", {"account": account, "min_block": self.seen_block})["items"]["margin"]
            )
        else:
            att, sigs = MarginAttestation.empty(), b""
        call = self.client.engine.functions.clearFlag(account, att.as_tuple(), sigs)
        self.sender.simulate(call)
        return self.sender.plan(
            call,
            "clear bankruptcy flag",
            deadline=att.deadline or None,
            meta={"kind": "clear_flag", "account": account, "keys": [f"clear:{account}"]},
        )

    def clear_flags(self, risk: dict[str, Any]) -> None:
        """Clears the flag of every flagged account that is no longer bankrupt beyond the fund:
        a flag gates everyone's withdrawals, so it must not outlive the bad debt."""
        candidates = (set(self.replica.flagged) | self.flag_watch | set(risk.get("flagged", []))) - set(self.bankrupt)
        if not candidates:
            return
        fund = self.fund_wei()
        listed = {r["account"]: r for r in risk["accounts"]}
        for account in sorted(candidates):
            key = f"clear:{account}"
            if not self.duties.due(key, self.head) or not self._room():
                continue
            if not self._flagged(account):
                self.flag_watch.discard(account)
                self.duties.forget(key)
                continue
            self.flag_watch.add(account)
            has_positions = bool(self.client.ch.functions.openInstruments(account).call())
            if not has_positions:
                equity = int(self.client.ch.functions.cashOf(account).call())  # no positions: its cash
            elif account in listed:
                equity = _row_equity(listed[account])
            else:
                try:
                    equity = _row_equity(self.oracle.get(f"/v1/accounts/{account}"))
                except OracleRefused as err:
                    self.duties.failed(key, self.head, str(err))
                    continue
            if not flag_clears(equity, has_positions, fund):
                # in deficit with positions: liquidated whole through the fund (which clears the
                # flag) or deleveraged; without positions: waits for the fund to cover it
                continue
            self.duties.ensure(key, self.head)
            try:
                plan = self._plan_clear_flag(account)
            except (OracleRefused, SimulationFailed) as err:
                nxt = self.duties.failed(key, self.head, str(err))
                event(
                    log,
                    "bankruptcy flag cannot be cleared yet",
                    logging.WARNING,
                    account=account,
                    error=str(err)[:300],
                    retry_at_block=nxt,
                )
                continue
            if plan is not None:
                self._send(plan, self.duties, [key])

    # ------------------------------------------------------------------ backstop

    def _plan_stall_report(self, account: str) -> Plan | None:
        att, sigs = _signed(
            self._attest("margin", {"account": account, "min_block": self.seen_block})["items"]["margin"]
        )
        call = self.client.engine.functions.reportStall(account, att.as_tuple(), sigs)
        self.sender.simulate(call)
        return self.sender.plan(
            call,
            "stall report",
            deadline=att.deadline,
            meta={"kind": "stall_report", "account": account, "keys": [f"stall:{account}"]},
        )

    def backstop(self) -> None:
        """The accounts below MM the keeper could not liquidate `backstop_after` times in a row
        (no capital, no one else either) are reported stalled on-chain; once BACKSTOP_DELAY has
        passed with their state untouched, the report is confirmed (still below MM now) and they
        are closed against the ADL queue at the marks within BACKSTOP_DELAY of the confirmation
        (the oracle plans it; no haircut, the fund paying a deficit it can cover)."""
        if self.config.backstop_after <= 0:
            return
        for account, row in list(self.partial.items()):
            item = self.accounts.items.get(account)
            if item is None or item.in_flight is not None or item.attempts < self.config.backstop_after:
                continue
            key = f"stall:{account}"
            if not self.duties.due(key, self.head) or not self._room():
                continue
            try:
                state_hash, since, confirmed_at, _ = self.client.engine.functions.stalls(account).call()
                if self._backstop_delay is None:
                    self._backstop_delay = int(self.client.engine.functions.BACKSTOP_DELAY().call())
                due = int(since) + self._backstop_delay
                fresh = since != 0 and "0x" + bytes(state_hash).hex() == row["state_hash"]
                if fresh and self.head_time < due:
                    item.info["backstop_due_at"] = due
                    # a report every half delay keeps the episode going (a gap over 2 × the delay
                    # starts a new one); each needs a newer snapshot than the last
                    if self.head_time < int(confirmed_at) + self._backstop_delay // 2:
                        continue
                # a first report, or its confirmation once due (the contract holds the account to
                # the confirmed MM, within BACKSTOP_DELAY of the confirmation)
                if (
                    not fresh
                    or int(confirmed_at) < due
                    or self.head_time > int(confirmed_at) + self._backstop_delay // 2
                ):
                    plan = self._plan_stall_report(account)
                    self.duties.ensure(key, self.head)
                    if plan is not None:
                        self._send(plan, self.duties, [key])
                    continue
                if self.sender.serial_in_flight() is not None:
                    continue
                plan = self._plan_adl(account)
                if plan is None:
                    continue
                plan.meta["backstop"] = True
                self._send(plan, self.accounts, [account])
            except (OracleRefused, SimulationFailed, KeyError, ValueError) as err:
                nxt = self.duties.failed(key, self.head, f"{type(err).__name__}: {err}")
                event(
                    log,
                    "backstop not possible now; will retry",
                    logging.WARNING,
                    account=account,
                    error=str(err)[:300],
                    retry_at_block=nxt,
                )

    # ------------------------------------------------------------------ snapshot heartbeat

    def _tolerance(self) -> int:
        """RiskConfig.snapshotTolerance: the replica's, or the contract's before the replica has
        replayed a configuration."""
        replayed = self.replica.snapshot_tolerance
        if replayed is not None:
            return replayed
        if self._risk_config is None or self.head - self._risk_config[0] > 50:
            self._risk_config = (self.head, read_risk_config(self.client.ch))
        return self._risk_config[1].snapshot_tolerance

    def heartbeat(self) -> None:
        """Raises the on-chain snapshot floor when it trails the oracle's newest snapshot by more
        than half the tolerance, so attestations of older snapshots stop being usable."""
        key = "heartbeat"
        if self.head < self._heartbeat_off_until or not self.duties.due(key, self.head):
            return
        if self.sender.pending:
            return  # a newer floor could make an attestation in flight too old: post when idle
        half = self._tolerance() / 2
        latest = int(self.client.ch.functions.latestSnapshotTime().call())
        if self.head_time - latest <= half:
            return  # the oracle's snapshot cannot be newer than the chain's clock
        try:
            resp = self._attest("heartbeat", {"min_block": self.seen_block})
        except OracleRefused as err:
            if err.status in (404, 405):
                self._heartbeat_off_until = self.head + 100
                event(
                    log, "the oracle has no heartbeat endpoint; not posting snapshots", logging.WARNING, error=str(err)
                )
            else:
                self.duties.failed(key, self.head, str(err))
            return
        item = resp["items"].get("heartbeat") or next(iter(resp["items"].values()))
        heartbeat, sigs = _signed(item)
        if heartbeat.snapshot_time - latest <= half:
            self.duties.failed(key, self.head, "the oracle's snapshot is not newer")
            return
        call = self.client.ch.functions.postSnapshot(heartbeat.as_tuple(), sigs)
        try:
            self.sender.simulate(call)
        except SimulationFailed as err:
            self.duties.failed(key, self.head, err.reason)
            event(log, "snapshot heartbeat would revert", logging.WARNING, error=err.reason)
            return
        self.duties.ensure(key, self.head)
        self._send(
            self.sender.plan(
                call, "snapshot heartbeat", meta={"kind": "heartbeat", "snapshot_time": heartbeat.snapshot_time}
            ),
            self.duties,
            [key],
        )

    # ------------------------------------------------------------------ unwinding

    def _over_budget(self) -> bool:
        """Whether the keeper's own requirement is above its risk budget (only asked when it
        holds positions and has a market maker to unwind to)."""
        own = self.replica.account(self.me)
        if self.market_maker is None or own is None or not own.positions:
            return False
        try:
            report = self.oracle.get(f"/v1/accounts/{self.me}")
        except (OracleRefused, OSError):
            return False
        return float(report["initial_margin"]) > self.config.risk_budget * float(report["equity"])

    def _waiting_for_room(self) -> bool:
        """Whether every account waiting for a liquidation (none, too) last failed for lack of the
        keeper's capital: unwinding is what lets it go on."""
        items = [self.accounts.items.get(a) for a in self.partial]
        return all(t is not None and t.last_error.startswith("keeper capital") for t in items)

    def unwind(self) -> None:
        """Trades the keeper's largest live position to the market maker (see offchain/keeper/unwind.py)."""
        own = self.replica.account(self.me)
        if self.market_maker is None or own is None or not own.positions or not self._room():
            return
        if self.sender.serial_in_flight() is not None or not self.duties.due("unwind", self.head):
            return
        self.duties.ensure("unwind", self.head)
        try:
            marks = {int(i): float(m) for i, m in self.oracle.get("/v1/marks")["marks"].items()}
            live = {
                i: z
                for i, z in own.positions.items()
                if (inst := self.replica.instruments.get(i)) is not None
                and not (inst.is_option and inst.expiry <= self.head_time)
            }
            picked = largest_position(live, marks)
            if picked is None:
                self.duties.forget("unwind")
                return  # expired options settle instead
            instrument_id, size = picked
            quote = self.market_maker.quote(instrument_id, size, self.me)
            check_quote(quote, instrument_id, size, marks[instrument_id], self.config.unwind_max_spread_bps)
            resp = self._attest(
                "trade",
                {
                    "order": quote.wire_order(),
                    "fill_amount": str(abs(size)),
                    "taker": self.me,
                    "min_block": self.seen_block,
                },
            )
            ma, msigs = _signed(resp["items"]["maker"])
            ta, tsigs = _signed(resp["items"]["taker"])
            call = self.client.ch.functions.fillOrder(
                quote.order.as_tuple(), quote.signature, abs(size), ma.as_tuple(), msigs, ta.as_tuple(), tsigs
            )
            self.sender.simulate(call)
            plan = self.sender.plan(
                call,
                "unwind",
                deadline=min(quote.order.deadline, ma.deadline, ta.deadline),
                serial=True,
                meta={
                    "kind": "unwind",
                    "instrument": instrument_id,
                    "size": size / WAD,
                    "price": quote.order.price / WAD,
                    "mark": marks[instrument_id],
                },
            )
        except (QuoteRefused, OracleRefused, SimulationFailed, OSError, KeyError, ValueError) as err:
            nxt = self.duties.failed("unwind", self.head, f"{type(err).__name__}: {err}")
            event(log, "unwind not possible now; will retry", logging.WARNING, error=str(err)[:300], retry_at_block=nxt)
            return
        self._send(plan, self.duties, ["unwind"])

    # ------------------------------------------------------------------ settlement

    def settle_expired(self) -> None:
        now = self.head_time
        expired = {i: inst for i, inst in self.replica.instruments.items() if inst.is_option and inst.expiry <= now}
        if not expired:
            return
        holders: dict[str, list[int]] = {}
        for account, acct in self.replica.accounts.items():
            ids = [i for i in acct.positions if i in expired]
            if ids:
                holders[account] = sorted(ids)
        needed = {(expired[i].underlying, expired[i].expiry) for ids in holders.values() for i in ids}
        posted_any = False
        for underlying, expiry in sorted(needed):
            key = f"price:{underlying}:{expiry}"
            if (
                (underlying, expiry) in self.replica.settlement_prices
                or not self.duties.due(key, self.head)
                or not self._room()
            ):
                continue
            self.duties.ensure(key, self.head)
            try:
                resp = self._attest("settlement", {"underlying": underlying, "expiry": expiry})
                price, sigs = _signed(resp["items"]["settlement"])
                call = self.client.ch.functions.postSettlementPrice(price.as_tuple(), sigs)
                self.sender.simulate(call)
            except (OracleRefused, SimulationFailed) as err:
                nxt = self.duties.failed(key, self.head, str(err))
                event(
                    log,
                    "settlement price not posted; will retry",
                    logging.WARNING,
                    underlying=underlying,
                    expiry=expiry,
                    error=str(err)[:300],
                    retry_at_block=nxt,
                )
                continue
            p = self._send(
                self.sender.plan(
                    call, "settlement price", meta={"kind": "price", "underlying": underlying, "expiry": expiry}
                ),
                self.duties,
                [key],
            )
            posted_any = posted_any or (p is not None and p.nonce not in self.sender.pending)
        if posted_any:
            self.sync()
        prices = self.replica.settlement_prices

        # payers (shorts of an in-the-money option) first: the longs of an instrument are paid
        # only once all its shorts have settled; a payer settles all its expired shorts at once,
        # so it waits until every one of them has a posted price
        def pays(account: str) -> bool:
            acct = self.replica.accounts[account]
            for i in holders[account]:
                inst = expired[i]
                price = prices.get((inst.underlying, inst.expiry))
                if price is not None and acct.positions.get(i, 0) < 0 and _in_the_money(inst, price):
                    return True
            return False

        # payers holding expired longs last: their longs pay once the other payers are in, and a
        # payer settled whole (shorts and longs in one call) shares a deficit with its winners
        payers = sorted(
            (a for a in holders if pays(a)),
            key=lambda a: any(self.replica.accounts[a].positions.get(i, 0) > 0 for i in holders[a]),
        )
        for account in payers + [a for a in holders if a not in payers]:
            key = f"settle:{account}"
            acct = self.replica.accounts[account]
            ready = [i for i in holders[account] if (expired[i].underlying, expired[i].expiry) in prices]
            if not ready or not self.duties.due(key, self.head) or not self._room():
                continue
            if account == self.me and self.sender.serial_in_flight() is not None:
                continue  # settling changes the keeper's portfolio: after its liquidation lands
            self.duties.ensure(key, self.head)
            ids = ready
            call = self.client.engine.functions.settle(account, ids)
            try:
                self.sender.simulate(call)
            except SimulationFailed as err:
                shorts = [i for i in ready if acct.positions.get(i, 0) < 0]
                if err.error_name == "PayersNotSettled":
                    if self._payers_to_wait_for(account, holders):
                        continue  # they settle first: then this account settles whole, in one call
                    # pay now what it owes, with every long whose payout is known (the contract
                    # wants those in the same call); collect the rest once its payers are in
                    ids = [
                        i for i in ready if acct.positions.get(i, 0) < 0 or not self._long_waits(i, expired[i], prices)
                    ]
                    if shorts and len(ids) < len(ready):
                        call = self.client.engine.functions.settle(account, ids)
                        try:
                            self.sender.simulate(call)
                        except SimulationFailed as err2:  # e.g. a short whose price is not posted yet
                            self.duties.failed(key, self.head, err2.reason)
                            continue
                    else:
                        self.duties.failed(key, self.head, f"waiting for the payers: {err.reason}")
                        continue
                else:
                    nxt = self.duties.failed(key, self.head, err.reason)
                    event(
                        log,
                        "settlement would revert; will retry",
                        logging.WARNING,
                        account=account,
                        error=err.reason,
                        retry_at_block=nxt,
                    )
                    self.m_settle.labels("failed").inc()
                    continue
            self._send(
                self.sender.plan(
                    call,
                    "settlement",
                    serial=account == self.me,
                    meta={"kind": "settle", "account": account, "instruments": ids},
                ),
                self.duties,
                [key],
            )

    def _long_waits(self, instrument_id: int, inst: Any, prices: Mapping[tuple[str, int], float]) -> bool:
        """Whether a long of this expired option waits for its payers: in the money, and some
        account still short of it."""
        price = prices.get((inst.underlying, inst.expiry))
        if price is None or not _in_the_money(inst, price):
            return price is None
        return any(a.positions.get(instrument_id, 0) < 0 for a in self.replica.accounts.values())

    def _payers_to_wait_for(self, account: str, holders: dict[str, list[int]]) -> bool:
        """Whether a short still open on one of `account`'s expired longs belongs to an account
        with no expired long of its own (it settles without waiting for anyone). Otherwise the
        payers wait on each other, and `account` pays its shorts alone to break the circle. Read
        from the replica at the loop's block, so the order follows the chain, not timing."""
        accounts = self.replica.accounts
        longs = [i for i in holders[account] if accounts[account].positions.get(i, 0) > 0]
        for other, ids in holders.items():
            if other == account or not any(accounts[other].positions.get(i, 0) < 0 for i in longs):
                continue
            if not any(accounts[other].positions.get(i, 0) > 0 for i in ids):
                return True
        return False

    # ------------------------------------------------------------------ capital

    def update_capital(self) -> None:
        """The keeper's margin headroom against the next slice it would take: a liquidation
        requires equity before + bonuses ≥ IM before + Σ fraction × victim IM."""
        queued = [
            r
            for a, r in self.partial.items()
            if self.accounts.items.get(a) is None or self.accounts.items[a].in_flight is None
        ]
        if not queued and self.loops % 20:
            return
        try:
            report = self.oracle.get(f"/v1/accounts/{self.me}")
            equity, im = float(report["equity"]), float(report["initial_margin"])
        except OracleRefused as err:
            if err.status != 404:
                return
            equity, im = 0.0, 0.0
        headroom = equity - im
        self.m_headroom.set(headroom)
        capital: dict[str, Any] = {
            "equity": round(equity, 2),
            "initial_margin": round(im, 2),
            "headroom": round(headroom, 2),
        }
        cfg = self.replica.liquidation_config
        if queued and cfg is not None:
            r = min(queued, key=lambda r: r["ratio"])
            try:
                f, bonus, _ = terms(_wad(r["equity"]), _wad(r["mm"]), cfg, self.replica.fund_health())
                need = (slice_im(_wad(r["im"]), f) - bonus) / WAD
                capital.update(next_account=r["account"], next_slice_needs=round(need, 2), ok=headroom >= need)
                if headroom < need:
                    self.warnings.append(
                        f"the keeper's equity cannot absorb the next slice: headroom {headroom:,.2f} "
                        f"< {need:,.2f} needed for {r['account']}"
                    )
            except NotLiquidatable:
                pass
        self.capital = capital

    # ------------------------------------------------------------------ ops

    def health(self) -> dict[str, Any]:
        for _ in range(5):  # the loop thread may change what is read here: read again
            try:
                return self._health()
            except RuntimeError:
                time.sleep(0.01)
        return self._health()

    def _health(self) -> dict[str, Any]:
        age = time.time() - self.last_loop if self.last_loop else None
        stalled = self.accounts.stalled(self.head, self.config.stall_blocks, self.progress_block)
        pending = [
            {
                "nonce": p.nonce,
                "action": p.plan.action,
                "accounts": sorted(p.accounts()),
                "blocks": self.head - p.first_block,
                "replacements": len(p.variants) - 1,
                "max_fee_gwei": round(p.current.fees.max_fee / 1e9, 3),
                "tip_gwei": round(p.current.fees.tip / 1e9, 3),
                "deadline": p.plan.deadline,
            }
            for p in self.sender.in_flight()
        ]
        warnings = list(self.warnings)
        if age is None:
            status = "starting"
        elif age >= 30:
            status = "stalled"
            warnings.append(f"no loop completed for {age:.0f}s")
        elif stalled and not self.config.dry_run:
            status = "stalled"
            warnings.append(
                f"{len(stalled)} accounts below maintenance margin unhandled for " f"{self.config.stall_blocks}+ blocks"
            )
        else:
            status = "degraded" if warnings else "ok"
        return {
            "status": status,
            "address": self.me,
            "block": self.replica.block,
            "seconds_since_loop": age,
            "dry_run": self.config.dry_run,
            "nonce": self.sender.next_nonce,
            "chain_nonce": self.sender.chain_nonce,
            "pending": pending,
            "at_risk": len(self.accounts.items),
            "unhandled": [t.view(self.head) for t in stalled],
            "retrying": [t.view(self.head) for t in list(self.accounts.items.values()) if t.attempts][:50],
            "capital": self.capital,
            "warnings": warnings,
            "journal_entries": len(self.journal.entries),
            "transactions": dict(self.sender.counts),
            "idle_at_block": self.idle_at_block,
            "replica": self._replica_summary[1],
            "confirmations": self.confirmations,
        }

    def health_response(self) -> dict[str, Any]:
        h = self.health()
        if h["status"] == "stalled":
            err = HttpError(503, "stalled")
            err.details = h  # the whole health report, "status" included
            raise err
        return h

    def _load_extra(self) -> dict[str, Any]:
        try:
            return json.loads(self.extra_path.read_text())
        except (OSError, ValueError):
            return {}

    def _save_extra(self) -> None:
        self.extra_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.extra_path.parent, prefix=self.extra_path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"flag_watch": sorted(self.flag_watch)}, f)
        os.replace(tmp, self.extra_path)
        self._saved_flags = set(self.flag_watch)


def _in_the_money(inst: Any, price: float) -> bool:
    return price > inst.strike if inst.kind.name == "CALL" else price < inst.strike


def run_keeper(args: argparse.Namespace) -> int:
    logger = setup("keeper", args.log_level)
    deployment = Deployment.load(args.deployment)
    client = SystemClient(args.rpc, deployment)
    signer = load_signer(args.key_env, args.keystore, args.password_env)
    account = Account.from_key(signer._account.key)
    config = KeeperConfig(
        oracle_url=args.oracle,
        batch_size=args.batch_size,
        batch_gas=args.batch_gas,
        margin_call_ratio=args.margin_call_ratio,
        poll_seconds=args.poll,
        dry_run=args.dry_run,
        liquidate_unprofitable=args.liquidate_unprofitable,
        min_profit=args.min_profit,
        collateral_per_eth=args.collateral_per_eth,
        webhooks=[w for w in (args.webhook or []) if w],
        stall_blocks=args.stall_blocks,
        proofs=args.proofs,
        proofs_min=args.proofs_min,
        retry_max_blocks=args.retry_max_blocks,
        max_fee_gwei=args.max_fee_gwei,
        tip_percentile=args.tip_percentile,
        bump_blocks=args.bump_blocks,
        max_pending=args.max_pending,
        backstop_after=args.backstop_after,
        market_maker=args.market_maker,
        unwind_max_spread_bps=args.unwind_max_spread_bps,
        risk_budget=args.risk_budget,
        confirmations=args.confirmations,
    )
    if not 0 < config.risk_budget <= 1:
        raise UserError(f"--risk-budget: {config.risk_budget} is not in (0, 1]")
    keeper = Keeper(client, OracleClient(args.oracle), account, config, Path(args.state_dir))
    limits = HttpLimits.from_args(args)
    app = create_app("DPRE keeper", keeper.registry, limits)
    app.get("/health", summary="Loop progress, accounts below MM unhandled; 503 when stalled")(
        lambda: ok(keeper.health_response())
    )
    server = HttpService(app, args.host, args.port, limits)
    server.serve_in_thread()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: keeper.stop.set())
    event(
        logger,
        "keeper up",
        address=account.address,
        port=server.port,
        dry_run=config.dry_run,
        resumed_from_block=keeper.state.block,
        in_flight=sorted(keeper.sender.pending),
    )
    keeper.run()
    server.shutdown()
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keeper = sub.add_parser("keeper", help="the keeper / liquidator daemon").add_subparsers(
        dest="keeper_command", metavar="ACTION"
    )
    k = keeper.add_parser("run", help="watch, warn, liquidate, deleverage and settle")
    k.add_argument("--rpc", default="http://127.0.0.1:8545")
    k.add_argument("--deployment", required=True)
    k.add_argument("--oracle", required=True, help="oracle gateway (or single signer) base URL")
    k.add_argument("--key-env", help="environment variable holding the keeper's hex private key")
    k.add_argument("--keystore")
    k.add_argument("--password-env")
    k.add_argument("--state-dir", default="runs/keeper", help="cursor, journal and margin-call outbox")
    k.add_argument("--batch-size", type=int, default=50, help="accounts per liquidation transaction (at most 50)")
    k.add_argument("--batch-gas", type=int, default=12_000_000, help="gas per liquidation transaction, at most")
    k.add_argument(
        "--proofs",
        action="store_true",
        help="liquidate with Merkle proofs against a posted whole-book commitment instead of one "
        "threshold-signed attestation per account (README: snapshot commitments)",
    )
    k.add_argument(
        "--proofs-min",
        type=int,
        default=20,
        help="with --proofs, batches of fewer accounts still use signed attestations (posting a root costs a block)",
    )
    k.add_argument("--margin-call-ratio", type=float, default=1.2, help="warn below equity / MM of this")
    k.add_argument("--poll", type=float, default=0.5, help="seconds between loops")
    k.add_argument("--dry-run", action="store_true", help="simulate and log, send nothing")
    k.add_argument("--liquidate-unprofitable", action="store_true", help="liquidate even when gas exceeds the bonus")
    k.add_argument("--min-profit", type=float, default=0.0, help="collateral units a liquidation must earn after gas")
    k.add_argument("--collateral-per-eth", type=float, default=3000.0, help="to price gas in collateral")
    k.add_argument("--max-fee-gwei", type=float, default=500.0, help="ceiling of maxFeePerGas for any transaction")
    k.add_argument("--tip-percentile", type=float, default=60.0, help="tip: this percentile of recent blocks' tips")
    k.add_argument("--bump-blocks", type=int, default=2, help="blocks unmined before the fees are raised")
    k.add_argument("--max-pending", type=int, default=16, help="transactions in flight at once")
    k.add_argument(
        "--stall-blocks",
        type=int,
        default=20,
        help="/health answers 503 when an account stays below MM unhandled this many blocks",
    )
    k.add_argument("--retry-max-blocks", type=int, default=8, help="longest backoff between attempts on one account")
    k.add_argument("--market-maker", help="URL of a market maker (POST /v1/quote) to unwind liquidated positions to")
    k.add_argument(
        "--unwind-max-spread-bps",
        type=int,
        default=100,
        help="worst unwind price accepted, in basis points from the oracle's mark",
    )
    k.add_argument(
        "--confirmations",
        type=int,
        default=None,
        help="act on the state this many blocks below the head (default: the deployment's)",
    )
    k.add_argument(
        "--risk-budget",
        type=float,
        default=1.0,
        help="share of its equity the keeper's margin requirement may use after a liquidation (0-1]",
    )
    k.add_argument(
        "--backstop-after",
        type=int,
        default=3,
        help="failed attempts before an account is reported stalled for the ADL backstop (0: never)",
    )
    k.add_argument("--webhook", action="append", help="URL to POST margin-call warnings to (repeatable)")
    k.add_argument("--host", default="127.0.0.1")
    k.add_argument("--port", type=int, default=9200)
    HttpLimits.add_arguments(k)
    k.add_argument("--log-level", default="INFO")
    k.set_defaults(handler=run_keeper)

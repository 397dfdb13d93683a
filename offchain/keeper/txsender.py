"""Sending transactions from one key without ever waiting on one of them.

`submit` signs a plan at the next local nonce, journals it (before it leaves the process) and
broadcasts it; it returns at once. `poll`, called every loop, follows every transaction in
flight, per nonce:

* mined → a `Result` (the receipt tells which variant of the nonce landed);
* not mined and priced below the market (next base fee from eth_feeHistory, recent tips) for
  `bump_blocks` blocks → replaced with both fees raised by ≥ 12.5% and to the fresh estimate,
  never beyond what the action is worth;
* dropped from the node's pool (nodes evict transactions the base fee overtook) → sent again;
* its attestation about to expire, or the next transaction to be mined now failing in
  simulation → replaced by a fresh plan from the `refresh` hook, or cancelled (a 0-value
  transfer to itself at the same nonce): a transaction is never left to revert.

Every send error is classified (`offchain.keeper.errors`) and the local nonce is resynchronised
from the chain's pending count whenever it may be wrong. The journal holds only what is mined or
in flight, keyed by nonce, so a restarted keeper adopts its transactions still in the pool.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError

from offchain.keeper.errors import (
    ClassifiedError,
    ErrorDecoder,
    KeeperError,
    SendError,
    classify,
    error_message,
    revert_data,
)
from offchain.keeper.fees import FeePolicy, FeeQuote, Fees, cap_for_value, fetch_quote, price, replacement, underpriced
from offchain.keeper.journal import Journal
from offchain.ops.logs import event

log = logging.getLogger("keeper.tx")

CANCEL = "cancel"


class SimulationFailed(KeeperError):
    """eth_call says the transaction would revert; nothing was sent."""

    def __init__(self, reason: str, error_name: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.error_name = reason, error_name


class Unaffordable(KeeperError):
    """The next block's base fee and tip cost more per gas than the action is worth."""


class SendFailed(KeeperError):
    """The node refused the transaction for a reason resending will not fix."""

    def __init__(self, error: ClassifiedError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Plan:
    """A transaction the keeper wants mined."""

    action: str  # what it does, for logs: "liquidation", "settlement", …
    to: str
    data: str  # 0x-hex calldata
    gas: int
    value: int = 0
    deadline: int | None = None  # unix time after which an attestation inside it is refused
    worth_wei: int | None = None  # the most it may cost in fees (None: only the policy ceiling)
    meta: dict[str, Any] = field(default_factory=dict)  # kind, accounts, … (journaled)
    # one at a time: it changes portfolios that the attestations of the next such transaction
    # describe (the keeper's own, for a liquidation; the queue's, for a deleveraging)
    serial: bool = False
    notes: dict[str, Any] = field(default_factory=dict, compare=False)  # the planner's, not journaled

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "to": self.to,
            "data": self.data,
            "gas": self.gas,
            "value": self.value,
            "deadline": self.deadline,
            "worth_wei": None if self.worth_wei is None else str(self.worth_wei),
            "meta": self.meta,
            "serial": self.serial,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Plan":
        worth = d.get("worth_wei")
        return cls(
            d["action"],
            d["to"],
            d["data"],
            int(d["gas"]),
            int(d.get("value", 0)),
            d.get("deadline"),
            None if worth is None else int(worth),
            dict(d.get("meta") or {}),
            bool(d.get("serial")),
        )


@dataclass
class Variant:
    """One signed transaction at a nonce (the first send or a replacement)."""

    hash: str
    plan: Plan
    fees: Fees

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "plan": self.plan.to_json(),
            "max_fee": str(self.fees.max_fee),
            "tip": str(self.fees.tip),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Variant":
        return cls(d["hash"], Plan.from_json(d["plan"]), Fees(int(d["max_fee"]), int(d["tip"])))


@dataclass
class Pending:
    nonce: int
    variants: list[Variant]
    first_block: int
    sent_block: int  # block of the last (re)send
    checked_block: int = -1
    broadcast_failures: int = 0
    capped_logged: bool = False
    missing: tuple[int, int] | None = None  # (first block, polls) its nonce looked used with no receipt of ours

    @property
    def current(self) -> Variant:
        return self.variants[-1]

    @property
    def plan(self) -> Plan:
        return self.current.plan

    @property
    def cancelled(self) -> bool:
        return self.plan.action == CANCEL

    @property
    def original(self) -> Plan:
        """The last plan that was not a cancellation (what this nonce was for)."""
        for v in reversed(self.variants):
            if v.plan.action != CANCEL:
                return v.plan
        return self.variants[0].plan

    def accounts(self) -> set[str]:
        out: set[str] = set()
        for v in self.variants:
            out.update(v.plan.meta.get("accounts", []))
        return out


@dataclass
class Result:
    """What became of a nonce. status: mined | reverted | cancelled (our 0-value transfer took
    the nonce) | replaced (a transaction we do not know took it)."""

    nonce: int
    status: str
    plan: Plan  # the variant that was mined, or the original plan when none of ours was
    receipt: Any = None
    tx: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "mined"


class TxSender:
    def __init__(
        self,
        w3: Any,
        account: LocalAccount,
        journal: Journal | None = None,
        decoder: ErrorDecoder | None = None,
        policy: FeePolicy | None = None,
        refresh: Callable[[Pending], Plan | None] | None = None,
        on_replaced: Callable[[Pending, Plan], None] | None = None,
        bump_blocks: int = 2,
        deadline_margin: float = 1.0,
        max_broadcast_failures: int = 5,
    ) -> None:
        self.w3, self.account = w3, account
        self.address = account.address
        self.journal = journal
        self.decoder = decoder or ErrorDecoder()
        self.policy = policy or FeePolicy()
        self.refresh = refresh
        self.on_replaced = on_replaced
        self.bump_blocks = bump_blocks
        self.deadline_margin = deadline_margin  # in block intervals
        self.max_broadcast_failures = max_broadcast_failures
        self.pending: dict[int, Pending] = {}
        self.next_nonce: int | None = None
        self.chain_nonce = 0  # the account's mined transaction count, as last read
        self.head = -1
        self.head_time = 0
        self.block_interval = 12.0
        self._times: list[tuple[int, int]] = []
        self._quote: tuple[int, FeeQuote] | None = None
        self._chain_id: int | None = None
        self.counts: dict[str, int] = {}
        self._gap: tuple[int, int, float] | None = None  # (mined count, head, time) when a gap was first seen
        if journal is not None:
            self._adopt(journal)

    # ------------------------------------------------------------------ basics

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def sync_nonce(self) -> int:
        """Resynchronises the local nonce from the chain: the pending count (our transactions
        in the pool included), never below a nonce we still track."""
        latest = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        pending = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        self.chain_nonce = latest
        tracked = max(self.pending) + 1 if self.pending else 0
        self.next_nonce = max(latest, pending, tracked)
        return self.next_nonce

    def simulate(self, call: Any) -> None:
        """eth_call of a contract call from the keeper; raises SimulationFailed with the
        contract's error decoded by name."""
        try:
            call.call({"from": self.address})
        except (ContractLogicError, ContractCustomError) as err:
            reason = self.decoder.describe(err)
            raise SimulationFailed(reason, self.decoder.name(revert_data(err)) or reason.split("(", 1)[0]) from None

    def simulate_plan(self, plan: Plan) -> None:
        try:
            self.w3.eth.call({"from": self.address, "to": plan.to, "data": plan.data, "value": plan.value})
        except (ContractLogicError, ContractCustomError) as err:
            reason = self.decoder.describe(err)
            raise SimulationFailed(reason, self.decoder.name(revert_data(err)) or reason.split("(", 1)[0]) from None

    def estimate(self, call: Any) -> int:
        try:
            return int(call.estimate_gas({"from": self.address}) * 1.25) + 20_000
        except (ContractLogicError, ContractCustomError) as err:
            reason = self.decoder.describe(err)
            raise SimulationFailed(reason, self.decoder.name(revert_data(err)) or reason.split("(", 1)[0]) from None
        except (Web3RPCError, ValueError) as err:  # the node's own refusal, e.g. more gas than one call may use
            message = error_message(err)
            if "gas" in message.lower():
                raise SimulationFailed(message, "GasCap") from None
            raise

    def plan(self, call: Any, action: str, gas: int | None = None, **kw: Any) -> Plan:
        """A Plan from a web3 contract call (estimates gas when not given)."""
        gas = gas or self.estimate(call)
        tx = call.build_transaction(
            {
                "from": self.address,
                "gas": gas,
                "nonce": 0,
                "maxFeePerGas": 1,
                "maxPriorityFeePerGas": 1,
                "chainId": self.chain_id,
            }
        )
        data = tx.get("data", "0x")
        if isinstance(data, bytes):
            data = "0x" + data.hex()
        return Plan(action, tx["to"], data, gas, int(tx.get("value", 0)), **kw)

    def quote(self, fresh: bool = False) -> FeeQuote:
        """The fee quote for the next block (read once per block unless `fresh`)."""
        if fresh or self._quote is None or self._quote[0] != self.head or self.head < 0:
            self._quote = (self.head, fetch_quote(self.w3, self.policy))
        return self._quote[1]

    def fees_for(self, plan: Plan) -> Fees | None:
        return price(self.quote(), self.policy, cap_for_value(plan.worth_wei, plan.gas))

    def in_flight(self) -> list[Pending]:
        return [p for _, p in sorted(list(self.pending.items()), key=lambda kv: kv[0])]

    def serial_in_flight(self) -> Pending | None:
        """The serial transaction in flight, if any: the attestations of the next one must be
        made once it is mined (a liquidation's describe the keeper's current portfolio; a
        deleveraging's queue describes its counterparties' portfolios)."""
        for p in self.in_flight():
            if any(v.plan.serial for v in p.variants):
                return p
        return None

    # ------------------------------------------------------------------ sending

    def _sign(self, nonce: int, plan: Plan, fees: Fees) -> tuple[str, bytes]:
        tx: dict[str, Any] = {
            "from": self.address,
            "to": plan.to,
            "data": plan.data,
            "value": plan.value,
            "gas": plan.gas,
            "nonce": nonce,
            "chainId": self.chain_id,
            "type": 2,
            **fees.tx_fields(),
        }
        signed = self.account.sign_transaction(tx)
        return "0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction)

    def _journal(self, p: Pending) -> None:
        if self.journal is not None:
            self.journal.record(
                Journal.nonce_key(p.nonce),
                status="in_flight",
                nonce=p.nonce,
                action=p.original.action,
                meta=p.original.meta,
                first_block=p.first_block,
                variants=[v.to_json() for v in p.variants],
            )

    def _unjournal(self, nonce: int) -> None:
        if self.journal is not None:
            self.journal.remove(Journal.nonce_key(nonce))

    def _broadcast(self, raw: bytes) -> ClassifiedError | None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as err:  # any class: Web3RPCError, ValueError, requests' errors, …
            classified = classify(err)
            if classified.kind is SendError.ALREADY_KNOWN:
                return None
            return classified
        return None

    def submit(self, plan: Plan) -> Pending:
        """Signs, journals and broadcasts `plan` at the next nonce; returns without waiting.
        Raises Unaffordable, SimulationFailed (a node that simulates on send) or SendFailed."""
        if self.next_nonce is None:
            self.sync_nonce()
        fees = self.fees_for(plan)
        if fees is None:
            limit = (
                f"what {plan.action} is worth ({plan.worth_wei / 1e18:.6f} ETH for {plan.gas} gas)"
                if plan.worth_wei is not None
                else f"the fee ceiling ({self.policy.max_fee / 1e9:g} gwei)"
            )
            raise Unaffordable(f"next base fee {self.quote().next_base / 1e9:.2f} gwei + tip is above {limit}")
        for _attempt in range(4):
            nonce = int(self.next_nonce or 0)
            tx_hash, raw = self._sign(nonce, plan, fees)
            p = Pending(nonce, [Variant(tx_hash, plan, fees)], self.head, self.head, checked_block=self.head)
            self._journal(p)  # before it leaves the process: a crash now still finds it
            error = self._broadcast(raw)
            if (
                error is not None
                and error.kind in (SendError.NONCE_TOO_LOW, SendError.REPLACEMENT_UNDERPRICED)
                and self._in_pool(tx_hash)
            ):
                error = None  # a retry further down the line met our own transaction: it arrived
            if error is None or error.kind in (SendError.CONNECTION, SendError.RPC):
                # sent, or perhaps sent (no answer): followed by poll, which finds it mined, in
                # the pool, or missing (then sends it again)
                if error is not None:
                    p.broadcast_failures = 1
                    event(
                        log,
                        "send unconfirmed; will check the pool",
                        logging.WARNING,
                        nonce=nonce,
                        action=plan.action,
                        error=str(error),
                    )
                self.pending[nonce] = p
                self.next_nonce = nonce + 1
                self._count("sent")
                event(
                    log,
                    f"{plan.action} sent",
                    nonce=nonce,
                    tx=tx_hash,
                    max_fee_gwei=round(fees.max_fee / 1e9, 3),
                    tip_gwei=round(fees.tip / 1e9, 3),
                    gas=plan.gas,
                    deadline=plan.deadline,
                    **_fields(plan),
                )
                return p
            self._unjournal(nonce)
            self._count(f"error:{error.kind.name.lower()}")
            event(log, "send refused", logging.WARNING, nonce=nonce, action=plan.action, error=str(error))
            if error.kind in (SendError.NONCE_TOO_LOW, SendError.NONCE_TOO_HIGH, SendError.REPLACEMENT_UNDERPRICED):
                self.sync_nonce()
                if error.kind is SendError.REPLACEMENT_UNDERPRICED and self.next_nonce == nonce:
                    self.next_nonce = nonce + 1  # an unknown transaction holds the nonce in the pool
                continue
            if error.kind in (SendError.FEE_BELOW_BASE_FEE, SendError.UNDERPRICED):
                bumped = replacement(fees, self.quote(fresh=True), self.policy, cap_for_value(plan.worth_wei, plan.gas))
                if bumped is None:
                    raise Unaffordable(f"{error}; a competitive fee is above what {plan.action} is worth")
                fees = bumped
                continue
            if error.kind is SendError.REVERT:
                raise SimulationFailed(self.decoder.decode(error.message) or error.message)
            raise SendFailed(error)
        raise SendFailed(
            ClassifiedError(SendError.RPC, "could not place the transaction after resynchronising the nonce")
        )

    def _resend(self, p: Pending, plan: Plan, fees: Fees, why: str) -> bool:
        """Replaces the transaction at p.nonce with `plan` at `fees`. False if the node refused."""
        tx_hash, raw = self._sign(p.nonce, plan, fees)
        p.variants.append(Variant(tx_hash, plan, fees))
        self._journal(p)
        error = self._broadcast(raw)
        if (
            error is not None
            and error.kind in (SendError.NONCE_TOO_LOW, SendError.REPLACEMENT_UNDERPRICED)
            and self._in_pool(tx_hash)
        ):
            error = None  # a retry further down the line met our own transaction: it arrived
        if error is not None and error.kind in (SendError.CONNECTION, SendError.RPC):
            # perhaps sent: the hash stays known; the next block's check finds it or sends again
            p.broadcast_failures += 1
            event(log, "replacement unconfirmed; will check the pool", logging.WARNING, nonce=p.nonce, error=str(error))
        elif error is not None:
            p.variants.pop()
            self._journal(p)
            p.broadcast_failures += 1
            self._count(f"error:{error.kind.name.lower()}")
            event(
                log,
                "replacement refused",
                logging.WARNING,
                nonce=p.nonce,
                action=plan.action,
                why=why,
                error=str(error),
            )
            if error.kind is SendError.NONCE_TOO_LOW:
                p.checked_block = -1  # mined meanwhile: the next poll finds the receipt
            elif error.kind.resync:
                self.sync_nonce()
            return False
        p.sent_block = self.head
        p.capped_logged = False
        self._count("replaced" if plan.action != CANCEL else "cancelled")
        event(
            log,
            f"{plan.action} replaced ({why})" if plan.action != CANCEL else f"cancelling nonce {p.nonce} ({why})",
            logging.WARNING if plan.action == CANCEL else logging.INFO,
            nonce=p.nonce,
            tx=tx_hash,
            max_fee_gwei=round(fees.max_fee / 1e9, 3),
            tip_gwei=round(fees.tip / 1e9, 3),
            deadline=plan.deadline,
            replacements=len(p.variants) - 1,
            **_fields(plan),
        )
        return True

    def cancel(self, p: Pending, why: str) -> bool:
        """Replaces the transaction at p.nonce by a 0-value transfer to ourselves."""
        if p.cancelled:
            return True
        plan = Plan(CANCEL, self.address, "0x", 21_000, 0, None, None, {"kind": CANCEL, "cancels": p.plan.action})
        quote = self.quote()
        fees = replacement(p.current.fees, quote, self.policy)
        if fees is None:  # the ceiling is below a valid replacement: the minimal valid one
            bump = self.policy.bump
            tip = math.ceil(p.current.fees.tip * bump)
            fees = Fees(max(math.ceil(p.current.fees.max_fee * bump), quote.next_base + tip), tip)
        return self._resend(p, plan, fees, why)

    def replace(self, p: Pending, why: str, optional: bool = False) -> bool:
        """Asks the refresh hook for a fresh plan for p's nonce and sends it. Without one, or
        when it is not worth a valid replacement, cancels the nonce — unless `optional` (then
        the transaction in flight stays as it is)."""
        plan = None
        if self.refresh is not None and not p.cancelled:
            try:
                plan = self.refresh(p)
            except Exception as err:  # the oracle or the node is unavailable: the old one must not land late
                event(log, "no fresh plan", logging.WARNING, nonce=p.nonce, error=f"{type(err).__name__}: {err}"[:300])
        if plan is None:
            return False if optional else self.cancel(p, why + "; nothing fresh to send")
        fees = replacement(p.current.fees, self.quote(), self.policy, cap_for_value(plan.worth_wei, plan.gas))
        if fees is None:
            return False if optional else self.cancel(p, why + "; a valid replacement costs more than it is worth")
        if not self._resend(p, plan, fees, why):
            return False
        if self.on_replaced is not None:
            self.on_replaced(p, plan)
        return True

    # ------------------------------------------------------------------ following

    def observe_block(self, head: int, head_time: int) -> None:
        if head > self.head:
            self._times.append((head, head_time))
            self._times = self._times[-20:]
            if len(self._times) >= 2:
                (b0, t0), (b1, t1) = self._times[0], self._times[-1]
                if b1 > b0 and t1 > t0:
                    self.block_interval = max(1.0, (t1 - t0) / (b1 - b0))
        self.head, self.head_time = max(self.head, head), max(self.head_time, head_time)

    def expires_soon(self, plan: Plan) -> bool:
        if plan.deadline is None:
            return False
        next_time = self.head_time + self.block_interval
        return plan.deadline < next_time + self.deadline_margin * self.block_interval

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _in_pool(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (pending or mined)."""
        try:
            tx = self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        except Exception:  # cannot tell: assume it is there and look again next block
            return True
        return tx is not None

    def _resolve(self, p: Pending, latest: int) -> Result | None:
        """A Result when p's nonce is mined (by any of its variants, or by something else)."""
        for v in reversed(p.variants):
            receipt = self._receipt(v.hash)
            if receipt is not None:
                ok = int(receipt["status"]) == 1
                status = ("cancelled" if v.plan.action == CANCEL else "mined") if ok else "reverted"
                return Result(p.nonce, status, v.plan if v.plan.action != CANCEL else p.original, receipt, v.hash)
        if p.nonce >= latest:
            return None
        # The nonce is used, yet none of our receipts is there. A node may count a transaction
        # before its receipt can be read: only a later block without it settles the question.
        first, polls = p.missing or (self.head, 0)
        p.missing = (first, polls + 1)
        if (self.head > first and polls + 1 >= 3) or polls + 1 >= 20:
            return Result(
                p.nonce, "replaced", p.original, reason="the nonce was taken by a transaction not sent from here"
            )
        return None

    def poll(self, head: int | None = None, head_time: int | None = None) -> list[Result]:
        """Follows every transaction in flight; returns the nonces resolved since the last poll."""
        if head is not None and head_time is not None:
            self.observe_block(head, head_time)
        results: list[Result] = []
        latest = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        self.chain_nonce = latest
        if not self.pending:
            self._gap = None
            if self.next_nonce is not None and self.next_nonce > latest:
                # nothing of ours in flight, yet the next nonce is above the chain's count: what
                # was mined there was orphaned (or another process has some in the pool)
                self.next_nonce = max(latest, int(self.w3.eth.get_transaction_count(self.address, "pending")))
            return results
        self._check_gap(latest)
        lowest = True
        for nonce in sorted(self.pending):
            p = self.pending[nonce]
            if nonce < latest:  # mined, by one of our variants or by something else
                result = self._resolve(p, latest)
                if result is not None:
                    del self.pending[nonce]
                    self._finish(result)
                    results.append(result)
                    continue
            if p.checked_block == self.head:
                lowest = False
                continue
            p.checked_block = self.head
            self._attend(p, lowest)
            lowest = False
        if self.next_nonce is not None and self.next_nonce < latest:
            self.next_nonce = latest
        return results

    def _check_gap(self, latest: int) -> None:
        """The lowest nonce we have in flight is above the chain's count of our transactions:
        the ones below it were mined in blocks a reorganisation replaced. Nodes that put them
        back in the pool mine them again within a block or two; a node that dropped them leaves
        a gap that everything in flight would wait behind forever. A gap still open a block (or
        5 s) later gets a 0-value transfer to ourselves at each missing nonce; what the orphaned
        transactions did is planned afresh from the new chain's state."""
        lowest = min(self.pending)
        if lowest <= latest:
            self._gap = None
            return
        if self._gap is None or self._gap[0] != latest:
            self._gap = (latest, self.head, time.monotonic())
            event(
                log,
                "transactions of ours are missing below the ones in flight (a chain reorganisation?)",
                logging.WARNING,
                mined_count=latest,
                lowest_in_flight=lowest,
                in_flight=sorted(self.pending),
            )
            return
        if self.head <= self._gap[1] and time.monotonic() - self._gap[2] < 5.0:
            return
        self._count("orphaned")
        for nonce in range(latest, lowest):
            self._fill_gap(nonce)
        self._gap = None

    def _fill_gap(self, nonce: int) -> None:
        plan = Plan(CANCEL, self.address, "0x", 21_000, 0, None, None, {"kind": CANCEL, "cancels": "orphaned"})
        quote = self.quote(fresh=True)
        fees = price(quote, self.policy, None) or Fees(self.policy.max_fee, min(quote.tip, self.policy.max_fee))
        tx_hash, raw = self._sign(nonce, plan, fees)
        p = Pending(nonce, [Variant(tx_hash, plan, fees)], self.head, self.head, checked_block=self.head)
        self._journal(p)
        error = self._broadcast(raw)
        if error is not None and error.kind is SendError.NONCE_TOO_LOW:
            self._unjournal(nonce)  # mined meanwhile (put back and mined again): nothing to fill
            return
        if error is not None and error.kind not in (SendError.CONNECTION, SendError.RPC):
            event(log, "could not fill a nonce gap; will try again", logging.WARNING, nonce=nonce, error=str(error))
            self._unjournal(nonce)
            return
        self.pending[nonce] = p
        event(
            log,
            f"nonce {nonce} filled after a reorganisation",
            logging.WARNING,
            nonce=nonce,
            tx=tx_hash,
            max_fee_gwei=round(fees.max_fee / 1e9, 3),
        )

    def _attend(self, p: Pending, lowest: bool) -> None:
        """Once per block for an unmined nonce: expiry, simulation, pool presence, fees."""
        if not p.cancelled and self.expires_soon(p.plan):
            self.replace(p, f"attestation deadline {p.plan.deadline} is near (chain time {self.head_time})")
            return
        if lowest and not p.cancelled:
            try:
                self.simulate_plan(p.plan)
            except SimulationFailed as err:
                self.replace(p, f"it would now revert: {err.reason}")
                return
            except Exception as err:  # an RPC hiccup: look again next block
                event(log, "re-simulation failed", logging.WARNING, nonce=p.nonce, error=error_message(err)[:200])
        quote = self.quote()
        cap = cap_for_value(p.plan.worth_wei, p.plan.gas)
        if not self._in_pool(p.current.hash):
            # evicted (the base fee overtook it), or never arrived: send it again
            fees = price(quote, self.policy, cap)
            if fees is not None:  # never below what was offered before (other nodes may hold it)
                ceiling = min(self.policy.max_fee, cap) if cap is not None else self.policy.max_fee
                kept = Fees(max(fees.max_fee, p.current.fees.max_fee), max(fees.tip, p.current.fees.tip))
                if kept.max_fee <= ceiling:
                    fees = Fees(kept.max_fee, min(kept.tip, kept.max_fee))
            if fees is None:
                if not p.capped_logged:
                    event(
                        log,
                        "dropped from the pool and unaffordable now; waiting for fees to fall",
                        logging.WARNING,
                        nonce=p.nonce,
                        action=p.plan.action,
                        next_base_gwei=round(quote.next_base / 1e9, 3),
                    )
                    p.capped_logged = True
                return
            self._count("resent")
            if (
                not self._resend(p, p.plan, fees, "not in the node's pool")
                and p.broadcast_failures >= self.max_broadcast_failures
                and not p.cancelled
            ):
                self.cancel(p, f"{p.broadcast_failures} broadcasts failed")
            return
        if self.head - p.sent_block >= self.bump_blocks and underpriced(p.current.fees, quote):
            fees = replacement(p.current.fees, quote, self.policy, cap)
            if fees is None:
                if not p.capped_logged:
                    event(
                        log,
                        "not mined and at its fee cap; waiting",
                        logging.WARNING,
                        nonce=p.nonce,
                        action=p.plan.action,
                        max_fee_gwei=round(p.current.fees.max_fee / 1e9, 3),
                        next_base_gwei=round(quote.next_base / 1e9, 3),
                        tip_gwei=round(quote.tip / 1e9, 3),
                    )
                    p.capped_logged = True
                return
            self._resend(p, p.plan, fees, f"not mined for {self.head - p.sent_block} blocks")

    def _finish(self, r: Result) -> None:
        self._count(r.status)
        if self.journal is not None:
            key = Journal.nonce_key(r.nonce)
            if r.status == "replaced":
                self.journal.remove(key)
            else:
                self.journal.update(
                    key,
                    status=r.status,
                    tx=r.tx,
                    block=int(r.receipt["blockNumber"]),
                    gas_used=int(r.receipt["gasUsed"]),
                    action=r.plan.action,
                    meta=r.plan.meta,
                    variants=None,
                )
        level = logging.INFO if r.status in ("mined", "cancelled") else logging.WARNING
        event(
            log,
            f"nonce {r.nonce} {r.status}",
            level,
            tx=r.tx,
            action=r.plan.action,
            reason=r.reason or None,
            block=int(r.receipt["blockNumber"]) if r.receipt is not None else None,
            **_fields(r.plan),
        )

    def wait(self, p: Pending, timeout: float = 30.0, interval: float = 0.1) -> Result | None:
        """Polls until p's nonce resolves (tests and one-shot tools; the daemon never waits)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            block = self.w3.eth.get_block("latest")
            for r in self.poll(int(block["number"]), int(block["timestamp"])):
                if r.nonce == p.nonce:
                    return r
            if p.nonce not in self.pending:
                return None
            time.sleep(interval)
        return None

    # ------------------------------------------------------------------ restart

    def _adopt(self, journal: Journal) -> None:
        """Takes over the transactions a previous run left in flight."""
        for key, entry in list(journal.entries.items()):
            if not key.startswith("nonce:") or entry.get("status") != "in_flight":
                continue
            try:
                variants = [Variant.from_json(v) for v in entry["variants"]]
            except (KeyError, TypeError, ValueError):
                journal.remove(key)
                continue
            nonce = int(entry["nonce"])
            block = int(entry.get("first_block", -1))
            self.pending[nonce] = Pending(nonce, variants, block, block)
        if self.pending:
            event(log, "following transactions of the previous run", nonces=sorted(self.pending))


def _fields(plan: Plan) -> dict[str, Any]:
    meta = plan.meta
    out: dict[str, Any] = {}
    for k in ("accounts", "account", "underlying", "expiry"):
        if k in meta:
            out[k] = meta[k]
    return out

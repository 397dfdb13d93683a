"""The risk oracle: chain state + market data + risk engine → signed attestations.

One Oracle is one signer. It answers for the portfolio the chain says an account has — or, for
a trade or a liquidation, the exact portfolio that action would leave — never for a portfolio a
caller describes. Every answer carries the block it was computed at.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from offchain.attest.builder import margin_numbers, margin_numbers_batch
from offchain.attest.eip712 import Domain
from offchain.attest.liquidation import NotLiquidatable, terms, transfer_slice
from offchain.attest.merkle import adl_leaf, merkle_proof, merkle_root
from offchain.attest.messages import AdlAttestation, MarginAttestation, Order, SettlementPrice, to_wire
from offchain.attest.signer import LocalSigner
from offchain.attest.state import chain_state_hash, next_state_hash, underlying_to_bytes32
from offchain.chain.contracts import SystemClient
from offchain.errors import UserError
from offchain.ops.logs import event
from offchain.oracle.market_sources import MarketSnapshot, MarketSource
from offchain.oracle.state import ChainState
from offchain.risk.adl import AdlCandidate, rank_queue
from offchain.risk.instruments import Instrument
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD, to_wad_down

log = logging.getLogger("oracle")


class OracleError(Exception):
    """A request the oracle cannot answer; `status` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SignedItem:
    item: Any  # a message dataclass

    def wire(self, signer: LocalSigner, domain: Domain) -> dict[str, Any]:
        return {**to_wire(self.item), "signature": "0x" + signer.sign(domain, self.item).hex()}


class Oracle:
    def __init__(
        self,
        client: SystemClient,
        source: MarketSource,
        signer: LocalSigner,
        params: MarginParams | None = None,
        state_path: Path | None = None,
        ttl_seconds: int = 60,
    ) -> None:
        self.client = client
        self.source = source
        self.signer = signer
        self.params = params or MarginParams()
        self.state_path = state_path
        self.ttl = ttl_seconds
        self.domain = Domain(client.deployment.chain_id, client.deployment.clearinghouse)
        self.lock = threading.RLock()
        key = ChainState.key_of(client.deployment.chain_id, client.deployment.clearinghouse)
        self.state = (ChainState.load(state_path, key) if state_path else None) or \
            ChainState(block=client.deployment.deploy_block - 1, deployment_key=key)
        self._snapshot: tuple[int, MarketSnapshot] | None = None
        self._last_save = time.monotonic()

    # ------------------------------------------------------------------ chain

    def sync(self, min_block: int | None = None) -> int:
        """Replays events up to `min_block` (or the head), never past the head."""
        with self.lock:
            head = self.client.head()
            target = head if min_block is None else min(max(min_block, self.state.block), head)
            self.state.catch_up(self.client, target)
            if self.state_path and time.monotonic() - self._last_save > 5:
                self.state.save(self.state_path)
                self._last_save = time.monotonic()
            return self.state.block

    def market(self) -> MarketSnapshot:
        with self.lock:
            block = self.state.block
            if self._snapshot is None or self._snapshot[0] != block:
                timestamp = self.client.block_time(block)
                self._snapshot = (block, self.source.snapshot(block, timestamp, self.state.instruments))
            return self._snapshot[1]

    def _needs(self, positions: dict[int, int]) -> None:
        """Refuses (503) when an underlying of the portfolio has no trustworthy market data."""
        unavailable = self.market().unavailable
        for instrument_id in positions:
            inst = self.state.instruments.get(instrument_id)
            if inst is not None and inst.underlying in unavailable:
                raise OracleError(503, f"no attestation: market data for {inst.underlying} is unavailable "
                                       f"({unavailable[inst.underlying]})")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def address(raw: Any, field: str) -> str:
        if not isinstance(raw, str) or not is_address(raw):
            raise OracleError(400, f"{field}: {raw!r} is not an address (0x followed by 40 hex digits)")
        return to_checksum_address(raw)

    def _known(self, account: str) -> None:
        if account not in self.state.accounts:
            raise OracleError(404, f"account {account} has never deposited or traded on this deployment")

    def _numbers(self, positions: dict[int, int]) -> tuple[int, int, int]:
        self._needs(positions)
        try:
            return margin_numbers(positions, self.state.instruments, self.market().data, self.params, self.state.settlement_prices)
        except UserError as err:
            raise OracleError(503, f"cannot value the portfolio: {err}") from None

    def _attestation(self, account: str, state_hash: bytes, positions: dict[int, int]) -> MarginAttestation:
        value, im, mm = self._numbers(positions)
        timestamp = self.market().data.timestamp
        return MarginAttestation(account, state_hash, value, im, mm, timestamp, timestamp + self.ttl, self.params.version)

    def _response(self, items: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "block": self.state.block,
            "signer": self.signer.address,
            "items": {k: SignedItem(v).wire(self.signer, self.domain) for k, v in items.items()},
            "extra": extra or {},
        }

    # ------------------------------------------------------------------ attestations

    def attest_margin(self, body: dict[str, Any]) -> dict[str, Any]:
        account = self.address(body.get("account"), "account")
        with self.lock:
            self.sync(body.get("min_block"))
            self._known(account)
            acct = self.state.accounts[account]
            return self._response({"margin": self._attestation(account, acct.state_hash, dict(acct.positions))})

    def attest_trade(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("order")
        if not isinstance(raw, dict):
            raise OracleError(400, "order: expected an object with maker, instrument_id, size, price, nonce, deadline")
        try:
            order = Order(self.address(raw.get("maker"), "order.maker"), int(raw["instrument_id"]), int(raw["size"]),
                          int(raw["price"]), int(raw["nonce"]), int(raw["deadline"]))
            fill = int(body["fill_amount"])
        except (KeyError, TypeError, ValueError) as err:
            raise OracleError(400, f"order: missing or non-integer field ({err})") from None
        taker = self.address(body.get("taker"), "taker")
        with self.lock:
            self.sync(body.get("min_block"))
            inst = self.state.instruments.get(order.instrument_id)
            if inst is None:
                raise OracleError(400, f"order.instrument_id: no instrument {order.instrument_id} is listed")
            if order.size == 0 or fill <= 0 or fill > abs(order.size):
                raise OracleError(400, f"fill_amount: must be in (0, |order.size|] = (0, {abs(order.size)}]")
            if order.maker == taker:
                raise OracleError(400, "taker: a maker cannot fill its own order")
            now = self.market().data.timestamp
            if inst.is_option and inst.expiry <= now:
                raise OracleError(409, f"{inst.name} has expired: it can no longer be traded")
            delta = fill if order.size > 0 else -fill
            items = {}
            for role, account, d in (("maker", order.maker, delta), ("taker", taker, -delta)):
                acct = self.state.accounts.get(account)
                positions = dict(acct.positions) if acct else {}
                new_size = positions.get(order.instrument_id, 0) + d
                if new_size:
                    positions[order.instrument_id] = new_size
                else:
                    positions.pop(order.instrument_id, None)
                cap = self._max_positions()
                if len(positions) > cap:
                    raise OracleError(409, f"{role} would hold {len(positions)} positions; the cap is {cap}")
                state = next_state_hash(acct.state_hash if acct else b"\x00" * 32, order.instrument_id, new_size)
                items[role] = self._attestation(account, state, positions)
            return self._response(items)

    def _max_positions(self) -> int:
        config = self.client.ch.functions.riskConfig().call(block_identifier=self.state.block)
        return int(config[3])

    def attest_liquidation(self, body: dict[str, Any]) -> dict[str, Any]:
        accounts = body.get("accounts")
        if not isinstance(accounts, list) or not accounts or len(accounts) > 50:
            raise OracleError(400, "accounts: a list of 1 to 50 addresses")
        targets = [self.address(a, f"accounts[{i}]") for i, a in enumerate(accounts)]
        liquidator = self.address(body.get("liquidator"), "liquidator")
        if liquidator in targets:
            raise OracleError(400, "liquidator: cannot liquidate itself")
        with self.lock:
            self.sync(body.get("min_block"))
            cfg = self.state.liquidation_config
            if cfg is None:
                raise OracleError(503, "risk configuration not seen yet")
            keeper_acct = self.state.accounts.get(liquidator)
            keeper_positions = dict(keeper_acct.positions) if keeper_acct else {}
            keeper_hash = keeper_acct.state_hash if keeper_acct else b"\x00" * 32
            items: dict[str, Any] = {}
            extra: dict[str, Any] = {"fractions": {}}
            for account in targets:
                self._known(account)
                acct = self.state.accounts[account]
                att = self._attestation(account, acct.state_hash, dict(acct.positions))
                equity = acct.cash + att.value
                try:
                    f, bonus, fee = terms(equity, att.maintenance_margin, cfg, self.state.fund_health())
                except NotLiquidatable:
                    raise OracleError(409, f"{account} is not liquidatable: equity {equity / WAD:.2f} ≥ MM "
                                           f"{att.maintenance_margin / WAD:.2f}") from None
                _, keeper_positions, _, updates = transfer_slice(acct.order, acct.positions, keeper_positions, f)
                keeper_hash = chain_state_hash(keeper_hash, updates)
                items[account] = att
                extra["fractions"][account] = {"fraction": str(f), "bonus": str(bonus), "fee": str(fee), "equity": str(equity)}
            items["liquidator"] = self._attestation(liquidator, keeper_hash, keeper_positions)
            return self._response(items, extra)

    def attest_adl(self, body: dict[str, Any]) -> dict[str, Any]:
        account = self.address(body.get("account"), "account")
        with self.lock:
            self.sync(body.get("min_block"))
            self._known(account)
            acct = self.state.accounts[account]
            if not acct.positions:
                raise OracleError(409, f"{account} has no positions to deleverage")
            self._needs(acct.positions)
            market = self.market().data
            ids = sorted(acct.positions)
            mark_of = self._marks()
            marks = [max(0, to_wad_down(mark_of[i])) for i in ids]
            numbers = margin_numbers_batch({a: s.positions for a, s in self.state.accounts.items() if s.positions},
                                           self.state.instruments, market, self.params, self.state.settlement_prices)
            roots, fills = [], []
            for leg, i in enumerate(ids):
                candidates = []
                for other, s in self.state.accounts.items():
                    size = s.positions.get(i, 0)
                    if other == account or size == 0 or other not in numbers:
                        continue
                    value, _, _ = numbers[other]
                    equity = (s.cash + value) / WAD
                    gross = sum(abs(z) / WAD * abs(mark_of[j]) for j, z in s.positions.items())
                    candidates.append(AdlCandidate(other, size / WAD, equity, s.net_deposits / WAD, gross))
                queue = rank_queue(candidates, acct.positions[i] / WAD)
                if not queue:
                    raise OracleError(409, f"no opposite-side account to deleverage instrument {i} against")
                leaves = [adl_leaf(i, r, q.account) for r, q in enumerate(queue)]
                roots.append(merkle_root(leaves))
                remaining = abs(acct.positions[i])
                for r, q in enumerate(queue):
                    if remaining <= 0:
                        break
                    fills.append({"leg": leg, "counterparty": q.account, "rank": r,
                                  "proof": ["0x" + p.hex() for p in merkle_proof(leaves, r)]})
                    remaining -= abs(self.state.accounts[q.account].positions.get(i, 0))
                if remaining > 0:
                    raise OracleError(409, f"the queue for instrument {i} cannot absorb the whole position")
            att = AdlAttestation(account, acct.state_hash, tuple(ids), tuple(marks), tuple(roots),
                                 market.timestamp, market.timestamp + self.ttl, self.params.version)
            return self._response({"adl": att}, {"fills": fills})

    def _marks(self) -> dict[int, float]:
        """Mark of one contract of every listed instrument at the current snapshot, priced at once
        (an option past expiry: its intrinsic value at the posted settlement price)."""
        from offchain.risk.black76 import intrinsic
        from offchain.risk.instruments import InstrumentTable
        from offchain.risk.scenarios import price_instruments

        market = self.market().data
        live = {i: inst for i, inst in self.state.instruments.items()
                if inst.underlying in market.underlyings and not (inst.is_option and inst.expiry <= market.timestamp)}
        marks: dict[int, float] = {}
        if live:
            table = InstrumentTable(list(live.values()))
            priced = price_instruments(table, market, self.params).marks
            marks = {i: float(priced[table.index[inst]]) for i, inst in live.items()}
        for i, inst in self.state.instruments.items():
            if i not in marks and inst.is_option and inst.expiry <= market.timestamp:
                price = self.state.settlement_prices.get((inst.underlying, inst.expiry), 0.0)
                marks[i] = float(intrinsic(price, inst.strike, inst.kind.name == "CALL"))
        return marks

    def attest_settlement(self, body: dict[str, Any]) -> dict[str, Any]:
        underlying = body.get("underlying")
        expiry = body.get("expiry")
        if not isinstance(underlying, str) or not isinstance(expiry, int):
            raise OracleError(400, "underlying (a name such as ETH) and expiry (unix seconds) are required")
        with self.lock:
            self.sync(body.get("min_block"))
            snapshot = self.market()
            if underlying in snapshot.unavailable:
                raise OracleError(503, f"market data for {underlying} is unavailable ({snapshot.unavailable[underlying]})")
            if underlying not in snapshot.data.underlyings:
                raise OracleError(400, f"underlying {underlying!r} has no market data on this oracle")
            if snapshot.data.timestamp < expiry:
                raise OracleError(409, f"expiry {expiry} has not passed (chain time {snapshot.data.timestamp})")
            price = to_wad_down(snapshot.data.get(underlying).spot)
            return self._response({"settlement": SettlementPrice(underlying_to_bytes32(underlying), expiry, price)})

    # ------------------------------------------------------------------ risk views (unsigned)

    def risk_accounts(self, max_ratio: float) -> dict[str, Any]:
        with self.lock:
            self.sync()
            snapshot = self.market()
            portfolios = {a: s.positions for a, s in self.state.accounts.items() if s.positions}
            numbers = margin_numbers_batch(portfolios, self.state.instruments, snapshot.data, self.params, self.state.settlement_prices)
            rows = []
            for account, (value, im, mm) in numbers.items():
                equity = self.state.accounts[account].cash + value
                ratio = equity / mm if mm else float("inf")
                if ratio < max_ratio:
                    rows.append({"account": account, "equity": equity / WAD, "mm": mm / WAD, "im": im / WAD, "ratio": ratio,
                                 "state_hash": "0x" + self.state.accounts[account].state_hash.hex()})
            rows.sort(key=lambda r: r["ratio"])
            skipped = sorted(set(portfolios) - set(numbers))
            return {"block": self.state.block, "fund_balance": self.state.fund_balance / WAD, "accounts": rows,
                    "unpriced_accounts": skipped, "market_unavailable": snapshot.unavailable,
                    "flagged": sorted(self.state.flagged)}

    def account_report(self, account: str) -> dict[str, Any]:
        account = self.address(account, "address")
        with self.lock:
            self.sync()
            self._known(account)
            acct = self.state.accounts[account]
            value, im, mm = self._numbers(dict(acct.positions)) if acct.positions else (0, 0, 0)
            return {
                "account": account, "block": self.state.block, "cash": acct.cash / WAD, "value": value / WAD,
                "equity": (acct.cash + value) / WAD, "initial_margin": im / WAD, "maintenance_margin": mm / WAD,
                "net_deposits": acct.net_deposits / WAD, "state_hash": "0x" + acct.state_hash.hex(),
                "positions": {self.state.instruments[i].name: s / WAD for i, s in acct.positions.items() if i in self.state.instruments},
            }

    def health(self) -> dict[str, Any]:
        head = self.client.head()
        return {"status": "ok", "signer": self.signer.address, "block": self.state.block, "head": head,
                "lag_blocks": max(0, head - self.state.block), "market": self.source.status(),
                "hash_mismatches": self.state.hash_mismatches}

    def save(self) -> None:
        if self.state_path:
            with self.lock:
                self.state.save(self.state_path)
                event(log, "state saved", block=self.state.block, path=str(self.state_path))


def instrument_names(instruments: dict[int, Instrument]) -> dict[int, str]:
    return {i: inst.name for i, inst in instruments.items()}

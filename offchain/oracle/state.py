"""Every account's portfolio, rebuilt from the contracts' events (restart-safe: replay from the
deployment block, or resume from a saved snapshot).

The replica mirrors the contracts exactly — the open-position order of PositionBook, the slice
rule of engineTransferSlice — and checks its state hashes against the ones the events carry.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offchain.attest.liquidation import LiquidationConfig, transfer_slice
from offchain.attest.state import ZERO_HASH, chain_state_hash, instrument_from_chain, next_state_hash, underlying_from_bytes32
from offchain.chain.contracts import DecodedLog
from offchain.ops.logs import event
from offchain.risk.instruments import Instrument
from offchain.risk.units import WAD

log = logging.getLogger("state")


@dataclass
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

    def account(self, address: str) -> AccountState:
        return self.accounts.setdefault(address, AccountState())

    def fund_health(self) -> int:
        if self.fund_target == 0:
            return 2**256 - 1
        return self.fund_balance * WAD // self.fund_target

    # ------------------------------------------------------------------ replay

    def apply(self, entry: DecodedLog) -> None:
        a = entry.args
        name = f"{entry.contract}.{entry.name}"
        self.counters[name] = self.counters.get(name, 0) + 1
        if name == "clearinghouse.InstrumentListed":
            self.instruments[int(a["instrumentId"])] = instrument_from_chain(
                bytes(a["underlying"]), int(a["kind"]), int(a["expiry"]), int(a["strike"])
            )
        elif name == "clearinghouse.CashUpdated":
            self.account(a["account"]).cash = int(a["cash"])
        elif name == "clearinghouse.Deposited":
            self.account(a["account"]).net_deposits += int(a["amount"])
        elif name == "clearinghouse.Withdrawn":
            self.account(a["account"]).net_deposits -= int(a["amount"])
        elif name == "clearinghouse.PositionUpdated":
            acct = self.account(a["account"])
            self._check(acct, next_state_hash(acct.state_hash, int(a["instrumentId"]), int(a["size"])), bytes(a["stateHash"]))
            acct.set_position(int(a["instrumentId"]), int(a["size"]))
        elif name == "clearinghouse.PortfolioSliceTransferred":
            self._apply_slice(a)
        elif name == "clearinghouse.SettlementPricePosted":
            key = (underlying_from_bytes32(bytes(a["underlying"])), int(a["expiry"]))
            self.settlement_prices[key] = int(a["price"]) / WAD
        elif name == "clearinghouse.RiskConfigUpdated":
            config = a["config"]
            values = list(config.values()) if isinstance(config, Mapping) else list(config)
            self.params_version = int(values[0])
            self.liquidation_config = LiquidationConfig.from_risk_config(values)
        elif entry.contract == "fund" and entry.name in ("Deposited", "FeeReceived", "DeficitCovered"):
            self.fund_balance = int(a["balance"])
        elif name == "fund.TargetUpdated":
            self.fund_target = int(a["target"])
        elif name == "engine.BankruptcyFlagged":
            self.flagged.add(a["account"])
        elif name == "engine.DeleveragingCompleted":
            self.flagged.discard(a["account"])
        self.block = max(self.block, entry.block)

    def _check(self, acct: AccountState, computed: bytes, emitted: bytes) -> None:
        if computed != emitted:
            self.hash_mismatches += 1
            event(log, "state hash mismatch: replica diverged from the chain", logging.ERROR,
                  computed="0x" + computed.hex(), emitted="0x" + emitted.hex())
        acct.state_hash = emitted

    def _apply_slice(self, a: dict[str, Any]) -> None:
        src, dst = self.account(a["from"]), self.account(a["to"])
        _, _, src_updates, dst_updates = transfer_slice(
            [int(i) for i in a["instrumentIds"]], src.positions, dst.positions, int(a["fraction"]))
        for acct, updates, emitted in ((src, src_updates, a["fromStateHash"]), (dst, dst_updates, a["toStateHash"])):
            computed = chain_state_hash(acct.state_hash, updates)
            for instrument_id, size in updates:
                acct.set_position(instrument_id, size)
            self._check(acct, computed, bytes(emitted))

    def catch_up(self, client: Any, to_block: int, chunk: int = 2_000) -> None:
        """Applies every event of blocks (self.block, to_block], in chunks of `chunk` blocks."""
        start = self.block + 1
        while start <= to_block:
            stop = min(start + chunk - 1, to_block)
            for entry in client.logs(start, stop):
                self.apply(entry)
            self.block = stop
            start = stop + 1

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment_key,
            "block": self.block,
            "accounts": {
                k: {"cash": str(v.cash), "state_hash": v.state_hash.hex(), "order": v.order,
                    "positions": {str(i): str(s) for i, s in v.positions.items()}, "net_deposits": str(v.net_deposits)}
                for k, v in self.accounts.items()
            },
            "instruments": {str(i): [inst.underlying, int(inst.kind), inst.strike, inst.expiry] for i, inst in self.instruments.items()},
            "settlement_prices": [[u, e, p] for (u, e), p in self.settlement_prices.items()],
            "fund_balance": str(self.fund_balance),
            "fund_target": str(self.fund_target),
            "params_version": self.params_version,
            "liquidation_config": None if self.liquidation_config is None else vars(self.liquidation_config),
            "flagged": sorted(self.flagged),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ChainState":
        from offchain.risk.instruments import Kind

        s = cls(block=int(d["block"]), deployment_key=str(d.get("deployment", "")))
        for k, v in d["accounts"].items():
            s.accounts[k] = AccountState(
                cash=int(v["cash"]), state_hash=bytes.fromhex(v["state_hash"]), order=[int(i) for i in v["order"]],
                positions={int(i): int(z) for i, z in v["positions"].items()}, net_deposits=int(v["net_deposits"]),
            )
        for i, (u, kind, strike, expiry) in d["instruments"].items():
            s.instruments[int(i)] = Instrument(u, Kind(kind), float(strike), int(expiry))
        s.settlement_prices = {(u, int(e)): float(p) for u, e, p in d["settlement_prices"]}
        s.fund_balance, s.fund_target = int(d["fund_balance"]), int(d["fund_target"])
        s.params_version = int(d["params_version"])
        if d.get("liquidation_config"):
            s.liquidation_config = LiquidationConfig(**{k: int(v) for k, v in d["liquidation_config"].items()})
        s.flagged = set(d.get("flagged", []))
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
        state = cls.from_json(json.loads(path.read_text()))
        if state.deployment_key != deployment_key:
            event(log, "ignoring a state snapshot of another deployment", logging.WARNING, path=str(path),
                  snapshot=state.deployment_key, deployment=deployment_key)
            return None
        return state

    @staticmethod
    def key_of(chain_id: int, clearinghouse: str) -> str:
        return f"{chain_id}:{clearinghouse.lower()}"

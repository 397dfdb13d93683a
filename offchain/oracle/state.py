"""Every account's portfolio, rebuilt from the contracts' events (restart-safe: replay from the
deployment block, or resume from a saved snapshot).

The replica mirrors the contracts exactly — the open-position order of PositionBook, the slice
rule of engineTransferSlice, the risk configuration and params version in force, the bankruptcy
flags, settlement shortfalls — and checks its state hashes against the ones the events carry.
"""

from __future__ import annotations

import copy
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

# RiskConfig's members in declaration order (contracts/interfaces/IClearinghouse.sol)
RISK_CONFIG_FIELDS = ("paramsVersion", "maxSnapshotAge", "snapshotTolerance", "maxPositions", "takerFee",
                      "liquidationBuffer", "liquidatorBonus", "insuranceFee", "dustMargin")


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
    _settling: tuple[str, str, list[tuple[int, int]]] | None = field(default=None, repr=False)

    def account(self, address: str) -> AccountState:
        return self.accounts.setdefault(address, AccountState())

    def fund_health(self) -> int:
        if self.fund_target == 0:
            return 2**256 - 1
        return self.fund_balance * WAD // self.fund_target

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
        return (version != 0 and version == self.previous_params_version and self.params_changed_block >= 0
                and timestamp <= self.params_changed_at + age)

    def settlement_cut(self, instrument_id: int, size: int, payout: int) -> int:
        """What LiquidationEngine._longPayout withholds from a long's payout of an expired option: its
        pro-rata share of the instrument's settlement shortfall (rounded up, at most the payout)."""
        shortfall = self.settlement_shortfall.get(instrument_id, 0)
        oi = self.settlement_open_interest.get(instrument_id, 0)
        if size <= 0 or shortfall == 0 or oi == 0 or payout <= 0:
            return 0
        return min(-((-shortfall * size) // oi), payout)

    def snapshot(self) -> "ChainState":
        """A copy no replay touches: computations run on it outside the replica's lock."""
        view = copy.copy(self)
        view.accounts = {k: AccountState(v.cash, v.state_hash, dict(v.positions), list(v.order), v.net_deposits)
                         for k, v in self.accounts.items()}
        view.instruments = dict(self.instruments)
        view.settlement_prices = dict(self.settlement_prices)
        view.flagged = set(self.flagged)
        view.counters = dict(self.counters)
        view.risk_config = None if self.risk_config is None else dict(self.risk_config)
        view.settlement_open_interest = dict(self.settlement_open_interest)
        view.settlement_shortfall = dict(self.settlement_shortfall)
        view._settling = None
        return view

    # ------------------------------------------------------------------ replay

    def apply(self, entry: DecodedLog) -> None:
        a = entry.args
        name = f"{entry.contract}.{entry.name}"
        self.counters[name] = self.counters.get(name, 0) + 1
        self.version += 1
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
        elif name == "clearinghouse.PositionSettled":
            self._apply_settled(entry)
        elif name == "engine.SettlementDeficitAbsorbed":
            self._apply_deficit_absorbed(entry)
        elif name == "clearinghouse.RiskConfigUpdated":
            self._apply_risk_config(entry)
        elif name == "clearinghouse.SnapshotPosted":
            self.latest_posted_snapshot = max(self.latest_posted_snapshot, int(a["snapshotTime"]))
        elif entry.contract == "fund" and entry.name in ("Deposited", "FeeReceived", "DeficitCovered"):
            self.fund_balance = int(a["balance"])
        elif name == "fund.TargetUpdated":
            self.fund_target = int(a["target"])
        elif name == "engine.BankruptcyFlagged":
            self.flagged.add(a["account"])
        elif name == "engine.BankruptcyCleared":
            self.flagged.discard(a["account"])
        elif name == "engine.DeleveragingCompleted":
            # what the queue could not carry stays as negative cash, flagged until the fund covers it
            if int(a.get("uncovered", 0)):
                self.flagged.add(a["account"])
            else:
                self.flagged.discard(a["account"])
        self.block = max(self.block, entry.block)

    def _apply_risk_config(self, entry: DecodedLog) -> None:
        config = entry.args["config"]
        values = [int(v) for v in (config.values() if isinstance(config, Mapping) else config)]
        version = values[0]
        if self.params_version and version != self.params_version:
            # RiskGovernance.executeRiskConfig: the old version stays acceptable for a while
            self.previous_params_version = self.params_version
            self.params_changed_block = entry.block
            self.params_changed_at = 0
        self.params_version = version
        self.risk_config = dict(zip(RISK_CONFIG_FIELDS, values))
        self.params_hash = bytes(entry.args.get("paramsHash", b""))
        self.liquidation_config = LiquidationConfig.from_risk_config(values)

    def _apply_settled(self, entry: DecodedLog) -> None:
        """Records an instrument's open interest when its settlement starts (the shorts' total
        before any of them settled) and what each short paid, for a deficit absorbed in the same
        call (LiquidationEngine.settle → _absorbSettlementDeficit)."""
        a = entry.args
        instrument_id, size, payout = int(a["instrumentId"]), int(a["size"]), int(a["payout"])
        if not self.settlement_open_interest.get(instrument_id):
            # the position is already zeroed in the replica (PositionUpdated comes first)
            shorts = sum(-acct.positions.get(instrument_id, 0) for acct in self.accounts.values()
                         if acct.positions.get(instrument_id, 0) < 0)
            self.settlement_open_interest[instrument_id] = shorts + (-size if size < 0 else 0)
        key = (entry.tx, a["account"])
        if self._settling is None or self._settling[:2] != key:
            self._settling = (entry.tx, a["account"], [])
        if size < 0 and payout < 0:
            self._settling[2].append((instrument_id, -payout))

    def _apply_deficit_absorbed(self, entry: DecodedLog) -> None:
        a = entry.args
        shared = int(a["shared"])
        paid = self._settling[2] if self._settling is not None and self._settling[:2] == (entry.tx, a["account"]) else []
        total = sum(p for _, p in paid)
        if shared and total:
            left = shared
            for k, (instrument_id, p) in enumerate(paid):
                part = left if k == len(paid) - 1 else shared * p // total
                self.settlement_shortfall[instrument_id] = self.settlement_shortfall.get(instrument_id, 0) + part
                left -= part
        self._settling = None

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
        self.resolve_times(client)

    def resolve_times(self, client: Any) -> None:
        """The grace window of the previous params version runs from the change's block time:
        looked up once, from a client that can (callers passing a bare log source resolve it later)."""
        if self.params_changed_block >= 0 and not self.params_changed_at and hasattr(client, "block_time"):
            self.params_changed_at = int(client.block_time(self.params_changed_block))

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
            "risk_config": self.risk_config,
            "params_hash": self.params_hash.hex(),
            "previous_params_version": self.previous_params_version,
            "params_changed_block": self.params_changed_block,
            "params_changed_at": self.params_changed_at,
            "latest_posted_snapshot": self.latest_posted_snapshot,
            "settlement_open_interest": {str(k): str(v) for k, v in self.settlement_open_interest.items()},
            "settlement_shortfall": {str(k): str(v) for k, v in self.settlement_shortfall.items()},
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
        if d.get("risk_config"):
            s.risk_config = {k: int(v) for k, v in d["risk_config"].items()}
        s.params_hash = bytes.fromhex(d.get("params_hash", ""))
        s.previous_params_version = int(d.get("previous_params_version", 0))
        s.params_changed_block = int(d.get("params_changed_block", -1))
        s.params_changed_at = int(d.get("params_changed_at", 0))
        s.latest_posted_snapshot = int(d.get("latest_posted_snapshot", 0))
        s.settlement_open_interest = {int(k): int(v) for k, v in d.get("settlement_open_interest", {}).items()}
        s.settlement_shortfall = {int(k): int(v) for k, v in d.get("settlement_shortfall", {}).items()}
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

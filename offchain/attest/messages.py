"""The signed messages, field for field as in contracts/interfaces/IClearinghouse.sol.

All amounts are integers in WAD (18 decimals); sizes are signed WAD contracts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address


class _Message:
    """What every signed message has: its EIP-712 members as a dict, and as a call argument."""

    PRIMARY_TYPE = ""

    def message(self) -> dict[str, Any]:
        raise NotImplementedError

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as a contract-call argument, members in declaration order."""
        return tuple(self.message().values())


@dataclass(frozen=True)
class MarginAttestation(_Message):
    account: str
    state_hash: bytes
    value: int
    initial_margin: int
    maintenance_margin: int
    snapshot_time: int
    deadline: int
    params_version: int

    PRIMARY_TYPE = "MarginAttestation"

    def message(self) -> dict[str, Any]:
        return {
            "account": to_checksum_address(self.account),
            "stateHash": self.state_hash,
            "value": self.value,
            "initialMargin": self.initial_margin,
            "maintenanceMargin": self.maintenance_margin,
            "snapshotTime": self.snapshot_time,
            "deadline": self.deadline,
            "paramsVersion": self.params_version,
        }


    @classmethod
    def empty(cls) -> "MarginAttestation":
        """Placeholder for calls that need no attestation (e.g. a withdrawal with no positions)."""
        return cls("0x" + "00" * 20, b"\x00" * 32, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Order(_Message):
    maker: str
    instrument_id: int
    size: int
    price: int
    nonce: int
    deadline: int

    PRIMARY_TYPE = "Order"

    def message(self) -> dict[str, Any]:
        return {
            "maker": to_checksum_address(self.maker),
            "instrumentId": self.instrument_id,
            "size": self.size,
            "price": self.price,
            "nonce": self.nonce,
            "deadline": self.deadline,
        }



@dataclass(frozen=True)
class SettlementPrice(_Message):
    """The price of `underlying` at `expiry`, from the market reading of `snapshot_time` (the last
    feed round at or before the expiry; the contract accepts it only within maxSnapshotAge of it)."""

    underlying: bytes
    expiry: int
    price: int
    snapshot_time: int

    PRIMARY_TYPE = "SettlementPrice"

    def message(self) -> dict[str, Any]:
        return {"underlying": self.underlying, "expiry": self.expiry, "price": self.price,
                "snapshotTime": self.snapshot_time}


@dataclass(frozen=True)
class SnapshotHeartbeat(_Message):
    """"The oracle's newest market data is from `snapshot_time`": posted by anyone, it raises the
    contract's freshness floor so attestations of older snapshots stop being usable."""

    snapshot_time: int

    PRIMARY_TYPE = "SnapshotHeartbeat"

    def message(self) -> dict[str, Any]:
        return {"snapshotTime": self.snapshot_time}


@dataclass(frozen=True)
class SnapshotCommitment(_Message):
    """The oracle's commitment to every account's margin at one snapshot: `root` of the
    StandardMerkleTree over each account's MarginAttestation (offchain/attest/commitment.py),
    `accounts` leaves, all carrying this snapshot time, deadline and params version."""

    root: bytes
    snapshot_time: int
    deadline: int
    params_version: int
    accounts: int

    PRIMARY_TYPE = "SnapshotCommitment"

    def message(self) -> dict[str, Any]:
        return {"root": self.root, "snapshotTime": self.snapshot_time, "deadline": self.deadline,
                "paramsVersion": self.params_version, "accounts": self.accounts}


@dataclass(frozen=True)
class AdlAttestation(_Message):
    account: str
    state_hash: bytes
    instrument_ids: tuple[int, ...]
    marks: tuple[int, ...]
    queue_roots: tuple[bytes, ...]
    snapshot_time: int
    deadline: int
    params_version: int

    PRIMARY_TYPE = "AdlAttestation"

    def message(self) -> dict[str, Any]:
        return {
            "account": to_checksum_address(self.account),
            "stateHash": self.state_hash,
            "instrumentIds": list(self.instrument_ids),
            "marks": list(self.marks),
            "queueRoots": list(self.queue_roots),
            "snapshotTime": self.snapshot_time,
            "deadline": self.deadline,
            "paramsVersion": self.params_version,
        }



@dataclass(frozen=True)
class AdlFill:
    """One step of a deleveraging (ILiquidationEngine.AdlFill): the counterparty at `rank` of leg
    `leg`'s queue, the state hash and portfolio value its queue leaf commits to, and the proof.

    Not signed by itself (the queue root is): its wire form is the plain JSON object of an ADL
    plan's `extra.fills` — {"leg", "counterparty", "rank", "state_hash", "value", "proof"}.
    """

    leg: int
    counterparty: str
    rank: int
    state_hash: bytes
    value: int
    proof: tuple[bytes, ...]

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as a contract-call argument (deleverage's `fills` items)."""
        return (self.leg, to_checksum_address(self.counterparty), self.rank, self.state_hash, self.value, list(self.proof))

    def to_wire(self) -> dict[str, Any]:
        return {"leg": self.leg, "counterparty": to_checksum_address(self.counterparty), "rank": self.rank,
                "state_hash": "0x" + self.state_hash.hex(), "value": str(self.value),
                "proof": ["0x" + p.hex() for p in self.proof]}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "AdlFill":
        """The inverse of to_wire; raises ValueError (or KeyError) on anything malformed."""
        return cls(int(data["leg"]), to_checksum_address(data["counterparty"]), int(data["rank"]),
                   bytes.fromhex(str(data["state_hash"]).removeprefix("0x")), int(data["value"]),
                   tuple(bytes.fromhex(str(p).removeprefix("0x")) for p in data["proof"]))


MESSAGE_TYPES: dict[str, type] = {
    "MarginAttestation": MarginAttestation,
    "Order": Order,
    "SettlementPrice": SettlementPrice,
    "SnapshotHeartbeat": SnapshotHeartbeat,
    "SnapshotCommitment": SnapshotCommitment,
    "AdlAttestation": AdlAttestation,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)  # JSON numbers lose precision above 2^53
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_wire(item: Any) -> dict[str, Any]:
    """{"type": ..., "message": {...}} with big integers as strings and bytes as 0x-hex."""
    return {"type": item.PRIMARY_TYPE, "message": {k: _jsonable(v) for k, v in item.message().items()}}


def from_wire(data: dict[str, Any]) -> Any:
    """The inverse of to_wire; raises ValueError on anything malformed."""
    from offchain.attest.eip712 import TYPES

    kind = data.get("type")
    if kind not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {kind!r}")
    message = data.get("message") or {}
    values = []
    for name, solidity_type in TYPES[kind]:
        raw = message[name]
        values.append(_parse(solidity_type, raw))
    return MESSAGE_TYPES[kind](*[tuple(v) if isinstance(v, list) else v for v in values])


def _parse(solidity_type: str, raw: Any) -> Any:
    if solidity_type.endswith("[]"):
        return [_parse(solidity_type[:-2], r) for r in raw]
    if solidity_type == "address":
        return to_checksum_address(raw)
    if solidity_type.startswith("bytes"):
        return bytes.fromhex(str(raw).removeprefix("0x"))
    return int(raw)

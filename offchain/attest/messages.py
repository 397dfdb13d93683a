"""The structs the protocol signs or passes to contracts, each defined once, here.

A definition is a frozen dataclass whose fields, in the struct's member order, are annotated with
their Solidity types (`Uint64` is `Annotated[int, Sol("uint64")]`). Everything else is derived
from it: the member names (the camelCase of the field names), the contract-call tuple, the
EIP-712 type string and struct hash (offchain/attest/eip712.py) and the JSON wire form.
tests/python/attest/test_message_definitions.py checks every definition against the compiled
ABI and the contracts' typehashes.

All amounts are integers in WAD (18 decimals); sizes are signed WAD contracts.

Wire form, a public API of the HTTP services: addresses checksummed, bytes as 0x-hex, integers
as decimal strings (JSON numbers lose precision above 2^53) unless a field says otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, get_args, get_type_hints

from eth_utils.address import to_checksum_address


@dataclass(frozen=True)
class Sol:
    """The Solidity type of a field, carried in its annotation."""

    type: str
    json_number: bool = False  # a JSON number on the wire instead of a decimal string


Address = Annotated[str, Sol("address")]
Bytes32 = Annotated[bytes, Sol("bytes32")]
Int256 = Annotated[int, Sol("int256")]
Uint256 = Annotated[int, Sol("uint256")]
Uint64 = Annotated[int, Sol("uint64")]
Uint32 = Annotated[int, Sol("uint32")]
Uint256Array = Annotated[tuple[int, ...], Sol("uint256[]")]
Bytes32Array = Annotated[tuple[bytes, ...], Sol("bytes32[]")]
# A leg or rank of an ADL fill: small, and a JSON number in the ADL plan's wire form.
SmallUint256 = Annotated[int, Sol("uint256", json_number=True)]

# Member types: atomic types and one-dimensional arrays of them (no struct references, so a
# type string is the primary type alone).
_INT_BITS = "|".join(str(8 * i) for i in range(32, 0, -1))
_SUPPORTED = re.compile(rf"(address|bytes(3[0-2]|[12][0-9]|[1-9])|u?int({_INT_BITS}))(\[\])?")


@dataclass(frozen=True)
class Member:
    """One struct member, derived from a dataclass field."""

    field: str  # the dataclass field (snake_case)
    name: str  # the Solidity member, EIP-712 and wire name (camelCase)
    type: str  # the Solidity type
    json_number: bool  # as Sol.json_number


class Struct:
    """A Solidity struct: subclasses are frozen dataclasses annotated as described above.

    Its wire form is a flat JSON object keyed by field name; SignedMessage has its own.
    """

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        if cls.__name__ in STRUCT_TYPES:
            raise TypeError(f"struct {cls.__name__} is defined twice")
        STRUCT_TYPES[cls.__name__] = cls

    @classmethod
    def members(cls) -> tuple[Member, ...]:
        """The members in declaration order."""
        members = _MEMBERS.get(cls)
        if members is None:
            members = _MEMBERS[cls] = _derive_members(cls)
        return members

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as a contract-call argument, members in declaration order."""
        return tuple(_abi_value(m.type, getattr(self, m.field)) for m in self.members())

    def to_wire(self) -> dict[str, Any]:
        return {m.field: _to_json(m.type, getattr(self, m.field), m.json_number) for m in self.members()}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        """The inverse of to_wire; raises ValueError (or KeyError) on anything malformed."""
        return cls._build({m.field: _from_json(m.type, data[m.field]) for m in cls.members()})

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Self:
        make: Callable[..., Self] = cls  # the dataclass constructor, which Struct does not declare
        return make(**values)


class SignedMessage(Struct, abstract=True):
    """A struct signed under EIP-712, its primary type the class name.

    Wire form: {"type": <primary type>, "message": {<member name>: value}}.
    """

    PRIMARY_TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(abstract=abstract, **kwargs)
        if not abstract:
            cls.PRIMARY_TYPE = cls.__name__
            MESSAGE_TYPES[cls.__name__] = cls

    def message(self) -> dict[str, Any]:
        """The EIP-712 message: member name to value, as eth-abi and the typed-data signer take it."""
        return {m.name: _abi_value(m.type, getattr(self, m.field)) for m in self.members()}

    def to_wire(self) -> dict[str, Any]:
        message = {m.name: _to_json(m.type, getattr(self, m.field), m.json_number) for m in self.members()}
        return {"type": self.PRIMARY_TYPE, "message": message}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        """The inverse of to_wire; on SignedMessage itself, of whichever message `data` names.
        Raises ValueError (or KeyError) on anything malformed."""
        kind = data.get("type")
        target = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
        if target is None:
            raise ValueError(f"unknown message type {kind!r}")
        if not issubclass(target, cls):
            raise ValueError(f"message type {kind!r} where {cls.PRIMARY_TYPE} is expected")
        message = data.get("message") or {}
        return target._build({m.field: _from_json(m.type, message[m.name]) for m in target.members()})


STRUCT_TYPES: dict[str, type[Struct]] = {}
MESSAGE_TYPES: dict[str, type[SignedMessage]] = {}
_MEMBERS: dict[type[Struct], tuple[Member, ...]] = {}


@dataclass(frozen=True)
class MarginAttestation(SignedMessage):
    """The oracle's statement about one account's portfolio (IClearinghouse.MarginAttestation)."""

    account: Address
    state_hash: Bytes32
    value: Int256
    initial_margin: Uint256
    maintenance_margin: Uint256
    snapshot_time: Uint64
    deadline: Uint64
    params_version: Uint32

    @classmethod
    def empty(cls) -> MarginAttestation:
        """Placeholder for calls that need no attestation (e.g. a withdrawal with no positions)."""
        return cls("0x" + "00" * 20, b"\x00" * 32, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Order(SignedMessage):
    """A maker's offer; `size` signed from the maker's side (IClearinghouse.Order)."""

    maker: Address
    instrument_id: Uint256
    size: Int256
    price: Uint256
    nonce: Uint256
    deadline: Uint64


@dataclass(frozen=True)
class SettlementPrice(SignedMessage):
    """The price of `underlying` at `expiry`, from the market reading of `snapshot_time` (the last
    feed round at or before the expiry; the contract accepts it only within maxSnapshotAge of it)."""

    underlying: Bytes32
    expiry: Uint64
    price: Uint256
    snapshot_time: Uint64


@dataclass(frozen=True)
class SnapshotHeartbeat(SignedMessage):
    """The oracle's statement "my newest market data is from `snapshot_time`": posted by anyone, it
    raises the contract's freshness floor so attestations of older snapshots stop being usable."""

    snapshot_time: Uint64


@dataclass(frozen=True)
class SnapshotCommitment(SignedMessage):
    """The oracle's commitment to every account's margin at one snapshot: `root` of the
    StandardMerkleTree over each account's MarginAttestation (offchain/attest/commitment.py),
    `accounts` leaves, all carrying this snapshot time, deadline and params version."""

    root: Bytes32
    snapshot_time: Uint64
    deadline: Uint64
    params_version: Uint32
    accounts: Uint32


@dataclass(frozen=True)
class AdlAttestation(SignedMessage):
    """The oracle's deleveraging plan for a bankrupt account (ILiquidationEngine.AdlAttestation)."""

    account: Address
    state_hash: Bytes32
    instrument_ids: Uint256Array
    marks: Uint256Array
    queue_roots: Bytes32Array
    snapshot_time: Uint64
    deadline: Uint64
    params_version: Uint32


@dataclass(frozen=True)
class AdlFill(Struct):
    """One step of a deleveraging (ILiquidationEngine.AdlFill): the counterparty at `rank` of leg
    `leg`'s queue, the state hash and portfolio value its queue leaf commits to, and the proof.

    Not signed by itself (the queue root is): its wire form is the plain JSON object of an ADL
    plan's `extra.fills` — {"leg", "counterparty", "rank", "state_hash", "value", "proof"}.
    """

    leg: SmallUint256
    counterparty: Address
    rank: SmallUint256
    state_hash: Bytes32
    value: Int256
    proof: Bytes32Array


def to_wire(item: SignedMessage) -> dict[str, Any]:
    """{"type": ..., "message": {...}} with big integers as strings and bytes as 0x-hex."""
    return item.to_wire()


def from_wire(data: Mapping[str, Any]) -> Any:
    """The inverse of to_wire; raises ValueError (or KeyError) on anything malformed.

    Typed Any: which message comes back depends on the data, and callers use its fields."""
    return SignedMessage.from_wire(data)


def _derive_members(cls: type[Struct]) -> tuple[Member, ...]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__}: a struct definition is a frozen dataclass")
    hints = get_type_hints(cls, include_extras=True)
    members = []
    for f in dataclasses.fields(cls):
        sols = [a for a in get_args(hints[f.name])[1:] if isinstance(a, Sol)]
        if len(sols) != 1 or not _SUPPORTED.fullmatch(sols[0].type):
            raise TypeError(f"{cls.__name__}.{f.name}: annotate with one supported Solidity type (e.g. Uint256)")
        head, *rest = f.name.split("_")
        members.append(
            Member(f.name, head + "".join(p[:1].upper() + p[1:] for p in rest), sols[0].type, sols[0].json_number)
        )
    return tuple(members)


def _abi_value(sol_type: str, value: Any) -> Any:
    """A member as eth-abi encodes it: addresses checksummed, arrays as lists."""
    if sol_type.endswith("[]"):
        return [_abi_value(sol_type[:-2], v) for v in value]
    if sol_type == "address":
        return to_checksum_address(value)
    return value


def _to_json(sol_type: str, value: Any, json_number: bool = False) -> Any:
    if sol_type.endswith("[]"):
        return [_to_json(sol_type[:-2], v, json_number) for v in value]
    if sol_type == "address":
        return to_checksum_address(value)
    if sol_type.startswith("bytes"):
        return "0x" + value.hex()
    return int(value) if json_number else str(value)


def _from_json(sol_type: str, raw: Any) -> Any:
    """A wire value as its Solidity type takes it, refused (ValueError) unless it fits exactly:
    a signer's or a client's JSON is untrusted, and a value the contract would read otherwise
    (padded, wrapped, truncated) must not get as far as a signature."""
    if sol_type.endswith("[]"):
        if not isinstance(raw, list):
            raise ValueError(f"{sol_type}: a JSON array is required, got {type(raw).__name__}")
        return tuple(_from_json(sol_type[:-2], r) for r in raw)
    if sol_type == "address":
        if not isinstance(raw, str):
            raise ValueError(f"address: a hex string is required, got {type(raw).__name__}")
        return to_checksum_address(raw)
    if sol_type.startswith("bytes"):
        if not isinstance(raw, str):
            raise ValueError(f"{sol_type}: a hex string is required, got {type(raw).__name__}")
        data = bytes.fromhex(raw.removeprefix("0x"))
        size = sol_type[5:]
        if size and len(data) != int(size):
            raise ValueError(f"{sol_type}: {int(size)} bytes are required, got {len(data)}")
        return data
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise ValueError(f"{sol_type}: an integer or a decimal string is required, got {type(raw).__name__}")
    value = int(raw)
    bits = int(sol_type.removeprefix("u").removeprefix("int") or 256)
    low, high = (0, 2**bits) if sol_type.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1))
    if not low <= value < high:
        raise ValueError(f"{sol_type}: {value} is out of range")
    return value


# Derive every layout now, so a malformed definition fails at import rather than at first use.
for _struct in STRUCT_TYPES.values():
    _struct.members()

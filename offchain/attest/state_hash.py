"""The portfolio state commitment and the mapping between on-chain and engine instruments."""

from __future__ import annotations

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from offchain.risk.instruments import Instrument, Kind
from offchain.risk.units import WAD

ZERO_HASH = b"\x00" * 32


def next_state_hash(prev: bytes, instrument_id: int, new_size: int) -> bytes:
    """keccak256(abi.encode(prev, instrumentId, newSize)) — Clearinghouse._setPosition's chain."""
    return keccak(abi_encode(["bytes32", "uint256", "int256"], [prev, instrument_id, new_size]))


def chain_state_hash(prev: bytes, updates: list[tuple[int, int]]) -> bytes:
    """The state hash after applying (instrument id, new size) updates in order."""
    h = prev
    for instrument_id, new_size in updates:
        h = next_state_hash(h, instrument_id, new_size)
    return h


def underlying_to_bytes32(name: str) -> bytes:
    raw = name.encode("ascii")
    if not raw or len(raw) > 32:
        raise ValueError(f"underlying name {name!r} must be 1-32 ASCII characters")
    return raw.ljust(32, b"\x00")


def underlying_from_bytes32(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("ascii")


def instrument_from_chain(underlying: bytes, kind: int, expiry: int, strike_wad: int) -> Instrument:
    """The engine's instrument for an on-chain registry entry (Clearinghouse.instrument(id))."""
    k = Kind(kind)
    name = underlying_from_bytes32(underlying)
    if k is Kind.PERP:
        return Instrument.perp(name)
    return Instrument(name, k, strike_wad / WAD, int(expiry))


def instrument_to_chain(inst: Instrument) -> tuple[bytes, int, int, int]:
    """(underlying, kind, strike WAD, expiry) as Clearinghouse.listInstrument takes them."""
    strike = round(inst.strike * WAD) if inst.is_option else 0
    return underlying_to_bytes32(inst.underlying), int(inst.kind), strike, inst.expiry

"""What went wrong, in words: contract reverts decoded by name from the contracts' ABIs, and
every error a node can answer a transaction with sorted into the few kinds the sender handles.

A revert arrives as hex (`0x6b8f2c31…`): the first four bytes select a custom error declared in
one of the contracts, the rest are its ABI-encoded arguments. `ErrorDecoder` turns that into
`LiquidatorBelowInitialMargin(equity=-12.5e18, initialMargin=40e18)`.

Send errors differ from node to node (geth, erigon, nethermind, anvil, hosted providers) and
reach Python as different exception classes (web3's `Web3RPCError` is not a `ValueError`;
connection failures come from `requests`). `classify` looks at the message whatever the class.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from offchain.errors import DpreError
from offchain.ops.logs import show_value

PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to a zero-initialized function",
}
ERROR_STRING = keccak(text="Error(string)")[:4]
PANIC = keccak(text="Panic(uint256)")[:4]


def _canonical_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item.get("components", []))
        return f"({inner}){kind[5:]}"
    return kind


class ErrorDecoder:
    """Custom-error selectors of a set of ABIs → name and decoded arguments."""

    def __init__(self, abis: Iterable[Sequence[Any]] = ()) -> None:
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            self.add(abi)

    def add(self, abi: Sequence[Any]) -> None:
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_canonical_type(i) for i in item.get("inputs", [])]
            names = [i.get("name") or f"arg{k}" for k, i in enumerate(item.get("inputs", []))]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            self.errors[selector] = (item["name"], types, names)

    def decode(self, data: bytes | str | None) -> str | None:
        """`Name(arg=value, …)` for revert data, or None when there is none."""
        if data is None:
            return None
        if isinstance(data, str):
            text = data.strip()
            if not text.startswith("0x") or not re.fullmatch(r"0x[0-9a-fA-F]*", text):
                return None
            data = bytes.fromhex(text[2:])
        if len(data) < 4:
            return None
        selector, body = data[:4], data[4:]
        try:
            if selector == ERROR_STRING:
                return f"Error({abi_decode(['string'], body)[0]!r})"
            if selector == PANIC:
                code = abi_decode(["uint256"], body)[0]
                return f"Panic(0x{code:02x}: {PANIC_CODES.get(code, 'unknown')})"
            if selector in self.errors:
                name, types, names = self.errors[selector]
                values = abi_decode(types, body) if types else ()
                return f"{name}({', '.join(f'{n}={show_value(v)}' for n, v in zip(names, values))})"
        except Exception:  # malformed arguments: still name the error
            if selector in self.errors:
                return f"{self.errors[selector][0]}(…)"
        return f"unknown error 0x{selector.hex()}"

    def name(self, data: bytes | str | None) -> str | None:
        """Just the error's name (`PayersNotSettled`), or None."""
        text = self.decode(data)
        return text.split("(", 1)[0] if text else None

    def describe(self, err: BaseException) -> str:
        """A revert exception (web3's ContractCustomError / ContractLogicError, or an RPC error
        carrying revert data) as readable text."""
        data = revert_data(err)
        decoded = self.decode(data) if data else None
        if decoded:
            return decoded
        return error_message(err)


def revert_data(err: BaseException) -> str | None:
    """The hex revert data an exception carries, wherever web3 or the node put it."""
    data = getattr(err, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return data
    for arg in getattr(err, "args", ()):
        if isinstance(arg, dict):
            inner = arg.get("data")
            if isinstance(inner, dict):
                inner = inner.get("data")
            if isinstance(inner, str) and inner.startswith("0x") and len(inner) >= 10:
                return inner
        if isinstance(arg, str):
            match = re.search(r"0x[0-9a-fA-F]{8,}", arg)
            if match and ("revert" in arg.lower() or arg.startswith("0x")):
                return match.group(0)
    return None


def error_message(err: BaseException) -> str:
    """The node's message for an error, without web3's boilerplate."""
    for arg in getattr(err, "args", ()):
        if isinstance(arg, dict) and arg.get("message"):
            return str(arg["message"])
    message = getattr(err, "message", None)
    if isinstance(message, str) and message:
        return message
    return str(err) or type(err).__name__


class KeeperError(DpreError):
    """Something the keeper tried did not happen: a quote, an attestation, a transaction. The
    keeper logs it and retries later; it is never a request's fault, so it has no kind."""


class SendError(enum.Enum):
    """What a node's refusal of a transaction means for the sender."""

    NONCE_TOO_LOW = "nonce too low"  # the nonce was used: ours was mined, or something else took it
    NONCE_TOO_HIGH = "nonce too high"  # a gap: an earlier nonce of ours is missing from the pool
    REPLACEMENT_UNDERPRICED = "replacement underpriced"  # same nonce in the pool, fees not raised enough
    UNDERPRICED = "underpriced"  # below the pool's minimum tip / price
    ALREADY_KNOWN = "already known"  # this exact transaction is already in the pool
    FEE_BELOW_BASE_FEE = "fee below base fee"  # maxFeePerGas < the block's base fee
    INSUFFICIENT_FUNDS = "insufficient funds"  # not enough ETH for gas × maxFee + value
    GAS = "gas limit"  # intrinsic gas too low / above the block gas limit
    REVERT = "revert"  # execution would revert (nodes that simulate on send)
    CONNECTION = "connection"  # no answer: the transaction may or may not have arrived
    RPC = "rpc error"  # any other error answer

    @property
    def resync(self) -> bool:
        """Whether the local nonce may be wrong after this error."""
        return self in (SendError.NONCE_TOO_LOW, SendError.NONCE_TOO_HIGH, SendError.CONNECTION, SendError.RPC)


_PATTERNS: list[tuple[SendError, tuple[str, ...]]] = [
    (
        SendError.ALREADY_KNOWN,
        (
            "already known",
            "already imported",
            "known transaction",
            "alreadyknown",
            "transaction already exists",
            "already in mempool",
            "tx already in",
        ),
    ),
    (
        SendError.REPLACEMENT_UNDERPRICED,
        (
            "replacement transaction underpriced",
            "replacement underpriced",
            "replacement fee too low",
            "replacementnotallowed",
            "could not replace",
        ),
    ),
    (
        SendError.NONCE_TOO_LOW,
        (
            "nonce too low",
            "nonce is too low",
            "oldnonce",
            "invalid nonce; got",
            "nonce has already been used",
            "already been used",
        ),
    ),
    (
        SendError.NONCE_TOO_HIGH,
        ("nonce too high", "nonce is too high", "nonce gap", "futurenonce", "nonce exceeds", "too far in the future"),
    ),
    (
        SendError.FEE_BELOW_BASE_FEE,
        (
            "less than block base fee",
            "fee cap less than block base fee",
            "max fee per gas less than",
            "maxfeepergas less than",
            "feecap too low",
            "fee cap too low",
            "below base fee",
            "less than base fee",
            "feetoolow",
        ),
    ),
    (
        SendError.UNDERPRICED,
        (
            "transaction underpriced",
            "underpriced",
            "gas price too low",
            "tip too low",
            "max priority fee per gas higher than max fee",
            "priority fee too low",
        ),
    ),
    (SendError.INSUFFICIENT_FUNDS, ("insufficient funds", "insufficient balance", "insufficientfunds")),
    (
        SendError.GAS,
        ("intrinsic gas too low", "exceeds block gas limit", "gas limit reached", "out of gas", "gas too low"),
    ),
    (SendError.REVERT, ("execution reverted", "revert")),
]


@dataclass(frozen=True)
class ClassifiedError:
    kind: SendError
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


def classify(err: BaseException) -> ClassifiedError:
    """The kind of a send error, for any exception class a web3 call can raise."""
    message = error_message(err)
    text = f"{message} {err}".lower()
    for kind, needles in _PATTERNS:
        if any(n in text for n in needles):
            return ClassifiedError(kind, message)
    name = type(err).__name__
    if isinstance(err, (ConnectionError, TimeoutError, OSError)) or any(
        w in name for w in ("Connection", "Timeout", "ProtocolError", "ChunkedEncoding")
    ):
        return ClassifiedError(SendError.CONNECTION, f"{name}: {message}")
    return ClassifiedError(SendError.RPC, f"{name}: {message}")

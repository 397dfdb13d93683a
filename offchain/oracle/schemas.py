"""The oracle API's request bodies and parameters as strict models: what a signer will consider
at all. Anything else is a 400 that names the field, and nothing is signed.

Integers are JSON integers or decimal strings (JSON numbers lose precision above 2^53), within
the range of the Solidity type they end up in; never booleans, fractions, NaN or Infinity.
Addresses are 0x and 40 hex digits; a mixed-case one must carry a valid EIP-55 checksum (a typo
must not name another account); the zero address is no account. Amounts are WAD (18 decimals);
times are unix seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from eth_utils.address import to_checksum_address
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

DECIMAL = re.compile(r"0|-?[1-9][0-9]{0,79}")  # one spelling per number: no leading zeros, no -0
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _bounds(sol: str, minimum: int | None) -> tuple[int, int]:
    bits = int(sol.removeprefix("u").removeprefix("int") or 256)
    low, high = (0, 2**bits - 1) if sol.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return (low if minimum is None else max(low, minimum)), high


def _int_check(sol: str, minimum: int | None = None) -> BeforeValidator:
    """The validator of an integer field bound for Solidity type `sol` (and at least `minimum`)."""
    low, high = _bounds(sol, minimum)

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("an integer (or a decimal string of one) is required")
        if isinstance(value, str):
            if not DECIMAL.fullmatch(value):
                raise ValueError("not a decimal integer")
            value = int(value)
        if not low <= value <= high:
            raise ValueError(f"out of range: must be in [{low}, {high}]" if high < 2**70 else f"out of range for {sol}")
        return value

    return BeforeValidator(check)


def _int_schema(sol: str, minimum: int | None = None, description: str = "") -> WithJsonSchema:
    low, high = _bounds(sol, minimum)
    return WithJsonSchema(
        {
            "description": description or sol,
            "anyOf": [
                {"type": "integer", "minimum": low, "maximum": high},
                {"type": "string", "pattern": "^(0|-?[1-9][0-9]*)$"},
            ],
        }
    )


def _address(value: Any) -> str:
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        raise ValueError("not an address (0x followed by 40 hex digits)")
    digits = value[2:]
    checksummed = to_checksum_address(value)
    if digits not in (digits.lower(), digits.upper()) and checksummed != value:
        raise ValueError("mixed-case address with a wrong EIP-55 checksum (a typo would name another account)")
    if int(digits, 16) == 0:
        raise ValueError("the zero address is no account")
    return checksummed


Account = Annotated[
    str,
    BeforeValidator(_address),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$", "description": "an account address"}),
]
BlockNumber = Annotated[
    int, _int_check("uint64"), _int_schema("uint64", description="answer for the state at least at this block")
]
Uint256 = Annotated[int, _int_check("uint256"), _int_schema("uint256")]
# -2^255 has no negation in int256: the contract could never fill it
Size = Annotated[
    int, _int_check("int256", -(2**255) + 1), _int_schema("int256", -(2**255) + 1, "contracts in WAD, signed; nonzero")
]
PositiveWad = Annotated[int, _int_check("uint256", 1), _int_schema("uint256", 1, "WAD, above zero")]
Deadline = Annotated[int, _int_check("uint64", 1), _int_schema("uint64", 1, "unix seconds")]
Expiry = Annotated[
    int, _int_check("uint64", 1), _int_schema("uint64", 1, "unix seconds; a listed expiry of the underlying")
]


def nonzero(value: int) -> int:
    if value == 0:
        raise ValueError("must not be zero")
    return value


def _distinct(accounts: list[str]) -> list[str]:
    seen = set()
    for i, a in enumerate(accounts):
        if a in seen:
            raise ValueError(f"each account at most once (item {i} repeats {a})")
        seen.add(a)
    return accounts


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def body(self) -> dict[str, Any]:
        """The request as the oracle core takes it (normalised: checksummed, integers)."""
        return self.model_dump(exclude_none=True)


class MarginRequest(Strict):
    """An account's current portfolio, for a withdrawal."""

    account: Account
    min_block: BlockNumber | None = None


class OrderFields(Strict):
    maker: Account
    instrument_id: Uint256
    size: Annotated[Size, AfterValidator(nonzero)]
    price: PositiveWad
    nonce: Uint256
    deadline: Deadline


class TradeRequest(Strict):
    """Post-trade attestations of both sides of a fill of a maker's signed order."""

    order: OrderFields
    fill_amount: PositiveWad
    taker: Account
    min_block: BlockNumber | None = None


class LiquidationRequest(Strict):
    """Accounts to liquidate (each once) and the liquidator taking the slices."""

    accounts: Annotated[list[Account], Field(min_length=1, max_length=50), AfterValidator(_distinct)]
    liquidator: Account
    min_block: BlockNumber | None = None


class AdlRequest(Strict):
    """The ADL plan of a bankrupt account."""

    account: Account
    min_block: BlockNumber | None = None


class SettlementRequest(Strict):
    """The settlement price of an underlying at one of its listed, passed expiries."""

    underlying: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,31}$", description="e.g. ETH")]
    expiry: Expiry
    min_block: BlockNumber | None = None


class SnapshotRequest(Strict):
    """A heartbeat or whole-book commitment at the signer's newest snapshot."""

    min_block: BlockNumber | None = None


ATTEST_MODELS: dict[str, type[Strict]] = {
    "margin": MarginRequest,
    "trade": TradeRequest,
    "liquidation": LiquidationRequest,
    "adl": AdlRequest,
    "settlement": SettlementRequest,
    "heartbeat": SnapshotRequest,
    "commitment": SnapshotRequest,
}

Endpoint = Literal["margin", "trade", "liquidation", "adl", "settlement", "heartbeat", "commitment"]


class CosignRequest(Strict):
    """Another signer's proposal for `request` at `endpoint`, to be signed if it matches."""

    endpoint: Endpoint
    request: dict[str, Any]
    proposal: dict[str, Any]
    signatures: dict[str, str]  # the proposer's signature of each proposal item (0x-hex)
    numbers: dict[str, Any] | None = None


Root = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="a commitment root")]
MaxRatio = Annotated[
    float, Field(gt=0, le=1000, allow_inf_nan=False, description="equity / maintenance margin below which to list")
]
AccountList = Annotated[
    str,
    Field(
        max_length=50 * 43,
        pattern=r"^0x[0-9a-fA-F]{40}(,0x[0-9a-fA-F]{40}){0,49}$",
        description="comma-separated account addresses (at most 50)",
    ),
]

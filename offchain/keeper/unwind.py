"""Unwinding: the keeper trades away what its liquidations left in its book, so its capacity does
not shrink as the crash goes on (`./dpre bench keeper-capacity` measures the difference).

The keeper asks a configured market maker (`--market-maker URL`, the adapter in
`offchain/marketmaker.py`) to take its largest live position at a signed price, checks the price
against the oracle's mark (`--unwind-max-spread-bps`), and fills that order as the taker with the
oracle's trade attestations. One unwind at a time, between liquidations: both change the keeper's
portfolio, which its next liquidation attests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from eth_utils import to_checksum_address

from offchain.attest.messages import Order
from offchain.keeper.errors import KeeperError
from offchain.risk.units import WAD


PRICE_TICK = 10**12  # prices are quoted in millionths of a collateral unit


class QuoteRefused(KeeperError):
    """No usable quote: the market maker refused or was unreachable, or its price is too far off."""


@dataclass(frozen=True)
class Quote:
    order: Order
    signature: bytes

    def wire_order(self) -> dict[str, Any]:
        o = self.order
        return {
            "maker": o.maker,
            "instrument_id": o.instrument_id,
            "size": str(o.size),
            "price": str(o.price),
            "nonce": o.nonce,
            "deadline": o.deadline,
        }


class MarketMakerClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout

    def quote(self, instrument_id: int, size: int, taker: str) -> Quote:
        """A signed order by which the market maker takes `size` (+ it buys) from `taker`."""
        try:
            r = httpx.post(
                self.url + "/v1/quote",
                json={"instrument_id": instrument_id, "size": str(size), "taker": taker},
                timeout=self.timeout,
            )
        except httpx.TransportError as err:
            raise QuoteRefused(f"market maker unreachable: {type(err).__name__}") from None
        try:
            data = r.json()
        except ValueError:
            raise QuoteRefused(f"market maker answered {r.status_code} with no JSON") from None
        if r.status_code != 200:
            detail = data.get("error", "") if isinstance(data, dict) else ""
            raise QuoteRefused(f"market maker answered {r.status_code}: {detail}")
        try:
            o = data["order"]
            order = Order(
                to_checksum_address(o["maker"]),
                int(o["instrument_id"]),
                int(o["size"]),
                int(o["price"]),
                int(o["nonce"]),
                int(o["deadline"]),
            )
            return Quote(order, bytes.fromhex(str(data["signature"]).removeprefix("0x")))
        except (KeyError, TypeError, ValueError) as err:
            raise QuoteRefused(f"market maker answered a malformed quote: {err}") from None


def largest_position(positions: dict[int, int], marks: dict[int, float]) -> tuple[int, int] | None:
    """(instrument id, size) of the position worth most at the marks, among those with a mark
    (live instruments) and a bid (a long marked below one price tick is left to expire); None
    when there is none."""
    priced = [
        (abs(size) * abs(marks[i]), i, size)
        for i, size in positions.items()
        if size and i in marks and not (size > 0 and abs(marks[i]) < PRICE_TICK / WAD)
    ]
    if not priced:
        return None
    _, instrument_id, size = max(priced)
    return instrument_id, size


def check_quote(quote: Quote, instrument_id: int, size: int, mark: float, max_spread_bps: int) -> None:
    """The quote must take exactly the position asked, at no worse than the mark by
    `max_spread_bps` (raises QuoteRefused why not)."""
    o = quote.order
    if o.instrument_id != instrument_id or o.size != size:
        raise QuoteRefused(
            f"quote is for {o.size / WAD} of instrument {o.instrument_id}, " f"asked {size / WAD} of {instrument_id}"
        )
    price = o.price / WAD
    # the keeper sells (market maker buys, size > 0) at no less than mark − spread, buys at no
    # more than mark + spread; one price tick always passes (an option marked below it costs one)
    worst = max(abs(mark) * max_spread_bps / 10_000, PRICE_TICK / WAD)
    if (size > 0 and price < mark - worst) or (size < 0 and price > mark + worst):
        raise QuoteRefused(f"quote price {price:,.6f} is more than {max_spread_bps} bps from the mark {mark:,.6f}")

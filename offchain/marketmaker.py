"""A market maker that quotes keepers unwinding what they liquidated: the adapter behind the
keeper's `--market-maker URL`.

The contract between them is one call: `POST /v1/quote {"instrument_id", "size", "taker"}` asks
the market maker to take `size` contracts (+ it buys, − it sells) from `taker`; the answer is an
EIP-712 `Order` signed by the market maker's account, `{"order": {...}, "signature": "0x…"}`,
which the taker fills with the oracle's trade attestations (`Clearinghouse.fillOrder`). A venue
plugs in its own market makers behind that call; this reference one, for local runs and tests,
prices at the oracle's mark (`GET /v1/marks`) less `spread_bps` when it buys and plus when it
sells, and leaves its own margin to the oracle (a trade that would put it below IM gets no
attestation). An order names no taker: whoever holds it may fill it until its deadline. So the
market maker keeps the notional of its unexpired quotes, at the quoted prices, within its limit,
quotes for `ttl` seconds only, bids nothing for an option marked below one price tick, and
should listen where only its keepers reach it (127.0.0.1 by default).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import signal
import threading
import time
from typing import Annotated, Any

from fastapi.responses import Response
from pydantic import AfterValidator

from eth_account import Account
from prometheus_client import CollectorRegistry, Counter
from eth_utils import is_address, to_checksum_address

from offchain.attest.eip712 import Domain, sign
from offchain.attest.messages import Order
from offchain.chain.deploy import Deployment
from offchain.oracle.client import OracleClient, OracleRefused
from offchain.keeper.unwind import PRICE_TICK
from offchain.ops.web import HttpError, HttpLimits, HttpService, create_app, ok
from offchain.oracle.schemas import Account as AccountAddress
from offchain.oracle.schemas import Size, Strict, Uint256, nonzero
from offchain.ops.logs import event, setup
from offchain.risk.units import WAD

log = logging.getLogger("dpre.marketmaker")


class QuoteRequest(Strict):
    """Take `size` contracts (+ the market maker buys, − it sells) of an instrument from `taker`."""

    instrument_id: Uint256
    size: Annotated[Size, AfterValidator(nonzero)]
    taker: AccountAddress


def quote_price(mark: float, size: int, spread_bps: int) -> int:
    """The WAD price at which the market maker takes `size` (+ buys, − sells): the mark less the
    spread when it buys, plus when it sells, on the price tick, never below one tick."""
    if size > 0:
        ticks = math.floor(mark * (1 - spread_bps / 10_000) * 1e6)
    else:
        ticks = math.ceil(mark * (1 + spread_bps / 10_000) * 1e6)
    return max(ticks, 1) * PRICE_TICK


class MarketMaker:
    def __init__(
        self,
        key: str,
        domain: Domain,
        oracle: OracleClient,
        spread_bps: int = 25,
        max_notional: float = 1_000_000.0,
        ttl_seconds: int = 30,
    ) -> None:
        self.account = Account.from_key(key)
        self.domain, self.oracle = domain, oracle
        self.spread_bps, self.max_notional, self.ttl = spread_bps, max_notional, ttl_seconds
        self._nonces = itertools.count(int(time.time() * 1000))  # unique across restarts
        self._lock = threading.Lock()
        self._live: list[tuple[int, float]] = []  # (deadline, notional) of the quotes signed
        self.quotes = 0

    def quote(self, body: dict[str, Any]) -> dict[str, Any]:
        instrument_id, size, taker = _field_int(body, "instrument_id"), _field_int(body, "size"), body.get("taker")
        if size == 0:
            raise HttpError(400, "size: must be non-zero (+ the market maker buys, − it sells)")
        if not isinstance(taker, str) or not is_address(taker):
            raise HttpError(400, "taker: must be a 0x-prefixed 20-byte address")
        if to_checksum_address(taker) == self.account.address:
            raise HttpError(400, "taker: the market maker does not trade with itself")
        try:
            marks = self.oracle.get("/v1/marks")
        except (OracleRefused, OSError) as err:
            raise HttpError(503, f"no mark to quote from: {err}") from None
        mark = marks["marks"].get(str(instrument_id))
        if mark is None:
            raise HttpError(404, f"instrument_id: {instrument_id} has no mark (unknown, expired or unpriced)")
        price = quote_price(float(mark), size, self.spread_bps)
        if size > 0 and price / WAD > float(mark):
            raise HttpError(409, f"instrument_id: {instrument_id} is marked {mark}, below one price tick: no bid")
        notional = abs(size) / WAD * price / WAD  # what the order commits at its own price
        now = int(marks["block_time"])
        with self._lock:
            self._live = [(d, n) for d, n in self._live if d > now]
            live = sum(n for _, n in self._live)
            if live + notional > self.max_notional:
                raise HttpError(
                    409,
                    f"size: notional {notional:,.2f} with {live:,.2f} of live quotes exceeds this "
                    f"market maker's limit {self.max_notional:,.2f}",
                )
            self._live.append((now + self.ttl, notional))
            nonce = next(self._nonces)
            self.quotes += 1
        order = Order(self.account.address, instrument_id, size, price, nonce, now + self.ttl)
        event(
            log, "quoted", instrument_id=instrument_id, size=size / WAD, price=order.price / WAD, mark=mark, taker=taker
        )
        return {
            "order": {
                "maker": order.maker,
                "instrument_id": order.instrument_id,
                "size": str(order.size),
                "price": str(order.price),
                "nonce": order.nonce,
                "deadline": order.deadline,
            },
            "signature": "0x" + sign(self.account.key, self.domain, order).hex(),
            "mark": mark,
        }


def _field_int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise HttpError(400, f"{name}: required, an integer (or a decimal string of one)")
    try:
        return int(value)
    except ValueError:
        raise HttpError(400, f"{name}: {value!r} is not an integer") from None


def run_market_maker(args: argparse.Namespace) -> int:
    logger = setup("market-maker", args.log_level)
    deployment = Deployment.load(args.deployment)
    key = os.environ.get(args.key_env, "")
    if not key:
        raise SystemExit(f"--key-env: environment variable {args.key_env} is empty")
    mm = MarketMaker(
        key,
        Domain(deployment.chain_id, deployment.clearinghouse),
        OracleClient(args.oracle),
        args.spread_bps,
        args.max_notional,
        args.ttl,
    )
    registry = CollectorRegistry()
    quotes = Counter("market_maker_quotes", "Quotes signed", registry=registry)
    limits = HttpLimits.from_args(args)
    app = create_app("DPRE reference market maker", registry, limits)

    @app.get("/health")
    def health() -> Response:
        return ok({"status": "ok", "address": mm.account.address, "quotes": mm.quotes})

    @app.post("/v1/quote", summary="A signed order taking the other side of a keeper's unwind")
    def quote(body: QuoteRequest) -> Response:
        answer = mm.quote(body.model_dump())
        quotes.inc()
        return ok(answer)

    server = HttpService(app, args.host, args.port, limits)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.serve_in_thread()
    event(logger, "market maker up", address=mm.account.address, port=server.port, spread_bps=args.spread_bps)
    stop.wait()
    server.shutdown()
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser("market-maker", help="a reference market maker quoting keepers that unwind")
    m.add_argument("--deployment", required=True)
    m.add_argument("--oracle", required=True, help="oracle gateway base URL (for marks)")
    m.add_argument("--key-env", required=True, help="environment variable holding the market maker's hex private key")
    m.add_argument("--spread-bps", type=int, default=25, help="below the mark when buying, above when selling")
    m.add_argument(
        "--max-notional",
        type=float,
        default=1_000_000.0,
        help="most notional of unexpired quotes at once, in collateral units",
    )
    m.add_argument("--ttl", type=int, default=30, help="seconds a quote stays fillable")
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=8700)
    HttpLimits.add_arguments(m)
    m.add_argument("--log-level", default="INFO")
    m.set_defaults(handler=run_market_maker)

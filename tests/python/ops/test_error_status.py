"""Domain errors → HTTP statuses, in one place (offchain/ops/web.py: status_of), over a real
socket: each kind answers its status with a body naming the field or the reason, an error of no
kind is a 500, and the request counter labels each answer with the status that was sent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from offchain.attest.liquidation import NotLiquidatable
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from offchain.sim.http_calls import wait_for
from offchain.ops.web import HttpError, HttpLimits, HttpService, create_app, status_of
from offchain.oracle.core import OracleBadRequest, OracleConflict, OracleNotFound, OracleUnavailable
from offchain.oracle.market_sources import FeedUnreadable, MarketUnavailable, NoSettlementReading, UnknownUnderlying
from offchain.risk.errors import RiskError

CASES: list[tuple[BaseException, int, str]] = [
    (OracleBadRequest("account: 'bob' is not an address (0x followed by 40 hex digits)"), 400, "account: 'bob'"),
    (OracleNotFound("account 0xabc has never deposited or traded on this deployment"), 404, "never deposited"),
    (OracleConflict("0xabc is not liquidatable: equity 10.00 ≥ MM 5.00"), 409, "not liquidatable"),
    (OracleUnavailable("no attestation: market data for ETH is unavailable (stale)"), 503, "market data for ETH"),
    (MarketUnavailable("ETH", "price feed stale: last update 90s ago"), 503, "ETH: price feed stale"),
    (UnknownUnderlying("no settlement price: no price feed configured for DOGE"), 400, "DOGE"),
    (NoSettlementReading("no settlement price: no round at or before the expiry 1000"), 409, "expiry 1000"),
    (FeedUnreadable("no settlement price: price feed of ETH unreadable: timeout"), 503, "unreadable"),
    (HttpError(418, "size: no teapots", field="size"), 418, "size: no teapots"),
    # no kind: no request should cause these, so they are bugs
    (RiskError("vol 9.0 is outside [0.01, 5.0]"), 500, "internal error (request "),
    (NotLiquidatable("equity 10 is not below maintenance margin 5"), 500, "internal error (request "),
    (KeyError("oops"), 500, "internal error (request "),
]


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def served() -> Any:
    registry = CollectorRegistry()
    app = create_app("errors", registry, HttpLimits())
    for i, (error, _, _) in enumerate(CASES):

        def fail(error: BaseException = error) -> Response:
            raise error

        app.get(f"/case/{i}")(lambda fail=fail: fail())
    server = HttpService(app, "127.0.0.1", 0, HttpLimits())
    server.serve_in_thread()
    try:
        yield f"http://127.0.0.1:{server.port}", registry
    finally:
        server.shutdown()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{type(e).__name__}-{s}" for e, s, _ in CASES])
def test_each_kind_answers_its_status_naming_the_reason(served: Any, i: int) -> None:
    base, registry = served
    error, expected, named = CASES[i]
    status, body = _get(f"{base}/case/{i}")
    assert status == expected, body
    assert named in body["error"], body
    if isinstance(error, HttpError):
        assert body["field"] == "size", "an HttpError's details come along"
    if expected == 500:  # a bug: the body names no internals, only the request id to find the log line
        assert type(error).__name__ not in body["error"] and body["request_id"] in body["error"]
    labels = {"route": f"/case/{i}", "status": str(expected)}  # the counter's label is the status sent
    # counted once the answer is out: poll briefly
    wait_for(lambda: registry.get_sample_value("dpre_http_requests_total", labels) == 1.0, 2, "the count")


def test_status_of_is_the_mapping() -> None:
    for error, expected, _ in CASES:
        assert status_of(error) == (None if expected == 500 else expected), error
    assert status_of(OracleConflict("x")) == 409 and status_of(OracleUnavailable("x", lasting=False)) == 503

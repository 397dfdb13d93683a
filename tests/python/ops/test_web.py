"""The services' HTTP layer (offchain/ops/web.py) over real sockets, with small limits: routing and
JSON errors, rate limit and overload with Retry-After, metrics that count crashes as 500, request
ids, and what a hostile client can make a process hold (raw sockets: half-sent requests, idle
connections, oversized and lying bodies, floods)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from offchain.ops.web import HttpError, HttpLimits, HttpService, TokenBucket, create_app, ok
from offchain.oracle.schemas import MarginRequest
from offchain.sim.http_calls import wait_for

LIMITS = HttpLimits(
    max_body_bytes=2048,
    read_timeout=1.0,
    idle_timeout=1.0,
    max_connections=8,
    max_in_flight=2,
    rate=1000.0,
    burst=2000,
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int, CollectorRegistry, dict[str, Any]]]:
    registry = CollectorRegistry()
    seen: dict[str, Any] = {"calls": 0}
    release = threading.Event()
    seen["release"] = release
    app = create_app("test", registry, LIMITS)

    @app.get("/hello/{name}")
    def hello(name: str, n: int = 0) -> Response:
        if name == "nobody":
            raise HttpError(404, "no such name", name=name, status="unknown")
        return ok({"hello": name, "n": n})

    @app.get("/crash")
    def crash() -> Response:
        raise KeyError("secret internals")

    @app.post("/margin")
    def margin(body: MarginRequest) -> Response:
        seen["calls"] += 1
        return ok(body.body())

    @app.post("/raw")
    async def raw(request: Request) -> Response:
        seen["calls"] += 1
        return ok({"bytes": len(await request.body())})

    @app.get("/slow")
    def slow() -> Response:
        release.wait(10)
        return ok({"slow": True})

    service = HttpService(app, "127.0.0.1", 0, LIMITS)
    service.serve_in_thread()
    try:
        yield "127.0.0.1", service.port, registry, seen
    finally:
        release.set()
        service.shutdown()


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        kind = r.getheader("content-type") or ""
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(data) if "json" in kind else data
    finally:
        conn.close()


def raw_exchange(port: int, payload: bytes, wait: float = 3.0) -> bytes:
    """Sends `payload` on a fresh connection and reads until the server closes it (or `wait`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(payload)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            out += b"<still open>"
        return out


def sample(registry: CollectorRegistry, route: str, status: int) -> float:
    return registry.get_sample_value("dpre_http_requests_total", {"route": route, "status": str(status)}) or 0.0


# ---------------------------------------------------------------------------------- answers


def test_routes_errors_and_request_ids(served: Any) -> None:
    _, port, registry, _ = served
    status, headers, body = request(port, "GET", "/hello/ada?n=2")
    assert (status, body) == (200, {"hello": "ada", "n": 2}) and headers["x-request-id"]
    status, _, body = request(port, "GET", "/hello/nobody")
    assert status == 404 and body["error"] == "no such name" and body["name"] == "nobody"
    assert body["status"] == "unknown", "details come along, whatever their names"
    status, _, body = request(port, "GET", "/hello/ada?n=abc")
    assert status == 400 and body["error"].startswith("n:"), body
    status, _, body = request(port, "GET", "/hello/ada?nn=2")
    assert status == 400 and body["error"].startswith("nn: unknown query parameter"), body
    status, _, body = request(port, "GET", "/nowhere")
    assert status == 404 and "no route GET /nowhere" in body["error"]
    status, headers, body = request(port, "GET", "/margin")
    assert status == 405 and "POST" in headers["allow"] and "error" in body
    status, _, body = request(port, "DELETE", "/hello/ada")
    assert status == 405 and "error" in body  # JSON, never an HTML page
    # a crash: 500 with the request id and no internals, counted as a 500
    before = sample(registry, "/crash", 500)
    status, headers, body = request(port, "GET", "/crash", headers={"X-Request-ID": "abc-123"})
    assert status == 500 and body["request_id"] == "abc-123" == headers["x-request-id"]
    assert "secret" not in json.dumps(body) and "KeyError" not in json.dumps(body)
    wait_for(lambda: sample(registry, "/crash", 500) == before + 1, 2, "the crash counted")
    assert sample(registry, "/hello/{name}", 200) >= 1  # labelled by template, not by the raw path


def test_strict_bodies_name_the_field_and_reach_no_handler(served: Any) -> None:
    _, port, _, seen = served
    calls = seen["calls"]
    good = "0x" + "ab" * 20
    cases = [
        (b'{"account": "nope"}', "account: not an address"),
        (json.dumps({"account": good, "extra": 1}).encode(), "extra: unknown field"),
        (json.dumps({"account": good, "min_block": True}).encode(), "min_block: an integer"),
        (json.dumps({"account": good, "min_block": 1.5}).encode(), "min_block: an integer"),
        (json.dumps({"account": good, "min_block": -1}).encode(), "min_block: out of range"),
        (json.dumps({"account": good, "min_block": 2**64}).encode(), "min_block: out of range"),
        (json.dumps({"account": "0x" + "00" * 20}).encode(), "account: the zero address"),
        (json.dumps({"account": "0xAbCd" + "ab" * 18}).encode(), "account: mixed-case address with a wrong EIP-55"),
        (b'{"account": "' + good.encode() + b'", "min_block": NaN}', "NaN is not a number JSON allows"),
        (b'{"account": Infinity}', "Infinity is not a number JSON allows"),
        (b"{not json", "not valid JSON"),
        (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (b'{"account": "\xff\xfe"}', "not UTF-8"),
        (b"", "required"),
        (b"[]", "body"),
    ]
    for raw, expected in cases:
        status, _, body = request(port, "POST", "/margin", raw, {"Content-Type": "application/json"})
        assert status == 400 and expected in body["error"], (raw[:60], body)
        assert len(body["error"]) < 400, "the offending value is not echoed back in full"
    assert seen["calls"] == calls, "no invalid request reached the handler"
    status, _, body = request(
        port, "POST", "/margin", json.dumps({"account": good.upper().replace("0X", "0x")}).encode()
    )
    assert status == 200 and body["account"] == "0x" + "AB" * 20 or body["account"].lower() == good


def test_rate_limit_and_overload_answer_at_once_with_retry_after() -> None:
    registry = CollectorRegistry()
    limits = HttpLimits(rate=1.0, burst=3, max_in_flight=1)
    app = create_app("limits", registry, limits)
    release = threading.Event()

    @app.get("/slow")
    def slow() -> Response:
        release.wait(10)
        return ok({})

    @app.get("/fast")
    def fast() -> Response:
        return ok({})

    service = HttpService(app, "127.0.0.1", 0, limits)
    service.serve_in_thread()
    try:
        worker = threading.Thread(target=request, args=(service.port, "GET", "/slow"))
        worker.start()
        time.sleep(0.3)
        start = time.monotonic()
        status, headers, body = request(service.port, "GET", "/fast")
        assert status == 503 and headers["retry-after"] == "1" and "overloaded" in body["error"]
        assert time.monotonic() - start < 1.0, "refused at once, not queued"
        release.set()
        worker.join()
        assert request(service.port, "GET", "/fast")[0] == 200  # the burst's third token
        status, headers, body = request(service.port, "GET", "/fast")
        assert status == 429 and int(headers["retry-after"]) >= 1 and "rate limit" in body["error"]
        status, _, text = request(service.port, "GET", "/metrics")  # never rate limited
        assert (
            status == 200 and b'dpre_http_requests_total{route="unrouted",status="503"} 1.0' in text
        )  # refused before routing
    finally:
        release.set()
        service.shutdown()


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(rate=1000.0, burst=1)
    assert bucket.wait("a") == 0 and bucket.wait("b") == 0  # per client
    assert bucket.wait("a") > 0
    time.sleep(0.01)
    assert bucket.wait("a") == 0


# ---------------------------------------------------------------------------------- abuse


def test_half_sent_request_and_idle_connection_are_closed_in_time(served: Any) -> None:
    _, port, _, seen = served
    calls = seen["calls"]
    for payload in (
        b"GET /hello/ada HTTP/1.1\r\nHost: x\r\n",  # headers never finished
        b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # body never finished
        b"",  # connected, never a byte
    ):
        start = time.monotonic()
        out = raw_exchange(port, payload, wait=5.0)
        took = time.monotonic() - start
        assert b"<still open>" not in out and took < LIMITS.read_timeout + 1.5, (payload, took, out)
    assert seen["calls"] == calls, "a request never complete is never dispatched"
    # a keep-alive connection that answered once and then idles is closed after idle_timeout
    start = time.monotonic()
    out = raw_exchange(port, b"GET /hello/ada HTTP/1.1\r\nHost: x\r\n\r\n", wait=5.0)
    assert out.startswith(b"HTTP/1.1 200") and time.monotonic() - start < LIMITS.idle_timeout + 1.5


def test_bodies_over_the_limit_or_lying_are_refused(served: Any) -> None:
    _, port, _, seen = served
    calls = seen["calls"]
    # declared too large: 413 at once, without reading, and the connection closed
    start = time.monotonic()
    out = raw_exchange(port, b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 500000000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413") and b"<still open>" not in out and time.monotonic() - start < 1.0
    # chunked, growing past the limit
    chunk = b"800\r\n" + b"a" * 0x800 + b"\r\n"
    out = raw_exchange(port, b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3)
    assert out.startswith(b"HTTP/1.1 413"), out[:80]
    for length in (b"-1", b"abc", b"10000000000000"):
        out = raw_exchange(port, b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}")
        assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 413"), (length, out[:80])
    assert seen["calls"] == calls
    # a chunked body within the limit is read, not ignored
    small = b"2\r\n{}\r\n0\r\n\r\n"
    out = raw_exchange(
        port, b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + small
    )
    assert out.startswith(b"HTTP/1.1 200") and b'"bytes":2' in out


def test_a_body_sent_to_metrics_is_not_read_as_the_next_request(served: Any) -> None:
    _, port, _, _ = served
    smuggled = b"GET /nowhere-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    payload = (
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(smuggled)).encode()
        + b"\r\n\r\n"
        + smuggled
        + b"GET /hello/bob HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    out = raw_exchange(port, payload)
    assert out.count(b"HTTP/1.1 200") == 2 and b"smuggled" not in out and b'"hello":"bob"' in out


def test_connection_flood_is_refused_while_an_open_client_keeps_its_service(served: Any) -> None:
    _, port, _, _ = served
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    client.request("GET", "/hello/ada")
    client.getresponse().read()
    flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(LIMITS.max_connections + 4)]
    try:
        time.sleep(0.2)
        refused = 0
        for s in flood[-4:]:
            s.settimeout(2)
            try:
                data = s.recv(4096)
            except TimeoutError:
                data = b""
            refused += data.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in data.lower()
        assert refused == 4, "connections beyond the cap are answered 503 with Retry-After"
        for _ in range(3):  # (its latency under the flood: ./dpre bench http)
            client.request("GET", "/hello/ada")
            r = client.getresponse()
            r.read()
            assert r.status == 200, "an open keep-alive client keeps being served"
    finally:
        for s in flood:
            s.close()
        client.close()


def test_what_a_single_hostile_client_cannot_do(served: Any) -> None:
    _, port, registry, seen = served
    calls = seen["calls"]
    # bodies trickled on more connections than the in-flight cap do not take its slots
    trickles = []
    for _ in range(LIMITS.max_in_flight + 2):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /margin HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        trickles.append(s)
    try:
        time.sleep(0.2)
        status, _, body = request(port, "GET", "/hello/ada")
        assert status == 200, body
    finally:
        for s in trickles:
            s.close()
    # framing tricks and oversized headers: refused and the connection closed
    out = raw_exchange(
        port, b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 400") and b"<still open>" not in out and b"together" in out
    out = raw_exchange(port, b"GET /hello/ada HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431") or out.startswith(b"HTTP/1.1 400"), out[:60]
    # malformed HTTP gets the services' JSON error, with a request id, and is counted
    before = sample(registry, "unrouted", 400)
    out = raw_exchange(port, b"GET /hello/ada HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b'"request_id"' in out and b"application/json" in out
    wait_for(lambda: sample(registry, "unrouted", 400) > before, 2, "the malformed request counted")
    # refusals before routing never add a label per path
    for i in range(20):
        request(port, "POST", f"/random-{i}", b"{bad", {"Content-Type": "application/json"})
    labels = {s.labels["route"] for m in registry.collect() for s in m.samples if "route" in s.labels}
    assert not any(label.startswith("/random-") for label in labels), labels
    # one spelling per number, one value per key
    good = "0x" + "ab" * 20
    for raw, expected in (
        (b'{"account": "' + good.encode() + b'", "min_block": "01"}', "min_block: not a decimal integer"),
        (b'{"account": "' + good.encode() + b'", "min_block": "-0"}', "min_block: not a decimal integer"),
        (b'{"account": "0x' + b"00" * 20 + b'", "account": "' + good.encode() + b'"}', "appears twice"),
    ):
        status, _, body = request(port, "POST", "/margin", raw, {"Content-Type": "application/json"})
        assert status == 400 and expected in body["error"], (raw, body)
    assert seen["calls"] == calls

"""The services' HTTP plumbing over real sockets: routing, JSON errors, rate limiting, metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from offchain.ops.httpserver import HttpError, JsonServer, TokenBucket


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get("Content-Type") == "application/json" else body.decode()
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_routes_errors_rate_limit_and_metrics() -> None:
    registry = CollectorRegistry()
    hits = Counter("test_hits_total", "hits", registry=registry)

    def hello(body: dict, params: dict, query: dict) -> dict:
        hits.inc()
        if params["name"] == "nobody":
            raise HttpError(404, "no such name", name=params["name"])
        return {"hello": params["name"], "n": query.get("n", ["0"])[0]}

    server = JsonServer("127.0.0.1", 0, registry, rate=1.0, burst=3)
    server.route("GET", "/hello/{name}", hello)
    server.serve_in_thread()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(base + "/hello/ada?n=2") == (200, {"hello": "ada", "n": "2"})
        assert _get(base + "/hello/nobody") == (404, {"error": "no such name", "name": "nobody"})
        assert _get(base + "/nowhere")[0] == 404
        # the burst of 3 is spent: the next request from this client is refused
        status, body = _get(base + "/hello/ada")
        assert status == 429 and "rate limit" in body["error"]
        status, text = _get(base + "/metrics")  # metrics are never rate limited
        assert status == 200 and "test_hits_total 2.0" in text
    finally:
        server.shutdown()


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(rate=1000.0, burst=1)
    assert bucket.allow("a")
    assert bucket.allow("b")  # per client
    import time

    time.sleep(0.01)
    assert bucket.allow("a")

"""HTTP APIs: a signer (one Oracle, one key) and the gateway that combines m-of-n signers.

Both serve /health, /metrics (Prometheus) and /openapi.json. Traders fetch withdrawal and trade
attestations; keepers fetch liquidation, ADL and settlement attestations and the at-risk list.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from offchain.attest.eip712 import Domain, signer_of
from offchain.attest.messages import from_wire
from offchain.ops.httpserver import HttpError, JsonServer
from offchain.ops.logs import event
from offchain.oracle.core import Oracle, OracleError

log = logging.getLogger("oracle.http")

ATTEST_ENDPOINTS = ("margin", "trade", "liquidation", "adl", "settlement")


def openapi(title: str) -> dict[str, Any]:
    """The API description (OpenAPI 3.1). Bodies are JSON; big integers are decimal strings."""
    attest = {
        "margin": ("Attestation of an account's current portfolio (for withdrawals)", {"account": "address"}),
        "trade": ("Post-trade attestations of both sides of a fill",
                  {"order": "{maker, instrument_id, size, price, nonce, deadline}", "fill_amount": "WAD", "taker": "address"}),
        "liquidation": ("Attestations of accounts to liquidate and of the liquidator after taking the slices",
                        {"accounts": "[address]", "liquidator": "address"}),
        "adl": ("ADL plan of a bankrupt account: marks, ranked queues (Merkle roots) and fills", {"account": "address"}),
        "settlement": ("Settlement price of an underlying at a passed expiry", {"underlying": "ETH", "expiry": "unix seconds"}),
    }
    paths: dict[str, Any] = {
        "/health": {"get": {"summary": "Liveness, synced block, lag and market status", "responses": {"200": {"description": "ok"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}},
        "/v1/accounts/{address}": {"get": {"summary": "Portfolio, equity and margin of an account",
                                           "parameters": [{"name": "address", "in": "path", "required": True}],
                                           "responses": {"200": {"description": "ok"}, "400": {"description": "malformed address"},
                                                         "404": {"description": "unknown account"}}}},
        "/v1/risk/accounts": {"get": {"summary": "Accounts whose equity / MM is below max_ratio, weakest first",
                                      "parameters": [{"name": "max_ratio", "in": "query", "required": False}],
                                      "responses": {"200": {"description": "ok"}}}},
    }
    for name, (summary, fields) in attest.items():
        paths[f"/v1/attest/{name}"] = {"post": {
            "summary": summary,
            "requestBody": {"content": {"application/json": {"example": fields}}},
            "responses": {"200": {"description": "signed items {type, message, signature(s)} and extra data"},
                          "400": {"description": "malformed request (the message names the field)"},
                          "404": {"description": "unknown account"},
                          "409": {"description": "impossible request (not liquidatable, expired, over the position cap)"},
                          "429": {"description": "rate limited"},
                          "503": {"description": "no trustworthy market data, or too few signers agree"}},
        }}
    return {"openapi": "3.1.0", "info": {"title": title, "version": "1"}, "paths": paths}


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dpre_requests_total", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("dpre_attestation_seconds", "Time to answer an attestation request",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.block = Gauge("dpre_synced_block", "Last block applied", registry=self.registry)
        self.lag = Gauge("dpre_block_lag", "Head minus synced block", registry=self.registry)


def _timed(metrics: Metrics, endpoint: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    status = "200"
    try:
        return fn()
    except OracleError as err:
        status = str(err.status)
        raise HttpError(err.status, str(err)) from None
    except HttpError as err:
        status = str(err.status)
        raise
    finally:
        metrics.requests.labels(endpoint, status).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def signer_server(oracle: Oracle, host: str, port: int, rate: float = 200.0) -> JsonServer:
    metrics = Metrics("signer")
    server = JsonServer(host, port, metrics.registry, rate=rate, burst=int(rate * 2))

    def health(_b: Any, _p: Any, _q: Any) -> Any:
        h = oracle.health()
        metrics.block.set(h["block"])
        metrics.lag.set(h["lag_blocks"])
        return h

    server.route("GET", "/health", health)
    server.route("GET", "/openapi.json", lambda b, p, q: openapi("DPRE risk oracle (signer)"))
    server.route("GET", "/v1/accounts/{address}",
                 lambda b, p, q: _timed(metrics, "account", lambda: oracle.account_report(p["address"])))
    server.route("GET", "/v1/risk/accounts", lambda b, p, q: _timed(
        metrics, "risk", lambda: oracle.risk_accounts(float(q.get("max_ratio", ["1.25"])[0]))))
    for name in ATTEST_ENDPOINTS:
        fn = getattr(oracle, f"attest_{name}")
        server.route("POST", f"/v1/attest/{name}", lambda b, p, q, fn=fn, name=name: _timed(metrics, name, lambda: fn(b)))
    return server


# ---------------------------------------------------------------------------------- gateway


def _http(method: str, url: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"{}")
        except json.JSONDecodeError:
            return err.code, {"error": f"HTTP {err.code}"}


class Gateway:
    """Fans each attestation request out to every signer and returns the items at least
    `threshold` of them signed identically, with their signatures combined in signer order."""

    def __init__(self, signer_urls: list[str], threshold: int, domain: Domain, allowed: list[str] | None = None,
                 timeout: float = 10.0) -> None:
        if not 1 <= threshold <= len(signer_urls):
            raise ValueError("threshold must be between 1 and the number of signers")
        self.urls, self.threshold, self.domain, self.timeout = signer_urls, threshold, domain, timeout
        self.allowed = {a.lower() for a in allowed} if allowed else None
        self.pool = ThreadPoolExecutor(max_workers=max(4, len(signer_urls) * 4))

    def _fan_out(self, path: str, body: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
        def one(url: str) -> tuple[str, int, dict[str, Any]]:
            try:
                status, data = _http("POST", url + path, body, self.timeout)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                return url, 0, {"error": f"unreachable: {getattr(err, 'reason', err)}"}
            return url, status, data

        return list(self.pool.map(one, self.urls))

    def attest(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        answers = self._fan_out(f"/v1/attest/{endpoint}", body)
        result = self._combine(answers)
        if result is None:
            # Signers at different blocks can disagree: once more, all at least at the newest one.
            newest = max((d.get("block", 0) for _, s, d in answers if s == 200), default=0)
            if newest:
                answers = self._fan_out(f"/v1/attest/{endpoint}", {**body, "min_block": newest})
                result = self._combine(answers)
        if result is not None:
            return result
        client_errors = [(s, d) for _, s, d in answers if 400 <= s < 500]
        if len(client_errors) > len(self.urls) - self.threshold:
            status, data = client_errors[0]
            raise HttpError(status, data.get("error", "rejected by the signers"))
        reasons = {url: (d.get("error") if s != 200 else "disagreed with the others") for url, s, d in answers}
        ok = sum(1 for _, s, _ in answers if s == 200)
        failures = [str(r) for r in reasons.values() if r and r != "disagreed with the others"]
        common = max(set(failures), key=failures.count) if failures else ""
        raise HttpError(503, f"refusing to attest: {ok} of {len(self.urls)} signers answered, "
                             f"{self.threshold} identical signatures are required"
                             + (f" (signers say: {common})" if common else ""), signers=reasons)

    def _combine(self, answers: list[tuple[str, int, dict[str, Any]]]) -> dict[str, Any] | None:
        groups: dict[str, list[dict[str, Any]]] = {}
        for _, status, data in answers:
            if status != 200:
                continue
            content = {k: {"type": v["type"], "message": v["message"]} for k, v in data["items"].items()}
            key = json.dumps({"items": content, "extra": data.get("extra")}, sort_keys=True)
            groups.setdefault(key, []).append(data)
        for key, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            valid = [m for m in members if self._verified(m)]
            if len(valid) < self.threshold:
                continue
            chosen = sorted(valid, key=lambda m: int(m["signer"], 16))
            first = chosen[0]
            items = {}
            for k, v in first["items"].items():
                sigs = b"".join(bytes.fromhex(m["items"][k]["signature"][2:]) for m in chosen)
                items[k] = {"type": v["type"], "message": v["message"], "signatures": "0x" + sigs.hex(),
                            "signers": [m["signer"] for m in chosen]}
            return {"block": max(m["block"] for m in chosen), "items": items, "extra": first.get("extra", {})}
        return None

    def _verified(self, member: dict[str, Any]) -> bool:
        """Every signature recovers to the signer it claims, and that signer is authorized."""
        signer = member["signer"].lower()
        if self.allowed is not None and signer not in self.allowed:
            return False
        for v in member["items"].values():
            try:
                item = from_wire(v)
                if signer_of(self.domain, item, bytes.fromhex(v["signature"][2:])).lower() != signer:
                    return False
            except (ValueError, KeyError):
                return False
        return True

    def forward(self, path: str) -> dict[str, Any]:
        errors = {}
        for url in self.urls:
            try:
                status, data = _http("GET", url + path, None, self.timeout)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                errors[url] = f"unreachable: {getattr(err, 'reason', err)}"
                continue
            if status == 200:
                return data
            if 400 <= status < 500:
                raise HttpError(status, data.get("error", "rejected"))
            errors[url] = data.get("error", f"HTTP {status}")
        raise HttpError(503, "no signer answered", signers=errors)

    def health(self) -> dict[str, Any]:
        states = {}
        for url in self.urls:
            try:
                status, data = _http("GET", url + "/health", None, 2.0)
                states[url] = data if status == 200 else {"status": f"HTTP {status}"}
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                states[url] = {"status": f"unreachable: {getattr(err, 'reason', err)}"}
        up = sum(1 for s in states.values() if s.get("status") == "ok")
        return {"status": "ok" if up >= self.threshold else "degraded", "signers_up": up,
                "threshold": self.threshold, "signers": states}


def gateway_server(gateway: Gateway, host: str, port: int, rate: float = 200.0) -> JsonServer:
    metrics = Metrics("gateway")
    server = JsonServer(host, port, metrics.registry, rate=rate, burst=int(rate * 2))
    server.route("GET", "/health", lambda b, p, q: gateway.health())
    server.route("GET", "/openapi.json", lambda b, p, q: openapi("DPRE risk oracle (gateway)"))
    server.route("GET", "/v1/accounts/{address}", lambda b, p, q: _timed(
        metrics, "account", lambda: gateway.forward(f"/v1/accounts/{p['address']}")))
    server.route("GET", "/v1/risk/accounts", lambda b, p, q: _timed(
        metrics, "risk", lambda: gateway.forward("/v1/risk/accounts?max_ratio=" + q.get("max_ratio", ["1.25"])[0])))
    for name in ATTEST_ENDPOINTS:
        server.route("POST", f"/v1/attest/{name}",
                     lambda b, p, q, name=name: _timed(metrics, name, lambda: gateway.attest(name, b)))
    event(log, "gateway configured", signers=gateway.urls, threshold=gateway.threshold)
    return server

"""A small threaded JSON HTTP server: routes, health and Prometheus metrics, per-client rate
limiting, and errors as JSON with a clear message. Standard library only.

The one place a domain error becomes an HTTP status is `status_of` below."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from offchain.errors import Conflict, DpreError, InvalidInput, NotFound, Unavailable


class HttpError(DpreError):
    """An error that carries its own status, raised by handlers that answer in HTTP terms (a body
    that is not JSON, no such route, another server's answer relayed): becomes a JSON error
    response with this status."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


# The status of each kind of failure (offchain/errors.py); a domain error answers with the status
# of the first kind it is an instance of.
STATUS_OF_KIND: tuple[tuple[type[DpreError], int], ...] = (
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
)


def status_of(err: BaseException) -> int | None:
    """The HTTP status a handler's error answers with; None for an error of no kind (a domain
    error no request should cause, or any other exception): a bug, answered with 500."""
    if isinstance(err, HttpError):
        return err.status
    for kind, status in STATUS_OF_KIND:
        if isinstance(err, kind):
            return status
    return None


Handler = Callable[[dict[str, Any], dict[str, str], dict[str, list[str]]], Any]


class TokenBucket:
    """Per-client rate limit: `rate` requests per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(client, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[client] = (tokens, now)
                return False
            self._state[client] = (tokens - 1.0, now)
            return True


class JsonServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, rate: float = 50.0, burst: int = 100) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.registry = registry
        self.limiter = TokenBucket(rate, burst)
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the services log themselves
                return

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _dispatch(self, method: str) -> None:
                url = urlparse(self.path)
                if url.path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                    return
                if not server.limiter.allow(self.client_address[0]):
                    self._send(429, json.dumps({"error": "rate limit exceeded; slow down"}).encode())
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    raw = self.rfile.read(length) if length else b""
                    body: dict[str, Any] = {}
                    if raw:
                        try:
                            body = json.loads(raw)
                        except json.JSONDecodeError as err:
                            raise HttpError(400, f"request body is not valid JSON: {err.msg}") from None
                        if not isinstance(body, dict):
                            raise HttpError(400, "request body must be a JSON object")
                    for m, pattern, handler in server.routes:
                        match = pattern.fullmatch(url.path)
                        if m == method and match:
                            result = handler(body, match.groupdict(), parse_qs(url.query))
                            self._send(200, json.dumps(result, default=str).encode())
                            return
                    raise HttpError(404, f"no route {method} {url.path}")
                except Exception as err:
                    status = status_of(err)
                    if status is None:  # a bug: answer 500 and keep serving
                        self._send(500, json.dumps({"error": f"internal error: {type(err).__name__}: {err}"}).encode())
                    else:
                        details = err.details if isinstance(err, HttpError) else {}
                        self._send(status, json.dumps({"error": str(err), **details}, default=str).encode())

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def route(self, method: str, path: str, handler: Handler) -> None:
        """`path` may hold {name} segments, passed to the handler as strings."""
        pattern = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path))
        self.routes.append((method, pattern, handler))

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

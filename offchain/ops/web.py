"""The services' HTTP layer: FastAPI applications served by uvicorn, with the limits a public
endpoint needs set in one place (`HttpLimits`, flags `--http-*` on every service).

What it guarantees, whatever the routes:
- a request must arrive whole (headers and body) within `read_timeout` of its first byte, and an
  idle keep-alive connection is closed after `idle_timeout`: a half-sent request or a parked
  connection holds nothing for long;
- a body above `max_body_bytes` is answered 413 without being read, and the connection closed;
- at most `max_connections` open connections (a new one beyond is answered 503 and closed, the
  open ones keep their service) and `max_in_flight` requests being answered (beyond: 503 at
  once with Retry-After, never queued), a per-client token bucket (429 with Retry-After);
- errors are JSON `{"error": …, "request_id": …}`: a client mistake is a 4xx naming the field;
  a 5xx is a server fault, logged as one JSON line with the request id and the traceback, and
  the body carries no internals;
- every answer is counted in `dpre_http_requests_total{route, status}` (crashes included) and
  logged as one line; a client that disconnects is one line too.

The one place a domain error becomes an HTTP status is `status_of` below."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import re
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

import h11
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from offchain.errors import Conflict, DpreError, InvalidInput, NotFound, Unavailable
from offchain.ops.logs import event

log = logging.getLogger("http")

MAX_HEADER_BYTES = 16 * 1024  # the request line and headers


class HttpError(DpreError):
    """An error that carries its own status, raised by handlers that answer in HTTP terms (another
    server's answer relayed): becomes a JSON error response with this status."""

    def __init__(self, status: int, message: str, /, **details: Any) -> None:
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


# ---------------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class HttpLimits:
    """What one service process holds at most for its clients. Every field is a flag
    `--http-<name>` (underscores as dashes) on each service's command line."""

    max_body_bytes: int = 64 * 1024  # the largest request (a 50-account liquidation is ~3 KiB)
    read_timeout: float = 5.0  # seconds for a request's headers and body, from its first byte
    idle_timeout: float = 5.0  # seconds a keep-alive connection may sit idle
    max_connections: int = 1024  # open connections; a new one beyond is answered 503 and closed
    max_in_flight: int = 64  # requests being answered at once; beyond: 503 with Retry-After
    rate: float = 200.0  # requests per second per client address (token bucket)
    burst: int = 400  # the bucket's size
    backlog: int = 2048  # the listen queue (the kernel caps it at net.core.somaxconn)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        defaults = HttpLimits()
        for f in fields(HttpLimits):
            parser.add_argument(
                "--http-" + f.name.replace("_", "-"),
                dest="http_" + f.name,
                type=type(getattr(defaults, f.name)),
                default=getattr(defaults, f.name),
                metavar="N",
                help=f"HTTP limit (default {getattr(defaults, f.name)}; README: HTTP limits)",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HttpLimits:
        values = {f.name: getattr(args, "http_" + f.name) for f in fields(cls)}
        for name, value in values.items():
            if value <= 0:
                raise InvalidInput(f"--http-{name.replace('_', '-')}: must be positive, got {value}")
        return cls(**values)


class TokenBucket:
    """Per-client rate limit: `rate` requests per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """0 if the request may go now (and takes a token), else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            if len(self._state) > 100_000:  # forget clients that have been full for a while
                self._state = {k: v for k, v in self._state.items() if now - v[1] < self.burst / self.rate}
            tokens, last = self._state.get(client, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[client] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._state[client] = (tokens - 1.0, now)
            return 0.0


def _raw_answer(status: int, reason: bytes, error: str, retry_after: bool = False) -> bytes:
    """A whole JSON error response, for answers given before any request reached the app."""
    body = json.dumps({"error": error, "request_id": uuid.uuid4().hex[:16]}).encode()
    return (
        b"HTTP/1.1 "
        + str(status).encode()
        + b" "
        + reason
        + b"\r\ncontent-type: application/json\r\n"
        + (b"retry-after: 1\r\n" if retry_after else b"")
        + b"connection: close\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _bounded_protocol(limits: HttpLimits, metrics: HttpMetrics) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a read deadline per request, a connection cap that
    refuses new connections only (open keep-alive clients keep being served), and its own
    refusals (malformed HTTP) in the services' JSON form, counted like every answer."""

    class BoundedH11Protocol(H11Protocol):
        _read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if len(self.connections) > limits.max_connections:
                transport.write(
                    _raw_answer(503, b"Service Unavailable", "too many connections; try again shortly", True)
                )
                transport.close()
                metrics.observe("unrouted", 503, 0.0)
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                self._arm()  # a request under way (or its first bytes): it has read_timeout to arrive
            else:
                self._disarm()  # the whole request is in

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_answer(400, b"Bad Request", f"malformed HTTP request: {msg}"))
            self.transport.close()
            metrics.observe("unrouted", 400, 0.0)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._read_timer is None and not self.transport.is_closing():
                self._read_timer = self.loop.call_later(limits.read_timeout, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                # an idle keep-alive connection is uvicorn's to close (idle_timeout); this one
                # started a request and did not finish it in time
                if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                    # half a request line or headers (a body cut short is the app's to log)
                    event(log, "request not received in time; connection closed", client=_peer(self.client))
                self.transport.close()

    return BoundedH11Protocol


def _peer(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"


# ---------------------------------------------------------------------------------- the application


class Guard:
    """ASGI middleware around every route: request id, rate limit, in-flight cap, body limit,
    metrics and one log line per answer, and the last word on crashes."""

    def __init__(self, app: ASGIApp, limits: HttpLimits, metrics: HttpMetrics) -> None:
        self.app, self.limits, self.metrics = app, limits, metrics
        self.bucket = TokenBucket(limits.rate, limits.burst)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = [0]

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        async def refuse(code: int, error: str, retry_after: float | None = None, close: bool = False) -> None:
            if status[0]:
                return  # an answer is out already
            extra = {"retry-after": str(max(1, math.ceil(retry_after)))} if retry_after is not None else {}
            if close:
                extra["connection"] = "close"
            body = JSONResponse({"error": error, "request_id": request_id}, status_code=code, headers=extra)
            await body(scope, receive, send_tracked)

        path = scope["path"]
        client = (scope.get("client") or ("?", 0))[0]
        logged = path not in ("/metrics", "/health")
        try:
            refusal = self._refusal(scope, headers, client)
            if refusal is not None:
                await refuse(*refusal)
                return
            # the whole body is in before the request takes an in-flight slot (a client trickling
            # bodies holds only its connections) or reaches any route
            raw = await self._read_body(receive) if scope["method"] in ("POST", "PUT", "PATCH") else None
            if raw is not None:
                # a large body is checked off the event loop, which serves every other connection
                problem = (
                    _json_problem(raw, headers)
                    if len(raw) <= 4096
                    else await asyncio.to_thread(_json_problem, raw, headers)
                )
                if problem:
                    await refuse(*problem)
                    return
            if raw is not None and b"content-type" not in headers:  # a body without a type is read as JSON
                scope["headers"] = [*scope["headers"], (b"content-type", b"application/json")]
            if path != "/metrics" and self.in_flight >= self.limits.max_in_flight:
                await refuse(503, "overloaded: too many requests in flight; try again shortly", 1)
                return
            self.in_flight += 1
            try:
                await self.app(scope, _replay(raw, receive), send_tracked)
            finally:
                self.in_flight -= 1
        except BodyTooLarge:
            if status[0] == 0:
                await refuse(413, f"request body over {self.limits.max_body_bytes} bytes", None, True)
        except ClientGone:
            status[0] = 499  # one line below says so
        except Exception as err:  # a bug: one JSON line with the request id, no internals in the body
            event(
                log,
                "request failed",
                logging.ERROR,
                path=path,
                request_id=request_id,
                error=f"{type(err).__name__}: {err}",
                trace="".join(traceback.format_exception(err))[-4000:],
            )
            if status[0] == 0:
                await refuse(500, f"internal error (request {request_id})")
        finally:
            route = getattr(scope.get("route"), "path", None)
            self.metrics.observe(route or "unrouted", status[0] or 500, time.perf_counter() - start)
            if logged or status[0] >= 400:
                event(
                    log,
                    "client disconnected before its request was in" if status[0] == 499 else "request",
                    logging.WARNING if status[0] >= 500 else logging.INFO,
                    method=scope["method"],
                    path=path[:200],
                    status=status[0],
                    ms=round((time.perf_counter() - start) * 1000, 1),
                    client=client,
                    request_id=request_id,
                )

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes], client: str) -> tuple[Any, ...] | None:
        """(status, message, retry_after, close) for a request refused on its headers alone."""
        if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            return 431, f"request headers over {MAX_HEADER_BYTES} bytes", None, True
        if b"transfer-encoding" in headers and b"content-length" in headers:
            # RFC 9112 6.1: a request framed both ways is refused, and the connection closed
            return 400, "Content-Length and Transfer-Encoding together", None, True
        wait = self.bucket.wait(client) if scope["path"] != "/metrics" else 0.0
        if wait:
            return 429, "rate limit exceeded; slow down", wait, False
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            return 413, f"request body over {self.limits.max_body_bytes} bytes", None, True
        return None

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, refused (BodyTooLarge) past the limit, chunked ones included;
        ClientGone when the client leaves before it is in."""
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limits.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _replay(raw: bytes | None, receive: Receive) -> Receive:
    """`receive` for a route: the body read already, then what the connection says next."""
    if raw is None:
        return receive
    delivered = [False]

    async def replay() -> Message:
        if not delivered[0]:
            delivered[0] = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "dpre_http_requests", "HTTP answers by route template and status", ["route", "status"], registry=registry
        )
        self.latency = Histogram(
            "dpre_http_seconds",
            "Time to answer, by route template",
            ["route"],
            registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


class JsonAnswer(Response):
    """A JSON answer rendered as is (no re-encoding pass over big payloads)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, separators=(",", ":")).encode()


def ok(content: Any) -> Response:
    return JsonAnswer(content)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def validation_message(errors: list[Any]) -> str:
    """Pydantic's errors as `field: what is wrong`, the offending values never echoed in full."""
    lines = []
    for e in errors[:5]:
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "missing":
            msg = "required"
        elif e.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif e.get("type") == "json_invalid":
            return "request body is not valid JSON"
        lines.append(f"{_location(tuple(e.get('loc', ())))}: {msg}")
    return "; ".join(lines) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")


def create_app(title: str, registry: CollectorRegistry, limits: HttpLimits, description: str = "") -> FastAPI:
    """A FastAPI application with the error envelope, /metrics and the guard installed. Routes
    are added by the caller; /openapi.json and /docs come with FastAPI."""
    app = FastAPI(
        title=title,
        version="1",
        description=description,
        redoc_url=None,
        dependencies=[Depends(_declared_query_only)],
    )
    metrics = app.state.http_metrics = HttpMetrics(registry)

    def error(
        request: Request,
        code: int,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Response:
        request_id = getattr(request.state, "request_id", "")
        body = {"error": message, **(details or {}), "request_id": request_id}
        return JsonAnswer(body, status_code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        return error(request, 400, validation_message(list(err.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        message = {404: f"no route {request.method} {request.url.path}", 405: "method not allowed"}.get(
            err.status_code, str(err.detail)
        )
        return error(request, err.status_code, message, headers=getattr(err, "headers", None))

    @app.exception_handler(DpreError)
    async def domain_error(request: Request, err: DpreError) -> Response:
        status = status_of(err)
        if status is None:
            raise err  # a bug: the guard logs it and answers 500
        details = err.details if isinstance(err, HttpError) else {}
        headers = {"retry-after": "1"} if status == 503 else None
        return error(request, status, str(err)[:2000], headers=headers, details=details)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Guard, limits=limits, metrics=metrics)
    return app


def _declared_query_only(request: Request) -> None:
    """Refuses a query parameter the route does not declare (a typo must not pass silently)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    declared = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        declared |= {p.alias for p in sub.query_params}
    for name in request.query_params:
        if name not in declared:
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise InvalidInput(
                f"{shown}: unknown query parameter" + (f" (takes {', '.join(sorted(declared))})" if declared else "")
            )


def _json_problem(raw: bytes, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    """(status, message) for a body no route should see: another content type, not UTF-8, not
    JSON (NaN, Infinity and repeated keys included), nested deeper than 32 levels."""
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if kind and kind != b"application/json":
        return 415, "Content-Type: application/json is required"
    if not raw:
        return 400, "request body: required (a JSON object)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "request body is not UTF-8"
    depth = 0
    in_string = escaped = False
    # nesting depth without recursion (json.loads would recurse); a body with few brackets
    # cannot nest deeply, and the scan is skipped
    for ch in text if text.count("[") + text.count("{") > 32 else "":
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > 32:
                return 400, "request body is nested too deeply (at most 32 levels)"
        elif ch in "]}":
            depth -= 1

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            raise ValueError(f"key {repeated[:40]!r} appears twice")
        return out

    try:
        json.loads(text, parse_constant=no_constant, object_pairs_hook=unique_keys)
    except ValueError as err:
        return 400, f"request body is not valid JSON: {str(err)[:120]}"
    return None


# ---------------------------------------------------------------------------------- serving


class HttpService:
    """One application served by uvicorn on its own thread; the socket is bound at construction
    (port 0 picks a free one, `port` says which)."""

    def __init__(self, app: FastAPI, host: str, port: int, limits: HttpLimits) -> None:
        # IPPROTO_TCP spelled out: accepted sockets inherit it, and asyncio sets TCP_NODELAY only
        # on sockets that say TCP (without it, a response's header and body writes wait on
        # delayed ACKs: +40 ms per keep-alive request)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as err:
            self.sock.close()
            raise InvalidInput(f"--port: cannot listen on {host}:{port} ({err.strerror})") from None
        self.sock.listen(limits.backlog)
        config = uvicorn.Config(
            app,
            http=_bounded_protocol(limits, app.state.http_metrics),
            timeout_keep_alive=max(1, round(limits.idle_timeout)),
            backlog=limits.backlog,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,  # headers still arriving; the guard checks the rest
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve_in_thread(self) -> threading.Thread:
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.01)
        return self.thread

    def shutdown(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sock.close()


Handler = Callable[..., Awaitable[Any]]

"""The client of the oracle's HTTP API (the gateway, or one signer): JSON in and out over
keep-alive connections, and an answer with an error status raised as OracleRefused with that
status. The keeper, the market maker and the trading desk all reach the oracle through it."""

from __future__ import annotations

from typing import Any

import httpx

from offchain.errors import DpreError


class OracleClient:
    def __init__(self, base: str, timeout: float = 15.0) -> None:
        self.base, self.timeout = base.rstrip("/"), timeout
        self.http = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Raises OracleRefused on an error status, OSError when the oracle is unreachable."""
        try:
            r = self.http.request(method, self.base + path, json=body)
        except httpx.TransportError as err:
            raise ConnectionError(f"oracle unreachable at {self.base}: {type(err).__name__}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("error", "")
            except ValueError:
                detail = f"HTTP {r.status_code}"
            raise OracleRefused(r.status_code, detail)
        data = r.json()
        if not isinstance(data, dict):
            raise OracleRefused(502, "the oracle answered with something other than a JSON object")
        return data

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)


class OracleRefused(DpreError):
    """The oracle answered a request with an error; `status` is the HTTP status it answered."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"oracle refused ({status}): {message}")
        self.status = status

"""The client of the oracle's HTTP API (the gateway, or one signer): JSON in and out, and an
answer with an error status raised as OracleRefused with that status. The keeper, the market maker
and the trading desk all reach the oracle through it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from offchain.errors import DpreError


class OracleClient:
    def __init__(self, base: str, timeout: float = 15.0) -> None:
        self.base, self.timeout = base.rstrip("/"), timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read() or b"{}").get("error", "")
            except ValueError:
                detail = f"HTTP {err.code}"
            raise OracleRefused(err.code, detail) from None

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)


class OracleRefused(DpreError):
    """The oracle answered a request with an error; `status` is the HTTP status it answered."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"oracle refused ({status}): {message}")
        self.status = status

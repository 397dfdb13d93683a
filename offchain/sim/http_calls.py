"""What the service tests do over HTTP: one JSON call that returns (status, body) for any status,
and polling until a condition holds."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


def call(
    url: str, method: str = "GET", body: Any = None, raw: bytes | None = None, timeout: float = 30
) -> tuple[int, dict[str, Any]]:
    """A JSON request; an error status comes back with its JSON body instead of raising."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_for(predicate: Any, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

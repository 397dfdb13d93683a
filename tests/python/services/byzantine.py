"""A Byzantine oracle signer for tests, as its own process: it relays an honest signer and
tampers with the answers before the gateway sees them.

    python tests/python/services/byzantine.py --port P --upstream URL --deployment FILE \
        --key-env VAR [--impostor-key-env VAR] [--mode copy]

Modes (switch at run time with POST /control {"mode": ...}):
  copy         the honest signer's answer verbatim: its signatures, claimed as a second vote
  impersonate  the honest content re-signed with an unauthorized key, claiming the honest signer
  conflict     a higher value (+1,000 units) signed with this process's own, authorized key
  inflate      a far higher IM and MM (+10%) signed with its own key: a "conservative" lie
Every POST is relayed (attestations and co-sign requests alike) and its items tampered with.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from offchain.attest.eip712 import Domain, sign
from offchain.attest.messages import MarginAttestation, from_wire, to_wire
from offchain.ops.web import HttpError, HttpLimits, HttpService, create_app, ok
from offchain.risk.units import WAD
from offchain.sim.http_calls import call

MODES = ("copy", "impersonate", "conflict", "inflate")


def tampered(answer: dict[str, Any], mode: str, domain: Domain, key: str, impostor_key: str) -> dict[str, Any]:
    if mode == "copy" or "items" not in answer:
        return answer
    signing_key = impostor_key if mode == "impersonate" else key
    items = {}
    for name, wire in answer["items"].items():
        item = from_wire(wire)
        if isinstance(item, MarginAttestation) and mode == "conflict":
            item = dataclasses.replace(item, value=item.value + 1_000 * WAD)
        if isinstance(item, MarginAttestation) and mode == "inflate":
            item = dataclasses.replace(
                item,
                initial_margin=item.initial_margin * 11 // 10,
                maintenance_margin=item.maintenance_margin * 11 // 10,
            )
        items[name] = {**to_wire(item), "signature": "0x" + sign(signing_key, domain, item).hex()}
    claimed = answer["signer"] if mode == "impersonate" else Account.from_key(key).address
    return {**answer, "items": items, "signer": claimed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the honest signer relayed")
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--key-env", required=True, help="this signer's own (authorized) key")
    parser.add_argument("--impostor-key-env", help="an unauthorized key, for impersonate")
    parser.add_argument("--mode", choices=MODES, default="copy")
    args = parser.parse_args()
    deployment = json.loads(Path(args.deployment).read_text())
    domain = Domain(int(deployment["chain_id"]), deployment["clearinghouse"])
    key = os.environ[args.key_env]
    impostor_key = os.environ[args.impostor_key_env] if args.impostor_key_env else Account.create().key.hex()
    state = {"mode": args.mode}
    limits = HttpLimits(rate=1000, burst=2000)
    app = create_app("byzantine signer", CollectorRegistry(), limits)

    @app.post("/control")
    async def control(request: Request) -> Response:
        body = await request.json()
        if body.get("mode") not in MODES:
            raise HttpError(400, f"mode: one of {MODES}")
        state["mode"] = body["mode"]
        return ok(state)

    @app.get("/health")
    def health() -> Response:
        return ok(call(args.upstream + "/health", "GET", None)[1])

    @app.post("/v1/{path:path}")
    async def relay(path: str, request: Request) -> Response:
        body = await request.json()
        status, answer = await asyncio.to_thread(call, f"{args.upstream}/v1/{path}", "POST", body)
        if status != 200:
            raise HttpError(status, answer.get("error", f"HTTP {status}"))
        return ok(tampered(answer, state["mode"], domain, key, impostor_key))

    HttpService(app, "127.0.0.1", args.port, limits).serve_in_thread()
    threading.Event().wait()


class Byzantine:
    """The process above, started and steered by a test."""

    def __init__(self, upstream: str, deployment_path: Path, key: str, log_path: Path, mode: str = "copy") -> None:
        from offchain.chain.anvil import free_port

        self.upstream, self.deployment_path, self.key, self.log_path, self.mode = (
            upstream,
            deployment_path,
            key,
            log_path,
            mode,
        )
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Byzantine":
        root = Path(__file__).resolve().parents[3]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--port",
                str(self.port),
                "--upstream",
                self.upstream,
                "--deployment",
                str(self.deployment_path),
                "--key-env",
                "BYZANTINE_KEY",
                "--mode",
                self.mode,
            ],
            cwd=root,
            env={**os.environ, "BYZANTINE_KEY": self.key, "PYTHONPATH": str(root)},
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"byzantine signer exited; see {self.log_path}")
            try:
                call(self.url + "/health", "GET", None)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("byzantine signer did not start")

    def set_mode(self, mode: str) -> None:
        status, _ = call(self.url + "/control", "POST", {"mode": mode})
        assert status == 200
        self.mode = mode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


if __name__ == "__main__":
    main()

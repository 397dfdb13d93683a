"""The DPRE services as real child processes on this machine: n oracle signers, the gateway and
the keeper, each logging to its own file, each stoppable (SIGTERM) or killable (SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offchain.chain.anvil import free_port
from offchain.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    url: str = ""
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> "Proc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "offchain.cli", *self.args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def wait_healthy(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise UserError(f"{self.name} exited with code {self.popen.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    data = json.loads(r.read())
                    if data.get("status") in ("ok", "starting", "degraded"):
                        return data
            except (urllib.error.URLError, ConnectionError, OSError, ValueError) as err:
                last = str(err)
            time.sleep(0.2)
        raise UserError(f"{self.name} did not become healthy in {timeout:.0f}s ({last}); see {self.log_path}")


@dataclass
class LocalStack:
    workdir: Path
    rpc_url: str
    deployment_path: Path
    signer_keys: list[str]
    threshold: int
    keeper_key: str
    procs: dict[str, Proc] = field(default_factory=dict)

    def _proc(self, name: str, args: list[str], env: dict[str, str], port: int) -> Proc:
        proc = Proc(name, args, env, self.workdir / "logs" / f"{name}.log", url=f"http://127.0.0.1:{port}")
        self.procs[name] = proc
        return proc

    def signer(self, i: int, extra: list[str] | None = None) -> Proc:
        port = free_port()
        env_name = f"DPRE_SIGNER_KEY_{i}"
        return self._proc(
            f"signer{i}",
            [
                "oracle",
                "signer",
                "--rpc",
                self.rpc_url,
                "--deployment",
                str(self.deployment_path),
                "--key-env",
                env_name,
                "--port",
                str(port),
                "--state",
                str(self.workdir / f"signer{i}-state.sqlite"),
                *(extra or []),
            ],
            {env_name: self.signer_keys[i]},
            port,
        )

    def gateway(self) -> Proc:
        port = free_port()
        urls = ",".join(self.procs[f"signer{i}"].url for i in range(len(self.signer_keys)))
        return self._proc(
            "gateway",
            [
                "oracle",
                "gateway",
                "--deployment",
                str(self.deployment_path),
                "--signers",
                urls,
                "--threshold",
                str(self.threshold),
                "--port",
                str(port),
            ],
            {},
            port,
        )

    def keeper(self, extra: list[str] | None = None) -> Proc:
        port = self.procs["keeper"].url.rsplit(":", 1)[1] if "keeper" in self.procs else str(free_port())
        return self._proc(
            "keeper",
            [
                "keeper",
                "run",
                "--rpc",
                self.rpc_url,
                "--deployment",
                str(self.deployment_path),
                "--oracle",
                self.procs["gateway"].url,
                "--key-env",
                "DPRE_KEEPER_KEY",
                "--port",
                port,
                "--state-dir",
                str(self.workdir / "keeper"),
                "--liquidate-unprofitable",
                *(extra or []),
            ],
            {"DPRE_KEEPER_KEY": self.keeper_key},
            int(port),
        )

    def market_maker(self, key: str, extra: list[str] | None = None) -> Proc:
        """The reference market maker (offchain/marketmaker.py), quoting from the gateway's marks."""
        port = free_port()
        return self._proc(
            "market-maker",
            [
                "market-maker",
                "--deployment",
                str(self.deployment_path),
                "--oracle",
                self.procs["gateway"].url,
                "--key-env",
                "DPRE_MM_KEY",
                "--port",
                str(port),
                *(extra or []),
            ],
            {"DPRE_MM_KEY": key},
            port,
        )

    def start_all(
        self, signer_extra: list[str] | None = None, keeper: bool = True, keeper_extra: list[str] | None = None
    ) -> None:
        for i in range(len(self.signer_keys)):
            self.signer(i, signer_extra).start()
        for i in range(len(self.signer_keys)):
            self.procs[f"signer{i}"].wait_healthy()
        self.gateway().start().wait_healthy()
        if keeper:
            self.keeper(keeper_extra).start().wait_healthy()

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()

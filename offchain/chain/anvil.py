"""A real Anvil node as a child process: started on a port, waited for, stopped cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from offchain.errors import UserError

# Anvil's default accounts come from this public test mnemonic; never fund them anywhere real.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _rpc_ok(url: str) -> bool:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@dataclass
class AnvilNode:
    """Runs `anvil` on 127.0.0.1. Use as a context manager or call start()/stop().

    port=0 picks a free port. block_time=None mines a block per transaction (instant);
    a number makes the node mine on an interval like a real chain.
    """

    port: int = 8545
    chain_id: int = DEFAULT_CHAIN_ID
    accounts: int = 10
    balance_eth: int = 10_000
    block_time: float | None = None
    gas_limit: int = 60_000_000
    state_path: Path | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self) -> list[str]:
        binary = shutil.which("anvil")
        if binary is None:
            raise UserError(
                "anvil was not found on PATH.",
                hint="run DPRE through ./dpre, which installs anvil from npm into .venv/bin.",
            )
        cmd = [
            binary,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--balance",
            str(self.balance_eth),
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--gas-limit",
            str(self.gas_limit),
            "--base-fee",
            "1000000000",
        ]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.state_path is not None:
            # --state loads the file if present and dumps to it on exit: a node that survives restarts.
            cmd += ["--state", str(self.state_path)]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> "AnvilNode":
        if self._process is not None:
            return self
        if self.port == 0:
            self.port = free_port()
        elif port_in_use(self.port):
            raise UserError(
                f"port {self.port} on 127.0.0.1 is already in use (another Anvil or node running?).",
                hint=f"stop the program using it (e.g. `fuser -k {self.port}/tcp`), "
                "or pass --port N, or --port 0 to pick a free one.",
            )
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # our Ctrl-C handling decides when the node stops
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise UserError(
                    f"anvil exited at start-up with code {code}.",
                    hint=f"see {self.log_path}" if self.log_path else "re-run with a log path to see why.",
                )
            if _rpc_ok(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise UserError(f"anvil did not answer on {self.url} within {timeout:.0f}s.")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the node does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL with no clean-up: for fault tests."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> "AnvilNode":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def anvil_key(i: int) -> str:
    """The hex private key of Anvil's i-th default account (from the public test mnemonic)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()

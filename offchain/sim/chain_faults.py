"""A hostile chain for the keeper: block production taken over from automine (fixed chain-time
steps, a fee spike with the base fee ×50 and every block filled by higher bids), and a JSON-RPC
proxy that loses answers, drops requests or answers errors a node may give."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from offchain.chain.anvil import anvil_key, free_port

GWEI = 10**9
SINK = "0x000000000000000000000000000000000000bEEF"


@dataclass
class Block:
    number: int
    timestamp: int
    spike: bool


class ManualChain:
    """Mines one block every `interval` wall seconds, `block_seconds` apart in chain time. In
    calm mode the base fee is held at `calm_base`; during a spike at `spike_base`, with the block
    gas limit lowered to `spike_gas_limit` and nearly all of it bought each block by a filler
    account paying `filler_tip` — so nothing needing more than what is left gets in."""

    def __init__(
        self,
        url: str,
        block_seconds: int = 12,
        interval: float = 0.5,
        calm_base: int = GWEI,
        spike_base: int = 50 * GWEI,
        spike_gas_limit: int = 3_500_000,
        filler_gas: int = 3_250_000,
        filler_tip: int = 1_000 * GWEI,
        normal_gas_limit: int = 60_000_000,
    ) -> None:
        self.w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
        self.block_seconds, self.interval = block_seconds, interval
        self.calm_base, self.spike_base = calm_base, spike_base
        self.spike_gas_limit, self.filler_gas, self.filler_tip = spike_gas_limit, filler_gas, filler_tip
        self.normal_gas_limit = normal_gas_limit
        self.filler = Account.from_key(anvil_key(7))
        self.filler_nonce = int(self.w3.eth.get_transaction_count(self.filler.address, "pending"))
        self.spiking = False
        self.blocks: list[Block] = []
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def rpc(self, method: str, *params: Any) -> Any:
        return self.w3.provider.make_request(RPCEndpoint(method), list(params))

    def start(self) -> "ManualChain":
        self.rpc("evm_setAutomine", False)
        self._set_base()
        self._thread = threading.Thread(target=self._run, name="miner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.rpc("evm_setBlockGasLimit", hex(self.normal_gas_limit))
        self.rpc("evm_setAutomine", True)

    def spike(self) -> None:
        with self._lock:
            self.rpc("evm_setBlockGasLimit", hex(self.spike_gas_limit))
            self.spiking = True
            self._set_base()

    def calm(self) -> None:
        with self._lock:
            self.spiking = False
            self.rpc("evm_setBlockGasLimit", hex(self.normal_gas_limit))
            self._set_base()

    def _set_base(self) -> None:
        # held between blocks too, so what the pool accepts is what the next block charges
        self.rpc("anvil_setNextBlockBaseFeePerGas", hex(self.spike_base if self.spiking else self.calm_base))

    def pause(self) -> None:
        """No blocks until resume(): transactions gather in the pool."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def wait_blocks(self, n: int, timeout: float = 120.0) -> int:
        target = self.head() + n
        end = time.monotonic() + timeout
        while self.head() < target:
            if time.monotonic() > end:
                raise AssertionError(f"the chain did not reach block {target}")
            time.sleep(0.05)
        return self.head()

    def _fill(self) -> None:
        """Transactions of at most 1.625M gas each (calldata: 40 gas per non-zero byte) buying
        `filler_gas` of the block."""
        left = self.filler_gas
        while left > 0:
            gas = min(left, 1_625_000)
            left -= gas
            data = b"\x11" * ((gas - 22_000) // 40)
            tx = {
                "to": SINK,
                "value": 0,
                "data": data,
                "gas": gas,
                "nonce": self.filler_nonce,
                "chainId": int(self.w3.eth.chain_id),
                "maxFeePerGas": 2 * self.filler_tip + self.spike_base,
                "maxPriorityFeePerGas": self.filler_tip,
            }
            self.w3.eth.send_raw_transaction(self.filler.sign_transaction(tx).raw_transaction)
            self.filler_nonce += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.interval)
            if self._stop.is_set():
                return
            if self._paused.is_set():
                continue
            with self._lock:
                spiking = self.spiking
                if spiking:
                    self._fill()
                latest = self.w3.eth.get_block("latest")
                self.rpc("evm_mine", int(latest["timestamp"]) + self.block_seconds)
                self.blocks.append(
                    Block(int(latest["number"]) + 1, int(latest["timestamp"]) + self.block_seconds, spiking)
                )
                self._set_base()


@dataclass
class Fault:
    method: str
    action: str  # "lose_answer" (forwarded, 502 back), "drop" (not forwarded, 502), "error" (not forwarded)
    message: str = ""


@dataclass
class FaultyRpc:
    """A JSON-RPC proxy in front of the node. Faults apply, in order, to the next requests of
    their method; `down` answers 502 to everything."""

    target: str
    port: int = 0
    faults: deque[Fault] = field(default_factory=deque)
    applied: list[Fault] = field(default_factory=list)
    down: bool = False

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.down:
                    self._reply(502, b'{"error": "bad gateway"}')
                    return
                try:
                    request = json.loads(raw)
                except ValueError:
                    request = None
                fault = proxy._take(request)
                if fault is not None and fault.action == "error":
                    body = {
                        "jsonrpc": "2.0",
                        "id": request.get("id"),
                        "error": {"code": -32000, "message": fault.message},
                    }
                    self._reply(200, json.dumps(body).encode())
                    return
                if fault is not None and fault.action == "drop":
                    self._reply(502, b'{"error": "bad gateway"}')
                    return
                status, answer = proxy._forward(raw)
                if fault is not None and fault.action == "lose_answer":
                    self._reply(502, b'{"error": "bad gateway"}')
                    return
                self._reply(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="faulty-rpc", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, method: str, action: str, message: str = "") -> None:
        self.faults.append(Fault(method, action, message))

    def _take(self, request: Any) -> Fault | None:
        if not isinstance(request, dict) or not self.faults:
            return None
        if self.faults[0].method != request.get("method"):
            return None
        fault = self.faults.popleft()
        self.applied.append(fault)
        return fault

    def _forward(self, raw: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(self.target, data=raw, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 502, b'{"error": "bad gateway"}'

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def set_market_urgently(desk: Any, underlying: str, spot: float, vol: float, tip: int = 2_000 * GWEI) -> int:
    """The desk's feed update with a small gas limit and a tip above any filler, so it lands in
    the next block even while blocks are bought up. Returns that block."""
    from offchain.chain.deploy import FEED_DECIMALS

    deployer = desk.deployer
    receipts = []
    for feed, value in zip(desk.feeds[underlying], (spot, vol)):
        if deployer.address not in desk.nonces:
            desk.nonces[deployer.address] = int(desk.w3.eth.get_transaction_count(deployer.address, "pending"))
        tx = feed.functions.setAnswer(int(round(value * 10**FEED_DECIMALS))).build_transaction(
            {
                "from": deployer.address,
                "nonce": desk.nonces[deployer.address],
                "gas": 200_000,
                "maxFeePerGas": 2 * tip,
                "maxPriorityFeePerGas": tip,
                "chainId": desk.deployment.chain_id,
            }
        )
        tx_hash = desk.w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
        desk.nonces[deployer.address] += 1
        receipts.append(desk.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05))
    assert all(r["status"] == 1 for r in receipts)
    return max(int(r["blockNumber"]) for r in receipts)

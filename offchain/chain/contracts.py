"""Talking to a deployed system with web3: ABIs from the compiled project, contract handles,
decoded event logs in chain order, and RPC calls that back off and retry instead of crashing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.types import BlockIdentifier, RPCEndpoint
from eth_typing import HexStr

from offchain.chain.deploy import Deployment
from offchain.ops.logs import event

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / ".build" / "__local__.json"
T = TypeVar("T")
log = logging.getLogger("chain")

# RPC calls that failed and were retried, in this process (exported as a metric by the services).
RPC_FAILURES = [0]


def load_abi(name: str) -> list[dict[str, Any]]:
    if not MANIFEST.exists():
        from offchain.chain.ape_session import compile_contracts

        compile_contracts()
    types = json.loads(MANIFEST.read_text())["contractTypes"]
    return types[name]["abi"]


def with_retry(fn: Callable[[], T], what: str, attempts: int = 8, base_delay: float = 0.2, max_delay: float = 5.0) -> T:
    """Calls fn, backing off exponentially on connection errors; re-raises after `attempts`."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as err:
            # requests wraps connection failures in its own types: match those by name too
            transient = isinstance(err, (ConnectionError, TimeoutError, OSError)) or any(
                word in type(err).__name__ for word in ("Connection", "Timeout")
            )
            if not transient:
                raise
            RPC_FAILURES[0] += 1
            if attempt == attempts:
                raise
            event(
                log,
                "rpc call failed; backing off",
                logging.WARNING,
                call=what,
                attempt=attempt,
                delay=round(delay, 2),
                error=str(err)[:200],
            )
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


@dataclass
class DecodedLog:
    block: int
    index: int
    contract: str  # "clearinghouse" | "engine" | "fund"
    name: str
    args: dict[str, Any]
    tx: str
    block_hash: str = ""  # 0x-hex: which version of the block the event came from


@dataclass(frozen=True)
class BlockRef:
    """A block as a reorg-aware follower records it."""

    number: int
    hash: str  # 0x-hex
    parent: str
    timestamp: int


@dataclass(frozen=True)
class AccountOnChain:
    """An account as the Clearinghouse stores it, read at one block."""

    cash: int
    state_hash: bytes
    order: list[int]  # open instruments, in PositionBook's order
    positions: dict[int, int]


class SystemClient:
    """web3 handles for one deployment."""

    def __init__(self, rpc_url: str, deployment: Deployment, timeout: float = 10.0) -> None:
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        self.deployment = deployment
        self.ch = self.contract(deployment.clearinghouse, "Clearinghouse")
        self.engine = self.contract(deployment.liquidation_engine, "LiquidationEngine")
        self.fund = self.contract(deployment.insurance_fund, "InsuranceFund")
        self.token = self.contract(deployment.collateral, "DevStablecoin")
        self.commitments = (
            self.contract(deployment.commitments, "SnapshotCommitments") if deployment.commitments else None
        )
        self._topics: dict[bytes, tuple[str, Any, str]] = {}
        for label, contract in (("clearinghouse", self.ch), ("engine", self.engine), ("fund", self.fund)):
            for item in contract.abi:
                if item["type"] == "event":
                    self._topics[event_abi_to_log_topic(item)] = (label, contract, item["name"])

    def contract(self, address: str, name: str) -> Contract:
        """A web3 handle on the deployed contract `name` (its ABI from the build) at `address`."""
        return self.w3.eth.contract(address=to_checksum_address(address), abi=load_abi(name))

    def rpc(self, method: str, params: list[Any]) -> Any:
        """A raw JSON-RPC request (node-specific methods such as anvil_setBalance or evm_mine)."""
        return self.w3.provider.make_request(RPCEndpoint(method), params)

    def head(self, attempts: int = 8) -> int:
        """The head block's number; `attempts` as in `header`."""
        return with_retry(lambda: int(self.w3.eth.block_number), "eth_blockNumber", attempts=attempts)

    def block_time(self, block: BlockIdentifier = "latest") -> int:
        return with_retry(lambda: int(self.w3.eth.get_block(block)["timestamp"]), "eth_getBlockByNumber")

    def header(self, block: BlockIdentifier = "latest", attempts: int = 8) -> BlockRef | None:
        """Number, hash, parent hash and time of a block (None: no such block, e.g. the head is
        below it after a reorg). `attempts`: how long to ride out an unreachable node (a request
        path asks for few, so it answers 503 instead of holding its caller)."""
        from web3.exceptions import BlockNotFound

        def read() -> BlockRef | None:
            try:
                b = self.w3.eth.get_block(block)
            except BlockNotFound:
                return None
            if b is None:
                return None
            return BlockRef(
                int(b["number"]),
                "0x" + bytes(b["hash"]).hex(),
                "0x" + bytes(b["parentHash"]).hex(),
                int(b["timestamp"]),
            )

        return with_retry(read, "eth_getBlockByNumber", attempts=attempts)

    def accounts_at(self, accounts: list[str], block_hash: str, chunk: int = 500) -> dict[str, AccountOnChain]:
        """account_at for many accounts, in JSON-RPC batches (two round trips per chunk)."""
        fn = self.ch.functions

        def calls(pairs: list[tuple[Any, list[str]]]) -> list[Any]:
            out: list[Any] = []
            for start in range(0, len(pairs), chunk):
                part = pairs[start : start + chunk]
                with self.w3.batch_requests() as batch:
                    for call, _ in part:
                        batch.add(
                            self.w3.eth.call(
                                {"to": self.ch.address, "data": call._encode_transaction_data()}, HexStr(block_hash)
                            )
                        )
                    raw: list[Any] = with_retry(batch.execute, "eth_call batch")
                out += [self.w3.codec.decode(types, bytes(r)) for (_, types), r in zip(part, raw)]
            return out

        first = calls(
            [
                (c, t)
                for a in accounts
                for c, t in (
                    (fn.openInstruments(a), ["uint256[]"]),
                    (fn.cashOf(a), ["int256"]),
                    (fn.stateHashOf(a), ["bytes32"]),
                )
            ]
        )
        orders = {a: [int(i) for i in first[3 * k][0]] for k, a in enumerate(accounts)}
        legs = [(a, i) for a in accounts for i in orders[a]]
        sizes = calls([(fn.positionOf(a, i), ["int256"]) for a, i in legs])
        positions: dict[str, dict[int, int]] = {a: {} for a in accounts}
        for (a, i), (size,) in zip(legs, sizes):
            positions[a][i] = int(size)
        return {
            a: AccountOnChain(int(first[3 * k + 1][0]), bytes(first[3 * k + 2][0]), orders[a], positions[a])
            for k, a in enumerate(accounts)
        }

    def account_at(self, account: str, block_hash: str) -> AccountOnChain:
        """An account's cash, state hash and positions read from the contract at one block (by
        hash: a reorg in between makes the read fail instead of mixing two chains)."""
        return self.accounts_at([account], block_hash)[account]

    def logs(self, from_block: int, to_block: int) -> list[DecodedLog]:
        """Every event of the three contracts in [from_block, to_block], in chain order."""
        if to_block < from_block:
            return []
        addresses = [self.ch.address, self.engine.address, self.fund.address]
        raw = with_retry(
            lambda: self.w3.eth.get_logs({"fromBlock": from_block, "toBlock": to_block, "address": addresses}),
            "eth_getLogs",
        )
        out = []
        for entry in raw:
            key = bytes(entry["topics"][0])
            if key not in self._topics:
                continue
            label, contract, name = self._topics[key]
            decoded = getattr(contract.events, name)().process_log(entry)
            out.append(
                DecodedLog(
                    int(entry["blockNumber"]),
                    int(entry["logIndex"]),
                    label,
                    name,
                    dict(decoded["args"]),
                    entry["transactionHash"].hex(),
                    "0x" + bytes(entry["blockHash"]).hex(),
                )
            )
        out.sort(key=lambda d: (d.block, d.index))
        return out

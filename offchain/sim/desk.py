"""A trading desk for local runs: funds accounts, signs orders, fetches post-trade attestations
from the oracle gateway and sends the fills, moves the local price feeds. web3 only (fast), one
local nonce per account."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractCustomError, ContractLogicError

from offchain.attest.eip712 import Domain, sign
from offchain.attest.messages import MarginAttestation, Order, from_wire
from offchain.chain.contracts import SystemClient
from offchain.chain.deploy import FEED_DECIMALS, Deployment
from offchain.oracle.client import OracleClient, OracleRefused
from offchain.risk.units import WAD


@dataclass
class FillResult:
    ok: bool
    reason: str = ""
    gas: int = 0


class Desk:
    def __init__(self, rpc_url: str, deployment: Deployment, gateway_url: str, deployer_key: str) -> None:
        self.client = SystemClient(rpc_url, deployment)
        self.w3 = self.client.w3
        self.deployment = deployment
        self.oracle = OracleClient(gateway_url)
        self.deployer: LocalAccount = Account.from_key(deployer_key)
        self.domain = Domain(deployment.chain_id, deployment.clearinghouse)
        self.nonces: dict[str, int] = {}
        self.order_nonces = itertools.count(1)
        self.gas_by_action: dict[str, list[int]] = {}
        self.feeds = {
            u: (
                self.client.contract(f["price_feed"], "DevPriceFeed"),
                self.client.contract(f["vol_feed"], "DevPriceFeed"),
            )
            for u, f in deployment.feeds.items()
        }

    # ------------------------------------------------------------------ transactions

    def send_async(self, account: LocalAccount, call: Any, action: str, gas: int | None = None) -> Any:
        """Signs and sends with the account's local nonce; returns the hash without waiting."""
        address = account.address
        if address not in self.nonces:
            self.nonces[address] = int(self.w3.eth.get_transaction_count(address, "pending"))
        tx = call.build_transaction(
            {
                "from": address,
                "nonce": self.nonces[address],
                "gas": gas or 3_000_000,
                "maxFeePerGas": 50 * 10**9,
                "maxPriorityFeePerGas": 10**9,
                "chainId": self.deployment.chain_id,
            }
        )
        tx_hash = self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        self.nonces[address] += 1
        return tx_hash

    def send(self, account: LocalAccount, call: Any, action: str, gas: int | None = None) -> Any:
        tx_hash = self.send_async(account, call, action, gas)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.02)
        if int(receipt["status"]) != 1:
            raise RuntimeError(f"{action} reverted: {tx_hash.hex()}")
        self.gas_by_action.setdefault(action, []).append(int(receipt["gasUsed"]))
        return receipt

    def fund_gas(self, addresses: list[str], eth: int = 100) -> None:
        for a in addresses:
            self.client.rpc("anvil_setBalance", [a, hex(eth * 10**18)])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    # ------------------------------------------------------------------ collateral

    def deposit(self, account: LocalAccount, units: float) -> None:
        amount = int(units * 10**self.deployment.collateral_decimals)
        self.send(self.deployer, self.client.token.functions.mint(account.address, amount), "mint")
        self.send(account, self.client.token.functions.approve(self.deployment.clearinghouse, amount), "approve")
        self.send(account, self.client.ch.functions.deposit(account.address, amount), "deposit")

    def deposit_for(self, account: str, units: float) -> None:
        """The deployer funds `account` (no transaction from the account itself, so no clash with
        a daemon holding its key)."""
        amount = int(units * 10**self.deployment.collateral_decimals)
        self.send(self.deployer, self.client.token.functions.mint(self.deployer.address, amount), "mint")
        self.send(self.deployer, self.client.token.functions.approve(self.deployment.clearinghouse, amount), "approve")
        self.send(self.deployer, self.client.ch.functions.deposit(account, amount), "deposit")

    def withdraw(self, account: LocalAccount, units: float) -> FillResult:
        amount = int(units * 10**self.deployment.collateral_decimals)
        if self.client.ch.functions.openInstruments(account.address).call():
            try:
                resp = self.oracle.post("/v1/attest/margin", {"account": account.address})
            except OracleRefused as err:
                return FillResult(False, str(err))
            att, sigs = from_wire(resp["items"]["margin"]), bytes.fromhex(resp["items"]["margin"]["signatures"][2:])
        else:
            att, sigs = MarginAttestation.empty(), b""
        call = self.client.ch.functions.withdraw(amount, account.address, att.as_tuple(), sigs)
        try:
            call.call({"from": account.address})
        except (ContractLogicError, ContractCustomError) as err:
            return FillResult(False, f"refused: {err}")
        receipt = self.send(account, call, "withdraw")
        return FillResult(True, gas=int(receipt["gasUsed"]))

    # ------------------------------------------------------------------ trading

    def fill(
        self, maker: LocalAccount, taker: LocalAccount, instrument_id: int, maker_size: float, price: float
    ) -> FillResult:
        """`maker` offers `maker_size` contracts (+ buys, − sells) at `price`; `taker` fills it all."""
        size = int(round(maker_size * WAD))
        order = Order(
            maker.address,
            instrument_id,
            size,
            int(round(price * 1e6)) * 10**12,
            next(self.order_nonces),
            self.now() + 600,
        )
        maker_sig = sign(maker.key, self.domain, order)
        body = {
            "order": {
                "maker": order.maker,
                "instrument_id": order.instrument_id,
                "size": str(order.size),
                "price": str(order.price),
                "nonce": order.nonce,
                "deadline": order.deadline,
            },
            "fill_amount": str(abs(size)),
            "taker": taker.address,
        }
        try:
            resp = self.oracle.post("/v1/attest/trade", body)
        except OracleRefused as err:
            return FillResult(False, str(err))
        items = resp["items"]
        ma, ta = from_wire(items["maker"]), from_wire(items["taker"])
        call = self.client.ch.functions.fillOrder(
            order.as_tuple(),
            maker_sig,
            abs(size),
            ma.as_tuple(),
            bytes.fromhex(items["maker"]["signatures"][2:]),
            ta.as_tuple(),
            bytes.fromhex(items["taker"]["signatures"][2:]),
        )
        try:
            call.call({"from": taker.address})
        except (ContractLogicError, ContractCustomError) as err:
            return FillResult(False, f"refused: {getattr(err, 'message', err)}")
        receipt = self.send(taker, call, "fill")
        return FillResult(True, gas=int(receipt["gasUsed"]))

    # ------------------------------------------------------------------ market

    def set_market(self, underlying: str, spot: float, vol: float) -> None:
        price_feed, vol_feed = self.feeds[underlying]
        self.send(self.deployer, price_feed.functions.setAnswer(int(round(spot * 10**FEED_DECIMALS))), "feed")
        self.send(self.deployer, vol_feed.functions.setAnswer(int(round(vol * 10**FEED_DECIMALS))), "feed")


def trader_keys(seed: int, n: int) -> list[LocalAccount]:
    """Deterministic trader keys: the same seed gives the same population."""
    from eth_utils import keccak

    return [Account.from_key(keccak(text=f"dpre-trader-{seed}-{i}")) for i in range(n)]

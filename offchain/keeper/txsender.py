"""Sending transactions from one key: a local nonce, simulation before sending, and fee bumps
for transactions that do not get mined."""

from __future__ import annotations

import logging
import time
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted

from offchain.ops.logs import event

log = logging.getLogger("keeper.tx")


class SimulationFailed(Exception):
    """eth_call says the transaction would revert; nothing was sent."""


class TxSender:
    def __init__(self, w3: Any, account: LocalAccount, wait_seconds: float = 20.0, bump: float = 1.125, max_bumps: int = 4) -> None:
        self.w3, self.account = w3, account
        self.wait_seconds, self.bump, self.max_bumps = wait_seconds, bump, max_bumps
        self.nonce: int | None = None
        self.bumps = 0

    def _sync_nonce(self) -> int:
        self.nonce = int(self.w3.eth.get_transaction_count(self.account.address, "pending"))
        return self.nonce

    def simulate(self, call: Any) -> None:
        try:
            call.call({"from": self.account.address})
        except (ContractLogicError, ContractCustomError) as err:
            raise SimulationFailed(f"{type(err).__name__}: {getattr(err, 'message', err)} {getattr(err, 'data', '')}") from None

    def estimate(self, call: Any) -> int:
        return int(call.estimate_gas({"from": self.account.address}) * 1.25) + 20_000

    def fees(self) -> tuple[int, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 10**9))
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except Exception:  # not every node implements eth_maxPriorityFeePerGas
            tip = 10**9
        tip = max(tip, 10**8)
        return 2 * base + tip, tip

    def send(self, call: Any, gas: int | None = None) -> Any:
        """Signs and sends `call`, bumping fees on the same nonce until it is mined."""
        if self.nonce is None:
            self._sync_nonce()
        gas = gas or self.estimate(call)
        max_fee, tip = self.fees()
        for attempt in range(self.max_bumps + 1):
            tx = call.build_transaction({
                "from": self.account.address, "nonce": self.nonce, "gas": gas,
                "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "chainId": int(self.w3.eth.chain_id),
            })
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except ValueError as err:
                text = str(err)
                if "nonce too low" in text or "already known" in text.lower():
                    self._sync_nonce()
                    continue
                raise
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.wait_seconds, poll_latency=0.1)
            except TimeExhausted:
                # Not mined in time: replace it (same nonce) with higher fees.
                self.bumps += 1
                max_fee, tip = int(max_fee * self.bump) + 1, int(tip * self.bump) + 1
                event(log, "transaction not mined; bumping fees", logging.WARNING, nonce=self.nonce,
                      attempt=attempt + 1, max_fee=max_fee, tip=tip)
                continue
            self.nonce = (self.nonce or 0) + 1
            return receipt
        raise TimeoutError(f"transaction with nonce {self.nonce} not mined after {self.max_bumps} fee bumps")

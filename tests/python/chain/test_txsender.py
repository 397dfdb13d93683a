"""The keeper's transaction sender on a real Anvil node that mines only when told to: a
transaction that is not mined in time is replaced on the same nonce with higher fees."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from offchain.chain.anvil import AnvilNode, anvil_key
from offchain.keeper.txsender import TxSender

pytestmark = pytest.mark.chain


def test_stuck_transaction_is_replaced_with_higher_fees(tmp_path: Path) -> None:
    account = Account.from_key(anvil_key(3))
    with AnvilNode(port=0, log_path=tmp_path / "anvil.log", extra_args=["--no-mining"]) as node:
        w3 = Web3(HTTPProvider(node.url))
        sender = TxSender(w3, account, wait_seconds=1.0, bump=1.25, max_bumps=3)
        first_fee = sender.fees()[0]
        # a plain value transfer, expressed as a call object the sender can build
        call = _Transfer(w3, account.address, "0x000000000000000000000000000000000000dEaD", 12345)

        def mine_later() -> None:
            time.sleep(1.6)  # after the first wait has expired and a replacement went out
            w3.provider.make_request("evm_mine", [])

        threading.Thread(target=mine_later, daemon=True).start()
        receipt = sender.send(call, gas=21_000)
        assert receipt["status"] == 1
        assert sender.bumps >= 1
        tx = w3.eth.get_transaction(receipt["transactionHash"])
        assert tx["maxFeePerGas"] > first_fee, "the mined transaction is the bumped replacement"
        assert w3.eth.get_balance("0x000000000000000000000000000000000000dEaD") == 12345  # paid once
        assert sender.nonce == 1


class _Transfer:
    """Duck-types the part of a web3 contract call the sender uses."""

    def __init__(self, w3: Web3, sender: str, to: str, value: int) -> None:
        self.w3, self.sender, self.to, self.value = w3, sender, to, value

    def build_transaction(self, tx: dict) -> dict:
        return {**tx, "to": self.to, "value": self.value}

    def estimate_gas(self, tx: dict) -> int:
        return 21_000

    def call(self, tx: dict) -> None:
        return None

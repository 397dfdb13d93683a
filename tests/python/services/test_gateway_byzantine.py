"""One Byzantine signer below the threshold, as a real process between the gateway and an honest
signer (tests/python/services/byzantine.py): 3 signers, threshold 2, on a real Anvil node. Whether
it copies an honest signature, impersonates an honest signer or signs conflicting content with
its own authorized key, the gateway's answer is the honest one and the contract accepts it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractCustomError, ContractLogicError

from offchain.attest.eip712 import Domain, signer_of
from offchain.attest.messages import from_wire
from offchain.chain.anvil import free_port
from offchain.oracle.client import OracleClient
from offchain.sim.desk import trader_keys
from offchain.sim.stack import Proc

from .byzantine import Byzantine
from offchain.sim.harness import Harness, start_harness, stop_harness
from .test_services import call, perp_id

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@dataclass
class Setup:
    h: Harness
    byzantine: Byzantine
    gateway: Proc  # signers: honest 0, honest 1, the Byzantine process in the third seat

    @property
    def honest(self) -> list[Proc]:
        return [self.h.stack.procs["signer0"], self.h.stack.procs["signer1"]]


def signer_address(h: Harness, i: int) -> str:
    return str(Account.from_key(h.stack.signer_keys[i]).address)


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("byzantine")
    h = start_harness(workdir, n_signers=3, threshold=2, keeper=False)
    byzantine: Byzantine | None = None
    try:
        honest0, honest1 = h.stack.procs["signer0"], h.stack.procs["signer1"]
        # the Byzantine process holds the third authorized key and relays honest signer 0
        byzantine = Byzantine(
            honest0.url, h.deployment_path, h.stack.signer_keys[2], workdir / "logs" / "byzantine.log"
        ).start()
        port = free_port()
        gateway = Proc(
            "gateway-byzantine",
            [
                "oracle",
                "gateway",
                "--deployment",
                str(h.deployment_path),
                "--signers",
                f"{honest0.url},{honest1.url},{byzantine.url}",
                "--threshold",
                "2",
                "--port",
                str(port),
            ],
            {},
            workdir / "logs" / "gateway-byzantine.log",
            url=f"http://127.0.0.1:{port}",
        )
        h.stack.procs[gateway.name] = gateway
        gateway.start().wait_healthy()
        yield Setup(h, byzantine, gateway)
    finally:
        if byzantine is not None:
            byzantine.stop()
        stop_harness(h)


def long_one_perp(h: Harness, seed: int) -> LocalAccount:
    """A trader long one ETH-PERP at an index of exactly 3000 (value 3000.0; IM and MM exact
    binary fractions: every number on a rounding boundary)."""
    desk = h.desk
    trader, maker = trader_keys(seed, 2)
    desk.fund_gas([trader.address, maker.address])
    desk.deposit(trader, 10_000)
    desk.deposit(maker, 1_000_000)
    assert desk.fill(maker, trader, perp_id(h), -1.0, 3000.0).ok
    return trader


def withdraw_with(h: Harness, account: LocalAccount, body: dict[str, Any], units: float = 1.0) -> None:
    """Submits a gateway's margin attestation to the contract in a real withdrawal."""
    item = body["items"]["margin"]
    amount = int(units * 10**h.deployment.collateral_decimals)
    fn = h.desk.client.ch.functions.withdraw(
        amount, account.address, from_wire(item).as_tuple(), bytes.fromhex(item["signatures"][2:])
    )
    fn.call({"from": account.address})
    h.desk.send(account, fn, "withdraw")


def bundle_signers(h: Harness, item: dict[str, Any]) -> list[str]:
    """The addresses a bundle's 65-byte records recover to, in bundle order."""
    domain = Domain(h.deployment.chain_id, h.deployment.clearinghouse)
    sigs = bytes.fromhex(item["signatures"][2:])
    return [signer_of(domain, from_wire(item), sigs[i : i + 65]) for i in range(0, len(sigs), 65)]


def honest_pair(s: Setup) -> list[str]:
    return sorted([signer_address(s.h, 0), signer_address(s.h, 1)], key=lambda a: int(a, 16))


def test_a_copied_signature_counts_once_and_the_result_verifies_on_chain(s: Setup) -> None:
    s.byzantine.set_mode("copy")
    trader = long_one_perp(s.h, 501)
    status, copied = call(s.byzantine.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200 and copied["signer"] == signer_address(s.h, 0)  # honest 0's answer, verbatim
    status, body = call(s.gateway.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200, body
    item = body["items"]["margin"]
    assert bundle_signers(s.h, item) == honest_pair(s) == item["signers"]
    # what counting the copy would have produced — honest 0 twice — is what the contract refuses
    own = {p.url: call(p.url + "/v1/attest/margin", "POST", {"account": trader.address})[1] for p in s.honest}
    sig = {p.url: bytes.fromhex(own[p.url]["items"]["margin"]["signature"][2:]) for p in s.honest}
    a, b = s.honest[0].url, s.honest[1].url
    votes = [(signer_address(s.h, 0), sig[a]), (signer_address(s.h, 0), sig[a]), (signer_address(s.h, 1), sig[b])]
    doubled = b"".join(record for _, record in sorted(votes, key=lambda v: int(v[0], 16)))
    fn = s.h.desk.client.ch.functions.withdraw(10**6, trader.address, from_wire(item).as_tuple(), doubled)
    with pytest.raises((ContractLogicError, ContractCustomError)):
        fn.call({"from": trader.address})
    withdraw_with(s.h, trader, body)


def test_a_copy_cannot_stand_in_for_a_missing_signer(s: Setup) -> None:
    s.byzantine.set_mode("copy")
    trader = long_one_perp(s.h, 502)
    s.honest[1].stop()
    try:
        status, body = call(s.gateway.url + "/v1/attest/margin", "POST", {"account": trader.address})
        assert status == 503, body
        assert f"repeats the signature of {signer_address(s.h, 0)}" in body["signers"]["signer3"]
        assert "unreachable" in body["signers"]["signer2"]
    finally:
        s.honest[1].start().wait_healthy()


def test_an_impersonator_is_not_counted_and_the_result_verifies_on_chain(s: Setup) -> None:
    s.byzantine.set_mode("impersonate")
    trader = long_one_perp(s.h, 503)
    status, forged = call(s.byzantine.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200 and forged["signer"] == signer_address(s.h, 0)
    item = forged["items"]["margin"]
    assert (
        signer_of(
            Domain(s.h.deployment.chain_id, s.h.deployment.clearinghouse),
            from_wire(item),
            bytes.fromhex(item["signature"][2:]),
        )
        not in s.h.deployment.signers
    )
    status, body = call(s.gateway.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200, body
    assert bundle_signers(s.h, body["items"]["margin"]) == honest_pair(s)
    withdraw_with(s.h, trader, body)


def test_conflicting_content_signed_by_an_authorized_key_is_outvoted(s: Setup) -> None:
    s.byzantine.set_mode("conflict")
    trader = long_one_perp(s.h, 504)
    status, lie = call(s.byzantine.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200
    status, truth = call(s.honest[0].url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200
    lie_item = from_wire(lie["items"]["margin"])
    assert lie_item.value > from_wire(truth["items"]["margin"]).value
    assert bundle_signers(s.h, {**lie["items"]["margin"], "signatures": lie["items"]["margin"]["signature"]}) == [
        signer_address(s.h, 2)
    ]  # a valid signature by an authorized signer
    status, body = call(s.gateway.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 200, body
    assert body["agreement"] == "identical"
    assert body["items"]["margin"]["message"] == truth["items"]["margin"]["message"]
    assert bundle_signers(s.h, body["items"]["margin"]) == honest_pair(s)
    withdraw_with(s.h, trader, body)
    # a two-item answer (both sides of a trade) through the same gateway, filled on chain
    maker, taker = trader_keys(505, 2)
    desk = s.h.desk
    desk.fund_gas([maker.address, taker.address])
    desk.deposit(maker, 100_000)
    desk.deposit(taker, 100_000)
    main_oracle = desk.oracle
    desk.oracle = OracleClient(s.gateway.url)
    try:
        result = desk.fill(maker, taker, perp_id(s.h), -2.0, 3000.0)
    finally:
        desk.oracle = main_oracle
    assert result.ok, result.reason

"""Honest signers one rounding step apart, as real processes on a real Anvil node: a signer whose
floats are perturbed by a few ulps (DPRE_PERTURB_ULPS, offchain/attest/builder.py) disagrees
with the others at a rounding boundary; propose and co-sign still gives a result the contract
accepts — the more conservative one — and no signer co-signs a proposal beyond the tolerance,
so a Byzantine proposer cannot get a lie co-signed."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from offchain.attest.commitment import proof_bytes
from offchain.attest.eip712 import Domain, sign, signer_of
from offchain.attest.messages import from_wire
from offchain.chain.anvil import free_port
from offchain.oracle.client import OracleClient
from offchain.oracle.cosign import QUANTUM_WEI, changed_fields, content_of, tolerance
from offchain.oracle.server import Gateway
from offchain.risk.units import WAD
from offchain.sim.desk import trader_keys
from offchain.sim.stack import Proc

from .byzantine import Byzantine
from offchain.sim.harness import Harness, open_leveraged_longs, start_harness, stop_harness
from .test_gateway_byzantine import bundle_signers, long_one_perp, withdraw_with
from .test_services import call, perp_id

pytestmark = [pytest.mark.chain, pytest.mark.slow]

PERTURB_ULPS = 4


@dataclass
class Setup:
    h: Harness
    honest: Proc  # signer 0
    other_honest: Proc  # signer 1
    perturbed: Proc  # signer 2's key, floats nudged PERTURB_ULPS toward the conservative side
    byzantine: Byzantine  # signer 3's key, relays signer 0 and inflates IM and MM by 10%
    pair: Proc  # gateway over [honest, perturbed], threshold 2
    lie: Proc  # gateway over [honest, byzantine], threshold 2
    mixed: Proc  # gateway over [honest, perturbed, byzantine], threshold 2

    def address(self, i: int) -> str:
        return str(Account.from_key(self.h.stack.signer_keys[i]).address)

    @property
    def domain(self) -> Domain:
        return Domain(self.h.deployment.chain_id, self.h.deployment.clearinghouse)


def _gateway(h: Harness, name: str, urls: list[str]) -> Proc:
    port = free_port()
    proc = Proc(
        name,
        [
            "oracle",
            "gateway",
            "--deployment",
            str(h.deployment_path),
            "--signers",
            ",".join(urls),
            "--threshold",
            "2",
            "--port",
            str(port),
        ],
        {},
        h.stack.workdir / "logs" / f"{name}.log",
        url=f"http://127.0.0.1:{port}",
    )
    h.stack.procs[name] = proc
    return proc


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("cosign")
    h = start_harness(workdir, n_signers=4, threshold=2, keeper=False)
    byzantine: Byzantine | None = None
    try:
        stack = h.stack
        port = free_port()
        perturbed = Proc(
            "signer-perturbed",
            [
                "oracle",
                "signer",
                "--rpc",
                stack.rpc_url,
                "--deployment",
                str(h.deployment_path),
                "--key-env",
                "PERTURBED_KEY",
                "--port",
                str(port),
                "--state",
                str(workdir / "signer-perturbed-state.json"),
            ],
            {"PERTURBED_KEY": stack.signer_keys[2], "DPRE_PERTURB_ULPS": str(PERTURB_ULPS)},
            workdir / "logs" / "signer-perturbed.log",
            url=f"http://127.0.0.1:{port}",
        )
        stack.procs[perturbed.name] = perturbed
        perturbed.start().wait_healthy()
        honest, other = stack.procs["signer0"], stack.procs["signer1"]
        byzantine = Byzantine(
            honest.url, h.deployment_path, stack.signer_keys[3], workdir / "logs" / "byzantine.log", mode="inflate"
        ).start()
        gateways = [
            _gateway(h, "gateway-pair", [honest.url, perturbed.url]),
            _gateway(h, "gateway-lie", [honest.url, byzantine.url]),
            _gateway(h, "gateway-mixed", [honest.url, perturbed.url, byzantine.url]),
        ]
        for g in gateways:
            g.start().wait_healthy()
        yield Setup(h, honest, other, perturbed, byzantine, *gateways)
    finally:
        if byzantine is not None:
            byzantine.stop()
        stop_harness(h)


def margin(url: str, account: str) -> dict[str, Any]:
    status, body = call(url + "/v1/attest/margin", "POST", {"account": account})
    assert status == 200, body
    return body


def ascending(*addresses: str) -> list[str]:
    return sorted(addresses, key=lambda a: int(a, 16))


def test_a_perturbed_signer_is_one_rounding_step_away_at_a_boundary(s: Setup) -> None:
    trader = long_one_perp(s.h, 601)
    honest, other, perturbed = (margin(p.url, trader.address) for p in (s.honest, s.other_honest, s.perturbed))
    assert content_of(honest) == content_of(other)  # honest signers agree to the wei
    h, p = from_wire(honest["items"]["margin"]), from_wire(perturbed["items"]["margin"])
    assert h.value == 3000 * WAD
    assert (h.value - p.value, p.initial_margin - h.initial_margin, p.maintenance_margin - h.maintenance_margin) == (
        QUANTUM_WEI,
        QUANTUM_WEI,
        QUANTUM_WEI,
    )
    assert [f.split(":")[0] for f in changed_fields(content_of(perturbed), content_of(honest))] == [
        "margin.initialMargin",
        "margin.maintenanceMargin",
        "margin.value",
    ]
    # counted as before co-signing existed: no two identical signatures, no result
    gateway = Gateway([s.honest.url, s.perturbed.url], 2, s.domain, s.h.deployment.signers)
    groups, _ = gateway._tally([(s.honest.url, 200, honest), (s.perturbed.url, 200, perturbed)])
    assert len(groups) == 2 and gateway._agreed(groups) is None


def test_the_gateway_cosigns_the_more_conservative_result_and_the_contract_accepts_it(s: Setup) -> None:
    trader = long_one_perp(s.h, 602)
    honest = from_wire(margin(s.honest.url, trader.address)["items"]["margin"])
    body = margin(s.pair.url, trader.address)
    assert body["agreement"] == "cosigned"
    got = from_wire(body["items"]["margin"])
    assert got.value == honest.value - QUANTUM_WEI  # lowest value
    assert got.initial_margin == honest.initial_margin + QUANTUM_WEI  # highest IM
    assert got.maintenance_margin == honest.maintenance_margin + QUANTUM_WEI  # highest MM
    assert bundle_signers(s.h, body["items"]["margin"]) == ascending(s.address(0), s.address(2))
    withdraw_with(s.h, trader, body)
    # both sides of a trade, co-signed the same way, filled on chain
    maker, taker = trader_keys(603, 2)
    desk = s.h.desk
    desk.fund_gas([maker.address, taker.address])
    desk.deposit(maker, 100_000)
    desk.deposit(taker, 100_000)
    order = {
        "maker": maker.address,
        "instrument_id": perp_id(s.h),
        "size": str(-WAD),
        "price": str(3000 * WAD),
        "nonce": 1,
        "deadline": 2**40,
    }
    status, trade = call(
        s.pair.url + "/v1/attest/trade", "POST", {"order": order, "fill_amount": str(WAD), "taker": taker.address}
    )
    assert status == 200 and trade["agreement"] == "cosigned", trade
    main_oracle = desk.oracle
    desk.oracle = OracleClient(s.pair.url)
    try:
        result = desk.fill(maker, taker, perp_id(s.h), -1.0, 3000.0)
    finally:
        desk.oracle = main_oracle
    assert result.ok, result.reason


def signed_by(s: Setup, proposal: dict[str, Any], key: str | None = None) -> dict[str, str]:
    """The proposer signatures of a proposal, by default from signer1 (another authorized signer)."""
    key = key or s.h.stack.signer_keys[1]
    return {k: "0x" + sign(key, s.domain, from_wire(v)).hex() for k, v in proposal["items"].items()}


def cosign(s: Setup, proposal: dict[str, Any], account: str, key: str | None = None) -> tuple[int, dict[str, Any]]:
    return call(
        s.honest.url + "/v1/cosign",
        "POST",
        {
            "endpoint": "margin",
            "request": {"account": account},
            "proposal": proposal,
            "signatures": signed_by(s, proposal, key),
        },
    )


def test_an_honest_signer_cosigns_within_the_tolerance_and_refuses_beyond(s: Setup) -> None:
    trader = long_one_perp(s.h, 604)
    own = content_of(margin(s.honest.url, trader.address))
    message = own["items"]["margin"]["message"]
    value, mm = int(message["value"]), int(message["maintenanceMargin"])

    def proposal(**fields: Any) -> dict[str, Any]:
        changed = copy.deepcopy(own)
        changed["items"]["margin"]["message"].update(
            {k: str(v) if isinstance(v, int) else v for k, v in fields.items()}
        )
        return changed

    status, body = cosign(s, proposal(value=value - tolerance(value)), trader.address)
    assert status == 200, body
    signed = body["items"]["margin"]
    assert signer_of(s.domain, from_wire(signed), bytes.fromhex(signed["signature"][2:])) == s.address(0)
    assert int(signed["message"]["value"]) == value - tolerance(value)
    for lie, field in (
        (proposal(value=value - tolerance(value) - 1), "margin.value"),
        (proposal(value=value + tolerance(value) + 1), "margin.value"),
        (proposal(maintenanceMargin=mm + tolerance(mm) + 1), "margin.maintenanceMargin"),
        (proposal(maintenanceMargin=mm * 2), "margin.maintenanceMargin"),
        (proposal(stateHash="0x" + "00" * 32), "margin.stateHash"),
    ):
        status, body = cosign(s, lie, trader.address)
        assert status == 409 and body["error"].startswith("refusing to co-sign") and field in body["error"], body
    status, body = call(
        s.honest.url + "/v1/cosign",
        "POST",
        {"endpoint": "nothing", "request": {}, "proposal": own, "signatures": signed_by(s, own)},
    )
    assert status == 400
    # within the tolerance, but proposed by no other authorized signer: refused, whoever asks
    within = proposal(value=value - tolerance(value))
    for key, why in (
        (Account.create().key.hex(), "not signed by another authorized signer"),  # an outsider
        (s.h.stack.signer_keys[0], "not signed by another authorized signer"),  # the co-signer itself
    ):
        status, body = cosign(s, within, trader.address, key)
        assert status == 409 and why in body["error"], body
    status, body = call(
        s.honest.url + "/v1/cosign",
        "POST",
        {"endpoint": "margin", "request": {"account": trader.address}, "proposal": within},
    )
    assert status == 400 and body["error"].startswith("signatures: required"), body


def test_a_byzantine_proposer_cannot_get_a_lie_cosigned(s: Setup) -> None:
    trader = long_one_perp(s.h, 605)
    lie = from_wire(margin(s.byzantine.url, trader.address)["items"]["margin"])
    honest = from_wire(margin(s.honest.url, trader.address)["items"]["margin"])
    assert lie.maintenance_margin > honest.maintenance_margin + tolerance(honest.maintenance_margin)
    # honest + Byzantine: the lie is the most conservative proposal, and the honest signer refuses it
    status, body = call(s.lie.url + "/v1/attest/margin", "POST", {"account": trader.address})
    assert status == 503, body
    refusal = body["signers"]["signer1"]  # seats of gateway-lie: honest, byzantine
    assert (
        "refusing to co-sign" in refusal and "margin.maintenanceMargin" in refusal and "beyond the tolerance" in refusal
    )
    assert "no proposal was co-signed" in body["error"]
    # and the Byzantine relay, asked to co-sign the honest proposal, gets nothing it can count: the
    # honest signer does not co-sign its own proposal through it
    assert "not signed by another authorized signer" in body["signers"]["signer2"]
    # honest + perturbed + Byzantine: the lie is refused by both, the perturbed proposal is co-signed
    body = margin(s.mixed.url, trader.address)
    assert body["agreement"] == "cosigned"
    got = from_wire(body["items"]["margin"])
    assert got.maintenance_margin == honest.maintenance_margin + QUANTUM_WEI and got.value == honest.value - QUANTUM_WEI
    assert bundle_signers(s.h, body["items"]["margin"]) == ascending(s.address(0), s.address(2))
    withdraw_with(s.h, trader, body)


# ---------------------------------------------------------------------------------- commitments


def commit(h: Harness, gateway_url: str) -> tuple[dict[str, Any], bytes]:
    """A whole-book commitment through a gateway, posted on chain; returns (answer, root)."""
    status, body = call(gateway_url + "/v1/attest/commitment", "POST", {})
    assert status == 200, body
    item = body["items"]["commitment"]
    commitment = from_wire(item)
    client = h.desk.client
    fn = client.commitments.functions.postCommitment(commitment.as_tuple(), bytes.fromhex(item["signatures"][2:]))
    h.desk.send(h.desk.deployer, fn, "post commitment")
    assert client.commitments.functions.rootPosted(commitment.root).call()
    return body, commitment.root


def proof_for(h: Harness, gateway_url: str, root: bytes, account: str) -> tuple[Any, bytes]:
    """An account's committed attestation and the `sigs` bytes that prove it."""
    status, body = call(f"{gateway_url}/v1/commitments/0x{root.hex()}/proofs/{account}")
    assert status == 200, body
    proof = [bytes.fromhex(p[2:]) for p in body["proof"]]
    return from_wire(body["attestation"]), proof_bytes(h.deployment.commitments, root, proof)


def test_signers_agree_on_a_whole_book_root_and_a_proof_replaces_signatures(s: Setup) -> None:
    h = s.h
    gateway = h.stack.procs["gateway"].url  # four real signer processes, threshold 2
    maker, *traders = trader_keys(610, 4)
    open_leveraged_longs(h, traders, maker, contracts=10.0, deposit=8_000)
    liquidator = trader_keys(614, 1)[0]
    h.desk.fund_gas([liquidator.address])
    h.desk.deposit(liquidator, 500_000)
    body, root = commit(h, gateway)
    assert body["agreement"] == "identical"
    roots = {
        call(p.url + "/v1/attest/commitment", "POST", {"min_block": body["block"]})[1]["items"]["commitment"][
            "message"
        ]["root"]
        for p in (s.honest, s.other_honest)
    }
    assert roots == {"0x" + root.hex()}, "honest signers build the same tree"
    committed = int(from_wire(body["items"]["commitment"]).accounts)
    assert committed >= len(traders) + 2
    # a withdrawal with a proof, no signature
    att, sigs = proof_for(h, gateway, root, traders[0].address)
    fn = h.desk.client.ch.functions.withdraw(
        10**h.deployment.collateral_decimals, traders[0].address, att.as_tuple(), sigs
    )
    h.desk.send(traders[0], fn, "withdraw with a proof")
    # the market falls: a new root, and a liquidation proven for the victims and the liquidator
    h.desk.set_market("ETH", 2_500.0, 0.8)  # every long below MM, none bankrupt
    _, root = commit(h, gateway)
    requests = []
    for t in traders[1:]:
        att, sigs = proof_for(h, gateway, root, t.address)
        requests.append((t.address, att.as_tuple(), sigs, WAD))
    katt, ksigs = proof_for(h, gateway, root, liquidator.address)
    engine = h.desk.client.engine
    receipt = h.desk.send(
        liquidator, engine.functions.liquidate(requests, katt.as_tuple(), ksigs), "liquidate with proofs"
    )
    liquidated = engine.events.Liquidated().process_receipt(receipt)
    assert {e.args["account"] for e in liquidated} == {t.address for t in traders[1:]}
    # a proof of a leaf the account has since left is refused as a signed attestation would be
    att, sigs = proof_for(h, gateway, root, traders[1].address)
    wrong_state = "0x" + keccak(text="WrongPortfolioState(bytes32,bytes32)")[:4].hex()
    with pytest.raises(Exception, match=wrong_state):
        h.desk.client.ch.functions.withdraw(1, traders[1].address, att.as_tuple(), sigs).call(
            {"from": traders[1].address}
        )


def test_signers_a_rounding_step_apart_cosign_one_root_from_the_proposers_numbers(s: Setup) -> None:
    h = s.h
    long_one_perp(h, 620)  # every number on a rounding boundary: the perturbed signer differs
    status, honest = call(s.honest.url + "/v1/attest/commitment", "POST", {})
    assert status == 200, honest
    status, perturbed = call(s.perturbed.url + "/v1/attest/commitment", "POST", {"min_block": honest["block"]})
    assert status == 200, perturbed
    assert honest["items"]["commitment"]["message"]["root"] != perturbed["items"]["commitment"]["message"]["root"]
    body, root = commit(h, s.pair.url)  # honest + perturbed, threshold 2
    assert body["agreement"] == "cosigned"
    assert bundle_signers(h, body["items"]["commitment"]) == ascending(s.address(0), s.address(2))
    # the co-signer rebuilt the agreed tree from the proposer's numbers: proofs come from either
    for p in (s.honest, s.perturbed):
        status, proof = call(f"{p.url}/v1/commitments/0x{root.hex()}/proofs/{s.address(0)}")
        assert status == 404 and "not in commitment" in proof["error"]  # a signer is no account
    own_roots = {
        s.honest.url: honest["items"]["commitment"]["message"]["root"],
        s.perturbed.url: perturbed["items"]["commitment"]["message"]["root"],
    }
    cosigner = next(url for url, r in own_roots.items() if r != "0x" + root.hex())
    proposer = next(url for url in own_roots if url != cosigner)
    status, numbers = call(f"{proposer}/v1/commitments/0x{root.hex()}/numbers")
    assert status == 200, numbers
    # numbers beyond the tolerance are refused by the co-signer, naming the account and field
    account, (value, im, mm) = next(iter(numbers["numbers"].items()))
    lie = {**numbers["numbers"], account: [str(int(value) + 10**15), im, mm]}
    proposal = {
        "items": {"commitment": {k: v for k, v in body["items"]["commitment"].items() if k in ("type", "message")}},
        "extra": body["extra"],
    }
    status, refused = call(
        cosigner + "/v1/cosign",
        "POST",
        {
            "endpoint": "commitment",
            "request": {"min_block": body["block"]},
            "numbers": lie,
            "proposal": proposal,
            "signatures": signed_by(s, proposal),
        },
    )
    assert (
        status == 409 and f"{account}.value" in refused["error"] and "beyond the tolerance" in refused["error"]
    ), refused
    # and without the proposer's numbers nothing is co-signed
    status, refused = call(
        cosigner + "/v1/cosign",
        "POST",
        {
            "endpoint": "commitment",
            "request": {"min_block": body["block"]},
            "proposal": proposal,
            "signatures": signed_by(s, proposal),
        },
    )
    assert status == 409 and "other accounts" in refused["error"], refused


def test_malformed_commitment_requests_get_400_naming_the_field(s: Setup) -> None:
    status, body = call(s.honest.url + "/v1/attest/commitment", "POST", {"min_block": "x"})
    assert status == 400 and body["error"].startswith("min_block"), body
    status, answer = call(s.honest.url + "/v1/attest/commitment", "POST", {})
    assert status == 200, answer
    account = next(
        iter(
            call(f"{s.honest.url}/v1/commitments/{answer['items']['commitment']['message']['root']}/numbers")[1][
                "numbers"
            ]
        )
    )
    proposal = {
        "items": {
            "commitment": {
                "type": "SnapshotCommitment",
                "message": {**answer["items"]["commitment"]["message"], "root": "0x" + "ab" * 32},
            }
        },
        "extra": answer["extra"],
    }
    for bad in (
        [1e999, "0", "0"],
        ["1", "2"],
        "x",
        [True, "0", "0"],
        ["--1", "0", "0"],
        ["²", "0", "0"],
        ["01", "0", "0"],
    ):
        status, body = call(
            s.honest.url + "/v1/cosign",
            "POST",
            {
                "endpoint": "commitment",
                "request": {"min_block": answer["block"]},
                "numbers": {account: bad},
                "proposal": proposal,
                "signatures": signed_by(s, proposal),
            },
        )
        assert status in (400, 409), (bad, body)

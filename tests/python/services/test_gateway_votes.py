"""The gateway's vote count, in process: votes are the addresses signatures recover to, within
the authorized set, once each, and every item of a result comes from the same signers."""

from __future__ import annotations

from typing import Any

from offchain.attest.eip712 import Domain, signer_of
from offchain.attest.messages import MarginAttestation, from_wire, to_wire
from offchain.attest.signer import LocalSigner
from offchain.oracle.server import Gateway
from offchain.risk.units import WAD

DOMAIN = Domain(31337, "0x" + "cc" * 20)
SIGNERS = sorted((LocalSigner.random() for _ in range(3)), key=lambda s: int(s.address, 16))
A, B, C = SIGNERS
URLS = ["http://a", "http://b", "http://c"]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def att(value: int = 3000 * WAD, account: str = "0x" + "11" * 20) -> MarginAttestation:
    return MarginAttestation(account, b"\x22" * 32, value, 700 * WAD, 570 * WAD, 1_800_000_000, 1_800_000_060, 1)


def answer(
    signer: LocalSigner, items: dict[str, MarginAttestation], claims: str | None = None, block: int = 10
) -> dict[str, Any]:
    return {
        "block": block,
        "signer": claims or signer.address,
        "extra": {},
        "items": {k: {**to_wire(v), "signature": "0x" + signer.sign(DOMAIN, v).hex()} for k, v in items.items()},
    }


def gateway() -> Gateway:
    return Gateway(URLS, 2, DOMAIN, [s.address for s in SIGNERS])


def combine(*answers: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    gw = gateway()
    groups, reasons = gw._tally([(url, 200, a) for url, a in zip(URLS, answers)])
    return gw._agreed(groups), reasons


def recovered(result: dict[str, Any], name: str) -> list[str]:
    item = result["items"][name]
    sigs = bytes.fromhex(item["signatures"][2:])
    return [signer_of(DOMAIN, from_wire(item), sigs[i : i + 65]) for i in range(0, len(sigs), 65)]


def test_a_copied_signature_counts_once() -> None:
    honest_a = answer(A, {"margin": att()})
    result, reasons = combine(honest_a, answer(B, {"margin": att()}), dict(honest_a))
    assert result is not None and recovered(result, "margin") == [A.address, B.address]
    assert "repeats the signature of" in reasons[URLS[2]]
    # alone with its copy, A is one vote: no result
    result, reasons = combine(honest_a, {}, dict(honest_a))
    assert result is None and "repeats the signature of" in reasons[URLS[2]]


def test_threshold_signatures_in_ascending_order_whatever_the_arrival_order() -> None:
    result, _ = combine(answer(C, {"margin": att()}), answer(A, {"margin": att()}), answer(B, {"margin": att()}))
    # exactly the threshold (2) of signatures, the lowest addresses: C's is left off
    assert result is not None and recovered(result, "margin") == [A.address, B.address]
    assert result["items"]["margin"]["signers"] == [A.address, B.address]


def test_impostors_and_unauthorized_keys_are_not_votes() -> None:
    outsider = LocalSigner.random()
    result, reasons = combine(
        answer(A, {"margin": att()}),
        answer(outsider, {"margin": att()}, claims=B.address),
        answer(outsider, {"margin": att()}),
    )
    assert result is None
    assert f"signed by {outsider.address}, not an authorized signer (claims to be {B.address})" == reasons[URLS[1]]
    # a claim is ignored either way: a genuine signature by C counts as C whatever it claims
    result, _ = combine(answer(A, {"margin": att()}), answer(C, {"margin": att()}, claims=A.address), {"items": {}})
    assert result is not None and recovered(result, "margin") == [A.address, C.address]


def test_a_malleated_high_s_signature_is_no_vote() -> None:
    """The contract rejects high-s, so a bundle holding one would fail on chain."""
    bad = answer(B, {"margin": att()})
    sig = bytes.fromhex(bad["items"]["margin"]["signature"][2:])
    s = SECP256K1_N - int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + s.to_bytes(32, "big") + bytes([55 - sig[64]])  # same signer, other half of the curve
    assert signer_of(DOMAIN, att(), flipped) == B.address
    bad["items"]["margin"]["signature"] = "0x" + flipped.hex()
    result, reasons = combine(answer(A, {"margin": att()}), bad, answer(C, {"margin": att(value=1)}))
    assert result is None and "low-s" in reasons[URLS[1]]


def test_a_conflicting_content_is_outvoted_and_listed() -> None:
    result, reasons = combine(
        answer(A, {"margin": att()}), answer(B, {"margin": att()}), answer(C, {"margin": att(4000 * WAD)})
    )
    assert result is not None and from_wire(result["items"]["margin"]).value == 3000 * WAD
    assert result["agreement"] == "identical"


def test_items_of_one_result_never_come_from_different_signer_sets() -> None:
    """A and B agree on the maker, B and C on the taker: no signer set agrees on both."""
    maker, taker = att(account="0x" + "aa" * 20), att(account="0x" + "bb" * 20)
    other_maker, other_taker = att(1, "0x" + "aa" * 20), att(1, "0x" + "bb" * 20)
    result, _ = combine(
        answer(A, {"maker": maker, "taker": other_taker}),
        answer(B, {"maker": maker, "taker": taker}),
        answer(C, {"maker": other_maker, "taker": taker}),
    )
    assert result is None
    # and one answer whose items are signed by two different keys is no vote at all
    mixed = answer(A, {"maker": maker})
    mixed["items"]["taker"] = answer(B, {"taker": taker})["items"]["taker"]
    gw = gateway()
    groups, reasons = gw._tally([(URLS[0], 200, mixed)])
    assert not groups and "different keys" in reasons[URLS[0]]


def test_malformed_answers_are_reasons_not_crashes() -> None:
    gw = gateway()
    garbage: list[dict[str, Any]] = [
        {},
        {"items": None},
        {"items": {"margin": {"type": "Nope"}}},
        {"items": {"margin": {**to_wire(att()), "signature": "0x1234"}}},
        {"items": {"margin": {**to_wire(att()), "signature": "zz"}}, "block": "x"},
    ]
    groups, reasons = gw._tally([(f"http://x{i}", 200, g) for i, g in enumerate(garbage)])
    assert not groups and len(reasons) == len(garbage)

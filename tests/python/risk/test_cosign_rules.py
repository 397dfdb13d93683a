"""Propose and co-sign, the pure rules: the tolerance, what a signer may co-sign, which proposal
the gateway picks, and that the float noise they are built for stays inside the tolerance."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest

from offchain.attest import builder
from offchain.attest.messages import AdlAttestation, MarginAttestation, SettlementPrice, to_wire
from offchain.oracle.cosign import (
    QUANTUM_WEI,
    content_key,
    differences,
    proposal_order,
    tolerance,
)
from offchain.risk.instruments import Instrument
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD

from .helpers import UNIVERSE, market

ACCOUNT = "0x" + "11" * 20
STATE = b"\x22" * 32


def margin_item(value: int = 3000 * WAD, im: int = 712 * WAD, mm: int = 570 * WAD, **changes: Any) -> MarginAttestation:
    fields = dict(
        account=ACCOUNT,
        state_hash=STATE,
        value=value,
        initial_margin=im,
        maintenance_margin=mm,
        snapshot_time=1_800_000_000,
        deadline=1_800_000_060,
        params_version=1,
    )
    return MarginAttestation(**{**fields, **changes})


def settlement(price: int) -> SettlementPrice:
    values = {"underlying": b"\x01" * 32, "expiry": 1_800_000_000, "price": price, "snapshot_time": 1_800_000_000}
    return SettlementPrice(**{f.name: values[f.name] for f in dataclasses.fields(SettlementPrice)})


def content(*items: tuple[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"items": {name: to_wire(item) for name, item in items}, "extra": extra or {}}


# --- tolerance ------------------------------------------------------------------------------------


def test_tolerance_is_one_quantum_or_one_part_in_a_trillion() -> None:
    assert QUANTUM_WEI == 10**9  # the step of to_wad_up / to_wad_down
    assert tolerance(0) == tolerance(WAD) == tolerance(-WAD) == QUANTUM_WEI
    assert tolerance(3000 * WAD) == 3 * 10**9
    assert tolerance(-(10**6) * WAD) == 10**12


# --- what a signer co-signs ---------------------------------------------------------------------


def test_a_rounding_flip_either_way_is_cosigned() -> None:
    own = content(("margin", margin_item()))
    for delta in (-QUANTUM_WEI, QUANTUM_WEI):
        for field in ("value", "im", "mm"):
            base = {"value": 3000 * WAD, "im": 712 * WAD, "mm": 570 * WAD}
            base[field] += delta
            assert differences(content(("margin", margin_item(**base))), own) == []


def test_beyond_the_tolerance_is_refused_on_both_sides() -> None:
    own = content(("margin", margin_item()))
    tol_value = tolerance(3000 * WAD)
    assert differences(content(("margin", margin_item(value=3000 * WAD + tol_value))), own) == []
    assert differences(content(("margin", margin_item(value=3000 * WAD - tol_value))), own) == []
    # less conservative than own beyond the tolerance: a higher value, a lower MM
    problems = differences(content(("margin", margin_item(value=3000 * WAD + tol_value + 1))), own)
    assert len(problems) == 1 and problems[0].startswith("margin.value:") and "beyond the tolerance" in problems[0]
    assert differences(content(("margin", margin_item(mm=570 * WAD - tolerance(570 * WAD) - 1))), own)
    # more conservative beyond the tolerance is a lie too: a too-high MM liquidates a healthy account
    assert differences(content(("margin", margin_item(mm=570 * WAD + tolerance(570 * WAD) + 1))), own)
    assert differences(content(("margin", margin_item(value=0))), own)


@pytest.mark.parametrize(
    "change",
    [
        {"state_hash": b"\x33" * 32},
        {"account": "0x" + "44" * 20},
        {"snapshot_time": 1_800_000_001},
        {"deadline": 1_800_000_061},
        {"params_version": 2},
    ],
)
def test_every_other_field_must_be_identical(change: dict[str, Any]) -> None:
    own = content(("margin", margin_item()))
    problems = differences(content(("margin", margin_item(**change))), own)
    assert len(problems) == 1 and "instead of" in problems[0]


def test_item_names_types_extra_and_malformed_proposals_are_refused() -> None:
    own = content(("maker", margin_item()), ("taker", margin_item(value=WAD)))
    assert differences(own, own) == []
    assert differences(content(("maker", margin_item())), own)[0].startswith("items:")
    assert (
        "instead of a MarginAttestation"
        in differences(content(("maker", settlement(3000 * WAD)), ("taker", margin_item())), own)[0]
    )
    assert differences({**own, "extra": {"fractions": {}}}, own) == ["extra: differs from own"]
    broken = copy.deepcopy(own)
    broken["items"]["maker"]["message"]["value"] = "lots"
    assert "malformed" in differences(broken, own)[0]
    assert differences({"items": "nope"}, own)[0].startswith("items:")


def test_settlement_prices_are_exact_and_adl_marks_tolerated_per_entry() -> None:
    own = content(("settlement", settlement(3000 * WAD)))
    assert differences(content(("settlement", settlement(3000 * WAD + 1))), own)

    def adl(marks: tuple[int, ...]) -> AdlAttestation:
        return AdlAttestation(
            ACCOUNT, STATE, (1, 2), marks, (b"\x05" * 32, b"\x06" * 32), 1_800_000_000, 1_800_000_060, 1
        )

    own = content(("adl", adl((3000 * WAD, 90_000 * WAD))))
    assert differences(content(("adl", adl((3000 * WAD - QUANTUM_WEI, 90_000 * WAD + QUANTUM_WEI)))), own) == []
    assert differences(content(("adl", adl((3000 * WAD, 91_000 * WAD)))), own)
    assert "entries" in differences(content(("adl", adl((3000 * WAD,)))), own)[0]


# --- which proposal the gateway picks ----------------------------------------------------------


def pick(*candidates: dict[str, Any]) -> dict[str, Any]:
    return min(candidates, key=proposal_order)


def test_the_proposal_most_conservative_on_every_field_is_picked() -> None:
    q = QUANTUM_WEI
    safe = content(("margin", margin_item(value=3000 * WAD - q, im=712 * WAD + q, mm=570 * WAD + q)))
    loose = content(("margin", margin_item()))
    assert pick(loose, safe) is safe and pick(safe, loose) is safe


def test_mixed_proposals_pick_highest_mm_then_im_then_lowest_value() -> None:
    q = QUANTUM_WEI
    higher_mm = content(("margin", margin_item(value=3000 * WAD + q, mm=570 * WAD + q)))
    lower_value = content(("margin", margin_item(value=3000 * WAD - q)))
    assert pick(lower_value, higher_mm) is higher_mm
    higher_im = content(("margin", margin_item(value=3000 * WAD + q, im=712 * WAD + q)))
    assert pick(lower_value, higher_im) is higher_im
    assert pick(content(("margin", margin_item())), lower_value) is lower_value
    # identical numbers, another snapshot: the canonical text decides, not arrival order
    a, b = content(("margin", margin_item())), content(("margin", margin_item(snapshot_time=1_800_000_005)))
    assert pick(a, b) is pick(b, a)
    assert content_key(a) != content_key(b)


def test_multi_item_answers_compare_totals() -> None:
    q = QUANTUM_WEI
    a = content(("maker", margin_item(mm=570 * WAD + q)), ("taker", margin_item()))
    b = content(("maker", margin_item()), ("taker", margin_item(mm=570 * WAD + 2 * q)))
    assert pick(a, b) is b


# --- the noise the tolerance is for ------------------------------------------------------------


def numbers(positions: dict[int, int]) -> tuple[int, int, int]:
    registry = {i + 1: inst for i, inst in enumerate(UNIVERSE)}
    return builder.margin_numbers(positions, registry, market(), MarginParams())


def test_a_few_ulps_flip_an_exact_boundary_by_one_quantum_within_the_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    perp = 1 + UNIVERSE.index(Instrument.perp("ETH"))
    honest = numbers({perp: WAD})
    assert honest[0] == 3000 * WAD  # 1 × 3000.0 is exact: the value sits on a rounding boundary
    monkeypatch.setattr(builder, "PERTURB_ULPS", 4)
    perturbed = numbers({perp: WAD})
    assert (honest[0] - perturbed[0], perturbed[1] - honest[1], perturbed[2] - honest[2]) == (QUANTUM_WEI,) * 3
    monkeypatch.setattr(builder, "PERTURB_ULPS", -4)
    assert numbers({perp: WAD}) == honest  # the other way the floats stay inside the same quantum
    for own, other in zip(honest, perturbed):
        assert abs(own - other) <= tolerance(own)


def test_ulp_noise_on_random_portfolios_stays_within_the_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        picks = rng.choice(len(UNIVERSE), size=int(rng.integers(1, 8)), replace=False)
        positions = {int(i) + 1: int(rng.normal(0, 20) * WAD) or WAD for i in picks}
        monkeypatch.setattr(builder, "PERTURB_ULPS", 0)
        honest = numbers(positions)
        for ulps in (-16, 16):
            monkeypatch.setattr(builder, "PERTURB_ULPS", ulps)
            for own, other in zip(honest, numbers(positions)):
                assert abs(own - other) <= tolerance(own)


def test_insertion_order_of_positions_does_not_change_the_integers() -> None:
    rng = np.random.default_rng(3)
    picks = [int(i) + 1 for i in rng.choice(len(UNIVERSE), size=12, replace=False)]
    positions = {i: int(rng.normal(0, 20) * WAD) or WAD for i in picks}
    assert numbers(positions) == numbers(dict(reversed(list(positions.items()))))

"""Agreement between honest signers whose floats differ by a few ulps: propose and co-sign.

Value, IM and MM are computed in floats and rounded once to on-chain integers (units.py: to a
quantum of 1e-9 unit, value down, requirements up). Two honest signers whose floats differ by
a few ulps (another summation order, another numpy build) round to integers one quantum apart
whenever the exact result sits on a rounding boundary, and then no content has `threshold`
identical signatures. The gateway then proposes one content (`proposal_order`) to the other
signers; each recomputes the request itself and signs the proposal only if `differences` finds
none. Everything here is pure: contents in, verdicts out.

A content is what signers must agree on: {"items": {name: {"type", "message"}}, "extra": {...}},
the wire form of an answer without its signatures.

Tolerance. A float-derived integer may differ from the co-signer's own by at most
`tolerance(own)` = max(one quantum = 1e9 wei, |own| / 1e12), on either side:
- one quantum is exactly what a rounding flip costs: floats a few ulps apart straddle at most
  one quantum boundary;
- 1e-12 relative is ~4,500 ulps of a double (ulp ≈ 2.2e-16 relative), so it also covers float
  noise that exceeds a quantum on large numbers (above ~1e6 units) with room for the error
  growth of sums over many positions and scenarios;
- nothing a real disagreement produces is that small: a different feed round, vol, position or
  parameter set moves these numbers by far more, and in any case the most a proposal can shift
  a number is 1e-12 of it (a millionth of a unit on a million) or 1e-9 of a unit.
The bound that lets a signer accept a slightly less conservative proposal (value ≤ own + tol,
IM ≥ own − tol, MM ≥ own − tol) is mirrored on the conservative side: a number far more
conservative than the truth is a lie too (a too-high MM liquidates a healthy account), so a
proposal must be within the tolerance in both directions. Every other field (account, state
hash, times, version, item names, extra data) must be identical.

What this cannot reconcile: a float-derived number that feeds a field which must be identical.
A liquidation's fractions (extra data) and the liquidator's post-slice state hash follow from
the attested MM, and an ADL plan's queue roots from float rankings, so signers a quantum apart
there also differ in those fields and refuse each other; such a request fails as before (503).
"""

from __future__ import annotations

import json
from typing import Any

from offchain.attest.messages import from_wire
from offchain.risk.units import QUANTUM_DIGITS, WAD
from offchain.ops.logs import show_value

Content = dict[str, Any]

QUANTUM_WEI = WAD // 10**QUANTUM_DIGITS  # the step of every float-derived integer (1e9 wei)
RELATIVE_TOLERANCE = 10**12  # tolerance is |own| / RELATIVE_TOLERANCE above one quantum

# Float-derived fields per message type: +1 where higher is more conservative, -1 where lower
# is, 0 where neither (tolerated but not ranked). Every other field must match exactly.
FLOAT_FIELDS: dict[str, dict[str, int]] = {
    "MarginAttestation": {"value": -1, "initialMargin": 1, "maintenanceMargin": 1},
    "AdlAttestation": {"marks": 0},
}


def tolerance(own: int) -> int:
    """The largest difference from a signer's own integer that float noise can explain."""
    return max(QUANTUM_WEI, abs(own) // RELATIVE_TOLERANCE)


def content_of(answer: dict[str, Any]) -> Content:
    """The signed content of an answer (its items without signatures, and its extra data)."""
    items = {k: {"type": v["type"], "message": v["message"]} for k, v in answer["items"].items()}
    return {"items": items, "extra": answer.get("extra") or {}}


def content_key(content: Content) -> str:
    """Canonical text of a content: equal keys, identical content."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"))


def differences(proposal: Content, own: Content) -> list[str]:
    """Why a signer whose own answer is `own` must not co-sign `proposal` (empty: it may)."""
    theirs_items, own_items = proposal.get("items"), own["items"]
    if not isinstance(theirs_items, dict) or set(theirs_items) != set(own_items):
        names = sorted(theirs_items) if isinstance(theirs_items, dict) else theirs_items
        return [f"items: {names} instead of {sorted(own_items)}"]
    problems: list[str] = []
    for name in sorted(own_items):
        mine = from_wire(own_items[name])
        try:
            theirs = from_wire(theirs_items[name])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            problems.append(f"{name}: malformed ({err!r})")
            continue
        if type(theirs) is not type(mine):
            problems.append(f"{name}: a {theirs.PRIMARY_TYPE} instead of a {mine.PRIMARY_TYPE}")
            continue
        tolerated = FLOAT_FIELDS.get(mine.PRIMARY_TYPE, {})
        own_fields, their_fields = mine.message(), theirs.message()
        for field, own_value in own_fields.items():
            their_value = their_fields[field]
            if field not in tolerated:
                if their_value != own_value:
                    problems.append(f"{name}.{field}: {show_value(their_value)} instead of {show_value(own_value)}")
                continue
            pairs = list(zip(their_value, own_value)) if isinstance(own_value, list) else [(their_value, own_value)]
            if isinstance(own_value, list) and len(their_value) != len(own_value):
                problems.append(f"{name}.{field}: {len(their_value)} entries instead of {len(own_value)}")
                continue
            for t, o in pairs:
                if abs(t - o) > tolerance(o):
                    problems.append(
                        f"{name}.{field}: {t} is {t - o:+d} from own {o}, beyond the tolerance {tolerance(o)}"
                    )
    if proposal.get("extra", {}) != own.get("extra", {}):
        problems.append("extra: differs from own")
    return problems


def proposal_order(content: Content) -> tuple[Any, ...]:
    """Sort key over candidate contents, most conservative first: highest MM, then highest IM,
    then lowest value (summed over the items of a multi-item answer), then the canonical text so
    the choice never depends on arrival order. A content that is most conservative on every
    field of every item is always first."""
    totals = {"value": 0, "initialMargin": 0, "maintenanceMargin": 0}
    for item in content.get("items", {}).values():
        directions = FLOAT_FIELDS.get(item.get("type", ""), {})
        for field in totals:
            if directions.get(field):
                totals[field] += int(item["message"][field])
    return (-totals["maintenanceMargin"], -totals["initialMargin"], totals["value"], content_key(content))


def changed_fields(content: Content, reference: Content) -> list[str]:
    """Names of the fields where `content` differs from `reference` (for refusal messages)."""
    out: list[str] = []
    items, ref_items = content.get("items", {}), reference.get("items", {})
    for name in sorted(set(items) | set(ref_items)):
        a, b = items.get(name), ref_items.get(name)
        if a is None or b is None or a.get("type") != b.get("type"):
            out.append(name)
            continue
        message, ref_message = a.get("message", {}), b.get("message", {})
        out += [
            f"{name}.{f}: {message.get(f)} vs {ref_message.get(f)}"
            for f in sorted(set(message) | set(ref_message))
            if message.get(f) != ref_message.get(f)
        ]
    if content.get("extra") != reference.get("extra"):
        out.append("extra")
    return out

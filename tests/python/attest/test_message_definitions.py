"""Every struct defined in offchain/attest/messages.py agrees with the contracts.

- members (names and Solidity types, in order) against the compiled ABI of every contract;
- each signed message's EIP-712 type string against the one the contracts hash, wherever in
  contracts/ it is declared;
- the set of signed messages is the same on both sides;
- the wire form, a public API of the HTTP services, is pinned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from offchain.attest.eip712 import DOMAIN_NAME, DOMAIN_TYPE_STRING, DOMAIN_VERSION, type_string, typehash
from offchain.attest.messages import (
    MESSAGE_TYPES,
    STRUCT_TYPES,
    AdlAttestation,
    AdlFill,
    MarginAttestation,
    SignedMessage,
    Struct,
    from_wire,
    to_wire,
)
from offchain.chain.contracts import load_abi

ROOT = Path(__file__).resolve().parents[3]
CONTRACTS = ROOT / "contracts"

# Solidity lexemes that can hide code: string literals (kept) and comments (dropped).
_LEXEME = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*[\s\S]*?\*/')
_STRING = r'"((?:\\.|[^"\\\n])*)"'
# Adjacent literals are one string in Solidity ("a" "b" is "ab"): how long type strings are split.
_LITERAL_RUN = re.compile(rf"{_STRING}(?:\s*{_STRING})*")
_MEMBER = r"[A-Za-z_]\w*(?:\[\d*\])* [A-Za-z_]\w*"
_STRUCT_TYPE = rf"([A-Z]\w*)\(({_MEMBER}(?:,{_MEMBER})*)\)"
# An EIP-712 type string: the primary type, then any referenced types.
_TYPE_STRING = re.compile(rf"{_STRUCT_TYPE}(?:[A-Z]\w*\({_MEMBER}(?:,{_MEMBER})*\))*")
_DECLARATION = re.compile(r"^\s*(?:abstract\s+)?(?:contract|interface|library)\s+(\w+)", re.MULTILINE)
_DOMAIN = re.compile(rf"\bEIP712\(\s*{_STRING}\s*,\s*{_STRING}\s*\)")


def _code(source: str) -> str:
    """Solidity source without comments (a type string in a comment is not a declaration)."""
    return _LEXEME.sub(lambda m: m[0] if m[0][0] in "\"'" else " ", source)


def type_strings_in(source: str) -> dict[str, set[str]]:
    """Primary type name → the EIP-712 type strings found in string literals of the source."""
    found: dict[str, set[str]] = {}
    for run in _LITERAL_RUN.finditer(_code(source)):
        text = "".join(re.findall(_STRING, run[0]))
        match = _TYPE_STRING.fullmatch(text)
        if match:
            found.setdefault(match[1], set()).add(text)
    return found


@dataclass(frozen=True)
class ContractSide:
    type_strings: dict[str, set[str]]  # primary type → type strings declared in contracts/
    abi_structs: dict[str, set[tuple[tuple[str, str], ...]]]  # struct → member lists seen in ABIs
    domains: set[tuple[str, str]]  # (name, version) given to OpenZeppelin's EIP712


def _abi_type(param: dict[str, Any]) -> str:
    """A member's type as the struct declares it: nested structs by name, not as "tuple"."""
    internal = str(param.get("internalType", ""))
    if internal.startswith("struct "):
        return internal.removeprefix("struct ").split(".")[-1]
    return str(param["type"])


def structs_in(abi: list[dict[str, Any]]) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    found: dict[str, set[tuple[tuple[str, str], ...]]] = {}

    def visit(params: list[dict[str, Any]]) -> None:
        for p in params:
            if "components" in p:
                name = _abi_type(p).split("[")[0]
                found.setdefault(name, set()).add(tuple((c["name"], _abi_type(c)) for c in p["components"]))
                visit(p["components"])

    for item in abi:
        visit(item.get("inputs", []))
        visit(item.get("outputs", []))
    return found


@pytest.fixture(scope="module")
def contracts(ape_project: Any) -> ContractSide:
    """What the contracts declare, read after ape has compiled any changed source (ape_project)."""
    type_strings: dict[str, set[str]] = {}
    abi_structs: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    domains: set[tuple[str, str]] = set()
    for path in sorted(CONTRACTS.rglob("*.sol")):
        source = path.read_text()
        for name, strings in type_strings_in(source).items():
            type_strings.setdefault(name, set()).update(strings)
        domains.update((m[1], m[2]) for m in _DOMAIN.finditer(_code(source)))
        for contract in _DECLARATION.findall(_code(source)):
            for name, layouts in structs_in(load_abi(contract)).items():
                abi_structs.setdefault(name, set()).update(layouts)
    return ContractSide(type_strings, abi_structs, domains)


def _members(struct: type[Struct]) -> tuple[tuple[str, str], ...]:
    return tuple((m.name, m.type) for m in struct.members())


@pytest.mark.parametrize("name", sorted(STRUCT_TYPES))
def test_struct_matches_the_compiled_abi(contracts: ContractSide, name: str) -> None:
    layouts = contracts.abi_structs.get(name)
    assert layouts, f"struct {name} is defined in offchain/attest/messages.py but in no compiled ABI"
    assert layouts == {_members(STRUCT_TYPES[name])}, f"{name}: Python members differ from the ABI's"


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_signed_message_matches_the_contract_typehash(contracts: ContractSide, name: str) -> None:
    declared = contracts.type_strings.get(name)
    assert declared, f"{name} is signed off-chain but no contract declares its type string"
    assert declared == {type_string(name)}, f"{name}: the contracts hash {sorted(declared)}"
    assert typehash(MESSAGE_TYPES[name]) == keccak(text=declared.pop())


def test_signed_messages_are_the_same_on_both_sides(contracts: ContractSide) -> None:
    on_chain = set(contracts.type_strings) - {"EIP712Domain"}
    assert on_chain == set(MESSAGE_TYPES), (
        f"only in contracts/: {sorted(on_chain - set(MESSAGE_TYPES))}; "
        f"only in offchain/attest/messages.py: {sorted(set(MESSAGE_TYPES) - on_chain)}"
    )
    assert {name for name, cls in STRUCT_TYPES.items() if issubclass(cls, SignedMessage)} == set(MESSAGE_TYPES)


def test_domain_matches_the_contracts(contracts: ContractSide) -> None:
    assert contracts.domains == {(DOMAIN_NAME, DOMAIN_VERSION)}
    assert contracts.type_strings.get("EIP712Domain", {DOMAIN_TYPE_STRING}) == {DOMAIN_TYPE_STRING}


def test_type_strings_are_found_however_the_source_is_laid_out() -> None:
    source = """
        // "Ignored(uint256 inComment)"
        bytes32 constant A = keccak256(
            "Split(address account,uint256[] ids,"  /* a note */
            "bytes32 root)"
        );
        string constant B = "Plain(uint64 snapshotTime)";
        bytes32 constant C = keccak256("Transfer(address,uint256)");
        string constant D = "not a type string";
    """
    assert type_strings_in(source) == {
        "Split": {"Split(address account,uint256[] ids,bytes32 root)"},
        "Plain": {"Plain(uint64 snapshotTime)"},
    }


def test_structs_are_found_wherever_the_abi_nests_them() -> None:
    abi = [
        {
            "type": "function",
            "name": "f",
            "outputs": [],
            "inputs": [
                {
                    "name": "rs",
                    "type": "tuple[]",
                    "internalType": "struct Outer[]",
                    "components": [
                        {"name": "who", "type": "address", "internalType": "address"},
                        {
                            "name": "inner",
                            "type": "tuple",
                            "internalType": "struct I.Inner",
                            "components": [{"name": "ids", "type": "uint256[]", "internalType": "uint256[]"}],
                        },
                    ],
                }
            ],
        }
    ]
    assert structs_in(abi) == {"Outer": {(("who", "address"), ("inner", "Inner"))}, "Inner": {(("ids", "uint256[]"),)}}


def test_a_field_without_a_solidity_type_is_rejected() -> None:
    @dataclass(frozen=True)
    class Untyped(Struct, abstract=True):  # abstract: kept out of the registries
        amount: int

    with pytest.raises(TypeError, match="Untyped.amount"):
        Untyped.members()


def test_wire_format_is_pinned() -> None:
    account = "0x" + "ab" * 20
    checksummed = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    att = MarginAttestation(account, b"\x01" * 32, -5 * 10**30, 10**25, 1, 1_800_000_000, 1_800_000_060, 3)
    wire = {
        "type": "MarginAttestation",
        "message": {
            "account": checksummed,
            "stateHash": "0x" + "01" * 32,
            "value": "-5000000000000000000000000000000",
            "initialMargin": "10000000000000000000000000",
            "maintenanceMargin": "1",
            "snapshotTime": "1800000000",
            "deadline": "1800000060",
            "paramsVersion": "3",
        },
    }
    assert json.dumps(to_wire(att)) == json.dumps(wire)
    assert from_wire(wire) == replace(att, account=checksummed)

    adl = AdlAttestation(account, b"\x02" * 32, (1, 2), (10**21, 7), (b"\x03" * 32, b"\x04" * 32), 5, 6, 7)
    wire = {
        "type": "AdlAttestation",
        "message": {
            "account": checksummed,
            "stateHash": "0x" + "02" * 32,
            "instrumentIds": ["1", "2"],
            "marks": ["1000000000000000000000", "7"],
            "queueRoots": ["0x" + "03" * 32, "0x" + "04" * 32],
            "snapshotTime": "5",
            "deadline": "6",
            "paramsVersion": "7",
        },
    }
    assert json.dumps(to_wire(adl)) == json.dumps(wire)
    assert from_wire(wire) == replace(adl, account=checksummed)

    fill = AdlFill(2, account, 9, b"\x05" * 32, -(10**19), (b"\x06" * 32,))
    wire = {
        "leg": 2,
        "counterparty": checksummed,
        "rank": 9,
        "state_hash": "0x" + "05" * 32,
        "value": "-10000000000000000000",
        "proof": ["0x" + "06" * 32],
    }
    assert json.dumps(fill.to_wire()) == json.dumps(wire)
    assert AdlFill.from_wire(wire) == replace(fill, counterparty=checksummed)
    assert fill.as_tuple() == (2, checksummed, 9, b"\x05" * 32, -(10**19), [b"\x06" * 32])

    with pytest.raises(ValueError, match="unknown message type"):
        from_wire({"type": "AdlFill", "message": wire})
    with pytest.raises(ValueError, match="where MarginAttestation is expected"):
        MarginAttestation.from_wire(to_wire(adl))


@pytest.mark.parametrize(
    ("field", "bad", "says"),
    [
        ("stateHash", "0x" + "01" * 31, "32 bytes are required, got 31"),
        ("stateHash", 7, "a hex string is required"),
        ("initialMargin", "-1", "uint256: -1 is out of range"),
        ("initialMargin", str(2**256), "out of range"),
        ("value", str(2**255), "int256: .* is out of range"),
        ("snapshotTime", str(2**64), "uint64: .* is out of range"),
        ("paramsVersion", True, "an integer or a decimal string is required, got bool"),
        ("deadline", 1.5, "got float"),
        ("account", 5, "address: a hex string is required"),
    ],
)
def test_a_wire_value_the_contract_would_read_otherwise_is_refused(field: str, bad: Any, says: str) -> None:
    """Untrusted JSON (a signer's answer, a client's request) never reaches a signature padded,
    wrapped or truncated."""
    att = MarginAttestation("0x" + "ab" * 20, b"\x01" * 32, 5, 10, 1, 1_800_000_000, 1_800_000_060, 3)
    wire = to_wire(att)
    assert from_wire(wire) == replace(att, account=wire["message"]["account"])
    wire["message"][field] = bad
    with pytest.raises(ValueError, match=says):
        from_wire(wire)


def test_an_array_member_must_be_an_array() -> None:
    adl = AdlAttestation("0x" + "ab" * 20, b"\x02" * 32, (1,), (7,), (b"\x03" * 32,), 5, 6, 7)
    wire = to_wire(adl)
    wire["message"]["marks"] = "7"
    with pytest.raises(ValueError, match=r"uint256\[\]: a JSON array is required"):
        from_wire(wire)

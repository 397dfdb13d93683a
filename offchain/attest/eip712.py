"""EIP-712 hashing and signing of the protocol's messages.

Type strings, typehashes and struct encodings are derived from the message definitions in
offchain/attest/messages.py. The digest is computed here from first principles (so anyone can
audit what is signed) and the signature is made with eth-account's typed-data signer over the
same typed data; the tests check that both agree with each other and with the contract's own
digest functions, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from offchain.attest.messages import MESSAGE_TYPES, SignedMessage

DOMAIN_NAME = "DPRE Clearinghouse"
DOMAIN_VERSION = "1"
# OpenZeppelin EIP712's domain: name, version, chain and verifying contract.
DOMAIN_MEMBERS = (("name", "string"), ("version", "string"), ("chainId", "uint256"), ("verifyingContract", "address"))

# What can be signed: the messages defined in offchain/attest/messages.py.
Signable = SignedMessage


def _type_string(name: str, members: Iterable[tuple[str, str]]) -> str:
    return f"{name}({','.join(f'{t} {n}' for n, t in members)})"


DOMAIN_TYPE_STRING = _type_string("EIP712Domain", DOMAIN_MEMBERS)


@dataclass(frozen=True)
class Domain:
    """EIP-712 domain of one clearinghouse deployment: binds signatures to a chain and contract."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }

    def separator(self) -> bytes:
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    keccak(text=DOMAIN_TYPE_STRING),
                    keccak(text=DOMAIN_NAME),
                    keccak(text=DOMAIN_VERSION),
                    self.chain_id,
                    to_checksum_address(self.verifying_contract),
                ],
            )
        )


def _message_type(message: str | type[SignedMessage]) -> type[SignedMessage]:
    return MESSAGE_TYPES[message] if isinstance(message, str) else message


def members(message: str | type[SignedMessage]) -> list[tuple[str, str]]:
    """The EIP-712 members (name, Solidity type) of a message type, given by name or class."""
    return [(m.name, m.type) for m in _message_type(message).members()]


def type_string(message: str | type[SignedMessage]) -> str:
    """encodeType: e.g. "SnapshotHeartbeat(uint64 snapshotTime)" (no message references another)."""
    return _type_string(_message_type(message).PRIMARY_TYPE, members(message))


def typehash(message: str | type[SignedMessage]) -> bytes:
    return keccak(text=type_string(message))


def _encode_member(solidity_type: str, value: Any) -> tuple[str, Any]:
    """EIP-712 encodeData of one member: arrays of atomic types become keccak(concat(elements))."""
    if solidity_type.endswith("[]"):
        element = solidity_type[:-2]
        return "bytes32", keccak(b"".join(abi_encode([element], [v]) for v in value))
    return solidity_type, value


def struct_hash(item: SignedMessage) -> bytes:
    message = item.message()
    encoded = [_encode_member(t, message[n]) for n, t in members(type(item))]
    return keccak(abi_encode(["bytes32", *(t for t, _ in encoded)], [typehash(type(item)), *(v for _, v in encoded)]))


def digest(domain: Domain, item: SignedMessage) -> bytes:
    """keccak256(0x1901 ‖ domainSeparator ‖ structHash): what a signer signs."""
    return keccak(b"\x19\x01" + domain.separator() + struct_hash(item))


def typed_data(domain: Domain, item: SignedMessage) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_MEMBERS],
            item.PRIMARY_TYPE: [{"name": n, "type": t} for n, t in members(type(item))],
        },
        "primaryType": item.PRIMARY_TYPE,
        "domain": domain.as_dict(),
        "message": item.message(),
    }


def sign(private_key: bytes | str, domain: Domain, item: SignedMessage) -> bytes:
    """65-byte r ‖ s ‖ v signature (low-s, v ∈ {27, 28}) of the item under the domain."""
    signed = Account.sign_typed_data(private_key, full_message=typed_data(domain, item))
    r: int = signed.r
    s: int = signed.s
    v: int = signed.v
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def signer_of(domain: Domain, item: SignedMessage, signature: bytes) -> str:
    address: str = Account._recover_hash(digest(domain, item), signature=signature)
    return address


def combine(signatures: list[tuple[str, bytes]]) -> bytes:
    """Concatenates (signer, signature) pairs in ascending signer order, as the contract requires.

    Duplicate signers are dropped: the contract would reject them anyway.
    """
    seen: dict[int, bytes] = {}
    for address, sig in signatures:
        if len(sig) != 65:
            raise ValueError("a signature is 65 bytes")
        seen.setdefault(int(address, 16), sig)
    return b"".join(seen[k] for k in sorted(seen))

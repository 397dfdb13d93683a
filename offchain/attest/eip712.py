"""EIP-712 hashing and signing of the protocol's messages.

The digest is computed here from first principles (so anyone can audit what is signed) and the
signature is made with eth-account's typed-data signer over the same typed data; the tests check
that both agree with each other and with the contract's own digest functions, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "DPRE Clearinghouse"
DOMAIN_VERSION = "1"

TYPES: dict[str, list[tuple[str, str]]] = {
    "MarginAttestation": [
        ("account", "address"),
        ("stateHash", "bytes32"),
        ("value", "int256"),
        ("initialMargin", "uint256"),
        ("maintenanceMargin", "uint256"),
        ("snapshotTime", "uint64"),
        ("deadline", "uint64"),
        ("paramsVersion", "uint32"),
    ],
    "Order": [
        ("maker", "address"),
        ("instrumentId", "uint256"),
        ("size", "int256"),
        ("price", "uint256"),
        ("nonce", "uint256"),
        ("deadline", "uint64"),
    ],
    "SettlementPrice": [
        ("underlying", "bytes32"),
        ("expiry", "uint64"),
        ("price", "uint256"),
        ("snapshotTime", "uint64"),
    ],
    "SnapshotHeartbeat": [
        ("snapshotTime", "uint64"),
    ],
    "SnapshotCommitment": [
        ("root", "bytes32"),
        ("snapshotTime", "uint64"),
        ("deadline", "uint64"),
        ("paramsVersion", "uint32"),
        ("accounts", "uint32"),
    ],
    "AdlAttestation": [
        ("account", "address"),
        ("stateHash", "bytes32"),
        ("instrumentIds", "uint256[]"),
        ("marks", "uint256[]"),
        ("queueRoots", "bytes32[]"),
        ("snapshotTime", "uint64"),
        ("deadline", "uint64"),
        ("paramsVersion", "uint32"),
    ],
}


class Signable(Protocol):
    PRIMARY_TYPE: str

    def message(self) -> dict[str, Any]: ...


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
        typehash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [typehash, keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), self.chain_id,
                 to_checksum_address(self.verifying_contract)],
            )
        )


def type_string(primary_type: str) -> str:
    fields = ",".join(f"{t} {n}" for n, t in TYPES[primary_type])
    return f"{primary_type}({fields})"


def _encode_field(solidity_type: str, value: Any) -> tuple[str, Any]:
    """EIP-712 encodeData of one member: arrays of atomic types become keccak(concat(elements))."""
    if solidity_type.endswith("[]"):
        element = solidity_type[:-2]
        return "bytes32", keccak(b"".join(abi_encode([element], [v]) for v in value))
    return solidity_type, value


def struct_hash(item: Signable) -> bytes:
    fields = TYPES[item.PRIMARY_TYPE]
    message = item.message()
    encoded = [_encode_field(t, message[n]) for n, t in fields]
    return keccak(
        abi_encode(["bytes32", *(t for t, _ in encoded)], [keccak(text=type_string(item.PRIMARY_TYPE)), *(v for _, v in encoded)])
    )


def digest(domain: Domain, item: Signable) -> bytes:
    """keccak256(0x1901 ‖ domainSeparator ‖ structHash): what a signer signs."""
    return keccak(b"\x19\x01" + domain.separator() + struct_hash(item))


def typed_data(domain: Domain, item: Signable) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            item.PRIMARY_TYPE: [{"name": n, "type": t} for n, t in TYPES[item.PRIMARY_TYPE]],
        },
        "primaryType": item.PRIMARY_TYPE,
        "domain": domain.as_dict(),
        "message": item.message(),
    }


def sign(private_key: bytes | str, domain: Domain, item: Signable) -> bytes:
    """65-byte r ‖ s ‖ v signature (low-s, v ∈ {27, 28}) of the item under the domain."""
    signed = Account.sign_typed_data(private_key, full_message=typed_data(domain, item))
    return signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])


def signer_of(domain: Domain, item: Signable, signature: bytes) -> str:
    return Account._recover_hash(digest(domain, item), signature=signature)


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

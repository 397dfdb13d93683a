"""Oracle signing keys held in this process, and m-of-n signature bundles."""

from __future__ import annotations

from collections.abc import Iterable

from eth_account import Account
from eth_account.signers.local import LocalAccount

from offchain.attest.eip712 import Domain, Signable, combine, sign


class LocalSigner:
    """One oracle signer. Keys come from a keystore or the environment (see the README)."""

    def __init__(self, private_key: bytes | str) -> None:
        self._account: LocalAccount = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return self._account.address

    def sign(self, domain: Domain, item: Signable) -> bytes:
        return sign(self._account.key, domain, item)

    @classmethod
    def random(cls) -> "LocalSigner":
        return cls(Account.create().key)

    def __repr__(self) -> str:  # never print the key
        return f"LocalSigner({self.address})"


def sign_bundle(signers: Iterable[LocalSigner], domain: Domain, item: Signable) -> bytes:
    """Every signer's signature, concatenated in ascending signer order."""
    return combine([(s.address, s.sign(domain, item)) for s in signers])

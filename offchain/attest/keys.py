"""Loading signing keys: from an encrypted JSON keystore (password from the environment) or,
for development, a hex private key in an environment variable. Never from source or arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account

from offchain.attest.signer import LocalSigner
from offchain.errors import UserError


def load_signer(
    key_env: str | None = None, keystore: str | None = None, password_env: str | None = None
) -> LocalSigner:
    if keystore:
        path = Path(keystore)
        if not path.exists():
            raise UserError(f"keystore {keystore} does not exist")
        if not password_env or password_env not in os.environ:
            raise UserError(
                f"the keystore's password must be in an environment variable (--password-env, now {password_env!r})"
            )
        try:
            key = Account.decrypt(json.loads(path.read_text()), os.environ[password_env])
        except ValueError as err:
            raise UserError(f"cannot decrypt keystore {keystore}: {err}") from None
        return LocalSigner(key)
    if key_env:
        raw = os.environ.get(key_env)
        if not raw:
            raise UserError(f"environment variable {key_env} holds no private key")
        try:
            return LocalSigner(raw)
        except (ValueError, TypeError):
            raise UserError(f"environment variable {key_env} does not hold a valid hex private key") from None
    raise UserError("no key: pass --keystore FILE --password-env VAR, or --key-env VAR")


def write_keystore(path: str, password: str, private_key: str | None = None) -> str:
    """Creates an encrypted keystore (a new random key unless one is given); returns its address."""
    account = Account.from_key(private_key) if private_key else Account.create()
    Path(path).write_text(json.dumps(Account.encrypt(account.key, password)))
    os.chmod(path, 0o600)
    address: str = account.address
    return address

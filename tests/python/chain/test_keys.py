"""Signer keys: encrypted keystore with the password in the environment, or a key in the
environment; clear errors otherwise; the key never shows in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from offchain.attest.keys import load_signer, write_keystore
from offchain.errors import UserError


def test_keystore_and_environment_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "signer.json"
    key = "0x" + "11" * 32
    address = write_keystore(str(path), "correct horse", key)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("DPRE_PW", "correct horse")
    signer = load_signer(keystore=str(path), password_env="DPRE_PW")
    assert signer.address == address
    assert "11" * 8 not in repr(signer)
    monkeypatch.setenv("DPRE_PW", "wrong")
    with pytest.raises(UserError, match="cannot decrypt"):
        load_signer(keystore=str(path), password_env="DPRE_PW")
    with pytest.raises(UserError, match="password must be in an environment variable"):
        load_signer(keystore=str(path), password_env="DPRE_MISSING")
    monkeypatch.setenv("DPRE_KEY", key)
    assert load_signer(key_env="DPRE_KEY").address == address
    monkeypatch.setenv("DPRE_KEY", "not a key")
    with pytest.raises(UserError, match="not hold a valid hex private key"):
        load_signer(key_env="DPRE_KEY")
    with pytest.raises(UserError, match="no key"):
        load_signer()

"""Detached RSA-PSS signatures: mock_bank against signatures made/checked by hand."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from mock_bank.fileformat import SignatureError
from mock_bank.signing import load_private_key, load_public_key, sign_file, verify_file

DATA = "H测试䶮𬎆\r\n".encode("gb18030")


def test_verifies_independent_signature(keys: Any, helpers: Any) -> None:
    sig = helpers.sign_detached(DATA, keys.gateway, "gw-1")
    parsed = verify_file(DATA, sig, keys.gateway.public_key(), expected_key_id="gw-1")
    assert parsed.key_id == "gw-1"


def test_bank_signature_checks_independently(keys: Any, helpers: Any) -> None:
    sig = sign_file(DATA, keys.bank, "mockbank-test")
    assert helpers.check_detached(DATA, sig, keys.bank.public_key()) == "mockbank-test"


def test_tampered_file_fails_on_sha256(keys: Any, helpers: Any) -> None:
    sig = helpers.sign_detached(DATA, keys.gateway)
    with pytest.raises(SignatureError, match="sha256") as info:
        verify_file(DATA + b" ", sig, keys.gateway.public_key())
    assert info.value.code == "F001"


def test_wrong_key_fails(keys: Any, helpers: Any) -> None:
    sig = helpers.sign_detached(DATA, keys.bank)  # right format, wrong signer
    with pytest.raises(SignatureError, match="does not verify"):
        verify_file(DATA, sig, keys.gateway.public_key())


def test_other_salt_length_fails(keys: Any, helpers: Any) -> None:
    sig = helpers.sign_detached(DATA, keys.gateway, salt=padding.PSS.MAX_LENGTH)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_file(DATA, sig, keys.gateway.public_key())


def test_key_id_enforced_only_when_configured(keys: Any, helpers: Any) -> None:
    sig = helpers.sign_detached(DATA, keys.gateway, "someone-else")
    verify_file(DATA, sig, keys.gateway.public_key())
    with pytest.raises(SignatureError, match="key-id"):
        verify_file(DATA, sig, keys.gateway.public_key(), expected_key_id="gw-1")


def test_load_keys(keys: Any) -> None:
    private = load_private_key(keys.directory / "mock_bank_signing.key.pem")
    public = load_public_key(keys.directory / "mock_bank_signing.pub.pem")
    assert private.public_key().public_numbers() == public.public_numbers()
    with pytest.raises(ValueError):
        load_private_key(keys.directory / "gateway_sftp_client.key")

"""Building adapters from bank-profile configuration tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.crypto.detached import DetachedSigner
from adapters.formats.fixed_width import FixedWidthGb18030Format
from adapters.registry import build_format, build_signer, build_transport
from adapters.transports.sftp import SftpTransport
from gateway.certs import DEV_KEY_FILES as K


def test_build_format() -> None:
    fmt = build_format({"format": "fw-gb18030-v1", "max_items_per_file": 20_000})
    assert isinstance(fmt, FixedWidthGb18030Format)
    assert fmt.name == "fw-gb18030-v1"
    assert fmt.max_items_per_file == 20_000
    assert build_format({"format": "fw-gb18030-v1"}).max_items_per_file == 50_000


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"format": "fw-gbk-v9"},
            r"unknown format 'fw-gbk-v9' \(known: fw-gb18030-v1, iso20022-v1\)",
        ),
        ({}, r"\[format\]: missing key 'format'"),
        ({"format": ""}, "'format' must be a non-empty string"),
        ({"format": "fw-gb18030-v1", "max_items": 5}, "unknown key.*max_items"),
        ({"format": "fw-gb18030-v1", "max_items_per_file": "5"}, "must be an integer"),
        ({"format": "fw-gb18030-v1", "max_items_per_file": True}, "must be an integer"),
        ({"format": "fw-gb18030-v1", "max_items_per_file": 0}, r"\[format\]: max_items_per_file"),
    ],
)  # fmt: skip
def test_build_format_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_format(config)


def _crypto(**changes: object) -> dict[str, object]:
    return {
        "crypto": "rsa-pss-sha256",
        "own_key": K.gateway_signing_key,
        "own_key_id": "gw-2026-01",
        "peer_public_key": K.bank_signing_pub,
        **changes,
    }


def test_build_signer(dev_keys: Path) -> None:
    ours = build_signer(_crypto(), base_dir=dev_keys)
    assert isinstance(ours, DetachedSigner)
    theirs = build_signer(
        _crypto(
            own_key=str(dev_keys / K.bank_signing_key),  # absolute paths are kept
            own_key_id="bank-1",
            peer_public_key=K.gateway_signing_pub,
            peer_key_id="gw-2026-01",
        ),
        base_dir=dev_keys,
    )
    theirs.verify(b"data", ours.sign(b"data"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"crypto": "sm9"},
            r"\[crypto\]: unknown crypto 'sm9' "
            r"\(known: ecdsa-p256-sha256, rsa-pss-sha256, sm2-sm3\)",
        ),
        ({"own_key": "missing.pem"}, r"'own_key': cannot read .*missing\.pem"),
        ({"own_key_id": 7}, "'own_key_id' must be a non-empty string"),
        ({"peer_public_key": K.gateway_signing_key}, "cannot load the public key"),
        ({"own_keyid": "x"}, "unknown key.*own_keyid"),
    ],
)  # fmt: skip
def test_build_signer_errors(dev_keys: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_signer(_crypto(**changes), base_dir=dev_keys)


def _sftp(**changes: object) -> dict[str, object]:
    return {
        "transport": "sftp",
        "host": "sftp.bank.example",
        "username": "gateway",
        "client_key": K.sftp_client_key,
        "host_public_key": K.sftp_host_pub,
        **changes,
    }


def test_build_transport_does_not_connect(dev_keys: Path) -> None:
    transport = build_transport(_sftp(timeout=3, operation_timeout=7.5), base_dir=dev_keys)
    assert isinstance(transport, SftpTransport)
    assert (transport.host, transport.port, transport.username) == (
        "sftp.bank.example",
        22,
        "gateway",
    )
    assert (transport.timeout, transport.operation_timeout) == (3.0, 7.5)
    assert transport.pinned_host_key.key_type == "ssh-ed25519"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transport": "ftp"}, r"unknown transport 'ftp' \(known: sftp\)"),
        ({"port": 0}, "port 0 is not"),
        ({"port": "22"}, "'port' must be an integer"),
        ({"host": None}, "'host' must be a non-empty string"),
        ({"client_key": "nope"}, "'client_key': .*nope is not a readable file"),
        ({"host_public_key": K.sftp_host_key}, "PEM file .a private key.."),
        ({"timeout": "fast"}, "'timeout' must be a number"),
        ({"timeout": 0}, "timeouts must be positive"),
        ({"hostname": "x"}, "unknown key.*hostname"),
    ],
)  # fmt: skip
def test_build_transport_errors(dev_keys: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_transport(_sftp(**changes), base_dir=dev_keys)

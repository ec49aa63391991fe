"""Development keys: ``gateway certs init`` writes them under ``certs/dev/`` (gitignored).

Production keys are installed by operators (see ``certs/README.md``); this module only makes
throw-away keys for development, tests and the demo. Every file it writes is listed in
``DEV_KEY_FILES`` so that tests and the demo agree on names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


@dataclass(frozen=True)
class DevKeyFiles:
    """Paths of the development key set, relative to the key directory."""

    gateway_signing_key: str = "gateway_signing.key.pem"
    gateway_signing_pub: str = "gateway_signing.pub.pem"
    bank_signing_key: str = "mock_bank_signing.key.pem"
    bank_signing_pub: str = "mock_bank_signing.pub.pem"
    sftp_host_key: str = "mock_bank_sftp_host.key"
    sftp_host_pub: str = "mock_bank_sftp_host.pub"
    sftp_client_key: str = "gateway_sftp_client.key"
    sftp_client_pub: str = "gateway_sftp_client.pub"


DEV_KEY_FILES = DevKeyFiles()


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


def _rsa_pair(directory: Path, key_name: str, pub_name: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    _write(
        directory / key_name,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    _write(
        directory / pub_name,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        private=False,
    )


def _ssh_pair(directory: Path, key_name: str, pub_name: str, comment: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    _write(
        directory / key_name,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write(directory / pub_name, pub + b" " + comment.encode() + b"\n", private=False)


def init_dev_keys(directory: Path, *, force: bool = False) -> list[Path]:
    """Create the development key set in ``directory``; existing keys are kept unless
    ``force``. Returns the files written."""
    files = DEV_KEY_FILES
    written: list[Path] = []
    pairs = [
        (files.gateway_signing_key, files.gateway_signing_pub, "rsa", ""),
        (files.bank_signing_key, files.bank_signing_pub, "rsa", ""),
        (files.sftp_host_key, files.sftp_host_pub, "ssh", "mock-bank-host"),
        (files.sftp_client_key, files.sftp_client_pub, "ssh", "gateway-client"),
    ]
    for key_name, pub_name, kind, comment in pairs:
        if not force and (directory / key_name).exists() and (directory / pub_name).exists():
            continue
        if kind == "rsa":
            _rsa_pair(directory, key_name, pub_name)
        else:
            _ssh_pair(directory, key_name, pub_name, comment)
        written += [directory / key_name, directory / pub_name]
    return written

"""RSA-PSS-SHA256 detached signatures of bank files (``cryptography``; nothing hand-rolled).

RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt, over the exact bytes of the signed
file. A verifier checks the ``sha256`` line first (cheap), then the signature.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mock_bank.fileformat import (
    DetachedSignature,
    SignatureError,
    parse_signature_file,
    render_signature_file,
)

SALT_LENGTH: Final = 32


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH)


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key in PEM (PKCS#8 or PKCS#1)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path}: not an RSA private key")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """An RSA public key in PEM (SubjectPublicKeyInfo)."""
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"{path}: not an RSA public key")
    return key


def sign_file(data: bytes, key: rsa.RSAPrivateKey, key_id: str) -> bytes:
    """The content of the detached ``.sig`` file for ``data``."""
    signature = key.sign(data, _pss(), hashes.SHA256())
    return render_signature_file(
        DetachedSignature(
            key_id=key_id, sha256_hex=hashlib.sha256(data).hexdigest(), signature=signature
        )
    )


def verify_file(
    data: bytes,
    sig_file: bytes,
    key: rsa.RSAPublicKey,
    *,
    expected_key_id: str | None = None,
) -> DetachedSignature:
    """Verify ``data`` against the content of its ``.sig`` file; raise
    :class:`SignatureError` (file reject code ``F001``) on any failure."""
    sig = parse_signature_file(sig_file)
    if expected_key_id is not None and sig.key_id != expected_key_id:
        raise SignatureError(f"signed with key-id {sig.key_id!r}, expected {expected_key_id!r}")
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sig.sha256_hex):
        raise SignatureError("sha256 of the file does not match the signature file")
    try:
        key.verify(sig.signature, data, _pss(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc
    return sig

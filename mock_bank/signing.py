"""Detached signatures of bank files (``cryptography``; nothing hand-rolled).

The bank profile's algorithm (``[signing] alg``) signs the bank's files and must be the one
named in every request ``.sig`` (the gateway and the bank share one profile):

- ``RSA-PSS-SHA256`` (default): RSASSA-PSS with SHA-256, MGF1-SHA-256, a 32-byte salt;
- ``ECDSA-P256-SHA256``: ECDSA on NIST P-256 with SHA-256, signature DER-encoded
  (``Ecdsa-Sig-Value``, as ``cryptography`` writes it).

Signatures are over the exact bytes of the signed file. A verifier checks the ``sha256`` line
first (cheap), then the signature. SM2-SM3 is not implemented here.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from mock_bank.fileformat import (
    DetachedSignature,
    SignatureError,
    parse_signature_file,
    render_signature_file,
)

SALT_LENGTH: Final = 32
RSA_PSS_SHA256: Final = "RSA-PSS-SHA256"
ECDSA_P256_SHA256: Final = "ECDSA-P256-SHA256"
#: Algorithms this module signs and verifies.
ALGS: Final = (RSA_PSS_SHA256, ECDSA_P256_SHA256)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH)


def _check_alg(alg: str) -> None:
    if alg not in ALGS:
        raise ValueError(f"unsupported signature algorithm {alg!r}; supported: {list(ALGS)}")


def key_alg(key: PrivateKey | PublicKey) -> str:
    """The algorithm a key is used with: RSA keys sign RSA-PSS, P-256 keys ECDSA."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSA_PSS_SHA256
    if isinstance(key.curve, ec.SECP256R1):
        return ECDSA_P256_SHA256
    raise TypeError(f"unsupported elliptic curve {key.curve.name}")


def load_private_key(path: Path, alg: str = RSA_PSS_SHA256) -> PrivateKey:
    """An unencrypted private key in PEM for ``alg``: RSA (PKCS#8 or PKCS#1) or P-256
    (PKCS#8 or SEC1); ``TypeError`` for a key of another kind."""
    _check_alg(alg)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if alg == RSA_PSS_SHA256 and not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path}: not an RSA private key")
    if alg == ECDSA_P256_SHA256 and not (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        raise TypeError(f"{path}: not a P-256 (secp256r1) private key")
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)  # noqa: S101
    return key


def load_public_key(path: Path, alg: str = RSA_PSS_SHA256) -> PublicKey:
    """A public key in PEM (SubjectPublicKeyInfo) for ``alg``; ``TypeError`` otherwise."""
    _check_alg(alg)
    key = serialization.load_pem_public_key(path.read_bytes())
    if alg == RSA_PSS_SHA256 and not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"{path}: not an RSA public key")
    if alg == ECDSA_P256_SHA256 and not (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        raise TypeError(f"{path}: not a P-256 (secp256r1) public key")
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)  # noqa: S101
    return key


def sign_bytes(data: bytes, key: PrivateKey) -> bytes:
    """The raw signature of ``data`` with the algorithm of ``key`` (see :func:`key_alg`)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _pss(), hashes.SHA256())
    key_alg(key)  # refuses curves other than P-256
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_bytes(signature: bytes, data: bytes, key: PublicKey) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is ``key``'s over ``data``."""
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, _pss(), hashes.SHA256())
    else:
        key_alg(key)
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def sign_file(data: bytes, key: PrivateKey, key_id: str) -> bytes:
    """The content of the detached ``.sig`` file for ``data`` (``alg`` from the key)."""
    return render_signature_file(
        DetachedSignature(
            key_id=key_id,
            sha256_hex=hashlib.sha256(data).hexdigest(),
            signature=sign_bytes(data, key),
            alg=key_alg(key),
        )
    )


def verify_file(
    data: bytes,
    sig_file: bytes,
    key: PublicKey,
    *,
    expected_key_id: str | None = None,
) -> DetachedSignature:
    """Verify ``data`` against the content of its ``.sig`` file; raise
    :class:`SignatureError` (file reject code ``F001``) on any failure, including an ``alg``
    other than the one of ``key`` (the profile's)."""
    sig = parse_signature_file(sig_file)
    if sig.alg != key_alg(key):
        raise SignatureError(f"signed with {sig.alg}, the profile uses {key_alg(key)}")
    if expected_key_id is not None and sig.key_id != expected_key_id:
        raise SignatureError(f"signed with key-id {sig.key_id!r}, expected {expected_key_id!r}")
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sig.sha256_hex):
        raise SignatureError("sha256 of the file does not match the signature file")
    try:
        verify_bytes(sig.signature, data, key)
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc
    return sig

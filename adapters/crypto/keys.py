"""Key pairs for development and tests (``gateway certs init`` calls :func:`generate_keypair`).

Production keys are made and installed by operators (``certs/README.md``); nothing here is
meant for them, although the formats are the production formats:

==================== ========================================= ==============================
profile              private key                               public key
==================== ========================================= ==============================
rsa-pss-sha256       PEM PKCS#8, RSA 3072                      PEM SubjectPublicKeyInfo
ecdsa-p256-sha256    PEM PKCS#8, P-256                         PEM SubjectPublicKeyInfo
sm2-sm3 (pem)        PEM PKCS#8 as ``openssl genpkey           PEM SubjectPublicKeyInfo
                     -algorithm SM2`` writes it
sm2-sm3 (hex)        64 hex digits (d) and a newline           ``04‖x‖y`` hex and a newline
==================== ========================================= ==============================
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from adapters.crypto.sm2 import (
    Sm2PrivateKey,
    sm2_private_to_hex,
    sm2_private_to_pem,
    sm2_public_to_hex,
    sm2_public_to_pem,
)

RSA_DEV_BITS: Final = 3072
KEY_ALGORITHMS: Final = ("rsa-pss-sha256", "ecdsa-p256-sha256", "sm2-sm3")
_WIRE_NAMES: Final = {
    "RSA-PSS-SHA256": "rsa-pss-sha256",
    "ECDSA-P256-SHA256": "ecdsa-p256-sha256",
    "SM2-SM3": "sm2-sm3",
}


def _pem_pair(key: PrivateKeyTypes) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def generate_keypair(alg: str, encoding: str = "pem") -> tuple[bytes, bytes]:
    """``(private, public)`` key file contents for a crypto profile.

    ``alg`` is a profile name (``rsa-pss-sha256``, ``ecdsa-p256-sha256``, ``sm2-sm3``) or its
    ``alg`` wire name; ``encoding`` is ``pem``, or ``hex`` for ``sm2-sm3`` only. Write the
    private key with mode 0600.
    """
    profile = _WIRE_NAMES.get(alg, alg)
    if profile not in KEY_ALGORITHMS:
        raise ValueError(f"unknown key algorithm {alg!r} (known: {', '.join(KEY_ALGORITHMS)})")
    if encoding not in ("pem", "hex"):
        raise ValueError(f"unknown key encoding {encoding!r} (known: pem, hex)")
    if encoding == "hex" and profile != "sm2-sm3":
        raise ValueError(f"hex key encoding exists only for sm2-sm3, not {profile}")
    if profile == "rsa-pss-sha256":
        return _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=RSA_DEV_BITS))
    if profile == "ecdsa-p256-sha256":
        return _pem_pair(ec.generate_private_key(ec.SECP256R1()))
    key = Sm2PrivateKey.generate()
    if encoding == "hex":
        return sm2_private_to_hex(key), sm2_public_to_hex(key.public_key)
    return sm2_private_to_pem(key), sm2_public_to_pem(key.public_key)

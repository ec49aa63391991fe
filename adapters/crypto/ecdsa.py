"""``ECDSA-P256-SHA256``: ECDSA over NIST P-256 (secp256r1) with SHA-256, via ``cryptography``.

Keys are PEM: private PKCS#8 (or SEC1 ``EC PRIVATE KEY``), public SubjectPublicKeyInfo, both
on P-256 only. Signatures are DER ``SEQUENCE {r INTEGER, s INTEGER}`` by default (what
OpenSSL and Java write); a profile may ask for ``raw`` r‖s (2×32 bytes, as in JWS ES256).
Nonces come from OpenSSL's CSPRNG inside ``cryptography``.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from adapters.crypto.detached import (
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    register_algorithm,
)
from adapters.crypto.encoding import decode_signature, der_to_raw

ECDSA_P256_SHA256: Final = "ECDSA-P256-SHA256"
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_COORDINATE_BYTES: Final = 32
_ECDSA: Final = ec.ECDSA(hashes.SHA256())


class EcdsaP256SigningKey:
    def __init__(self, key: ec.EllipticCurvePrivateKey, *, raw_signature: bool = False) -> None:
        self._key = key
        self._raw = raw_signature

    def sign(self, data: bytes) -> bytes:
        der = self._key.sign(data, _ECDSA)
        return der_to_raw(der, _COORDINATE_BYTES) if self._raw else der

    def __repr__(self) -> str:
        return "EcdsaP256SigningKey(<private>)"


class EcdsaP256VerifyingKey:
    def __init__(self, key: ec.EllipticCurvePublicKey, *, raw_signature: bool = False) -> None:
        self._key = key
        self._raw = raw_signature

    def verify(self, signature: bytes, data: bytes) -> bool:
        decoded = decode_signature(signature, _COORDINATE_BYTES, raw=self._raw)
        if decoded is None:  # wrong length, not canonical DER
            return False
        r, s = decoded
        if not (1 <= r < _P256_ORDER and 1 <= s < _P256_ORDER):
            return False
        try:
            self._key.verify(encode_dss_signature(r, s), data, _ECDSA)
        except InvalidSignature:
            return False
        return True


def _check_curve(curve: ec.EllipticCurve) -> None:
    if not isinstance(curve, ec.SECP256R1):
        raise ValueError(f"{ECDSA_P256_SHA256} needs a P-256 key, got curve {curve.name}")


def load_ecdsa_private(pem: bytes, *, raw_signature: bool = False) -> EcdsaP256SigningKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"cannot load the private key (PEM, unencrypted): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ECDSA_P256_SHA256} needs an EC private key, got {type(key).__name__}")
    _check_curve(key.curve)
    return EcdsaP256SigningKey(key, raw_signature=raw_signature)


def load_ecdsa_public(pem: bytes, *, raw_signature: bool = False) -> EcdsaP256VerifyingKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"cannot load the public key (PEM SubjectPublicKeyInfo): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"{ECDSA_P256_SHA256} needs an EC public key, got {type(key).__name__}")
    _check_curve(key.curve)
    return EcdsaP256VerifyingKey(key, raw_signature=raw_signature)


def ecdsa_algorithm(*, raw_signature: bool = False) -> SignatureAlgorithm:
    """The ``ECDSA-P256-SHA256`` profile with DER (default) or raw r‖s signatures."""

    def signing(pem: bytes) -> SigningKey:
        return load_ecdsa_private(pem, raw_signature=raw_signature)

    def verifying(pem: bytes) -> VerifyingKey:
        return load_ecdsa_public(pem, raw_signature=raw_signature)

    return SignatureAlgorithm(ECDSA_P256_SHA256, signing, verifying)


register_algorithm(ecdsa_algorithm())

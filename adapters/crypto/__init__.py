"""Crypto profiles (``gateway.ports.Signer`` implementations) and national algorithms.

Signature algorithms (``alg`` on the wire → profile name in the ``[crypto]`` table):

* ``RSA-PSS-SHA256`` (``rsa-pss-sha256``) — :mod:`adapters.crypto.detached`
* ``ECDSA-P256-SHA256`` (``ecdsa-p256-sha256``) — :mod:`adapters.crypto.ecdsa`
* ``SM2-SM3`` (``sm2-sm3``) — :mod:`adapters.crypto.sm2`

plus SM3 (:mod:`adapters.crypto.sm3`), SM4-CBC (:mod:`adapters.crypto.sm4`), raw message
signatures for the bank API (:mod:`adapters.crypto.raw`), ``[crypto]`` table parsing
(:mod:`adapters.crypto.config`) and development key generation (:mod:`adapters.crypto.keys`).
See ``docs/crypto.md``.
"""

# config imports the profile modules, which registers ECDSA-P256-SHA256 and SM2-SM3.
from adapters.crypto.config import (
    CRYPTO_PROFILES,
    build_detached_signer,
    parse_crypto_config,
)
from adapters.crypto.detached import (
    ALGORITHMS,
    DetachedSignature,
    DetachedSigner,
    RsaPssDetachedSigner,
    SignatureAlgorithm,
    register_algorithm,
)
from adapters.crypto.ecdsa import ECDSA_P256_SHA256
from adapters.crypto.raw import (
    RawSigner,
    RawVerifier,
    build_raw_signer,
    build_raw_verifier,
)
from adapters.crypto.sm2 import SM2_SM3, Sm2Options

__all__ = [
    "ALGORITHMS",
    "CRYPTO_PROFILES",
    "ECDSA_P256_SHA256",
    "SM2_SM3",
    "DetachedSignature",
    "DetachedSigner",
    "RawSigner",
    "RawVerifier",
    "RsaPssDetachedSigner",
    "SignatureAlgorithm",
    "Sm2Options",
    "build_detached_signer",
    "build_raw_signer",
    "build_raw_verifier",
    "parse_crypto_config",
    "register_algorithm",
]

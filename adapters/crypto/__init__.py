"""Crypto profiles (``gateway.ports.Signer`` implementations)."""

from adapters.crypto.detached import (
    ALGORITHMS,
    DetachedSignature,
    DetachedSigner,
    RsaPssDetachedSigner,
    SignatureAlgorithm,
    register_algorithm,
)

__all__ = [
    "ALGORITHMS",
    "DetachedSignature",
    "DetachedSigner",
    "RsaPssDetachedSigner",
    "SignatureAlgorithm",
    "register_algorithm",
]

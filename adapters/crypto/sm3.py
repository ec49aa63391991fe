"""SM3 (GB/T 32905-2016) through ``cryptography`` (OpenSSL's implementation), and the two
keyed constructions built on it: HMAC-SM3 (RFC 2104) and HKDF-SM3 (RFC 5869)."""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SM3_DIGEST_BYTES: Final = 32


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data``."""
    hasher = hashes.Hash(hashes.SM3())
    hasher.update(data)
    return hasher.finalize()


def sm3_hex(data: bytes) -> str:
    """Lower-case hex of :func:`sm3`."""
    return sm3(data).hex()


def sm3_hasher() -> hashes.Hash:
    """An incremental SM3 hasher (``update`` … ``finalize``) for large inputs."""
    return hashes.Hash(hashes.SM3())


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """The 32-byte HMAC-SM3 tag of ``data`` under ``key``."""
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def hmac_sm3_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    """True when ``tag`` is the full HMAC-SM3 tag of ``data``; compared in constant time."""
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    try:
        mac.verify(tag)
    except InvalidSignature:
        return False
    return True


def hkdf_sm3(ikm: bytes, *, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    """HKDF-SM3 (extract, then expand) of ``ikm``; no ``salt`` means 32 zero bytes."""
    return HKDF(algorithm=hashes.SM3(), length=length, salt=salt, info=info).derive(ikm)

"""SM3 (GB/T 32905-2016) through ``cryptography`` (OpenSSL's implementation)."""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes

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

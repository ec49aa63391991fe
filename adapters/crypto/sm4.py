"""SM4 (GB/T 32907-2016) in CBC mode with PKCS#7 padding, through ``cryptography``.

Used for the optional body encryption of ``docs/formats/openapi-v1.md`` (``SM4-CBC``): a
pre-shared 128-bit key, a fresh random 16-byte IV per message (:func:`new_iv`), PKCS#7
padding. CBC gives confidentiality only; integrity comes from the signature over the
encrypted body (encrypt, then sign), which the receiver must verify *before* decrypting.
"""

from __future__ import annotations

import secrets
from typing import Final

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SM4_KEY_BYTES: Final = 16
SM4_BLOCK_BYTES: Final = 16


class Sm4DecryptionError(ValueError):
    """The ciphertext is not a whole number of blocks or its padding is wrong.

    Deliberately says nothing more (no padding oracle detail).
    """


def _check(key: bytes, iv: bytes) -> None:
    if len(key) != SM4_KEY_BYTES:
        raise ValueError(f"SM4 key must be {SM4_KEY_BYTES} bytes, got {len(key)}")
    if len(iv) != SM4_BLOCK_BYTES:
        raise ValueError(f"SM4-CBC IV must be {SM4_BLOCK_BYTES} bytes, got {len(iv)}")


def new_iv() -> bytes:
    """A fresh random IV from the OS CSPRNG; never reuse one with the same key."""
    return secrets.token_bytes(SM4_BLOCK_BYTES)


def sm4_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """SM4-CBC of ``data`` padded with PKCS#7 (always adds 1…16 bytes)."""
    _check(key, iv)
    padder = padding.PKCS7(SM4_BLOCK_BYTES * 8).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def sm4_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Inverse of :func:`sm4_cbc_encrypt`; :class:`Sm4DecryptionError` on bad input."""
    _check(key, iv)
    if not data or len(data) % SM4_BLOCK_BYTES:
        raise Sm4DecryptionError("SM4-CBC ciphertext is not a non-empty multiple of 16 bytes")
    decryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(SM4_BLOCK_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise Sm4DecryptionError("SM4-CBC decryption failed") from None

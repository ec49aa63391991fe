"""SM4 (GB/T 32907-2016) in CBC mode with PKCS#7 padding, through ``cryptography``, and
SM4-CBC-HMAC-SM3: the same, authenticated (encrypt, then MAC).

The body encryption of ``docs/formats/openapi-v1.md`` (``SM4-CBC-HMAC-SM3``) uses
:func:`sm4_cbc_hmac_sm3_encrypt` / :func:`sm4_cbc_hmac_sm3_decrypt`: SM4-CBC under the
pre-shared 128-bit key with a fresh random 16-byte IV per message (:func:`new_iv`), and an
HMAC-SM3 tag over ``IV ‖ ciphertext`` under a MAC key derived from the same key by HKDF-SM3
(:func:`sm4_mac_key`). The receiver verifies the tag *before* decrypting; a wrong key or an
altered ciphertext fails there with certainty (:class:`Sm4IntegrityError`), never by
whether garbage happens to end in valid padding (which random bytes do about 1 time in 255).

The bare :func:`sm4_cbc_encrypt` / :func:`sm4_cbc_decrypt` give confidentiality only.
"""

from __future__ import annotations

import secrets
from typing import Final

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from adapters.crypto.sm3 import SM3_DIGEST_BYTES, hkdf_sm3, hmac_sm3, hmac_sm3_verify

SM4_KEY_BYTES: Final = 16
SM4_BLOCK_BYTES: Final = 16
#: Length of the HMAC-SM3 tag and of the MAC key (the full SM3 digest, never truncated).
SM4_MAC_BYTES: Final = SM3_DIGEST_BYTES


class Sm4DecryptionError(ValueError):
    """The ciphertext is not a whole number of blocks or its padding is wrong.

    Deliberately says nothing more (no padding oracle detail).
    """


class Sm4IntegrityError(Sm4DecryptionError):
    """The tag does not verify: another key, or the IV, ciphertext or tag were altered.

    Raised before anything is decrypted.
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


def sm4_mac_key(key: bytes, *, info: bytes) -> bytes:
    """The MAC key of SM4-CBC-HMAC-SM3: HKDF-SM3(IKM = ``key``, no salt, ``info``, 32 bytes).

    ``info`` names the protocol (``docs/formats/openapi-v1.md`` fixes its value), so the same
    pre-shared key never keys two primitives or two protocols alike.
    """
    if len(key) != SM4_KEY_BYTES:
        raise ValueError(f"SM4 key must be {SM4_KEY_BYTES} bytes, got {len(key)}")
    return hkdf_sm3(key, info=info, length=SM4_MAC_BYTES)


def sm4_cbc_hmac_sm3_encrypt(
    key: bytes, iv: bytes, data: bytes, *, info: bytes
) -> tuple[bytes, bytes]:
    """``(ciphertext, tag)``: SM4-CBC/PKCS#7 of ``data``, then HMAC-SM3 of ``iv ‖ ciphertext``
    under :func:`sm4_mac_key`."""
    ciphertext = sm4_cbc_encrypt(key, iv, data)
    return ciphertext, hmac_sm3(sm4_mac_key(key, info=info), iv + ciphertext)


def sm4_cbc_hmac_sm3_decrypt(
    key: bytes, iv: bytes, ciphertext: bytes, tag: bytes, *, info: bytes
) -> bytes:
    """Verify the tag over ``iv ‖ ciphertext`` (constant time), then decrypt.

    :class:`Sm4IntegrityError` when the tag does not verify (nothing is decrypted then);
    :class:`Sm4DecryptionError` for a ciphertext that is not whole blocks, or whose padding
    is wrong although its tag verified (the sender encrypted wrongly).
    """
    _check(key, iv)
    if len(tag) != SM4_MAC_BYTES:
        raise Sm4IntegrityError(f"the tag must be {SM4_MAC_BYTES} bytes, got {len(tag)}")
    if not ciphertext or len(ciphertext) % SM4_BLOCK_BYTES:
        raise Sm4DecryptionError("SM4-CBC ciphertext is not a non-empty multiple of 16 bytes")
    if not hmac_sm3_verify(sm4_mac_key(key, info=info), iv + ciphertext, tag):
        raise Sm4IntegrityError("the tag does not verify (another key, or altered data)")
    return sm4_cbc_decrypt(key, iv, ciphertext)

"""Personal data at rest: AES-GCM field encryption, keyed blind indexes, masks.

- Each field (``name``, ``id_number``, ``account_no``, ``phone``) is encrypted with its own
  256-bit key derived by HKDF-SHA256 from a *versioned* master key; the ciphertext carries
  the key version (``k1:<base64url(nonce||ciphertext||tag)>``) so keys can be rotated: new
  writes use the current version, old rows stay readable while any older version is
  configured. The field name is the AEAD associated data, so a value cannot be moved to
  another column unnoticed.
- A blind index (HMAC-SHA256 under a separate index key, per field) allows exact look-ups
  and uniqueness checks without decrypting. The index key is not rotated with the master
  keys (rotating it means re-indexing every row).
- Masks are what screens, list APIs and logs show.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FIELDS = ("name", "id_number", "account_no", "phone")


class PiiKeyError(ValueError):
    """A key is missing, malformed, or a ciphertext names an unknown key version."""


def _derive(master: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)


@lru_cache(maxsize=64)
def _aead(master: bytes, field: str) -> AESGCM:
    return AESGCM(_derive(master, f"gateway/pii/v1/{field}"))


@dataclass(frozen=True)
class PiiCipher:
    """Encrypts and indexes personal data fields."""

    master_keys: Mapping[str, bytes]
    current_key_id: str
    index_key: bytes

    def __post_init__(self) -> None:
        if self.current_key_id not in self.master_keys:
            raise PiiKeyError(f"current key id {self.current_key_id!r} is not configured")
        for kid, key in self.master_keys.items():
            if len(key) != 32 or ":" in kid:
                raise PiiKeyError(f"master key {kid!r} must be 32 bytes with no ':' in its id")
        if len(self.index_key) != 32:
            raise PiiKeyError("the blind index key must be 32 bytes")

    def encrypt(self, field: str, plaintext: str) -> str:
        aead = _aead(self.master_keys[self.current_key_id], field)
        nonce = os.urandom(12)
        ct = aead.encrypt(nonce, plaintext.encode("utf-8"), field.encode())
        return f"{self.current_key_id}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, field: str, token: str) -> str:
        kid, _, body = token.partition(":")
        try:
            master = self.master_keys[kid]
        except KeyError:
            raise PiiKeyError(f"ciphertext uses unknown key version {kid!r}") from None
        raw = base64.urlsafe_b64decode(body)
        return _aead(master, field).decrypt(raw[:12], raw[12:], field.encode()).decode("utf-8")

    def blind_index(self, field: str, value: str) -> str:
        key = _index_key(self.index_key, field)
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def encrypt_bytes(self, purpose: str, data: bytes) -> bytes:
        """Encrypt a blob (e.g. a rendered bank file holding names and accounts)."""
        aead = _aead(self.master_keys[self.current_key_id], f"blob/{purpose}")
        nonce = os.urandom(12)
        kid = self.current_key_id.encode()
        return bytes([len(kid)]) + kid + nonce + aead.encrypt(nonce, data, purpose.encode())

    def decrypt_bytes(self, purpose: str, blob: bytes) -> bytes:
        n = blob[0]
        kid = blob[1 : 1 + n].decode()
        try:
            master = self.master_keys[kid]
        except KeyError:
            raise PiiKeyError(f"blob uses unknown key version {kid!r}") from None
        nonce = blob[1 + n : 13 + n]
        return _aead(master, f"blob/{purpose}").decrypt(nonce, blob[13 + n :], purpose.encode())


@lru_cache(maxsize=16)
def _index_key(index_key: bytes, field: str) -> bytes:
    return _derive(index_key, f"gateway/blind-index/v1/{field}")


def mask_id_number(value: str) -> str:
    """``430621199001011234`` → ``4306**********1234``."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_account(value: str) -> str:
    """``6217001234567890123`` → ``6217***********0123``."""
    return mask_id_number(value)


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``."""
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """``张三`` → ``张*``; ``阿依古丽·买买提`` → ``阿******``."""
    if not value:
        return ""
    return value[0] + "*" * max(1, len(value) - 1)

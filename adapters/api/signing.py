"""Message signatures of ``docs/formats/openapi-v1.md``: strings to sign and signed headers.

A request (gateway → bank, and the bank's callbacks) is signed over::

    METHOD \\n path?query \\n timestamp \\n nonce \\n sha256-hex(body)

a response (bank → gateway) over::

    RESPONSE \\n status (3 digits) \\n path?query of the request \\n timestamp \\n nonce \\n
    sha256-hex(body)

(lines joined by ``\\n``, no trailing newline). The signature itself (RSA-PSS, ECDSA, SM2 in
the profile's encoding) comes from :mod:`adapters.crypto.raw`; this module only builds the
strings, reads and checks the four signature headers, and applies the timestamp window.
Nonce replay is the receiver's business (the gateway keeps callback nonces in its database).
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.ports import SignatureError

HEADER_CLIENT_ID: Final = "X-Client-Id"
HEADER_REQUEST_ID: Final = "X-Request-Id"
HEADER_TIMESTAMP: Final = "X-Timestamp"
HEADER_NONCE: Final = "X-Nonce"
HEADER_KEY_ID: Final = "X-Key-Id"
HEADER_SIGNATURE: Final = "X-Signature"
SIGNATURE_HEADERS: Final = (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_KEY_ID, HEADER_SIGNATURE)

#: A receiver refuses timestamps further than this from its own clock (seconds).
TIMESTAMP_WINDOW_SECONDS: Final = 300

NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")
_KEY_ID_RE: Final = re.compile(r"[\x21-\x7e]{1,128}")
#: Standard base64 of a signature (RSA-8192 is 1 KiB, base64 of that 1368 characters).
_BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/]{4,4096}={0,2}")


class MessageSigner(Protocol):
    """Signs strings to sign with our key (``adapters.crypto.raw.RawSigner``)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class MessageVerifier(Protocol):
    """Verifies the bank's signatures (``adapters.crypto.raw.RawVerifier``)."""

    def check_key_id(self, announced: str) -> None:
        """SignatureError when the profile pins a peer key id and ``announced`` differs."""
        ...

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return when valid; SignatureError otherwise."""
        ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def request_string_to_sign(
    method: str, path_and_query: str, timestamp: int, nonce: str, body: bytes
) -> bytes:
    lines = (method.upper(), path_and_query, str(timestamp), nonce, sha256_hex(body))
    return "\n".join(lines).encode("utf-8")


def response_string_to_sign(
    status: int, path_and_query: str, timestamp: int, nonce: str, body: bytes
) -> bytes:
    if not 100 <= status <= 999:
        raise ValueError(f"HTTP status {status} is not three digits")
    lines = ("RESPONSE", f"{status:03d}", path_and_query, str(timestamp), nonce, sha256_hex(body))
    return "\n".join(lines).encode("utf-8")


def new_nonce() -> str:
    """32 characters of ``[A-Za-z0-9_-]`` from the OS CSPRNG (192 bits)."""
    return secrets.token_urlsafe(24)


def sign_headers(
    signer: MessageSigner, method: str, path_and_query: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """``X-Timestamp``, ``X-Nonce`` (fresh), ``X-Key-Id`` and ``X-Signature`` of a request."""
    nonce = new_nonce()
    signature = signer.sign(request_string_to_sign(method, path_and_query, timestamp, nonce, body))
    return {
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_KEY_ID: signer.key_id,
        HEADER_SIGNATURE: binascii.b2a_base64(signature, newline=False).decode("ascii"),
    }


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The four signature headers of a received message, syntactically checked."""

    timestamp: int
    nonce: str
    key_id: str
    signature: bytes


def read_signed_headers(get: Callable[[str], list[str]]) -> SignedHeaders:
    """Read the signature headers through ``get`` (all values of a header, any case).

    Raises SignatureError naming the header that is missing, repeated or malformed.
    """
    values: dict[str, str] = {}
    for name in SIGNATURE_HEADERS:
        found = get(name)
        if not found:
            raise SignatureError(f"{name} is missing")
        if len(found) > 1:
            raise SignatureError(f"{name} is repeated")
        values[name] = found[0].strip()
    timestamp = values[HEADER_TIMESTAMP]
    if _TIMESTAMP_RE.fullmatch(timestamp) is None:
        raise SignatureError(f"{HEADER_TIMESTAMP} is not Unix seconds")
    nonce = values[HEADER_NONCE]
    if NONCE_RE.fullmatch(nonce) is None:
        raise SignatureError(f"{HEADER_NONCE} is not 16–64 characters [A-Za-z0-9_-]")
    key_id = values[HEADER_KEY_ID]
    if _KEY_ID_RE.fullmatch(key_id) is None:
        raise SignatureError(f"{HEADER_KEY_ID} is not 1–128 printable ASCII characters")
    encoded = values[HEADER_SIGNATURE]
    if _BASE64_RE.fullmatch(encoded) is None:
        raise SignatureError(f"{HEADER_SIGNATURE} is not standard base64")
    try:
        signature = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
    except binascii.Error:
        raise SignatureError(f"{HEADER_SIGNATURE} is not standard base64") from None
    return SignedHeaders(int(timestamp), nonce, key_id, signature)


def headers_getter(headers: Mapping[str, str]) -> Callable[[str], list[str]]:
    """A case-insensitive ``get`` over a plain dict of headers (e.g. from a web framework)."""
    folded: dict[str, list[str]] = {}
    for name, value in headers.items():
        folded.setdefault(name.lower(), []).append(value)
    return lambda name: folded.get(name.lower(), [])


def check_window(timestamp: int, now: float, window: int = TIMESTAMP_WINDOW_SECONDS) -> None:
    """SignatureError when ``timestamp`` is more than ``window`` seconds from ``now``."""
    skew = timestamp - now
    if abs(skew) > window:
        raise SignatureError(
            f"{HEADER_TIMESTAMP} is {skew:+.0f} s from our clock, outside the ±{window} s window"
        )

"""Detached signature files (``<name>.sig``) as specified in ``docs/formats/fw-gb18030-v1.md``.

File layout (ASCII, LF after every line, exactly these four lines in this order)::

    alg=RSA-PSS-SHA256
    key-id=<identifier of the signing key>
    sha256=<lower-case hex SHA-256 of the signed file's bytes>
    sig=<standard base64 of the signature over the signed file's bytes>

The signature algorithm is a pluggable profile: :data:`ALGORITHMS` maps the ``alg`` value to a
:class:`SignatureAlgorithm` that loads keys and signs/verifies raw bytes. ``RSA-PSS-SHA256``
is registered here; ECDSA-P256 or SM2 profiles register the same way (``register_algorithm``)
and :class:`DetachedSigner` works with any of them. A verifier is bound to one algorithm: the
``alg`` line of an incoming file must equal it (no algorithm negotiation, no downgrade).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.ports import SignatureError

#: Signature files are a few hundred bytes; refuse to even look at anything much larger.
MAX_SIGNATURE_FILE_BYTES: Final = 16 * 1024

_KEY_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FIELDS: Final = ("alg", "key-id", "sha256", "sig")


# --- algorithm profiles ------------------------------------------------------------------


class SigningKey(Protocol):
    def sign(self, data: bytes) -> bytes:
        """The raw signature over ``data``."""
        ...


class VerifyingKey(Protocol):
    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is valid over ``data``; False otherwise (never raises)."""
        ...


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """One signature profile: the ``alg`` value and how to load its keys."""

    alg: str
    load_signing_key: Callable[[bytes], SigningKey]
    load_verifying_key: Callable[[bytes], VerifyingKey]


ALGORITHMS: dict[str, SignatureAlgorithm] = {}


def register_algorithm(algorithm: SignatureAlgorithm) -> None:
    """Make ``algorithm`` available under its ``alg`` name (refuses to replace one)."""
    if algorithm.alg in ALGORITHMS:
        raise ValueError(f"signature algorithm {algorithm.alg!r} is already registered")
    ALGORITHMS[algorithm.alg] = algorithm


def get_algorithm(alg: str) -> SignatureAlgorithm:
    try:
        return ALGORITHMS[alg]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown signature algorithm {alg!r} (known: {known})") from None


# RSA-PSS-SHA256 ---------------------------------------------------------------------------

RSA_PSS_SHA256: Final = "RSA-PSS-SHA256"
RSA_MIN_BITS: Final = 2048
_PSS_SALT_LENGTH: Final = 32
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_PSS_SALT_LENGTH)


class _RsaPssSigningKey:
    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, _PSS, hashes.SHA256())


class _RsaPssVerifyingKey:
    def __init__(self, key: rsa.RSAPublicKey) -> None:
        self._key = key
        self._size = (key.key_size + 7) // 8

    def verify(self, signature: bytes, data: bytes) -> bool:
        if len(signature) != self._size:
            return False
        try:
            # salt_length=32 makes OpenSSL require exactly 32 bytes of salt
            self._key.verify(signature, data, _PSS, hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def _load_rsa_private(pem: bytes) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"cannot load the private key (PEM, unencrypted): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{RSA_PSS_SHA256} needs an RSA private key, got {type(key).__name__}")
    if key.key_size < RSA_MIN_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits is too small (< {RSA_MIN_BITS})")
    return _RsaPssSigningKey(key)


def _load_rsa_public(pem: bytes) -> VerifyingKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"cannot load the public key (PEM SubjectPublicKeyInfo): {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{RSA_PSS_SHA256} needs an RSA public key, got {type(key).__name__}")
    if key.key_size < RSA_MIN_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits is too small (< {RSA_MIN_BITS})")
    return _RsaPssVerifyingKey(key)


register_algorithm(SignatureAlgorithm(RSA_PSS_SHA256, _load_rsa_private, _load_rsa_public))


# --- the signature file --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetachedSignature:
    """The four fields of a ``.sig`` file."""

    alg: str
    key_id: str
    sha256: str
    signature: bytes

    def to_bytes(self) -> bytes:
        sig = base64.b64encode(self.signature).decode("ascii")
        text = f"alg={self.alg}\nkey-id={self.key_id}\nsha256={self.sha256}\nsig={sig}\n"
        return text.encode("ascii")

    @classmethod
    def parse(cls, data: bytes) -> DetachedSignature:
        """Parse strictly; SignatureError("malformed signature file: …") otherwise."""

        def bad(why: str) -> SignatureError:
            return SignatureError(f"malformed signature file: {why}")

        if len(data) > MAX_SIGNATURE_FILE_BYTES:
            raise bad(f"{len(data)} bytes, more than {MAX_SIGNATURE_FILE_BYTES}")
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise bad("not ASCII") from None
        if "\r" in text:
            raise bad("contains CR; lines end with LF only")
        if not text.endswith("\n"):
            raise bad("last line does not end with LF")
        lines = text[:-1].split("\n")
        if len(lines) != len(_FIELDS):
            raise bad(f"{len(lines)} lines, expected {len(_FIELDS)} ({', '.join(_FIELDS)})")
        values: list[str] = []
        for number, (line, expected) in enumerate(zip(lines, _FIELDS, strict=True), start=1):
            key, sep, value = line.partition("=")
            if not sep or key != expected:
                raise bad(f"line {number} is not {expected}=…")
            values.append(value)
        alg, key_id, digest, sig_b64 = values
        if not alg:
            raise bad("empty alg")
        if _KEY_ID.fullmatch(key_id) is None:
            raise bad("key-id is empty or not printable ASCII without spaces")
        if _SHA256_HEX.fullmatch(digest) is None:
            raise bad("sha256 is not 64 lower-case hex digits")
        try:
            signature = binascii.a2b_base64(sig_b64.encode("ascii"), strict_mode=True)
        except binascii.Error:
            raise bad("sig is not standard base64") from None
        if not signature:
            raise bad("empty sig")
        return cls(alg=alg, key_id=key_id, sha256=digest, signature=signature)


class DetachedSigner:
    """Signs our files and verifies the peer's with detached ``.sig`` files.

    Implements ``gateway.ports.Signer`` for any registered algorithm. ``peer_key_id``, when
    given, must match the ``key-id`` line of incoming files. ``alg`` is a registered name or
    a :class:`SignatureAlgorithm` carrying per-bank options (e.g. an SM2 signer id).
    """

    def __init__(
        self,
        alg: str | SignatureAlgorithm,
        own_private_key_pem: bytes,
        own_key_id: str,
        peer_public_key_pem: bytes,
        *,
        peer_key_id: str | None = None,
    ) -> None:
        algorithm = get_algorithm(alg) if isinstance(alg, str) else alg
        if _KEY_ID.fullmatch(own_key_id) is None:
            raise ValueError("own_key_id must be 1–128 printable ASCII characters, no spaces")
        if peer_key_id is not None and _KEY_ID.fullmatch(peer_key_id) is None:
            raise ValueError("peer_key_id must be 1–128 printable ASCII characters, no spaces")
        self.alg = algorithm.alg
        self.own_key_id = own_key_id
        self.peer_key_id = peer_key_id
        self._signing_key = algorithm.load_signing_key(own_private_key_pem)
        self._peer_key = algorithm.load_verifying_key(peer_public_key_pem)

    def sign(self, data: bytes) -> bytes:
        return DetachedSignature(
            alg=self.alg,
            key_id=self.own_key_id,
            sha256=hashlib.sha256(data).hexdigest(),
            signature=self._signing_key.sign(data),
        ).to_bytes()

    def verify(self, data: bytes, signature_file: bytes) -> None:
        parsed = DetachedSignature.parse(signature_file)
        if parsed.alg != self.alg:
            raise SignatureError(
                f"signature algorithm {parsed.alg!r} is not the configured {self.alg!r}"
            )
        if self.peer_key_id is not None and parsed.key_id != self.peer_key_id:
            raise SignatureError(
                f"signature key-id {parsed.key_id!r} is not the configured {self.peer_key_id!r}"
            )
        digest = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(digest, parsed.sha256):
            raise SignatureError(
                "digest mismatch: the sha256 line does not match the file's bytes "
                f"(file {digest[:16]}…, signature file {parsed.sha256[:16]}…)"
            )
        if not self._peer_key.verify(parsed.signature, data):
            raise SignatureError(
                f"bad signature: {self.alg} signature (key-id {parsed.key_id!r}) does not "
                "verify with the peer's public key"
            )


class RsaPssDetachedSigner(DetachedSigner):
    """``RSA-PSS-SHA256`` detached signatures: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.

    Keys are PEM: our private key PKCS#8 (or PKCS#1), the peer's public key
    SubjectPublicKeyInfo, both RSA of at least 2048 bits.
    """

    def __init__(
        self,
        own_private_key_pem: bytes,
        own_key_id: str,
        peer_public_key_pem: bytes,
        *,
        peer_key_id: str | None = None,
    ) -> None:
        super().__init__(
            RSA_PSS_SHA256,
            own_private_key_pem,
            own_key_id,
            peer_public_key_pem,
            peer_key_id=peer_key_id,
        )

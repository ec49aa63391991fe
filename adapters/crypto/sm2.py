"""``SM2-SM3``: SM2 signatures with SM3 (GB/T 32918.2-2016, GM/T 0003.2, GM/T 0009-2012).

Who does what:

* curve arithmetic (scalar multiplication, signing and verification equations) is
  ``snowland-smx`` (``pysmx.SM2._SM2``: ``kG``, ``Sign``, ``Verify``, ``get_za``), fixed to
  the recommended curve ``sm2p256v1`` (GB/T 32918.5);
* the nonce k is drawn **here** with :mod:`secrets` (the library's ``Sign`` takes k from the
  caller) — see ``docs/crypto.md`` for the audit of the library's own randomness;
* the message digest ``e = SM3(ZA ‖ M)`` uses ``cryptography``'s SM3 (OpenSSL), so large
  files are hashed in C; ``ZA = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)`` is the
  library's ``get_za``;
* key files are parsed and written with ``asn1crypto`` (PKCS#8 / SEC1 / SPKI exactly as
  OpenSSL 3 writes SM2 keys: ``id-ecPublicKey`` with the named curve
  ``1.2.156.10197.1.301``).

What this module adds around the library, because the standard requires it and the library
does not do it: r and s must lie in [1, n−1] (GB/T 32918.2 §7.1 B1–B2), public keys must be
points on the curve, private keys must lie in [1, n−2], a failed ``Sign`` is retried with a
fresh k, and every signature we make is verified before it is returned (a computing fault
never leaves the process as a bad signature).

Per-bank options (:class:`Sm2Options`): the signer id (default ``1234567812345678``,
GM/T 0009 §10), DER or raw r‖s signatures, PEM or hex keys.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final, Literal

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from pysmx.SM2 import _SM2 as _SMX

from adapters.crypto.detached import (
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    register_algorithm,
)
from adapters.crypto.encoding import decode_signature, encode_signature
from adapters.crypto.sm3 import sm3_hasher

SM2_SM3: Final = "SM2-SM3"
DEFAULT_SIGNER_ID: Final = "1234567812345678"
SM2_CURVE_OID: Final = "1.2.156.10197.1.301"
EC_PUBLIC_KEY_OID: Final = "1.2.840.10045.2.1"

#: Curve parameters of sm2p256v1, taken from the library (asserted against the standard in
#: the tests) and used here only to validate inputs, never to compute on the curve.
N: Final[int] = _SMX.sm2_N
P: Final[int] = _SMX.sm2_P
A: Final[int] = _SMX.sm2_a
B: Final[int] = _SMX.sm2_b
_G_HEX: Final[str] = _SMX.sm2_G
_LEN_PARA: Final = 64  # hex digits of one coordinate, as the library counts
COORDINATE_BYTES: Final = 32
_MAX_SIGN_ATTEMPTS: Final = 16

SignatureEncoding = Literal["der", "raw"]
KeyEncoding = Literal["pem", "hex"]

_HEX = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class Sm2Options:
    """Per-bank SM2 settings (``sm2_*`` keys of the ``[crypto]`` table)."""

    signer_id: bytes = DEFAULT_SIGNER_ID.encode("ascii")
    signature_encoding: SignatureEncoding = "der"
    key_encoding: KeyEncoding = "pem"

    def __post_init__(self) -> None:
        if len(self.signer_id) * 8 > 0xFFFF:
            raise ValueError("SM2 signer id is longer than 8191 bytes")
        if self.signature_encoding not in ("der", "raw"):
            raise ValueError(
                f"SM2 signature encoding must be der or raw, not {self.signature_encoding!r}"
            )
        if self.key_encoding not in ("pem", "hex"):
            raise ValueError(f"SM2 key encoding must be pem or hex, not {self.key_encoding!r}")


DEFAULT_OPTIONS: Final = Sm2Options()


# --- keys ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sm2PublicKey:
    """A point on sm2p256v1 (checked on construction)."""

    x: int
    y: int

    def __post_init__(self) -> None:
        if not (0 <= self.x < P and 0 <= self.y < P):
            raise ValueError("SM2 public key coordinates are out of range")
        # y² = x³ + ax + b (mod p): membership test only, no arithmetic on points
        if (self.y * self.y - (self.x * self.x * self.x + A * self.x + B)) % P != 0:
            raise ValueError("SM2 public key is not a point on the SM2 curve")

    @classmethod
    def from_bytes(cls, data: bytes) -> Sm2PublicKey:
        """From the uncompressed point ``04 ‖ x ‖ y`` (65 bytes) or bare ``x ‖ y`` (64)."""
        if len(data) == 1 + 2 * COORDINATE_BYTES and data[0] == 0x04:
            data = data[1:]
        elif len(data) != 2 * COORDINATE_BYTES:
            raise ValueError("SM2 public key must be an uncompressed point 04‖x‖y (65 bytes)")
        return cls(
            int.from_bytes(data[:COORDINATE_BYTES], "big"),
            int.from_bytes(data[COORDINATE_BYTES:], "big"),
        )

    def to_bytes(self) -> bytes:
        """The uncompressed point ``04 ‖ x ‖ y`` (65 bytes)."""
        return (
            b"\x04"
            + self.x.to_bytes(COORDINATE_BYTES, "big")
            + self.y.to_bytes(COORDINATE_BYTES, "big")
        )

    def _xy_hex(self) -> str:
        return f"{self.x:064x}{self.y:064x}"


class Sm2PrivateKey:
    """A private scalar d in [1, n−2] and its public key d·G (derived by the library)."""

    __slots__ = ("_d", "public_key")

    def __init__(self, d: int, public_key: Sm2PublicKey | None = None) -> None:
        if not 1 <= d <= N - 2:
            raise ValueError("SM2 private key is out of range [1, n-2]")
        self._d = d
        derived = _derive_public_key(d)
        if public_key is not None and public_key != derived:
            raise ValueError("SM2 private key does not match the public key stored with it")
        self.public_key = derived

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        """A new key, d drawn uniformly from [1, n−2] with :mod:`secrets`."""
        return cls(secrets.randbelow(N - 2) + 1)

    @property
    def private_value(self) -> int:
        return self._d

    def to_bytes(self) -> bytes:
        """d as 32 big-endian bytes."""
        return self._d.to_bytes(COORDINATE_BYTES, "big")

    def __repr__(self) -> str:  # never show the scalar
        return "Sm2PrivateKey(<private>)"


def _derive_public_key(d: int) -> Sm2PublicKey:
    point = _SMX.kG(d, _G_HEX, _LEN_PARA)
    if not isinstance(point, str) or len(point) != 2 * _LEN_PARA:
        raise ValueError("SM2 public key derivation failed")
    return Sm2PublicKey(int(point[:_LEN_PARA], 16), int(point[_LEN_PARA:], 16))


# --- the algorithm -------------------------------------------------------------------------


def sm2_za(public_key: Sm2PublicKey, signer_id: bytes) -> bytes:
    """``ZA = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)`` (GB/T 32918.2 §5.5)."""
    return bytes.fromhex(_SMX.get_za(signer_id, public_key._xy_hex(), _LEN_PARA))


def sm2_digest(public_key: Sm2PublicKey, signer_id: bytes, message: bytes) -> int:
    """``e = SM3(ZA ‖ M)`` as an integer (steps A1–A2 / B3–B4)."""
    hasher = sm3_hasher()
    hasher.update(sm2_za(public_key, signer_id))
    hasher.update(message)
    return int.from_bytes(hasher.finalize(), "big")


def verify_digest(public_key: Sm2PublicKey, e: int, r: int, s: int) -> bool:
    """Steps B1–B7 for a precomputed ``e``; False for anything invalid (never raises)."""
    if not (1 <= r < N and 1 <= s < N):  # B1, B2: the library does not check these
        return False
    try:
        result = _SMX.Verify(
            f"{r:064x}{s:064x}", f"{e:064x}", public_key._xy_hex(), _LEN_PARA, Hexstr=1
        )
    except (TypeError, ValueError, ZeroDivisionError):
        return False  # e.g. s·G + t·PA is the point at infinity: the library cannot say so
    return result is True


def sign_digest(private_key: Sm2PrivateKey, e: int, *, k: int | None = None) -> tuple[int, int]:
    """Steps A3–A7 for a precomputed ``e``: ``(r, s)``.

    ``k`` is for known-answer tests only; in use it is None and every attempt draws a fresh k
    uniformly from [1, n−1] with :func:`secrets.randbelow` (the OS CSPRNG).
    """
    attempts = 1 if k is not None else _MAX_SIGN_ATTEMPTS
    for _ in range(attempts):
        nonce = k if k is not None else secrets.randbelow(N - 1) + 1
        if not 1 <= nonce < N:
            raise ValueError("SM2 nonce k is out of range [1, n-1]")
        try:
            raw = _SMX.Sign(
                f"{e:064x}",
                f"{private_key.private_value:064x}",
                f"{nonce:064x}",
                _LEN_PARA,
                Hexstr=1,
            )
        except TypeError:  # the library's s == 0 case (probability ~2⁻²⁵⁶): new k
            raw = None
        if isinstance(raw, bytes) and len(raw) == 2 * COORDINATE_BYTES:
            r = int.from_bytes(raw[:COORDINATE_BYTES], "big")
            s = int.from_bytes(raw[COORDINATE_BYTES:], "big")
            if verify_digest(private_key.public_key, e, r, s):
                return r, s
            raise RuntimeError("SM2 signature failed its own verification; refusing to use it")
    raise RuntimeError("SM2 signing did not produce a signature")


class Sm2SigningKey:
    """``SigningKey`` for SM2-SM3 with the signer id and signature encoding of a profile."""

    def __init__(self, key: Sm2PrivateKey, options: Sm2Options = DEFAULT_OPTIONS) -> None:
        self._key = key
        self._options = options

    @property
    def public_key(self) -> Sm2PublicKey:
        return self._key.public_key

    def sign(self, data: bytes) -> bytes:
        e = sm2_digest(self._key.public_key, self._options.signer_id, data)
        r, s = sign_digest(self._key, e)
        return encode_signature(
            r, s, COORDINATE_BYTES, raw=self._options.signature_encoding == "raw"
        )

    def __repr__(self) -> str:
        return "Sm2SigningKey(<private>)"


class Sm2VerifyingKey:
    """``VerifyingKey`` for SM2-SM3 with the signer id and signature encoding of a profile."""

    def __init__(self, key: Sm2PublicKey, options: Sm2Options = DEFAULT_OPTIONS) -> None:
        self._key = key
        self._options = options

    @property
    def public_key(self) -> Sm2PublicKey:
        return self._key

    def verify(self, signature: bytes, data: bytes) -> bool:
        decoded = decode_signature(
            signature, COORDINATE_BYTES, raw=self._options.signature_encoding == "raw"
        )
        if decoded is None:
            return False
        e = sm2_digest(self._key, self._options.signer_id, data)
        return verify_digest(self._key, e, *decoded)


# --- key files -----------------------------------------------------------------------------


# asn1crypto needs the curve's key size to encode a PKCS#8 key; registering is idempotent.
asn1_keys.NamedCurve.register("sm2p256v1", SM2_CURVE_OID, COORDINATE_BYTES)


def _sm2_parameters() -> asn1_keys.ECDomainParameters:
    return asn1_keys.ECDomainParameters(name="named", value=SM2_CURVE_OID)


def _check_named_sm2(parameters: asn1_keys.ECDomainParameters, where: str) -> None:
    if parameters.name != "named" or parameters.chosen.dotted != SM2_CURVE_OID:
        raise ValueError(f"{where} is not on the SM2 curve (named curve {SM2_CURVE_OID})")


def _unarmor(data: bytes, what: str) -> tuple[str, bytes]:
    if not asn1_pem.detect(data):
        raise ValueError(f"the {what} is not PEM")
    label, _headers, der = asn1_pem.unarmor(data.strip())
    return str(label), bytes(der)


def _private_from_ec_private_key(inner: asn1_keys.ECPrivateKey) -> Sm2PrivateKey:
    if inner["version"].native != "ecPrivkeyVer1":
        raise ValueError("unsupported ECPrivateKey version")
    parameters = inner["parameters"]
    if parameters.native is not None:  # optional [0] inside PKCS#8; required in SEC1
        _check_named_sm2(parameters, "the private key")
    d = inner["private_key"].native
    if not isinstance(d, int):
        raise ValueError("the private key has no private value")
    public = inner["public_key"]
    stored = None if public.native is None else Sm2PublicKey.from_bytes(bytes(public.native))
    return Sm2PrivateKey(d, stored)


def load_sm2_private_pem(data: bytes) -> Sm2PrivateKey:
    """From PEM ``PRIVATE KEY`` (PKCS#8, what ``openssl genpkey -algorithm SM2`` writes) or
    ``EC PRIVATE KEY`` (SEC1) on the SM2 curve; unencrypted."""
    try:
        label, der = _unarmor(data, "private key")
        if label == "ENCRYPTED PRIVATE KEY":
            raise ValueError(
                "encrypted private keys are not supported; store it unencrypted with mode 0600"
            )
        if label == "PRIVATE KEY":
            info = asn1_keys.PrivateKeyInfo.load(der, strict=True)
            algorithm = info["private_key_algorithm"]
            if algorithm["algorithm"].dotted != EC_PUBLIC_KEY_OID:
                raise ValueError(f"not an EC/SM2 key (algorithm {algorithm['algorithm'].dotted})")
            _check_named_sm2(algorithm["parameters"], "the private key")
            return _private_from_ec_private_key(info["private_key"].parsed)
        if label in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):  # SEC1 (OpenSSL 3: "SM2 …")
            inner = asn1_keys.ECPrivateKey.load(der, strict=True)
            if inner["parameters"].native is None:
                raise ValueError("SEC1 private key without curve parameters")
            return _private_from_ec_private_key(inner)
        raise ValueError(f"unexpected PEM block {label!r}")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"cannot load the SM2 private key (PEM PKCS#8): {exc}") from None


def load_sm2_public_pem(data: bytes) -> Sm2PublicKey:
    """From PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo, ``id-ecPublicKey`` + SM2 curve)."""
    try:
        label, der = _unarmor(data, "public key")
        if label != "PUBLIC KEY":
            raise ValueError(f"unexpected PEM block {label!r}")
        info = asn1_keys.PublicKeyInfo.load(der, strict=True)
        algorithm = info["algorithm"]
        if algorithm["algorithm"].dotted != EC_PUBLIC_KEY_OID:
            raise ValueError(f"not an EC/SM2 key (algorithm {algorithm['algorithm'].dotted})")
        _check_named_sm2(algorithm["parameters"], "the public key")
        return Sm2PublicKey.from_bytes(bytes(info["public_key"].native))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"cannot load the SM2 public key (PEM SubjectPublicKeyInfo): {exc}"
        ) from None


def _hex_text(data: bytes, what: str) -> bytes:
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError(f"the {what} is not hex text") from None
    if _HEX.fullmatch(text) is None or len(text) % 2:
        raise ValueError(f"the {what} is not hex text")
    return bytes.fromhex(text)


def load_sm2_private_hex(data: bytes) -> Sm2PrivateKey:
    """From 64 hex digits (the 32-byte private value d), surrounding whitespace allowed."""
    try:
        raw = _hex_text(data, "private key")
        if len(raw) != COORDINATE_BYTES:
            raise ValueError(f"expected {2 * COORDINATE_BYTES} hex digits")
        return Sm2PrivateKey(int.from_bytes(raw, "big"))
    except ValueError as exc:
        raise ValueError(f"cannot load the SM2 private key (hex): {exc}") from None


def load_sm2_public_hex(data: bytes) -> Sm2PublicKey:
    """From hex ``04 ‖ x ‖ y`` (130 digits; bare ``x ‖ y``, 128 digits, is accepted too)."""
    try:
        return Sm2PublicKey.from_bytes(_hex_text(data, "public key"))
    except ValueError as exc:
        raise ValueError(f"cannot load the SM2 public key (hex): {exc}") from None


def sm2_private_to_pem(key: Sm2PrivateKey) -> bytes:
    """PKCS#8 PEM laid out as OpenSSL 3 writes it (ECPrivateKey v1 with the public key)."""
    inner = asn1_keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": key.private_value,
            "public_key": key.public_key.to_bytes(),
        }
    )
    info = asn1_keys.PrivateKeyInfo(
        {
            "version": 0,
            "private_key_algorithm": asn1_keys.PrivateKeyAlgorithm(
                {"algorithm": "ec", "parameters": _sm2_parameters()}
            ),
            "private_key": inner,
        }
    )
    return bytes(asn1_pem.armor("PRIVATE KEY", info.dump()))


def sm2_public_to_pem(key: Sm2PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM (``id-ecPublicKey``, named curve SM2, uncompressed point)."""
    info = asn1_keys.PublicKeyInfo(
        {
            "algorithm": asn1_keys.PublicKeyAlgorithm(
                {"algorithm": "ec", "parameters": _sm2_parameters()}
            ),
            "public_key": key.to_bytes(),
        }
    )
    return bytes(asn1_pem.armor("PUBLIC KEY", info.dump()))


def sm2_private_to_hex(key: Sm2PrivateKey) -> bytes:
    return key.to_bytes().hex().encode("ascii") + b"\n"


def sm2_public_to_hex(key: Sm2PublicKey) -> bytes:
    return key.to_bytes().hex().encode("ascii") + b"\n"


# --- profile -------------------------------------------------------------------------------


def load_sm2_private(data: bytes, key_encoding: KeyEncoding = "pem") -> Sm2PrivateKey:
    return load_sm2_private_pem(data) if key_encoding == "pem" else load_sm2_private_hex(data)


def load_sm2_public(data: bytes, key_encoding: KeyEncoding = "pem") -> Sm2PublicKey:
    return load_sm2_public_pem(data) if key_encoding == "pem" else load_sm2_public_hex(data)


def sm2_algorithm(options: Sm2Options = DEFAULT_OPTIONS) -> SignatureAlgorithm:
    """The ``SM2-SM3`` profile for one bank's options (``alg`` is always ``SM2-SM3``)."""

    def signing(data: bytes) -> SigningKey:
        return Sm2SigningKey(load_sm2_private(data, options.key_encoding), options)

    def verifying(data: bytes) -> VerifyingKey:
        return Sm2VerifyingKey(load_sm2_public(data, options.key_encoding), options)

    return SignatureAlgorithm(SM2_SM3, signing, verifying)


register_algorithm(sm2_algorithm())

"""The bank profile's ``[crypto]`` table, parsed and checked once for every crypto consumer.

Accepted keys (paths are resolved against ``base_dir`` when relative)::

    crypto                  "rsa-pss-sha256" | "ecdsa-p256-sha256" | "sm2-sm3"
    own_key                 path of our private key (PEM PKCS#8; for sm2-sm3 with
                            sm2_key_encoding = "hex": 64 hex digits)
    own_key_id              key id we announce (``key-id=`` line, ``X-Key-Id`` header)
    peer_public_key         path of the bank's public key (PEM SubjectPublicKeyInfo; for
                            sm2-sm3 hex: "04" + x + y, 130 hex digits)
    peer_key_id             optional: the key id the bank must announce

    ecdsa-p256-sha256 only:
    ecdsa_signature_encoding  "der" (default) | "raw" (r‖s, 64 bytes)

    sm2-sm3 only:
    sm2_signer_id           signer id (ZA's ID), ASCII; default "1234567812345678"
    sm2_signature_encoding  "der" (default) | "raw" (r‖s, 64 bytes)
    sm2_key_encoding        "pem" (default) | "hex"

Errors are ``ValueError("bank profile [crypto]: …")`` naming the key, like
``adapters.registry``; unknown keys are refused unless the caller declares them
(``extra_keys``: e.g. the API adapter's encryption settings living in the same table).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adapters.crypto.detached import (
    RSA_PSS_SHA256,
    DetachedSigner,
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    get_algorithm,
)
from adapters.crypto.ecdsa import ECDSA_P256_SHA256, ecdsa_algorithm
from adapters.crypto.sm2 import DEFAULT_SIGNER_ID, SM2_SM3, Sm2Options, sm2_algorithm

#: ``crypto = …`` profile names → the ``alg`` written on the wire.
CRYPTO_PROFILES: Final[Mapping[str, str]] = {
    "rsa-pss-sha256": RSA_PSS_SHA256,
    "ecdsa-p256-sha256": ECDSA_P256_SHA256,
    "sm2-sm3": SM2_SM3,
}

_COMMON_KEYS: Final = frozenset(
    {"crypto", "own_key", "own_key_id", "peer_public_key", "peer_key_id"}
)
_PROFILE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "rsa-pss-sha256": frozenset(),
    "ecdsa-p256-sha256": frozenset({"ecdsa_signature_encoding"}),
    "sm2-sm3": frozenset({"sm2_signer_id", "sm2_signature_encoding", "sm2_key_encoding"}),
}
_ENCODINGS: Final = ("der", "raw")
_KEY_ENCODINGS: Final = ("pem", "hex")
SECTION: Final = "crypto"


def config_error(message: str) -> ValueError:
    return ValueError(f"bank profile [{SECTION}]: {message}")


@dataclass(frozen=True, slots=True)
class CryptoSettings:
    """A checked ``[crypto]`` table. Key files are read only when asked for."""

    profile: str
    alg: str
    algorithm: SignatureAlgorithm
    own_key_path: Path | None
    own_key_id: str | None
    peer_public_key_path: Path | None
    peer_key_id: str | None

    def _read(self, key: str, path: Path | None) -> bytes:
        if path is None:
            raise config_error(f"missing key {key!r}")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise config_error(f"{key!r}: cannot read {path}: {exc.strerror or exc}") from None

    def read_own_key(self) -> bytes:
        return self._read("own_key", self.own_key_path)

    def read_peer_public_key(self) -> bytes:
        return self._read("peer_public_key", self.peer_public_key_path)

    def load_signing_key(self) -> SigningKey:
        """Our private key, loaded for this profile (``ValueError`` naming ``own_key``)."""
        data = self.read_own_key()
        try:
            return self.algorithm.load_signing_key(data)
        except ValueError as exc:
            raise config_error(f"'own_key': {exc}") from None

    def load_verifying_key(self) -> VerifyingKey:
        """The bank's public key (``ValueError`` naming ``peer_public_key``)."""
        data = self.read_peer_public_key()
        try:
            return self.algorithm.load_verifying_key(data)
        except ValueError as exc:
            raise config_error(f"'peer_public_key': {exc}") from None

    def require_own_key_id(self) -> str:
        if self.own_key_id is None:
            raise config_error("missing key 'own_key_id'")
        return self.own_key_id


def _text(raw: Mapping[str, object], key: str) -> str | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise config_error(f"{key!r} must be a non-empty string")
    return value


def _choice(raw: Mapping[str, object], key: str, choices: tuple[str, ...], default: str) -> str:
    value = _text(raw, key)
    if value is None:
        return default
    if value not in choices:
        raise config_error(f"{key!r} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _path(raw: Mapping[str, object], key: str, base_dir: Path | None) -> Path | None:
    value = _text(raw, key)
    if value is None:
        return None
    path = Path(value)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def parse_crypto_config(
    raw: Mapping[str, object],
    *,
    base_dir: Path | None = None,
    extra_keys: Collection[str] = (),
) -> CryptoSettings:
    """Check a ``[crypto]`` table; ``ValueError`` naming the offending key otherwise."""
    profile = _text(raw, "crypto")
    if profile is None:
        raise config_error("missing key 'crypto'")
    if profile not in CRYPTO_PROFILES:
        known = ", ".join(sorted(CRYPTO_PROFILES))
        raise config_error(f"unknown crypto {profile!r} (known: {known})")
    allowed = _COMMON_KEYS | _PROFILE_KEYS[profile] | set(extra_keys)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise config_error(f"unknown key(s) for {profile!r}: {', '.join(unknown)}")

    alg = CRYPTO_PROFILES[profile]
    algorithm: SignatureAlgorithm
    if profile == "sm2-sm3":
        signer_id = _text(raw, "sm2_signer_id") or DEFAULT_SIGNER_ID
        if not signer_id.isascii() or not signer_id.isprintable():
            raise config_error("'sm2_signer_id' must be printable ASCII")
        if len(signer_id.encode("ascii")) * 8 > 0xFFFF:
            raise config_error("'sm2_signer_id' is too long")
        options = Sm2Options(
            signer_id=signer_id.encode("ascii"),
            signature_encoding="raw"
            if _choice(raw, "sm2_signature_encoding", _ENCODINGS, "der") == "raw"
            else "der",
            key_encoding="hex"
            if _choice(raw, "sm2_key_encoding", _KEY_ENCODINGS, "pem") == "hex"
            else "pem",
        )
        algorithm = sm2_algorithm(options)
    elif profile == "ecdsa-p256-sha256":
        encoding = _choice(raw, "ecdsa_signature_encoding", _ENCODINGS, "der")
        algorithm = ecdsa_algorithm(raw_signature=encoding == "raw")
    else:
        algorithm = get_algorithm(alg)

    return CryptoSettings(
        profile=profile,
        alg=alg,
        algorithm=algorithm,
        own_key_path=_path(raw, "own_key", base_dir),
        own_key_id=_text(raw, "own_key_id"),
        peer_public_key_path=_path(raw, "peer_public_key", base_dir),
        peer_key_id=_text(raw, "peer_key_id"),
    )


def build_detached_signer(
    raw: Mapping[str, object], *, base_dir: Path | None = None
) -> DetachedSigner:
    """A detached-signature signer (``gateway.ports.Signer``) from a ``[crypto]`` table.

    Needs ``own_key``, ``own_key_id`` and ``peer_public_key``; ``peer_key_id`` is optional.
    """
    settings = parse_crypto_config(raw, base_dir=base_dir)
    own_key_id = settings.require_own_key_id()
    if settings.peer_public_key_path is None:
        raise config_error("missing key 'peer_public_key'")
    own_key = settings.read_own_key()
    peer_key = settings.read_peer_public_key()
    try:
        settings.algorithm.load_signing_key(own_key)
    except ValueError as exc:
        raise config_error(f"'own_key': {exc}") from None
    try:
        settings.algorithm.load_verifying_key(peer_key)
    except ValueError as exc:
        raise config_error(f"'peer_public_key': {exc}") from None
    try:
        return DetachedSigner(
            settings.algorithm, own_key, own_key_id, peer_key, peer_key_id=settings.peer_key_id
        )
    except ValueError as exc:
        raise config_error(str(exc)) from None

"""Raw signatures over byte strings, for adapters that sign messages rather than files.

The bank API (``docs/formats/openapi-v1.md``) signs a request/response *string to sign* with
the profile's algorithm and sends the signature base64-encoded in ``X-Signature``. This module
gives that adapter the signature bytes only; base64 and the string to sign are its business.

Usage::

    signer = build_raw_signer(profile.crypto_config)          # our private key
    headers["X-Key-Id"] = signer.key_id
    headers["X-Signature"] = base64.b64encode(signer.sign(string_to_sign)).decode()

    verifier = build_raw_verifier(profile.crypto_config)      # the bank's public key
    verifier.verify(string_to_sign, base64.b64decode(headers["X-Signature"]))  # or SignatureError

Both read the ``[crypto]`` table described in :mod:`adapters.crypto.config` (``crypto``,
``own_key``, ``own_key_id``, ``peer_public_key``, ``peer_key_id``, ``sm2_*``…). Signatures
are in the profile's encoding: RSA-PSS bytes; ECDSA/SM2 DER unless the profile says
``raw`` (r‖s, 64 bytes). Keys are loaded once, at build time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from adapters.crypto.config import config_error, parse_crypto_config
from adapters.crypto.detached import _KEY_ID, SignatureAlgorithm, SigningKey, VerifyingKey
from gateway.ports import SignatureError

#: Signatures larger than this are refused before any work (RSA-8192 is 1 KiB).
MAX_SIGNATURE_BYTES = 2048


class RawSigner:
    """Signs byte strings with our private key. ``alg`` and ``key_id`` go on the wire."""

    def __init__(
        self, algorithm: SignatureAlgorithm, private_key: bytes | SigningKey, key_id: str
    ) -> None:
        if _KEY_ID.fullmatch(key_id) is None:
            raise ValueError("key_id must be 1–128 printable ASCII characters, no spaces")
        self.alg = algorithm.alg
        self.key_id = key_id
        self._key: SigningKey = (
            algorithm.load_signing_key(private_key)
            if isinstance(private_key, bytes)
            else private_key
        )

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data`` in the profile's encoding."""
        return self._key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"RawSigner(alg={self.alg!r}, key_id={self.key_id!r})"


class RawVerifier:
    """Verifies the bank's signatures over byte strings with its public key.

    ``key_id`` is the configured ``peer_key_id`` (None when the profile does not pin one);
    :meth:`check_key_id` compares an announced key id with it.
    """

    def __init__(
        self,
        algorithm: SignatureAlgorithm,
        public_key: bytes | VerifyingKey,
        key_id: str | None = None,
    ) -> None:
        self.alg = algorithm.alg
        self.key_id = key_id
        self._key: VerifyingKey = (
            algorithm.load_verifying_key(public_key)
            if isinstance(public_key, bytes)
            else public_key
        )

    def check_key_id(self, announced: str) -> None:
        """SignatureError when a peer key id is configured and ``announced`` differs."""
        if self.key_id is not None and announced != self.key_id:
            raise SignatureError(
                f"signature key id {announced!r} is not the configured {self.key_id!r}"
            )

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return when ``signature`` is the peer's valid signature over ``data``.

        Raises ``gateway.ports.SignatureError`` otherwise (also for malformed signatures).
        """
        if not signature or len(signature) > MAX_SIGNATURE_BYTES:
            raise SignatureError(f"bad signature: {self.alg} signature of {len(signature)} bytes")
        if not self._key.verify(signature, data):
            raise SignatureError(
                f"bad signature: {self.alg} signature does not verify with the peer's public key"
            )

    def __repr__(self) -> str:
        return f"RawVerifier(alg={self.alg!r}, key_id={self.key_id!r})"


def build_raw_signer(
    crypto_config: Mapping[str, object],
    *,
    base_dir: Path | None = None,
    extra_keys: Collection[str] = (),
) -> RawSigner:
    """Our signer from the ``[crypto]`` table (needs ``own_key`` and ``own_key_id``).

    ``extra_keys`` names further keys the caller itself reads from the same table; any
    other unknown key is a ``ValueError``.
    """
    settings = parse_crypto_config(crypto_config, base_dir=base_dir, extra_keys=extra_keys)
    key_id = settings.require_own_key_id()
    try:
        return RawSigner(settings.algorithm, settings.load_signing_key(), key_id)
    except ValueError as exc:
        if str(exc).startswith("bank profile ["):
            raise
        raise config_error(f"'own_key_id': {exc}") from None


def build_raw_verifier(
    crypto_config: Mapping[str, object],
    *,
    base_dir: Path | None = None,
    extra_keys: Collection[str] = (),
) -> RawVerifier:
    """The bank's verifier from the ``[crypto]`` table (needs ``peer_public_key``)."""
    settings = parse_crypto_config(crypto_config, base_dir=base_dir, extra_keys=extra_keys)
    return RawVerifier(settings.algorithm, settings.load_verifying_key(), settings.peer_key_id)

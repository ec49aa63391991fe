"""Signatures and encryption of the open API (``docs/formats/openapi-v1.md``), from the
contract, with ``cryptography`` (RSA-PSS, ECDSA, SM3, SM4) and ``snowland-smx`` (SM2).

Strings to sign (lines joined by ``\\n``, no trailing newline)::

    request:  METHOD / path?query / timestamp / nonce / hex SHA-256 of the body
    response: RESPONSE / status (3 digits) / path?query of the request / timestamp / nonce /
              hex SHA-256 of the response body

Algorithms:

- ``RSA-PSS-SHA256``: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 bytes (as for bank files;
  the API contract does not restate the salt, see ``docs/mock_bank.md``);
- ``ECDSA-P256-SHA256``: ECDSA on P-256 with SHA-256, DER (or raw r‖s when configured);
- ``SM2-SM3``: GB/T 32918.2 with e = SM3(Z_A ‖ M), signer id default ``1234567812345678``,
  DER or raw r‖s. The per-signature random k comes from :mod:`secrets` (a CSPRNG), never
  from the library's defaults; signatures interoperate with OpenSSL 3
  (``openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:…``).

SM4-CBC-HMAC-SM3 bodies (``cryptography``): SM4-CBC with PKCS#7 padding under the pre-shared
key, and an HMAC-SM3 tag over ``IV ‖ ciphertext`` under a MAC key derived from it by
HKDF-SM3; the tag is verified before anything is decrypted.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pysmx import SM2  # snowland-smx: the SM2 library the gateway adapters use

from mock_bank.api.settings import SignatureEncoding

RSA_PSS_SALT: Final = 32
SM2_CURVE_OID: Final = "1.2.156.10197.1.301"
_SM2_N: Final[int] = int(SM2.sm2_N)  # the order n of the SM2 curve
#: Signatures larger than this are refused before any work (RSA-8192 is 1 KiB).
MAX_SIGNATURE_BYTES: Final = 2048


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def request_string_to_sign(
    method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """The request string to sign (for GET the body is empty: SHA-256 of ``b""``)."""
    lines = (method.upper(), path_and_query, timestamp, nonce, sha256_hex(body))
    return "\n".join(lines).encode("utf-8")


def response_string_to_sign(
    status: int, path_and_query: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """The response string to sign: ``RESPONSE``, the 3-digit status, then as a request."""
    lines = ("RESPONSE", f"{status:03d}", path_and_query, timestamp, nonce, sha256_hex(body))
    return "\n".join(lines).encode("utf-8")


# --- signatures --------------------------------------------------------------------------


class Signer(Protocol):
    alg: str
    key_id: str

    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    alg: str

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is valid over ``data``; never raises."""
        ...


def _to_raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _from_raw(raw: bytes) -> tuple[int, int] | None:
    if len(raw) != 64:
        return None
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _decode(signature: bytes, encoding: SignatureEncoding) -> tuple[int, int] | None:
    """(r, s) from a DER or raw r‖s signature; None when malformed."""
    if encoding == "raw":
        return _from_raw(signature)
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return None
    if encode_dss_signature(r, s) != signature:  # only the one canonical DER form
        return None
    return r, s


@dataclass(slots=True)
class _RsaPss:
    alg: str
    key_id: str
    private: rsa.RSAPrivateKey | None
    public: rsa.RSAPublicKey

    @staticmethod
    def _pss() -> padding.PSS:
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=RSA_PSS_SALT)

    def sign(self, data: bytes) -> bytes:
        if self.private is None:
            raise TypeError("a verifier cannot sign")
        return self.private.sign(data, self._pss(), hashes.SHA256())

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public.verify(signature, data, self._pss(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


@dataclass(slots=True)
class _EcdsaP256:
    alg: str
    key_id: str
    private: ec.EllipticCurvePrivateKey | None
    public: ec.EllipticCurvePublicKey
    encoding: SignatureEncoding

    def sign(self, data: bytes) -> bytes:
        if self.private is None:
            raise TypeError("a verifier cannot sign")
        der = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        return _to_raw(der) if self.encoding == "raw" else der

    def verify(self, signature: bytes, data: bytes) -> bool:
        rs = _decode(signature, self.encoding)
        if rs is None:
            return False
        try:
            self.public.verify(encode_dss_signature(*rs), data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(slots=True)
class _Sm2Sm3:
    alg: str
    key_id: str
    private_hex: str | None  # 64 hex digits
    public_hex: str  # x‖y, 128 hex digits (no 04 prefix: the library's form)
    encoding: SignatureEncoding
    signer_id: bytes

    def sign(self, data: bytes) -> bytes:
        if self.private_hex is None:
            raise TypeError("a verifier cannot sign")
        while True:
            k = f"{secrets.randbelow(_SM2_N - 1) + 1:064x}"  # CSPRNG nonce in [1, n-1]
            raw = SM2.Sign(data, self.private_hex, k, 64, uid=self.signer_id)
            rs = None if raw is None else _from_raw(bytes(raw))
            if rs is not None and 0 < rs[0] < _SM2_N and 0 < rs[1] < _SM2_N:
                break  # else the rare r = 0, r + k = n or s = 0: draw another k
        return bytes(raw) if self.encoding == "raw" else encode_dss_signature(*rs)

    def verify(self, signature: bytes, data: bytes) -> bool:
        rs = _decode(signature, self.encoding)
        if rs is None or not (0 < rs[0] < _SM2_N and 0 < rs[1] < _SM2_N):
            return False
        raw = rs[0].to_bytes(32, "big") + rs[1].to_bytes(32, "big")
        try:
            return bool(SM2.Verify(raw.hex(), data, self.public_hex, 64, uid=self.signer_id))
        except (ValueError, TypeError):
            return False


def _pem_der(data: bytes, path: Path) -> tuple[str, bytes]:
    try:
        kind, _headers, der = asn1_pem.unarmor(data)
    except ValueError as exc:
        raise TypeError(f"{path}: not a PEM file") from exc
    return str(kind), bytes(der)


def _sm2_private_hex(path: Path) -> str:
    data = path.read_bytes()
    if not asn1_pem.detect(data):
        text = data.decode("ascii", "replace").strip()
        if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise TypeError(f"{path}: not an SM2 private key (PEM or 64 hex digits)")
        return text.lower()
    kind, der = _pem_der(data, path)
    try:
        if kind in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):  # SEC1, as `openssl ec` writes
            ec_key = asn1_keys.ECPrivateKey.load(der)
            params = ec_key["parameters"]
            curve = SM2_CURVE_OID if params.native is None else params.chosen.dotted
        else:
            info = asn1_keys.PrivateKeyInfo.load(der)
            curve = info["private_key_algorithm"]["parameters"].chosen.dotted
            ec_key = info["private_key"].parsed
        value = int(ec_key["private_key"].native)
    except (ValueError, KeyError, AttributeError) as exc:
        raise TypeError(f"{path}: not an SM2 private key") from exc
    if curve != SM2_CURVE_OID or not 0 < value < _SM2_N:
        raise TypeError(f"{path}: not an SM2 private key (curve {curve})")
    return f"{value:064x}"


def _sm2_public_hex(path: Path) -> str:
    data = path.read_bytes()
    if asn1_pem.detect(data):
        _kind, der = _pem_der(data, path)
        try:
            info = asn1_keys.PublicKeyInfo.load(der)
            curve = info["algorithm"]["parameters"].chosen.dotted
            point = bytes(info["public_key"].native)
        except (ValueError, KeyError, AttributeError) as exc:
            raise TypeError(f"{path}: not an SM2 public key") from exc
        if curve != SM2_CURVE_OID:
            raise TypeError(f"{path}: not an SM2 public key (curve {curve})")
        text = point.hex()
    else:
        text = data.decode("ascii", "replace").strip().lower()
    if len(text) != 130 or not text.startswith("04"):
        raise TypeError(f"{path}: not an uncompressed SM2 public key (04‖x‖y)")
    try:
        int(text, 16)
    except ValueError as exc:
        raise TypeError(f"{path}: not an SM2 public key") from exc
    return text[2:]


def load_signer(
    alg: str,
    private_key: Path,
    key_id: str,
    *,
    encoding: SignatureEncoding = "der",
    sm2_signer_id: str = "1234567812345678",
) -> Signer:
    """The bank's signer for ``alg`` from its private key file."""
    if alg == "SM2-SM3":
        private_hex = _sm2_private_hex(private_key)
        public_hex = str(SM2.kG(int(private_hex, 16), SM2.sm2_G, 64))
        return _Sm2Sm3(alg, key_id, private_hex, public_hex, encoding, sm2_signer_id.encode())
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    if alg == "RSA-PSS-SHA256":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{private_key}: not an RSA private key")
        return _RsaPss(alg, key_id, key, key.public_key())
    if alg == "ECDSA-P256-SHA256":
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise TypeError(f"{private_key}: not a P-256 private key")
        return _EcdsaP256(alg, key_id, key, key.public_key(), encoding)
    raise ValueError(f"unknown signature algorithm {alg!r}")


def load_verifier(
    alg: str,
    public_key: Path,
    *,
    encoding: SignatureEncoding = "der",
    sm2_signer_id: str = "1234567812345678",
) -> Verifier:
    """A verifier of the gateway's signatures from its public key file."""
    if alg == "SM2-SM3":
        return _Sm2Sm3(alg, "", None, _sm2_public_hex(public_key), encoding, sm2_signer_id.encode())
    key = serialization.load_pem_public_key(public_key.read_bytes())
    if alg == "RSA-PSS-SHA256":
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError(f"{public_key}: not an RSA public key")
        return _RsaPss(alg, "", None, key)
    if alg == "ECDSA-P256-SHA256":
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise TypeError(f"{public_key}: not a P-256 public key")
        return _EcdsaP256(alg, "", None, key, encoding)
    raise ValueError(f"unknown signature algorithm {alg!r}")


def throwaway_signer(
    alg: str,
    key_id: str,
    *,
    encoding: SignatureEncoding = "der",
    sm2_signer_id: str = "1234567812345678",
) -> Signer:
    """A signer with a fresh random key of ``alg`` announcing ``key_id``: what a forger has
    (the ``forged_callback`` fault)."""
    if alg == "SM2-SM3":
        private_hex = f"{secrets.randbelow(_SM2_N - 2) + 1:064x}"
        public_hex = str(SM2.kG(int(private_hex, 16), SM2.sm2_G, 64))
        return _Sm2Sm3(alg, key_id, private_hex, public_hex, encoding, sm2_signer_id.encode())
    if alg == "RSA-PSS-SHA256":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _RsaPss(alg, key_id, rsa_key, rsa_key.public_key())
    if alg == "ECDSA-P256-SHA256":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        return _EcdsaP256(alg, key_id, ec_key, ec_key.public_key(), encoding)
    raise ValueError(f"unknown signature algorithm {alg!r}")


# --- SM4-CBC-HMAC-SM3 bodies ------------------------------------------------------------

#: ``alg`` of an encrypted body, and the HKDF ``info`` of its MAC key (the contract's values).
ENVELOPE_ALG: Final = "SM4-CBC-HMAC-SM3"
MAC_KEY_INFO: Final = b"openapi-v1 SM4-CBC-HMAC-SM3 mac key"
SM4_BYTES: Final = 16  # key, IV and block
TAG_BYTES: Final = 32  # HMAC-SM3, not truncated


class DecryptionError(ValueError):
    """The envelope's parts cannot be ours: lengths, MAC or padding."""


def mac_key(key: bytes) -> bytes:
    """HKDF-SM3 (RFC 5869): IKM = the pre-shared key, no salt, :data:`MAC_KEY_INFO`, 32 bytes."""
    return HKDF(algorithm=hashes.SM3(), length=TAG_BYTES, salt=None, info=MAC_KEY_INFO).derive(key)


def _tag(key: bytes, iv: bytes, ciphertext: bytes) -> hmac.HMAC:
    tag = hmac.HMAC(mac_key(key), hashes.SM3())
    tag.update(iv + ciphertext)
    return tag


def sm4_cbc_hmac_sm3_open(key: bytes, iv: bytes, ciphertext: bytes, mac: bytes) -> bytes:
    """The plaintext, after the receiver's steps 5–7: lengths, then HMAC-SM3 over
    ``iv ‖ ciphertext`` (constant time; nothing is decrypted unless it verifies), then
    SM4-CBC decryption and the PKCS#7 padding."""
    if len(key) != SM4_BYTES or len(iv) != SM4_BYTES:
        raise DecryptionError("SM4 key and IV are 16 bytes")
    if len(mac) != TAG_BYTES:
        raise DecryptionError("mac is 32 bytes (HMAC-SM3)")
    if not ciphertext or len(ciphertext) % SM4_BYTES:
        raise DecryptionError("SM4-CBC ciphertext is a non-empty multiple of 16 bytes")
    try:
        _tag(key, iv, ciphertext).verify(mac)
    except InvalidSignature as exc:
        raise DecryptionError("mac does not verify (wrong key, or altered data)") from exc
    decryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptionError("bad PKCS#7 padding under a valid mac") from exc


def sm4_cbc_hmac_sm3_seal(key: bytes, iv: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """``(ciphertext, mac)``: the sender's side (the bank never sends an encrypted body; for
    tests and tools that play the gateway)."""
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return ciphertext, _tag(key, iv, ciphertext).finalize()

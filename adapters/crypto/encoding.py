"""Signature encodings shared by ECDSA and SM2: DER ``SEQUENCE {r, s}`` ↔ raw r‖s.

DER is produced and parsed by ``cryptography``'s ``encode_dss_signature`` /
``decode_dss_signature`` (the same ``Ecdsa-Sig-Value`` structure SM2 uses, GM/T 0009 §7.3),
so no ASN.1 is written by hand here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)


def raw_to_der(raw: bytes, size: int) -> bytes | None:
    """DER of a raw ``r‖s`` of ``2*size`` bytes; None when the length is wrong."""
    if len(raw) != 2 * size:
        return None
    r = int.from_bytes(raw[:size], "big")
    s = int.from_bytes(raw[size:], "big")
    return encode_dss_signature(r, s)


def der_to_raw(der: bytes, size: int) -> bytes:
    """``r‖s`` (each ``size`` bytes, big-endian) of a DER signature.

    Raises ValueError when ``der`` is not canonical DER or r/s do not fit in ``size`` bytes.
    """
    r, s = decode_dss_signature(der)
    if encode_dss_signature(r, s) != der:
        raise ValueError("signature is not canonical DER")
    if r < 0 or s < 0 or r.bit_length() > 8 * size or s.bit_length() > 8 * size:
        raise ValueError("signature values out of range")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def decode_signature(signature: bytes, size: int, *, raw: bool) -> tuple[int, int] | None:
    """``(r, s)`` from a signature in either encoding; None when it is malformed."""
    if raw:
        if len(signature) != 2 * size:
            return None
        return int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return None
    if encode_dss_signature(r, s) != signature:
        return None
    return r, s


def encode_signature(r: int, s: int, size: int, *, raw: bool) -> bytes:
    if raw:
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return encode_dss_signature(r, s)

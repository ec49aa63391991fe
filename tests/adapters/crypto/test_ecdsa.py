"""ECDSA-P256-SHA256: DER and raw signatures, keys, misuse, OpenSSL 3 interop."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.crypto.detached import DetachedSigner, get_algorithm
from adapters.crypto.ecdsa import (
    ECDSA_P256_SHA256,
    ecdsa_algorithm,
    load_ecdsa_private,
    load_ecdsa_public,
)
from adapters.crypto.encoding import der_to_raw, raw_to_der
from adapters.crypto.keys import generate_keypair
from gateway.ports import SignatureError
from tests.adapters.crypto.openssl_cli import OpenSSL

MESSAGE = "H FW01 一卡通 𬎆\r\n".encode("gb18030") * 20
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _pems(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    return (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return generate_keypair("ecdsa-p256-sha256")


@pytest.fixture(scope="module")
def other_pair() -> tuple[bytes, bytes]:
    return generate_keypair("ECDSA-P256-SHA256")


def test_registered_with_der_by_default(pair: tuple[bytes, bytes]) -> None:
    algorithm = get_algorithm(ECDSA_P256_SHA256)
    signature = algorithm.load_signing_key(pair[0]).sign(MESSAGE)
    assert signature[0] == 0x30
    decode_dss_signature(signature)  # DER SEQUENCE {r, s}
    assert algorithm.load_verifying_key(pair[1]).verify(signature, MESSAGE)


def test_verifies_with_cryptography_directly(pair: tuple[bytes, bytes]) -> None:
    signature = load_ecdsa_private(pair[0]).sign(MESSAGE)
    public = serialization.load_pem_public_key(pair[1])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=1024), raw=st.booleans())
def test_round_trip_and_tamper(pair: tuple[bytes, bytes], data: bytes, raw: bool) -> None:
    signer = load_ecdsa_private(pair[0], raw_signature=raw)
    verifier = load_ecdsa_public(pair[1], raw_signature=raw)
    signature = signer.sign(data)
    assert verifier.verify(signature, data)
    if raw:
        assert len(signature) == 64
    assert not verifier.verify(signature, data + b"\x00")
    flipped = bytearray(signature)
    flipped[-1] ^= 0x01
    assert not verifier.verify(bytes(flipped), data)


def test_wrong_key(pair: tuple[bytes, bytes], other_pair: tuple[bytes, bytes]) -> None:
    signature = load_ecdsa_private(pair[0]).sign(MESSAGE)
    assert not load_ecdsa_public(other_pair[1]).verify(signature, MESSAGE)


def test_raw_and_der_convert(pair: tuple[bytes, bytes]) -> None:
    der = load_ecdsa_private(pair[0]).sign(MESSAGE)
    raw = der_to_raw(der, 32)
    assert raw_to_der(raw, 32) == der
    assert load_ecdsa_public(pair[1], raw_signature=True).verify(raw, MESSAGE)
    assert not load_ecdsa_public(pair[1], raw_signature=True).verify(der, MESSAGE)
    assert not load_ecdsa_public(pair[1]).verify(raw, MESSAGE)
    assert raw_to_der(raw[:-1], 32) is None


def test_malformed_signatures(pair: tuple[bytes, bytes]) -> None:
    verifier = load_ecdsa_public(pair[1])
    der = load_ecdsa_private(pair[0]).sign(MESSAGE)
    r, s = decode_dss_signature(der)
    assert not verifier.verify(b"", MESSAGE)
    assert not verifier.verify(der + b"\x00", MESSAGE)
    assert not verifier.verify(encode_dss_signature(0, s), MESSAGE)
    assert not verifier.verify(encode_dss_signature(r, P256_ORDER), MESSAGE)
    # s and n − s both verify in ECDSA; both are accepted (OpenSSL does the same)
    assert verifier.verify(encode_dss_signature(r, P256_ORDER - s), MESSAGE)


def test_other_keys_are_refused() -> None:
    p384_private, p384_public = _pems(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="needs a P-256 key"):
        load_ecdsa_private(p384_private)
    with pytest.raises(ValueError, match="needs a P-256 key"):
        load_ecdsa_public(p384_public)
    rsa_private, rsa_public = generate_keypair("rsa-pss-sha256")
    with pytest.raises(ValueError, match="needs an EC private key"):
        load_ecdsa_private(rsa_private)
    with pytest.raises(ValueError, match="needs an EC public key"):
        load_ecdsa_public(rsa_public)
    with pytest.raises(ValueError, match="cannot load the private key"):
        load_ecdsa_private(b"garbage")
    with pytest.raises(ValueError, match="cannot load the public key"):
        load_ecdsa_public(b"garbage")
    sm2_private, sm2_public = generate_keypair("sm2-sm3")
    with pytest.raises(ValueError, match="cannot load"):
        load_ecdsa_private(sm2_private)
    with pytest.raises(ValueError, match="cannot load"):
        load_ecdsa_public(sm2_public)


def test_detached_signature_files(
    pair: tuple[bytes, bytes], other_pair: tuple[bytes, bytes]
) -> None:
    ours = DetachedSigner(ECDSA_P256_SHA256, pair[0], "gw-ec", other_pair[1])
    theirs = DetachedSigner(ecdsa_algorithm(), other_pair[0], "bank-ec", pair[1])
    sig_file = ours.sign(MESSAGE)
    assert sig_file.startswith(b"alg=ECDSA-P256-SHA256\nkey-id=gw-ec\n")
    theirs.verify(MESSAGE, sig_file)
    with pytest.raises(SignatureError, match="bad signature"):
        DetachedSigner(ECDSA_P256_SHA256, pair[0], "x", other_pair[1]).verify(MESSAGE, sig_file)


def test_openssl_interop_both_ways(openssl3: OpenSSL, pair: tuple[bytes, bytes]) -> None:
    openssl = openssl3
    openssl.write("msg", MESSAGE)
    openssl.write("ours.pub.pem", pair[1])
    openssl.write("ours.der", load_ecdsa_private(pair[0]).sign(MESSAGE))
    out = openssl.run(
        "dgst", "-sha256", "-verify", "ours.pub.pem", "-signature", "ours.der", "msg"
    )  # fmt: skip
    assert b"Verified OK" in out.stdout
    openssl.run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", "bank.key.pem")  # fmt: skip
    openssl.run("pkey", "-in", "bank.key.pem", "-pubout", "-out", "bank.pub.pem")
    openssl.run("dgst", "-sha256", "-sign", "bank.key.pem", "-out", "bank.der", "msg")
    bank = load_ecdsa_public(openssl.read("bank.pub.pem"))
    assert bank.verify(openssl.read("bank.der"), MESSAGE)
    assert not bank.verify(openssl.read("bank.der"), MESSAGE + b"!")
    raw_bank = load_ecdsa_public(openssl.read("bank.pub.pem"), raw_signature=True)
    assert raw_bank.verify(der_to_raw(openssl.read("bank.der"), 32), MESSAGE)
    load_ecdsa_private(openssl.read("bank.key.pem"))  # OpenSSL's PKCS#8 loads

"""SM2-SM3 signatures: the standard's example, OpenSSL 3 interop, encodings, keys, misuse.

Known-answer vector: GM/T 0003.5-2012 / GB/T 32918.5-2017 Annex A — the example on the
*recommended* curve sm2p256v1 (signer id 1234567812345678, message "message digest"),
reproduced in OpenSSL's ``test/sm2_internal_test.c``. The better-known
``ALICE123@YAHOO.COM`` example of GB/T 32918.2 Annex A is computed on a different, 256-bit
*test* curve (p = 8542D69E…), which the library does not offer (it is fixed to sm2p256v1)
and which we must not implement ourselves; ``ALICE123@YAHOO.COM`` is used below as the
non-default signer id in the OpenSSL interop tests instead.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from pysmx.SM2 import _SM2 as SMX

from adapters.crypto import sm2 as sm2_module
from adapters.crypto.detached import DetachedSigner, get_algorithm
from adapters.crypto.encoding import der_to_raw, raw_to_der
from adapters.crypto.keys import generate_keypair
from adapters.crypto.sm2 import (
    DEFAULT_SIGNER_ID,
    SM2_SM3,
    Sm2Options,
    Sm2PrivateKey,
    Sm2PublicKey,
    Sm2SigningKey,
    Sm2VerifyingKey,
    load_sm2_private,
    load_sm2_private_hex,
    load_sm2_private_pem,
    load_sm2_public,
    load_sm2_public_hex,
    load_sm2_public_pem,
    sign_digest,
    sm2_algorithm,
    sm2_digest,
    sm2_private_to_hex,
    sm2_private_to_pem,
    sm2_public_to_hex,
    sm2_public_to_pem,
    sm2_za,
    verify_digest,
)
from gateway.ports import SignatureError
from tests.adapters.crypto.openssl_cli import OpenSSL

# --- the standard's example (GM/T 0003.5-2012 / GB/T 32918.5-2017 Annex A) ------------------

CURVE_P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
CURVE_A = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC", 16)
CURVE_B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
CURVE_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
CURVE_GX = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
CURVE_GY = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"

STD_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
STD_XA = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
STD_YA = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
STD_ID = b"1234567812345678"
STD_MESSAGE = b"message digest"
STD_ZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
STD_E = 0xF0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640
STD_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
STD_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
STD_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA

ALICE = "ALICE123@YAHOO.COM"
MESSAGE = "H FW01 一卡通 刘䶮 𬎆\r\n".encode("gb18030") * 20

RAW = Sm2Options(signature_encoding="raw")
ALICE_DER = Sm2Options(signer_id=ALICE.encode())


def std_key() -> Sm2PrivateKey:
    return Sm2PrivateKey(STD_D)


@pytest.fixture(scope="module")
def key() -> Sm2PrivateKey:
    return Sm2PrivateKey.generate()


@pytest.fixture(scope="module")
def other_key() -> Sm2PrivateKey:
    return Sm2PrivateKey.generate()


def test_library_curve_is_the_recommended_curve() -> None:
    assert (sm2_module.P, sm2_module.A, sm2_module.B, sm2_module.N) == (
        CURVE_P,
        CURVE_A,
        CURVE_B,
        CURVE_N,
    )
    assert sm2_module._G_HEX.upper() == CURVE_GX + CURVE_GY
    Sm2PublicKey(int(CURVE_GX, 16), int(CURVE_GY, 16))  # G is on the curve


def test_standard_example_public_key_za_and_digest() -> None:
    private = std_key()
    assert private.public_key == Sm2PublicKey(STD_XA, STD_YA)
    assert sm2_za(private.public_key, STD_ID).hex().upper() == STD_ZA
    assert sm2_digest(private.public_key, STD_ID, STD_MESSAGE) == STD_E


def test_standard_example_signature_reproduced_with_its_k() -> None:
    assert sign_digest(std_key(), STD_E, k=STD_K) == (STD_R, STD_S)


def test_standard_example_published_signature_verifies() -> None:
    public = Sm2PublicKey(STD_XA, STD_YA)
    assert verify_digest(public, STD_E, STD_R, STD_S)
    der = encode_dss_signature(STD_R, STD_S)
    raw = STD_R.to_bytes(32, "big") + STD_S.to_bytes(32, "big")
    assert Sm2VerifyingKey(public).verify(der, STD_MESSAGE)
    assert Sm2VerifyingKey(public, RAW).verify(raw, STD_MESSAGE)
    # and not with another id, another message, or a changed r or s
    assert not Sm2VerifyingKey(public, ALICE_DER).verify(der, STD_MESSAGE)
    assert not Sm2VerifyingKey(public).verify(der, STD_MESSAGE + b".")
    assert not verify_digest(public, STD_E, STD_R ^ 1, STD_S)
    assert not verify_digest(public, STD_E, STD_R, STD_S ^ 1)


def test_standard_example_through_the_profile_with_hex_keys() -> None:
    algorithm = sm2_algorithm(Sm2Options(key_encoding="hex", signature_encoding="raw"))
    verifier = algorithm.load_verifying_key(f"04{STD_XA:064x}{STD_YA:064X}\n".encode())
    raw = STD_R.to_bytes(32, "big") + STD_S.to_bytes(32, "big")
    assert verifier.verify(raw, STD_MESSAGE)
    signer = algorithm.load_signing_key(f"{STD_D:064X}".encode())
    assert verifier.verify(signer.sign(STD_MESSAGE), STD_MESSAGE)


# --- nonces ------------------------------------------------------------------------------------


def test_every_signature_draws_a_fresh_nonce_from_secrets(
    key: Sm2PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real: Callable[[int], int] = secrets.randbelow

    def spy(upper: int) -> int:
        calls.append(upper)
        return real(upper)

    monkeypatch.setattr(secrets, "randbelow", spy)
    signer = Sm2SigningKey(key, RAW)
    signatures = {signer.sign(MESSAGE) for _ in range(5)}
    assert len(signatures) == 5  # r differs every time: k is never reused
    assert calls == [sm2_module.N - 1] * 5


def test_a_failed_library_sign_is_retried_with_a_new_nonce(
    key: Sm2PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sign = SMX.Sign
    results: list[object] = [None]  # the library returns None when r = 0 or r + k = n

    def flaky(*args: object, **kwargs: object) -> object:
        if results:
            return results.pop()
        return real_sign(*args, **kwargs)

    monkeypatch.setattr(SMX, "Sign", flaky)
    signature = Sm2SigningKey(key).sign(MESSAGE)
    assert Sm2VerifyingKey(key.public_key).verify(signature, MESSAGE)


def test_a_wrong_signature_from_the_library_is_never_returned(
    key: Sm2PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SMX, "Sign", lambda *a, **k: bytes(31) + b"\x01" * 33)
    with pytest.raises(RuntimeError, match="failed its own verification"):
        Sm2SigningKey(key).sign(MESSAGE)


# --- round trips, tampering, wrong keys, encodings ------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    data=st.binary(max_size=2048),
    signer_id=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40
    ),
    raw=st.booleans(),
)
def test_round_trip(key: Sm2PrivateKey, data: bytes, signer_id: str, raw: bool) -> None:
    options = Sm2Options(signer_id=signer_id.encode(), signature_encoding="raw" if raw else "der")
    signature = Sm2SigningKey(key, options).sign(data)
    verifier = Sm2VerifyingKey(key.public_key, options)
    assert verifier.verify(signature, data)
    if raw:
        assert len(signature) == 64
    else:
        assert signature[0] == 0x30 and 8 <= len(signature) <= 72
    assert not verifier.verify(signature, data + b"\x00")


@settings(max_examples=20, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=256),
    position=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_tampered_data_or_signature_is_rejected(
    key: Sm2PrivateKey, data: bytes, position: int, bit: int
) -> None:
    signer = Sm2SigningKey(key, RAW)
    verifier = Sm2VerifyingKey(key.public_key, RAW)
    signature = signer.sign(data)
    flipped = bytearray(data)
    flipped[position % len(data)] ^= 1 << bit
    assert not verifier.verify(signature, bytes(flipped))
    bad_signature = bytearray(signature)
    bad_signature[position % 64] ^= 1 << bit
    assert not verifier.verify(bytes(bad_signature), data)


def test_wrong_key_and_wrong_signer_id_are_rejected(
    key: Sm2PrivateKey, other_key: Sm2PrivateKey
) -> None:
    signature = Sm2SigningKey(key).sign(MESSAGE)
    assert Sm2VerifyingKey(key.public_key).verify(signature, MESSAGE)
    assert not Sm2VerifyingKey(other_key.public_key).verify(signature, MESSAGE)
    assert not Sm2VerifyingKey(key.public_key, ALICE_DER).verify(signature, MESSAGE)


def test_raw_and_der_encodings_convert_both_ways(key: Sm2PrivateKey) -> None:
    der = Sm2SigningKey(key).sign(MESSAGE)
    raw = der_to_raw(der, 32)
    assert len(raw) == 64
    assert raw_to_der(raw, 32) == der
    assert Sm2VerifyingKey(key.public_key, RAW).verify(raw, MESSAGE)
    # a verifier expecting one encoding refuses the other
    assert not Sm2VerifyingKey(key.public_key, RAW).verify(der, MESSAGE)
    assert not Sm2VerifyingKey(key.public_key).verify(raw, MESSAGE)


def test_out_of_range_and_malformed_signatures_are_rejected(key: Sm2PrivateKey) -> None:
    verifier = Sm2VerifyingKey(key.public_key, RAW)
    der_verifier = Sm2VerifyingKey(key.public_key)
    raw = Sm2SigningKey(key, RAW).sign(MESSAGE)
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:], "big")
    n = sm2_module.N
    for bad_r, bad_s in ((0, s), (r, 0), (r + n, s), (r, s + n), (n, s), (r, n)):
        if bad_r < 2**256 and bad_s < 2**256:
            assert not verifier.verify(
                bad_r.to_bytes(32, "big") + bad_s.to_bytes(32, "big"), MESSAGE
            )
        assert not der_verifier.verify(encode_dss_signature(bad_r, bad_s), MESSAGE)
    assert not verifier.verify(raw[:63], MESSAGE)
    assert not verifier.verify(raw + b"\x00", MESSAGE)
    assert not verifier.verify(b"", MESSAGE)
    der = encode_dss_signature(r, s)
    assert der_verifier.verify(der, MESSAGE)
    non_canonical = bytes([0x30, der[1] + 1, 0x02, der[3] + 1, 0x00]) + der[4:]
    assert not der_verifier.verify(non_canonical, MESSAGE)
    assert not der_verifier.verify(der + b"\x00", MESSAGE)
    assert not der_verifier.verify(b"\x30\x00", MESSAGE)


# --- keys ------------------------------------------------------------------------------------


def test_pem_keys_round_trip(key: Sm2PrivateKey) -> None:
    private_pem = sm2_private_to_pem(key)
    public_pem = sm2_public_to_pem(key.public_key)
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert load_sm2_private_pem(private_pem).public_key == key.public_key
    assert load_sm2_public_pem(public_pem) == key.public_key


def test_hex_keys_round_trip(key: Sm2PrivateKey) -> None:
    private_hex = sm2_private_to_hex(key)
    public_hex = sm2_public_to_hex(key.public_key)
    assert len(private_hex.strip()) == 64
    assert public_hex.startswith(b"04") and len(public_hex.strip()) == 130
    assert load_sm2_private_hex(private_hex).public_key == key.public_key
    assert load_sm2_public_hex(public_hex) == key.public_key
    assert load_sm2_public_hex(public_hex.strip()[2:].upper()) == key.public_key  # bare x‖y
    assert load_sm2_private(private_hex, "hex").public_key == load_sm2_public(public_hex, "hex")


def test_generate_keypair_sm2_in_both_encodings() -> None:
    private, public = generate_keypair("sm2-sm3")
    assert load_sm2_private_pem(private).public_key == load_sm2_public_pem(public)
    private, public = generate_keypair("SM2-SM3", "hex")
    assert load_sm2_private_hex(private).public_key == load_sm2_public_hex(public)


def test_private_key_repr_hides_the_scalar(key: Sm2PrivateKey) -> None:
    secret_hex = f"{key.private_value:x}"
    for text in (repr(key), str(key), repr(Sm2SigningKey(key))):
        assert secret_hex not in text.lower()
        assert str(key.private_value) not in text


@pytest.mark.parametrize("d", [0, -1, CURVE_N - 1, CURVE_N, CURVE_N + 5])
def test_private_key_range(d: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        Sm2PrivateKey(d)


def test_public_key_must_be_on_the_curve() -> None:
    with pytest.raises(ValueError, match="not a point on the SM2 curve"):
        Sm2PublicKey(STD_XA, STD_YA + 1)
    with pytest.raises(ValueError, match="out of range"):
        Sm2PublicKey(CURVE_P, 0)
    with pytest.raises(ValueError, match="not a point"):
        load_sm2_public_hex(f"04{STD_XA:064x}{STD_YA + 1:064x}".encode())
    with pytest.raises(ValueError, match="uncompressed point"):
        Sm2PublicKey.from_bytes(b"\x02" + STD_XA.to_bytes(32, "big"))  # compressed


def test_pem_private_key_with_a_foreign_public_key_is_refused(
    key: Sm2PrivateKey, other_key: Sm2PrivateKey
) -> None:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import pem as asn1_pem

    _, _, der = asn1_pem.unarmor(sm2_private_to_pem(key))
    info = asn1_keys.PrivateKeyInfo.load(der)
    inner = info["private_key"].parsed
    inner["public_key"] = other_key.public_key.to_bytes()
    info["private_key"] = inner
    forged = asn1_pem.armor("PRIVATE KEY", info.dump(force=True))
    with pytest.raises(ValueError, match="does not match the public key"):
        load_sm2_private_pem(forged)


def _p256_pem_pair() -> tuple[bytes, bytes]:
    p256 = ec.generate_private_key(ec.SECP256R1())
    return (
        p256.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        p256.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def test_keys_of_other_algorithms_are_refused() -> None:
    p256_private, p256_public = _p256_pem_pair()
    with pytest.raises(ValueError, match="not on the SM2 curve"):
        load_sm2_private_pem(p256_private)
    with pytest.raises(ValueError, match="not on the SM2 curve"):
        load_sm2_public_pem(p256_public)
    rsa_private, rsa_public = generate_keypair("rsa-pss-sha256")
    with pytest.raises(ValueError, match="not an EC/SM2 key"):
        load_sm2_private_pem(rsa_private)
    with pytest.raises(ValueError, match="not an EC/SM2 key"):
        load_sm2_public_pem(rsa_public)


def _pem(label: str, body: str) -> bytes:
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


@pytest.mark.parametrize(
    ("loader", "data", "message"),
    [
        (load_sm2_private_pem, b"not a key", "not PEM"),
        (load_sm2_public_pem, b"", "not PEM"),
        (load_sm2_public_pem, _pem("PRIVATE KEY", "AAAA"), "unexpected PEM block"),
        (load_sm2_private_pem, _pem("PRIVATE KEY", "MAA="), "cannot load the SM2 private key"),
        (load_sm2_private_pem, _pem("ENCRYPTED PRIVATE KEY", "MAA="), "encrypted private keys are"),
        (load_sm2_private_hex, b"zz" * 32, "not hex text"),
        (load_sm2_private_hex, b"00" * 31, "expected 64 hex digits"),
        (load_sm2_private_hex, "é".encode(), "not hex text"),
        (load_sm2_public_hex, b"04" + b"00" * 65, "uncompressed point"),
        (load_sm2_public_hex, b"", "not hex text"),
    ],
)  # fmt: skip
def test_malformed_key_files(loader: object, data: bytes, message: str) -> None:
    assert callable(loader)
    with pytest.raises(ValueError, match=message):
        loader(data)


def test_key_errors_never_echo_key_material(key: Sm2PrivateKey) -> None:
    secret_hex = key.to_bytes().hex()
    broken = (secret_hex[:-1] + "g").encode()
    with pytest.raises(ValueError) as caught:
        load_sm2_private_hex(broken)
    assert secret_hex[:16] not in str(caught.value)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="signer id is longer"):
        Sm2Options(signer_id=b"x" * 8192)
    with pytest.raises(ValueError, match="der or raw"):
        Sm2Options(signature_encoding="p1363")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pem or hex"):
        Sm2Options(key_encoding="der")  # type: ignore[arg-type]
    assert Sm2Options().signer_id == DEFAULT_SIGNER_ID.encode() == STD_ID


# --- detached signature files ------------------------------------------------------------------


def test_detached_signature_files_with_sm2(key: Sm2PrivateKey, other_key: Sm2PrivateKey) -> None:
    assert get_algorithm(SM2_SM3).alg == SM2_SM3  # registered with the default options
    algorithm = sm2_algorithm(Sm2Options(signer_id=ALICE.encode(), signature_encoding="raw"))
    ours = DetachedSigner(
        algorithm, sm2_private_to_pem(key), "gw-sm2", sm2_public_to_pem(other_key.public_key)
    )
    theirs = DetachedSigner(
        algorithm, sm2_private_to_pem(other_key), "bank-sm2", sm2_public_to_pem(key.public_key)
    )
    sig_file = ours.sign(MESSAGE)
    lines = sig_file.decode("ascii").split("\n")
    assert lines[0] == "alg=SM2-SM3"
    assert len(base64.b64decode(lines[3].removeprefix("sig="))) == 64
    theirs.verify(MESSAGE, sig_file)
    with pytest.raises(SignatureError, match="digest mismatch"):
        theirs.verify(MESSAGE + b" ", sig_file)
    default_id = DetachedSigner(
        SM2_SM3, sm2_private_to_pem(other_key), "bank-sm2", sm2_public_to_pem(key.public_key)
    )
    with pytest.raises(SignatureError, match="bad signature"):
        default_id.verify(MESSAGE, sig_file)  # other signer id (and DER expected)


# --- OpenSSL 3 interop ---------------------------------------------------------------------------


def _openssl_keypair(openssl: OpenSSL, stem: str) -> tuple[str, str]:
    openssl.run("genpkey", "-algorithm", "SM2", "-out", f"{stem}.key.pem")
    openssl.run("pkey", "-in", f"{stem}.key.pem", "-pubout", "-out", f"{stem}.pub.pem")
    return f"{stem}.key.pem", f"{stem}.pub.pem"


@pytest.mark.parametrize("signer_id", [DEFAULT_SIGNER_ID, ALICE])
def test_openssl_verifies_our_signatures(
    openssl: OpenSSL, key: Sm2PrivateKey, signer_id: str
) -> None:
    options = Sm2Options(signer_id=signer_id.encode())
    openssl.write("msg", MESSAGE)
    openssl.write("pub.pem", sm2_public_to_pem(key.public_key))
    openssl.write("sig.der", Sm2SigningKey(key, options).sign(MESSAGE))
    raw = Sm2SigningKey(key, Sm2Options(signer_id=signer_id.encode(), signature_encoding="raw"))
    openssl.write("raw-as.der", raw_to_der(raw.sign(MESSAGE), 32) or b"")
    for sig in ("sig.der", "raw-as.der"):
        out = openssl.run(
            "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", f"distid:{signer_id}",
            "-signature", sig, "msg",
        )  # fmt: skip
        assert b"Verified OK" in out.stdout
        out = openssl.run(
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-digest", "sm3",
            "-pkeyopt", f"distid:{signer_id}", "-in", "msg", "-sigfile", sig,
        )  # fmt: skip
        assert b"Signature Verified Successfully" in out.stdout
    # OpenSSL rejects it under another signer id and for other data
    other_id = ALICE if signer_id == DEFAULT_SIGNER_ID else DEFAULT_SIGNER_ID
    refused = openssl.run(
        "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", f"distid:{other_id}",
        "-signature", "sig.der", "msg", check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    openssl.write("msg2", MESSAGE + b"!")
    refused = openssl.run(
        "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", f"distid:{signer_id}",
        "-signature", "sig.der", "msg2", check=False,
    )  # fmt: skip
    assert refused.returncode != 0


@pytest.mark.parametrize("signer_id", [DEFAULT_SIGNER_ID, ALICE])
def test_we_verify_openssl_signatures(openssl: OpenSSL, signer_id: str) -> None:
    key_pem, pub_pem = _openssl_keypair(openssl, "bank")
    openssl.write("msg", MESSAGE)
    openssl.run(
        "dgst", "-sm3", "-sign", key_pem, "-sigopt", f"distid:{signer_id}",
        "-out", "dgst.der", "msg",
    )  # fmt: skip
    openssl.run(
        "pkeyutl", "-sign", "-inkey", key_pem, "-rawin", "-digest", "sm3",
        "-pkeyopt", f"distid:{signer_id}", "-in", "msg", "-out", "pkeyutl.der",
    )  # fmt: skip
    public = load_sm2_public_pem(openssl.read(pub_pem))
    assert load_sm2_private_pem(openssl.read(key_pem)).public_key == public
    der_options = Sm2Options(signer_id=signer_id.encode())
    raw_options = Sm2Options(signer_id=signer_id.encode(), signature_encoding="raw")
    for name in ("dgst.der", "pkeyutl.der"):
        der = openssl.read(name)
        assert Sm2VerifyingKey(public, der_options).verify(der, MESSAGE)
        assert Sm2VerifyingKey(public, raw_options).verify(der_to_raw(der, 32), MESSAGE)
        assert not Sm2VerifyingKey(public, der_options).verify(der, MESSAGE + b"!")
        wrong_id = Sm2Options(signer_id=b"1234567812345679")
        assert not Sm2VerifyingKey(public, wrong_id).verify(der, MESSAGE)


def test_key_files_match_openssl_byte_for_byte(openssl: OpenSSL, key: Sm2PrivateKey) -> None:
    # OpenSSL's keys: we write exactly what OpenSSL wrote
    key_pem, pub_pem = _openssl_keypair(openssl, "theirs")
    loaded = load_sm2_private_pem(openssl.read(key_pem))
    assert sm2_private_to_pem(loaded) == openssl.read(key_pem)
    assert sm2_public_to_pem(loaded.public_key) == openssl.read(pub_pem)
    # SEC1 ("SM2 PRIVATE KEY") as `openssl ec` writes it
    openssl.run("ec", "-in", key_pem, "-out", "sec1.pem")
    assert load_sm2_private_pem(openssl.read("sec1.pem")).public_key == loaded.public_key
    # our keys: OpenSSL reads them and derives the same public key
    openssl.write("ours.key.pem", sm2_private_to_pem(key))
    out = openssl.run("pkey", "-in", "ours.key.pem", "-pubout")
    assert out.stdout == sm2_public_to_pem(key.public_key)
    text = openssl.run("pkey", "-in", "ours.key.pem", "-noout", "-text").stdout
    assert b"ASN1 OID: SM2" in text


def test_hex_keys_interoperate_with_openssl(openssl: OpenSSL) -> None:
    """A bank SDK's hex keys and OpenSSL's PEM keys are the same keys."""
    key_pem, pub_pem = _openssl_keypair(openssl, "sdk")
    private = load_sm2_private_pem(openssl.read(key_pem))
    algorithm = sm2_algorithm(Sm2Options(key_encoding="hex", signer_id=ALICE.encode()))
    signer = algorithm.load_signing_key(sm2_private_to_hex(private))
    openssl.write("msg", MESSAGE)
    openssl.write("sig.der", signer.sign(MESSAGE))
    out = openssl.run(
        "dgst", "-sm3", "-verify", pub_pem, "-sigopt", f"distid:{ALICE}",
        "-signature", "sig.der", "msg",
    )  # fmt: skip
    assert b"Verified OK" in out.stdout


def test_standard_example_key_in_openssl(openssl: OpenSSL, tmp_path: Path) -> None:
    """OpenSSL verifies a signature made with the standard's key (id 1234567812345678)."""
    openssl.write("std.key.pem", sm2_private_to_pem(std_key()))
    openssl.write("msg", STD_MESSAGE)
    openssl.write("std.der", encode_dss_signature(STD_R, STD_S))
    openssl.run("pkey", "-in", "std.key.pem", "-pubout", "-out", "std.pub.pem")
    out = openssl.run(
        "dgst", "-sm3", "-verify", "std.pub.pem", "-sigopt", f"distid:{DEFAULT_SIGNER_ID}",
        "-signature", "std.der", "msg",
    )  # fmt: skip
    assert b"Verified OK" in out.stdout
    assert (tmp_path / "std.pub.pem").read_bytes() == sm2_public_to_pem(
        Sm2PublicKey(STD_XA, STD_YA)
    )

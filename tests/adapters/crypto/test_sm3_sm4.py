"""SM3 (GB/T 32905-2016) and SM4-CBC (GB/T 32907-2016) against the standards' examples;
HMAC-SM3, HKDF-SM3 and SM4-CBC-HMAC-SM3 against OpenSSL 3."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.crypto.sm3 import hkdf_sm3, hmac_sm3, hmac_sm3_verify, sm3, sm3_hasher, sm3_hex
from adapters.crypto.sm4 import (
    Sm4DecryptionError,
    Sm4IntegrityError,
    new_iv,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
    sm4_cbc_hmac_sm3_decrypt,
    sm4_cbc_hmac_sm3_encrypt,
    sm4_mac_key,
)
from tests.adapters.crypto.openssl_cli import OpenSSL

# GB/T 32905-2016 Appendix A, examples 1 and 2
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"

# GB/T 32907-2016 Appendix A: key = plaintext; example 1 once, example 2 a million times
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_ONCE = "681edf34d206965e86b3e94f536e4246"
SM4_MILLION = "595298c7c6fd271f0402f804c33d3f66"

KEY = bytes(range(16))
IV = bytes(range(16, 32))


def test_sm3_standard_examples() -> None:
    assert sm3_hex(b"abc") == SM3_ABC
    assert sm3(b"abcd" * 16).hex() == SM3_ABCD16
    assert len(sm3(b"")) == 32


def test_sm3_incremental_equals_one_shot() -> None:
    hasher = sm3_hasher()
    data = b"abcd" * 16
    for start, end in ((0, 3), (3, 40), (40, 63), (63, 64)):
        hasher.update(data[start:end])
    assert hasher.finalize().hex() == SM3_ABCD16


def _sm4_block(key: bytes, block: bytes) -> bytes:
    # one bare block, as the standard's example states it
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(block) + encryptor.finalize()


def test_sm4_standard_example_1() -> None:
    assert _sm4_block(SM4_KEY, SM4_KEY).hex() == SM4_ONCE
    # one block through our CBC helper with a zero IV is the bare block cipher
    assert sm4_cbc_encrypt(SM4_KEY, bytes(16), SM4_KEY)[:16].hex() == SM4_ONCE


def test_sm4_standard_example_2_million_iterations() -> None:
    """Takes ~0.3 s with OpenSSL underneath; kept because it is the standard's own check."""
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()  # noqa: S305
    block = SM4_KEY
    for _ in range(1_000_000):
        block = encryptor.update(block)
    assert block.hex() == SM4_MILLION


def test_sm4_cbc_known_answer_and_padding() -> None:
    # 16 bytes in → 32 out: PKCS#7 always adds a block when the input is aligned
    ciphertext = sm4_cbc_encrypt(SM4_KEY, bytes(16), SM4_KEY)
    assert len(ciphertext) == 32
    # CBC by hand: second block = E(K, C1 xor 16×0x10)
    padding_block = bytes(c ^ 0x10 for c in ciphertext[:16])
    assert ciphertext[16:] == _sm4_block(SM4_KEY, padding_block)
    assert sm4_cbc_decrypt(SM4_KEY, bytes(16), ciphertext) == SM4_KEY
    assert len(sm4_cbc_encrypt(KEY, IV, b"")) == 16
    assert len(sm4_cbc_encrypt(KEY, IV, b"x" * 15)) == 16


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=300),
    key=st.binary(min_size=16, max_size=16),
    iv=st.binary(min_size=16, max_size=16),
)
def test_sm4_cbc_round_trip(data: bytes, key: bytes, iv: bytes) -> None:
    assert sm4_cbc_decrypt(key, iv, sm4_cbc_encrypt(key, iv, data)) == data


def test_sm4_new_iv_is_random() -> None:
    ivs = {new_iv() for _ in range(50)}
    assert len(ivs) == 50
    assert all(len(iv) == 16 for iv in ivs)


@pytest.mark.parametrize(
    ("key", "iv", "message"),
    [
        (b"k" * 15, IV, "key must be 16 bytes"),
        (b"k" * 32, IV, "key must be 16 bytes"),
        (KEY, b"i" * 8, "IV must be 16 bytes"),
    ],
)
def test_sm4_rejects_bad_key_or_iv(key: bytes, iv: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sm4_cbc_encrypt(key, iv, b"data")
    with pytest.raises(ValueError, match=message):
        sm4_cbc_decrypt(key, iv, bytes(16))


@pytest.mark.parametrize("length", [0, 1, 15, 17])
def test_sm4_decrypt_rejects_partial_blocks(length: int) -> None:
    with pytest.raises(Sm4DecryptionError):
        sm4_cbc_decrypt(KEY, IV, bytes(length))


def test_sm4_decrypt_wrong_key_fails_or_differs() -> None:
    ciphertext = sm4_cbc_encrypt(KEY, IV, "张三 430621199302033015".encode())
    other = bytes(16)
    try:
        plain = sm4_cbc_decrypt(other, IV, ciphertext)
    except Sm4DecryptionError as exc:
        assert str(exc) == "SM4-CBC decryption failed"  # no detail for a padding oracle
    else:
        assert plain != "张三 430621199302033015".encode()


def test_sm3_and_sm4_cbc_match_openssl(openssl3: OpenSSL) -> None:
    body = '{"items":[{"name":"刘䶮","id_number":"430621199302033015"}]}'.encode() * 7
    openssl3.write("body.json", body)
    out = openssl3.run("dgst", "-sm3", "-r", "body.json")
    assert out.stdout.split()[0].decode() == sm3_hex(body)
    out = openssl3.run(
        "enc", "-sm4-cbc", "-K", KEY.hex(), "-iv", IV.hex(), "-in", "body.json"
    )  # fmt: skip
    assert out.stdout == sm4_cbc_encrypt(KEY, IV, body)
    openssl3.write("body.enc", out.stdout)
    out = openssl3.run("enc", "-d", "-sm4-cbc", "-K", KEY.hex(), "-iv", IV.hex(), "-in", "body.enc")
    assert out.stdout == body == sm4_cbc_decrypt(KEY, IV, openssl3.read("body.enc"))


# --- HMAC-SM3, HKDF-SM3, SM4-CBC-HMAC-SM3 ---------------------------------------------------

INFO = b"openapi-v1 SM4-CBC-HMAC-SM3 mac key"


def test_hmac_and_hkdf_sm3_match_openssl(openssl3: OpenSSL, rng: random.Random) -> None:
    key, data, ikm = rng.randbytes(32), rng.randbytes(77), rng.randbytes(16)
    openssl3.write("data.bin", data)
    out = openssl3.run("mac", "-digest", "SM3", "-macopt", f"hexkey:{key.hex()}",
                       "-in", "data.bin", "HMAC")  # fmt: skip
    assert out.stdout.decode().strip().lower() == hmac_sm3(key, data).hex()
    out = openssl3.run("kdf", "-keylen", "32", "-kdfopt", "digest:SM3",
                       "-kdfopt", f"hexkey:{ikm.hex()}", "-kdfopt", f"info:{INFO.decode()}",
                       "HKDF")  # fmt: skip
    derived = bytes.fromhex(out.stdout.decode().strip().replace(":", ""))
    assert derived == hkdf_sm3(ikm, info=INFO, length=32) == sm4_mac_key(ikm, info=INFO)
    assert hmac_sm3_verify(key, data, hmac_sm3(key, data))
    assert not hmac_sm3_verify(key, data + b"x", hmac_sm3(key, data))
    assert not hmac_sm3_verify(key, data, hmac_sm3(key, data)[:16])  # never truncated


def test_sm4_cbc_hmac_sm3_is_sm4_cbc_then_hmac_sm3(rng: random.Random) -> None:
    key, iv, data = rng.randbytes(16), rng.randbytes(16), rng.randbytes(100)
    ciphertext, tag = sm4_cbc_hmac_sm3_encrypt(key, iv, data, info=INFO)
    assert ciphertext == sm4_cbc_encrypt(key, iv, data)
    assert tag == hmac_sm3(hkdf_sm3(key, info=INFO, length=32), iv + ciphertext)
    assert sm4_cbc_hmac_sm3_decrypt(key, iv, ciphertext, tag, info=INFO) == data
    # the MAC key depends on the protocol's info: another protocol's tag does not verify
    with pytest.raises(Sm4IntegrityError):
        sm4_cbc_hmac_sm3_decrypt(key, iv, ciphertext, tag, info=b"other")


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=300),
    key=st.binary(min_size=16, max_size=16),
    iv=st.binary(min_size=16, max_size=16),
)
def test_sm4_cbc_hmac_sm3_round_trip(data: bytes, key: bytes, iv: bytes) -> None:
    ciphertext, tag = sm4_cbc_hmac_sm3_encrypt(key, iv, data, info=INFO)
    assert sm4_cbc_hmac_sm3_decrypt(key, iv, ciphertext, tag, info=INFO) == data


def _padding_passes(key: bytes, iv: bytes, ciphertext: bytes) -> bool:
    try:
        sm4_cbc_decrypt(key, iv, ciphertext)
    except Sm4DecryptionError:
        return False
    return True


def test_sm4_cbc_hmac_sm3_wrong_key_fails_with_certainty(rng: random.Random) -> None:
    """The bare decryption under a wrong key passes the padding check about 1 time in 255
    (so it cannot tell a wrong key); the MAC refuses every wrong key, those included."""
    data = "张三 430621199302033015".encode()
    lucky = others = 0
    for _ in range(100_000):
        if lucky >= 3 and others >= 200:
            break
        key, iv = rng.randbytes(16), rng.randbytes(16)
        if key == KEY:
            continue
        ciphertext, tag = sm4_cbc_hmac_sm3_encrypt(key, iv, data, info=INFO)
        passes = _padding_passes(KEY, iv, ciphertext)
        with pytest.raises(Sm4IntegrityError):
            sm4_cbc_hmac_sm3_decrypt(KEY, iv, ciphertext, tag, info=INFO)
        lucky += passes
        others += not passes
    assert lucky >= 3, "no wrong key with valid padding found"


def test_sm4_cbc_hmac_sm3_refuses_tampering_before_decrypting(rng: random.Random) -> None:
    iv, data = rng.randbytes(16), rng.randbytes(40)
    ciphertext, tag = sm4_cbc_hmac_sm3_encrypt(KEY, iv, data, info=INFO)

    def flip(raw: bytes, index: int) -> bytes:
        out = bytearray(raw)
        out[index] ^= 1 << rng.randrange(8)
        return bytes(out)

    for index in range(len(ciphertext)):
        with pytest.raises(Sm4IntegrityError):
            sm4_cbc_hmac_sm3_decrypt(KEY, iv, flip(ciphertext, index), tag, info=INFO)
    for index in range(32):
        with pytest.raises(Sm4IntegrityError):
            sm4_cbc_hmac_sm3_decrypt(KEY, iv, ciphertext, flip(tag, index), info=INFO)
    for index in range(16):
        with pytest.raises(Sm4IntegrityError):
            sm4_cbc_hmac_sm3_decrypt(KEY, flip(iv, index), ciphertext, tag, info=INFO)
    with pytest.raises(Sm4IntegrityError):
        sm4_cbc_hmac_sm3_decrypt(KEY, iv, ciphertext, tag[:31], info=INFO)
    with pytest.raises(Sm4IntegrityError):  # a block dropped
        sm4_cbc_hmac_sm3_decrypt(KEY, iv, ciphertext[:-16], tag, info=INFO)
    with pytest.raises(Sm4DecryptionError):
        sm4_cbc_hmac_sm3_decrypt(KEY, iv, ciphertext[:-1], tag, info=INFO)
    # a valid tag over blocks whose padding is wrong: a decryption error, not an integrity one
    unpadded = sm4_cbc_encrypt(KEY, iv, bytes(16))[:16]  # one block, its padding stripped
    mac = hmac_sm3(sm4_mac_key(KEY, info=INFO), iv + unpadded)
    with pytest.raises(Sm4DecryptionError) as info:
        sm4_cbc_hmac_sm3_decrypt(KEY, iv, unpadded, mac, info=INFO)
    assert not isinstance(info.value, Sm4IntegrityError)

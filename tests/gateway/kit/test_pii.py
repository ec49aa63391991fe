from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidTag

from gateway.kit.pii import (
    PiiCipher,
    PiiKeyError,
    mask_account,
    mask_id_number,
    mask_name,
    mask_phone,
)


def cipher(current: str = "k1", **keys: bytes) -> PiiCipher:
    return PiiCipher(
        master_keys=keys or {"k1": b"a" * 32}, current_key_id=current, index_key=b"i" * 32
    )


def test_round_trip_and_randomised() -> None:
    c = cipher()
    a, b = (
        c.encrypt("id_number", "430621199001011234"),
        c.encrypt("id_number", "430621199001011234"),
    )
    assert a != b
    assert a.startswith("k1:")
    assert "430621199001011234" not in a
    assert c.decrypt("id_number", a) == "430621199001011234"


def test_field_is_bound() -> None:
    c = cipher()
    token = c.encrypt("name", "张三")
    with pytest.raises(InvalidTag):
        c.decrypt("account_no", token)


def test_rotation_keeps_old_rows_readable(rng: random.Random) -> None:
    old = cipher("k1", k1=rng.randbytes(32))
    token = old.encrypt("phone", "13812345678")
    new = PiiCipher(
        master_keys={**old.master_keys, "k2": rng.randbytes(32)},
        current_key_id="k2",
        index_key=old.index_key,
    )
    assert new.decrypt("phone", token) == "13812345678"
    assert new.encrypt("phone", "1").startswith("k2:")
    assert new.blind_index("phone", "x") == old.blind_index("phone", "x")


def test_unknown_key_version() -> None:
    with pytest.raises(PiiKeyError):
        cipher().decrypt("name", "k9:AAAA")


def test_blind_index_is_keyed_and_per_field() -> None:
    c = cipher()
    assert c.blind_index("id_number", "1") == c.blind_index("id_number", "1")
    assert c.blind_index("id_number", "1") != c.blind_index("account_no", "1")
    other = PiiCipher(master_keys={"k1": b"a" * 32}, current_key_id="k1", index_key=b"j" * 32)
    assert other.blind_index("id_number", "1") != c.blind_index("id_number", "1")


def test_blob_round_trip() -> None:
    c = cipher()
    blob = c.encrypt_bytes("file", b"PAY data")
    assert b"PAY data" not in blob
    assert c.decrypt_bytes("file", blob) == b"PAY data"


def test_masks() -> None:
    assert mask_id_number("430621199001011234") == "4306**********1234"
    assert mask_account("6217991234567890123") == "6217***********0123"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("阿依古丽·买买提") == "阿*******"


def test_bad_keys_refused() -> None:
    with pytest.raises(PiiKeyError):
        PiiCipher(master_keys={"k1": b"short"}, current_key_id="k1", index_key=b"i" * 32)
    with pytest.raises(PiiKeyError):
        PiiCipher(master_keys={"k1": b"a" * 32}, current_key_id="k2", index_key=b"i" * 32)

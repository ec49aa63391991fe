"""Each bank format, written by one implementation and read by the other: the gateway's
adapters against the mock bank's independent code (a format bug on either side fails here
instead of agreeing with itself)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.api.documents import render_disbursement
from adapters.api.openapi import Sm4Encryption
from adapters.crypto.sm4 import Sm4IntegrityError, sm4_cbc_decrypt
from adapters.formats.fixed_width import FixedWidthGb18030Format
from adapters.formats.iso20022 import Iso20022Format
from adapters.registry import build_bank_api
from gateway.certs import DEV_KEY_FILES as K
from gateway.kit.identity import id_check_char, luhn_check_digit
from gateway.ports import RequestHeader, RequestItem, ResultStatus
from mock_bank import fileformat, iso20022
from mock_bank.api.validation import (
    RequestRejectedError,
    decrypt_body,
    encrypt_body,
    parse_disbursement,
)

NAMES = ["刘䶮", "王𬎆", "李龑", "阿依古丽·买买提", "张三"]
SERIAL = "261128ABCDEFGHJK"


def _items(amounts: list[int]) -> list[RequestItem]:
    out = []
    for i, amount in enumerate(amounts, start=1):
        first17 = f"43062119800101{i:03d}"
        card = f"621799{i:012d}"
        out.append(
            RequestItem(
                seq=i,
                serial=f"{SERIAL}{i:08d}",
                account_no=card + luhn_check_digit(card),
                name=NAMES[i % len(NAMES)],
                id_number=first17 + id_check_char(first17),
                amount_fen=amount,
                remark="耕地地力保护补贴2026",
            )
        )
    return out


def _header(items: list[RequestItem]) -> RequestHeader:
    return RequestHeader(
        batch_serial=SERIAL,
        file_no=1,
        payer_account="43001700062050500001",
        subsidy_code="GDBH",
        subsidy_name="耕地地力保护补贴",
        period="2026",
        item_count=len(items),
        total_fen=sum(i.amount_fen for i in items),
        created_on=dt.date(2026, 11, 28),
        payer_name="岳阳县财政局惠民惠农资金专户",
    )


amounts = st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)
@given(amounts)
def test_fixed_width_request_read_by_the_bank(values: list[int]) -> None:
    items = _items(values)
    data = FixedWidthGb18030Format().render_request(_header(items), items)
    parsed = fileformat.parse_request(data, expected_serial=SERIAL, expected_file_no=1)
    assert [
        (i.item_serial, i.account_no, i.account_name, i.id_number, i.amount_fen)
        for i in parsed.items
    ] == [(i.serial, i.account_no, i.name, i.id_number, i.amount_fen) for i in items]


@settings(max_examples=30, deadline=None)
@given(amounts, st.lists(st.booleans(), min_size=12, max_size=12))
def test_fixed_width_result_read_by_the_gateway(values: list[int], paid: list[bool]) -> None:
    items = _items(values)
    results = [
        fileformat.ResultItem(
            sequence=i.seq,
            item_serial=i.serial,
            account_no=i.account_no,
            amount_fen=i.amount_fen,
            status="S" if ok else "F",
            code="0000" if ok else "E102",
            message="成功" if ok else "户名不符",
            bank_ref=f"MB{i.seq}" if ok else "",
            processed_at=dt.datetime(2026, 11, 28, 10),
        )
        for i, ok in zip(items, paid, strict=False)
    ]
    data = fileformat.render_result(
        batch_serial=SERIAL, file_no=1, items=results, processing_date=dt.date(2026, 11, 28)
    )
    parsed = FixedWidthGb18030Format().parse_result(data)
    assert [
        (r.serial, r.amount_fen, r.status == ResultStatus.PAID, r.bank_code) for r in parsed.items
    ] == [(r.item_serial, r.amount_fen, r.status == "S", r.code) for r in results]


@settings(max_examples=20, deadline=None)
@given(amounts)
def test_iso20022_request_read_by_the_bank(values: list[int]) -> None:
    items = _items(values)
    fmt = Iso20022Format(bank_id="PSBCCNBJ")
    data = fmt.render_request(_header(items), items)
    parsed = iso20022.parse_pain001(data, expected_msg_id=iso20022.message_id(SERIAL, 1))
    assert parsed.ctrl_sum_fen == sum(values)
    assert [
        (t.end_to_end_id, t.account_no, t.creditor_name, t.creditor_id, t.amount_fen, t.period)
        for t in parsed.transactions
    ] == [(i.serial, i.account_no, i.name, i.id_number, i.amount_fen, "2026") for i in items]


def test_iso20022_answers_read_by_the_gateway() -> None:
    items = _items([100, 250, 1_000_000])
    fmt = Iso20022Format(bank_id="PSBCCNBJ")
    pain001 = iso20022.parse_pain001(
        fmt.render_request(_header(items), items), expected_msg_id=iso20022.message_id(SERIAL, 1)
    )
    at = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    statuses = [
        iso20022.TransactionStatus(
            instr_id=t.instr_id,
            end_to_end_id=t.end_to_end_id,
            status="ACSC" if t.instr_id != 2 else "RJCT",
            reason=None if t.instr_id != 2 else "AC04",
            accepted_at=at,
            bank_ref=f"REF{t.instr_id}" if t.instr_id != 2 else None,
            amount_fen=t.amount_fen,
            account_no=t.account_no,
        )
        for t in pain001.transactions
    ]
    report = iso20022.render_status_report(
        msg_id="P002TEST", created=at, request=pain001, statuses=statuses
    )
    result = fmt.parse_result(report)
    assert [(r.serial, r.status, r.bank_code) for r in result.items] == [
        (items[0].serial, ResultStatus.PAID, "ACSC"),
        (items[1].serial, ResultStatus.FAILED, "AC04"),
        (items[2].serial, ResultStatus.PAID, "ACSC"),
    ]


def test_api_submission_read_by_the_bank(dev_keys: Path) -> None:
    items = _items([35_001, 35_002])
    api = build_bank_api(
        {
            "base_url": "https://127.0.0.1:9",
            "client_id": "subsidy-gateway",
            "client_cert": str(dev_keys / K.api_client_cert),
            "client_key": str(dev_keys / K.api_client_key),
            "server_ca": str(dev_keys / K.ca_cert),
            "encrypt": "SM4-CBC",
            "sm4_key_id": "k2026",
            "sm4_key_file": str(dev_keys / K.sm4_key),
            "crypto": {
                "crypto": "sm2-sm3",
                "own_key": str(dev_keys / K.gateway_sm2_key),
                "own_key_id": "gateway-dev",
                "peer_public_key": str(dev_keys / K.bank_sm2_pub),
            },
        }
    )
    body = api.render_submission(_header(items), items)
    key = bytes.fromhex((dev_keys / K.sm4_key).read_text().strip())
    plain, key_id = decrypt_body(body, {"k2026": key})
    assert key_id == "k2026"
    parsed = parse_disbursement(plain, request_id=api.request_id(SERIAL, 1))
    assert parsed.total_fen == 70_003
    assert [(i.serial, i.name, i.account_no) for i in parsed.items] == [
        (i.serial, i.name, i.account_no) for i in items
    ]


SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def _plain() -> bytes:
    items = _items([35_001, 35_002])
    return render_disbursement(_header(items), items, payer_name=None, max_items=50_000)


def _rejected_by_bank(body: bytes) -> str:
    """The code the bank answers for an encrypted body: its envelope checks, then (when they
    pass) its reading of the plaintext as a request."""
    try:
        plain, _key_id = decrypt_body(body, {"k2026": SM4_KEY})
        parse_disbursement(plain, request_id=f"{SERIAL}01")
    except RequestRejectedError as exc:
        return exc.code
    return ""


def _padding_passes_under_ours(body: bytes) -> bool:
    inner = json.loads(body)["encrypted"]
    try:
        sm4_cbc_decrypt(SM4_KEY, base64.b64decode(inner["iv"]), base64.b64decode(inner["data"]))
    except ValueError:
        return False
    return True


def test_bank_envelope_read_by_the_gateway(rng: random.Random) -> None:
    """The other direction: the mock bank's envelope (its own code) opens with the gateway's."""
    plain = _plain()
    body = encrypt_body(plain, "k2026", SM4_KEY, rng.randbytes(16))
    assert Sm4Encryption("k2026", SM4_KEY).open(body) == plain
    # and both write the same bytes' meaning for the same IV
    iv = rng.randbytes(16)
    assert json.loads(encrypt_body(plain, "k2026", SM4_KEY, iv)) == json.loads(
        Sm4Encryption("k2026", SM4_KEY).seal(plain, iv=iv)
    )


def test_a_wrong_key_is_refused_by_either_side_with_certainty(rng: random.Random) -> None:
    """A sender with another key under our key id: the bank answers DECRYPTION_FAILED and
    the gateway refuses with Sm4IntegrityError, for every wrong key drawn, including those
    whose garbage passes the padding check (the once-in-255 case that was misread as
    INVALID_REQUEST)."""
    plain = _plain()
    ours = Sm4Encryption("k2026", SM4_KEY)
    lucky = 0
    for tried in range(1, 100_000):
        if lucky >= 2 and tried > 300:
            break
        key = rng.randbytes(16)
        if key == SM4_KEY:
            continue
        gateway_body = Sm4Encryption("k2026", key).seal(plain, iv=rng.randbytes(16))
        bank_body = encrypt_body(plain, "k2026", key, rng.randbytes(16))
        lucky += _padding_passes_under_ours(gateway_body)
        assert _rejected_by_bank(gateway_body) == "DECRYPTION_FAILED", key.hex()
        with pytest.raises(Sm4IntegrityError):
            ours.open(bank_body)
    assert lucky >= 2, "no wrong key with valid padding found"


def test_tampered_or_unreadable_envelopes_across_implementations(rng: random.Random) -> None:
    plain = _plain()
    ours = Sm4Encryption("k2026", SM4_KEY)
    body = ours.seal(plain, iv=rng.randbytes(16))
    assert _rejected_by_bank(body) == ""
    inner = json.loads(body)["encrypted"]
    for name in ("mac", "data", "iv"):
        raw = bytearray(base64.b64decode(inner[name]))
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        tampered = json.dumps({"encrypted": {**inner, name: base64.b64encode(raw).decode()}})
        assert _rejected_by_bank(tampered.encode()) == "DECRYPTION_FAILED", name
    # right key, valid MAC, a plaintext that is no request: read, and refused as such
    for unreadable in (b"not json", rng.randbytes(64), b'{"batch_serial": 1}'):
        assert _rejected_by_bank(ours.seal(unreadable, iv=rng.randbytes(16))) == ("INVALID_REQUEST")
        bank_sealed = encrypt_body(unreadable, "k2026", SM4_KEY, rng.randbytes(16))
        assert ours.open(bank_sealed) == unreadable

"""``OpenApiBank.movements`` (openapi-v1 account movements, issue 12) against the adapter
tests' scripted HTTPS bank: the request signed over its path and query, a signed 200 parsed
strictly, and every other answer a clean ``InquiryFailedError`` (a read: ask again later)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from adapters.api.errors import InquiryFailedError
from adapters.api.openapi import MAX_MOVEMENTS_RESPONSE_BYTES, OpenApiBank
from gateway.ports import FormatError, SignatureError
from tests.adapters.api.bank_server import Received, Reply, TestBankServer

StartBank = Callable[..., TestBankServer]
MakeApi = Callable[..., OpenApiBank]
ACCOUNT = "43001700062050500001"
DAY = dt.date(2026, 11, 28)
SERIAL = "26112896XZZYYPH7"


def doc(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "account": ACCOUNT,
        "date": DAY.isoformat(),
        "entries": [
            {
                "entry_id": "MV2026112800000001",
                "booked_at": "2026-11-28T10:00:00+08:00",
                "direction": "debit",
                "amount_fen": 35001,
                "bank_ref": "MB20261128000000001",
                "batch_serial": SERIAL,
                "file_no": 1,
                "item_serial": f"{SERIAL}00000001",
                "reason_code": "",
            }
        ],
        "next_cursor": "M1",
        "has_more": True,
    }
    d.update(over)
    return d


def always(reply: Reply) -> Callable[[Received], Reply]:
    return lambda _received: reply


def test_a_page_signed_over_path_and_query(start_bank: StartBank, make_api: MakeApi) -> None:
    body = json.dumps(doc()).encode()
    bank = start_bank(always(Reply(200, body)))
    api = make_api(bank.base_url)
    page = api.movements(ACCOUNT, DAY, "M0")
    assert page.raw == body and page.has_more and page.next_cursor == "M1"
    [e] = page.entries
    assert (e.entry_id, e.direction, e.amount_fen, e.batch_serial) == (
        "MV2026112800000001",
        "debit",
        35001,
        SERIAL,
    )
    [seen] = bank.requests
    assert seen.method == "GET" and seen.body == b""
    assert seen.path == f"/openapi/v1/accounts/{ACCOUNT}/movements?date=2026-11-28&cursor=M0"
    assert seen.signature_ok, seen.signature_error
    assert {k.lower(): v for k, v in seen.headers.items()}["x-request-id"] == "MV20261128"


def test_a_broken_page_is_a_format_error(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(Reply(200, json.dumps(doc(account="1")).encode())))
    with pytest.raises(FormatError):
        make_api(bank.base_url).movements(ACCOUNT, DAY)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(200, json.dumps(doc()).encode(), signed=False), id="unsigned"),
        pytest.param(Reply(200, json.dumps(doc()).encode(), sign_body=b"{}"), id="tampered"),
    ],
)
def test_an_unverified_answer_is_a_failed_read(
    reply: Reply, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(reply))
    with pytest.raises(InquiryFailedError) as info:
        make_api(bank.base_url).movements(ACCOUNT, DAY)
    assert isinstance(info.value.__cause__, SignatureError)


def test_errors_and_an_oversized_answer_are_failed_reads(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    unknown = start_bank(always(Reply(404, b'{"code":"ACCOUNT_UNKNOWN"}')))
    with pytest.raises(InquiryFailedError) as info:
        make_api(unknown.base_url).movements(ACCOUNT, DAY)
    assert (info.value.status, info.value.code) == (404, "ACCOUNT_UNKNOWN")
    huge = b" " * (MAX_MOVEMENTS_RESPONSE_BYTES + 1) + json.dumps(doc()).encode()
    big = start_bank(always(Reply(200, huge)))
    with pytest.raises(InquiryFailedError, match=r"too large|larger"):
        make_api(big.base_url).movements(ACCOUNT, DAY)


def test_account_and_cursor_are_checked_before_sending(make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9")
    with pytest.raises(ValueError, match="account"):
        api.movements("../disbursements", DAY)
    with pytest.raises(ValueError, match="cursor"):
        api.movements(ACCOUNT, DAY, "a&date=2001-01-01")

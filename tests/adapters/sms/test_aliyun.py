"""The Aliyun-style adapter against a scripted server: the request it writes (signature
recomputed here from the spec), and how every kind of answer is classified."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import time
from urllib.parse import parse_qsl, quote

import pytest

from adapters.sms.aliyun import AliyunStyleSms
from adapters.sms.common import sign_receipt
from gateway.ports import (
    FormatError,
    NeverSentError,
    OutcomeUnknownError,
    SignatureError,
    SmsMessage,
    SmsRejectedError,
    SmsStatus,
    TransportError,
)
from tests.adapters.sms.fake_provider import FakeProvider, Reply

SECRET = "aliyun-test-secret"
PHONE = "13800138000"


def message(**changes: object) -> SmsMessage:
    fields: dict[str, object] = {
        "out_id": "n-000123-paid",
        "phone": PHONE,
        "sign_name": "岳阳县财政局",
        "template_id": "SMS_460001",
        "params": {"item": "耕地地力保护补贴", "amount": "1,234.50"},
    }
    fields.update(changes)
    return SmsMessage(**fields)  # type: ignore[arg-type]


def provider(url: str, **kwargs: object) -> AliyunStyleSms:
    return AliyunStyleSms(
        base_url=url,
        access_key_id="ak-test",
        access_key_secret=SECRET,
        read_timeout=kwargs.pop("read_timeout", 2.0),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def ok(biz_id: str = "900619746936498440^0") -> Reply:
    return Reply.json({"RequestId": "r", "Code": "OK", "Message": "OK", "BizId": biz_id})


def spec_signature(params: dict[str, str]) -> str:
    """docs/formats/sms-v1.md, written again from the text."""

    def enc(s: str) -> str:
        return quote(s, safe="~")  # quote keeps A-Za-z0-9_.- and we add ~

    canonical = "&".join(f"{enc(k)}={enc(params[k])}" for k in sorted(params) if k != "Signature")
    to_sign = "POST&%2F&" + enc(canonical)
    mac = hmac.new((SECRET + "&").encode(), to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def test_send_writes_a_signed_form_and_returns_the_biz_id(fake: FakeProvider) -> None:
    fake.replies.append(ok())
    sms = provider(fake.url)
    before = time.time()
    result = sms.send(message())
    after = time.time()
    sms.close()
    assert result.provider_ref == "900619746936498440^0"
    assert result.out_id == "n-000123-paid" and result.accepted
    seen = fake.requests[0]
    assert seen.path == "/sms/"
    assert seen.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    params = dict(parse_qsl(seen.body.decode(), keep_blank_values=True))
    assert params["Action"] == "SendSms" and params["Version"] == "2017-05-25"
    assert params["PhoneNumbers"] == PHONE
    assert params["SignName"] == "岳阳县财政局"
    assert params["OutId"] == "n-000123-paid"
    assert json.loads(params["TemplateParam"]) == {"item": "耕地地力保护补贴", "amount": "1,234.50"}
    assert params["SignatureMethod"] == "HMAC-SHA256"
    assert params["Signature"] == spec_signature(params)
    stamp = dt.datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert int(before) <= stamp.timestamp() <= after  # signed at the time of sending


def test_every_attempt_has_a_fresh_nonce_and_the_same_out_id(fake: FakeProvider) -> None:
    fake.replies.extend([ok("1^0"), ok("2^0")])
    sms = provider(fake.url)
    sms.send(message())
    sms.send(message())
    sms.close()
    first, second = (dict(parse_qsl(r.body.decode())) for r in fake.requests)
    assert first["SignatureNonce"] != second["SignatureNonce"]
    assert first["OutId"] == second["OutId"]


@pytest.mark.parametrize(
    ("code", "scope"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", "recipient"),
        ("isv.BLACKLIST", "recipient"),
        ("isv.SMS_TEMPLATE_ILLEGAL", "configuration"),
        ("isv.SMS_SIGNATURE_ILLEGAL", "configuration"),
        ("isv.TEMPLATE_MISSING_PARAMETERS", "configuration"),
        ("isv.AMOUNT_NOT_ENOUGH", "configuration"),
    ],
)
def test_permanent_codes_are_rejections(fake: FakeProvider, code: str, scope: str) -> None:
    fake.replies.append(Reply.json({"RequestId": "r", "Code": code, "Message": "x"}))
    sms = provider(fake.url)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(message())
    sms.close()
    assert info.value.code == code and info.value.scope == scope


def test_auth_refusals_are_configuration_rejections(fake: FakeProvider) -> None:
    fake.replies.append(Reply.json({"Code": "SignatureDoesNotMatch", "Message": "x"}, 400))
    fake.replies.append(Reply.json({"Code": "InvalidAccessKeyId.NotFound", "Message": "x"}, 404))
    sms = provider(fake.url)
    for code in ("SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound"):
        with pytest.raises(SmsRejectedError) as info:
            sms.send(message())
        assert (info.value.code, info.value.scope) == (code, "configuration")
    sms.close()


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply.json({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "x"}), 60.0),
        (Reply.json({"Code": "isv.BUSINESS_LIMIT_CONTROL"}, **{"Retry-After": "7"}), 7.0),
        (Reply.json({"Code": "Throttling.User"}, 400), 1.0),
        (Reply.json({"Code": "ServiceUnavailable"}, 503), 5.0),
        (Reply(429, b"slow down", {"Retry-After": "3"}), 3.0),
    ],
)
def test_throttling_and_busy_are_technical(
    fake: FakeProvider, reply: Reply, retry_after: float
) -> None:
    fake.replies.append(reply)
    sms = provider(fake.url)
    with pytest.raises(TransportError) as info:
        sms.send(message())
    sms.close()
    assert type(info.value) is TransportError  # neither never-sent nor unknown
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize(
    "reply",
    [
        Reply.json({"Code": "isp.SYSTEM_ERROR", "Message": "系统错误"}),
        Reply.json({"Code": "isv.SOMETHING_NEW", "Message": "?"}),
        Reply(502, b"<html>bad gateway</html>"),
        Reply(200, b"not json"),
        Reply.json({"Code": "OK", "Message": "OK"}),  # no BizId
        Reply.json(["OK"]),
    ],
)
def test_answers_that_prove_nothing_are_unknown_outcomes(fake: FakeProvider, reply: Reply) -> None:
    fake.replies.append(reply)
    sms = provider(fake.url)
    with pytest.raises(OutcomeUnknownError):
        sms.send(message())
    sms.close()


def test_a_4xx_without_a_code_is_a_configuration_rejection(fake: FakeProvider) -> None:
    fake.replies.append(Reply(404, b"not found"))
    sms = provider(fake.url)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(message())
    sms.close()
    assert (info.value.code, info.value.scope) == ("HTTP_404", "configuration")


def test_connection_refused_is_never_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sms = provider(f"http://127.0.0.1:{port}/", connect_timeout=1.0)
    with pytest.raises(NeverSentError):
        sms.send(message())
    sms.close()


def test_read_timeout_after_sending_is_an_unknown_outcome(fake: FakeProvider) -> None:
    fake.replies.append(Reply(200, b"{}", delay=1.0))
    sms = provider(fake.url, read_timeout=0.2)
    with pytest.raises(OutcomeUnknownError):
        sms.send(message())
    sms.close()
    assert len(fake.requests) == 1  # it did arrive


def test_connection_reset_after_sending_is_an_unknown_outcome(fake: FakeProvider) -> None:
    fake.replies.append(Reply(reset=True))
    sms = provider(fake.url)
    with pytest.raises(OutcomeUnknownError):
        sms.send(message())
    sms.close()


@pytest.mark.parametrize("phone", ["1380013800", "23800138000", "+8613800138000", "138-0013-8000"])
def test_malformed_numbers_are_refused_locally_and_never_logged(
    fake: FakeProvider, phone: str
) -> None:
    sms = provider(fake.url)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(message(phone=phone))
    sms.close()
    assert info.value.code == "LOCAL.INVALID_NUMBER" and info.value.scope == "recipient"
    assert phone not in str(info.value)
    assert fake.requests == []


def test_query_maps_send_status_and_filters_by_out_id(fake: FakeProvider) -> None:
    dtos = [
        {"PhoneNum": "138****8000", "SendStatus": 1, "ErrCode": "", "ReceiveDate": "",
         "OutId": "n-000123-paid", "BizId": "1^0"},
        {"PhoneNum": "138****8000", "SendStatus": 3, "ErrCode": "DELIVERED",
         "ReceiveDate": "2024-03-01 10:00:03", "OutId": "n-000123-paid", "BizId": "2^0"},
        {"PhoneNum": "138****8000", "SendStatus": 2, "ErrCode": "MN:0001",
         "ReceiveDate": "2024-03-01 10:00:04", "OutId": "n-000123-paid", "BizId": "3^0"},
        {"PhoneNum": "138****8000", "SendStatus": 3, "ErrCode": "DELIVERED",
         "ReceiveDate": "2024-03-01 10:00:05", "OutId": "someone-else", "BizId": "4^0"},
    ]  # fmt: skip
    fake.replies.append(
        Reply.json({"Code": "OK", "TotalCount": 4, "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}})
    )
    sms = provider(fake.url)
    receipts = sms.query("n-000123-paid", dt.date(2024, 3, 1), phone=PHONE)
    sms.close()
    assert [r.status for r in receipts] == [
        SmsStatus.PENDING,
        SmsStatus.DELIVERED,
        SmsStatus.FAILED,
    ]
    assert [r.provider_ref for r in receipts] == ["1^0", "2^0", "3^0"]
    assert receipts[1].delivered and receipts[1].final and not receipts[0].final
    assert receipts[1].at == dt.datetime(2024, 3, 1, 2, 0, 3, tzinfo=dt.UTC)
    assert receipts[2].code == "MN:0001"
    params = dict(parse_qsl(fake.requests[0].body.decode()))
    assert params["Action"] == "QuerySendDetails"
    assert params["SendDate"] == "20240301" and params["PhoneNumber"] == PHONE
    assert params["OutId"] == "n-000123-paid"


def test_query_pages_until_the_total(fake: FakeProvider) -> None:
    def page(n: int, start: int) -> Reply:
        dtos = [
            {"PhoneNum": "138****8000", "SendStatus": 3, "OutId": "o", "BizId": f"{i}^0"}
            for i in range(start, start + n)
        ]
        return Reply.json(
            {"Code": "OK", "TotalCount": 60, "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}}
        )

    fake.replies.extend([page(50, 0), page(10, 50)])
    sms = provider(fake.url)
    receipts = sms.query("o", dt.date(2024, 3, 1), phone=PHONE)
    sms.close()
    assert len(receipts) == 60
    pages = [dict(parse_qsl(r.body.decode()))["CurrentPage"] for r in fake.requests]
    assert pages == ["1", "2"]


def test_query_of_a_message_never_taken_is_empty(fake: FakeProvider) -> None:
    fake.replies.append(Reply.json({"Code": "OK", "TotalCount": 0, "SmsSendDetailDTOs": {}}))
    sms = provider(fake.url)
    assert sms.query("o", dt.date(2024, 3, 1), phone=PHONE) == []
    sms.close()


# --- receipts -----------------------------------------------------------------------------

REPORT = [
    {
        "phone_number": "13800138000",  # even a full number is masked on the way in
        "send_time": "2024-03-01 10:00:00",
        "report_time": "2024-03-01 10:00:03",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": "900619746936498440^0",
        "out_id": "n-000123-paid",
    }
]


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    nonce = "n" * 20
    return {
        "X-Sms-Timestamp": stamp,
        "X-Sms-Nonce": nonce,
        "X-Sms-Signature": sign_receipt(secret, "aliyun-style", stamp, nonce, body),
    }


def test_a_signed_receipt_parses() -> None:
    body = json.dumps(REPORT).encode()
    sms = provider("http://127.0.0.1:9/")
    [receipt] = sms.parse_receipts(signed(body), body)
    sms.close()
    assert receipt.out_id == "n-000123-paid"
    assert receipt.provider_ref == "900619746936498440^0"
    assert receipt.status is SmsStatus.DELIVERED and receipt.code == "DELIVERED"
    assert receipt.phone_masked == "138****8000"
    assert receipt.at == dt.datetime(2024, 3, 1, 2, 0, 3, tzinfo=dt.UTC)


def test_headers_are_case_insensitive() -> None:
    body = json.dumps(REPORT).encode()
    sms = provider("http://127.0.0.1:9/")
    headers = {k.lower(): v for k, v in signed(body).items()}
    assert len(sms.parse_receipts(headers, body)) == 1
    sms.close()


@pytest.mark.parametrize("case", ["wrong key", "tampered", "missing", "old", "future", "nonce"])
def test_forged_or_stale_receipts_are_refused(case: str) -> None:
    body = json.dumps(REPORT).encode()
    headers = signed(body)
    if case == "wrong key":
        headers = signed(body, secret="not-the-secret")
    elif case == "tampered":
        body = body.replace(b"true", b"false")
    elif case == "missing":
        del headers["X-Sms-Signature"]
    elif case == "old":
        headers = signed(body, at=time.time() - 360)  # clear of the 300 s window
    elif case == "future":
        headers = signed(body, at=time.time() + 360)  # (a slow machine must not slip inside)
    else:
        headers["X-Sms-Nonce"] = "short"
    sms = provider("http://127.0.0.1:9/")
    with pytest.raises(SignatureError):
        sms.parse_receipts(headers, body)
    sms.close()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"success": true}',
        json.dumps([{**REPORT[0], "success": "yes"}]).encode(),
        json.dumps([{**REPORT[0], "biz_id": ""}]).encode(),
        json.dumps([{**REPORT[0], "report_time": "01/03/2024"}]).encode(),
    ],
)
def test_malformed_receipts_are_format_errors(body: bytes) -> None:
    sms = provider("http://127.0.0.1:9/")
    with pytest.raises(FormatError):
        sms.parse_receipts(signed(body), body)
    sms.close()


def test_a_malformed_query_answer_is_an_unknown_outcome(fake: FakeProvider) -> None:
    fake.replies.append(Reply.json({"Code": "OK", "SmsSendDetailDTOs": {"SmsSendDetailDTO": [
        {"PhoneNum": "138****8000", "SendStatus": 9, "OutId": "o"}]}}))  # fmt: skip
    sms = provider(fake.url)
    with pytest.raises(OutcomeUnknownError):
        sms.query("o", dt.date(2024, 3, 1), phone=PHONE)
    sms.close()


def test_a_number_echoed_in_a_provider_message_is_masked(fake: FakeProvider) -> None:
    fake.replies.append(
        Reply.json({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": f"bad number +86{PHONE}"})
    )
    sms = provider(fake.url)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(message())
    sms.close()
    assert PHONE not in str(info.value) and "138****8000" in str(info.value)

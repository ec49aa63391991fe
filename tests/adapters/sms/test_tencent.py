"""The Tencent-style adapter against a scripted server."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import pytest

from adapters.sms.common import sign_receipt
from adapters.sms.tencent import TencentStyleSms
from gateway.ports import (
    FormatError,
    OutcomeUnknownError,
    SignatureError,
    SmsMessage,
    SmsRejectedError,
    SmsStatus,
    TransportError,
)
from tests.adapters.sms.fake_provider import FakeProvider, Reply

SECRET = "tencent-test-secret"
PHONE = "13800138000"
APP = "1400000001"


def message() -> SmsMessage:
    return SmsMessage(
        out_id="n-000123-paid",
        phone=PHONE,
        sign_name="岳阳县财政局",
        template_id="1860001",
        params={"item": "耕地地力保护补贴", "amount": "1,234.50", "date": "3月1日"},
    )


def provider(url: str, **kwargs: float) -> TencentStyleSms:
    return TencentStyleSms(
        base_url=url,
        secret_id="sid-test",
        secret_key=SECRET,
        sdk_app_id=APP,
        read_timeout=kwargs.get("read_timeout", 2.0),
    )


def status(code: str = "Ok", serial: str = "2645:0001") -> dict[str, object]:
    return {
        "SerialNo": serial if code == "Ok" else "",
        "PhoneNumber": "+86138****8000",
        "Fee": 1,
        "SessionContext": "n-000123-paid",
        "Code": code,
        "Message": "m",
        "IsoCode": "CN",
    }


def answer(inner: dict[str, object], **headers: str) -> Reply:
    return Reply.json({"Response": {**inner, "RequestId": "r"}}, **headers)


def test_send_writes_signed_json_and_returns_the_serial(fake: FakeProvider) -> None:
    fake.replies.append(answer({"SendStatusSet": [status()]}))
    sms = provider(fake.url)
    before = time.time()
    result = sms.send(message())
    after = time.time()
    sms.close()
    assert result.provider_ref == "2645:0001"
    seen = fake.requests[0]
    body = json.loads(seen.body)
    assert body == {
        "PhoneNumberSet": ["+8613800138000"],
        "SmsSdkAppId": APP,
        "SignName": "岳阳县财政局",
        "TemplateId": "1860001",
        "TemplateParamSet": ["耕地地力保护补贴", "1,234.50", "3月1日"],  # the mapping's order
        "SessionContext": "n-000123-paid",
    }
    assert seen.headers["X-TC-Action"] == "SendSms"
    assert seen.headers["X-TC-Version"] == "2021-01-11"
    stamp, nonce = seen.headers["X-TC-Timestamp"], seen.headers["X-TC-Nonce"]
    assert int(before) <= int(stamp) <= after  # signed at the time of sending
    to_sign = "\n".join(
        ["HMAC-SHA256-LITE", "SendSms", stamp, nonce, hashlib.sha256(seen.body).hexdigest()]
    )
    expected = hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    assert seen.headers["Authorization"] == (
        f"HMAC-SHA256-LITE Credential=sid-test, Signature={expected}"
    )


@pytest.mark.parametrize(
    ("code", "scope"),
    [
        ("InvalidParameterValue.IncorrectPhoneNumber", "recipient"),
        ("FailedOperation.PhoneNumberInBlacklist", "recipient"),
        ("FailedOperation.TemplateIncorrectOrUnapproved", "configuration"),
    ],
)
def test_per_number_refusals(fake: FakeProvider, code: str, scope: str) -> None:
    fake.replies.append(answer({"SendStatusSet": [status(code)]}))
    sms = provider(fake.url)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(message())
    sms.close()
    assert (info.value.code, info.value.scope) == (code, scope)


@pytest.mark.parametrize(
    ("code", "kind", "retry_after"),
    [
        ("FailedOperation.SignatureIncorrectOrUnapproved", "configuration", None),
        ("AuthFailure.SignatureFailure", "configuration", None),
        ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "configuration", None),
        ("RequestLimitExceeded", "technical", 1.0),
        ("LimitExceeded.PhoneNumberThirtySecondLimit", "technical", 30.0),
        ("ServiceUnavailable", "technical", 5.0),
        ("AuthFailure.SignatureExpire", "technical", 5.0),
        ("InternalError.Timeout", "unknown", None),
        ("InternalError", "unknown", None),
        ("SomethingNew.NeverSeen", "unknown", None),
    ],
)
def test_request_errors_are_classified(
    fake: FakeProvider, code: str, kind: str, retry_after: float | None
) -> None:
    fake.replies.append(answer({"Error": {"Code": code, "Message": "m"}}))
    sms = provider(fake.url)
    with pytest.raises((SmsRejectedError, TransportError)) as info:
        sms.send(message())
    sms.close()
    error = info.value
    if kind == "configuration":
        assert isinstance(error, SmsRejectedError) and error.scope == "configuration"
    elif kind == "technical":
        assert type(error) is TransportError and error.retry_after == retry_after
    else:
        assert isinstance(error, OutcomeUnknownError)


def test_retry_after_header_wins(fake: FakeProvider) -> None:
    fake.replies.append(answer({"Error": {"Code": "RequestLimitExceeded"}}, **{"Retry-After": "9"}))
    sms = provider(fake.url)
    with pytest.raises(TransportError) as info:
        sms.send(message())
    sms.close()
    assert info.value.retry_after == 9.0


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"{}"),
        Reply.json({"Response": {"SendStatusSet": []}}),
        Reply.json({"Response": {"SendStatusSet": [status("Ok", serial="")]}}),
        Reply(500, b"oops"),
        Reply(200, b"", delay=1.0),
        Reply(reset=True),
    ],
)
def test_ambiguous_answers_are_unknown(fake: FakeProvider, reply: Reply) -> None:
    fake.replies.append(reply)
    sms = provider(fake.url, read_timeout=0.3)
    with pytest.raises(OutcomeUnknownError):
        sms.send(message())
    sms.close()


def test_query_pulls_by_number_and_day(fake: FakeProvider) -> None:
    def entry(report: str, serial: str, session: str = "n-000123-paid") -> dict[str, object]:
        return {
            "UserReceiveTime": None if report == "PENDING" else "2024-03-01 10:00:03",
            "CountryCode": "86",
            "SubscriberNumber": "138****8000",
            "PhoneNumber": "+86138****8000",
            "SerialNo": serial,
            "ReportStatus": report,
            "ErrMsg": "" if report == "PENDING" else "DELIVRD",
            "Description": "",
            "SessionContext": session,
        }

    fake.replies.append(
        answer(
            {
                "PullSmsSendStatusSet": [
                    entry("PENDING", "a"),
                    entry("SUCCESS", "b"),
                    entry("FAIL", "c"),
                    entry("SUCCESS", "d", session="other"),
                ]
            }
        )
    )
    sms = provider(fake.url)
    receipts = sms.query("n-000123-paid", dt.date(2024, 3, 1), phone=PHONE)
    sms.close()
    assert [(r.provider_ref, r.status) for r in receipts] == [
        ("a", SmsStatus.PENDING),
        ("b", SmsStatus.DELIVERED),
        ("c", SmsStatus.FAILED),
    ]
    assert receipts[1].phone_masked == "138****8000"
    sent = json.loads(fake.requests[0].body)
    assert fake.requests[0].headers["X-TC-Action"] == "PullSmsSendStatusByPhoneNumber"
    day = dt.datetime(2024, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    assert (sent["BeginTime"], sent["EndTime"]) == (int(day), int(day) + 86_399)
    assert sent["PhoneNumber"] == "+8613800138000" and sent["SessionContext"] == "n-000123-paid"


CALLBACK = [
    {
        "user_receive_time": "2024-03-01 10:00:03",
        "nationcode": "86",
        "mobile": "138****8000",
        "report_status": "FAIL",
        "errmsg": "UNDELIV",
        "description": "用户短信未送达",
        "sid": "2645:0001",
        "session_context": "n-000123-paid",
    }
]


def signed(
    body: bytes, secret: str = SECRET, provider_name: str = "tencent-style"
) -> dict[str, str]:
    stamp, nonce = str(int(time.time())), "abcdefghijklmnop"
    signature = sign_receipt(secret, provider_name, stamp, nonce, body)
    return {"X-Sms-Timestamp": stamp, "X-Sms-Nonce": nonce, "X-Sms-Signature": signature}


def test_a_signed_callback_parses() -> None:
    body = json.dumps(CALLBACK, ensure_ascii=False).encode()
    sms = provider("http://127.0.0.1:9/")
    [receipt] = sms.parse_receipts(signed(body), body)
    sms.close()
    assert receipt.status is SmsStatus.FAILED and receipt.code == "UNDELIV"
    assert (receipt.out_id, receipt.provider_ref) == ("n-000123-paid", "2645:0001")


def test_a_receipt_signed_for_the_other_provider_is_refused() -> None:
    body = json.dumps(CALLBACK).encode()
    sms = provider("http://127.0.0.1:9/")
    with pytest.raises(SignatureError):
        sms.parse_receipts(signed(body, provider_name="aliyun-style"), body)
    with pytest.raises(SignatureError):
        sms.parse_receipts(signed(body, secret="other"), body)
    sms.close()


def test_a_pending_status_in_a_callback_is_malformed() -> None:
    body = json.dumps([{**CALLBACK[0], "report_status": "PENDING"}]).encode()
    sms = provider("http://127.0.0.1:9/")
    with pytest.raises(FormatError):
        sms.parse_receipts(signed(body), body)
    sms.close()


def test_a_malformed_pull_answer_is_an_unknown_outcome(fake: FakeProvider) -> None:
    fake.replies.append(answer({"PullSmsSendStatusSet": {"not": "a list"}}))
    sms = provider(fake.url)
    with pytest.raises(OutcomeUnknownError):
        sms.query("o", dt.date(2024, 3, 1), phone=PHONE)
    sms.close()

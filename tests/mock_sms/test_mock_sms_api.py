"""Both provider APIs of the mock SMS centre, spoken by raw clients written from the spec."""

from __future__ import annotations

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import pytest

from tests.mock_sms.clients import aliyun, aliyun_send, tencent, tencent_send
from tests.mock_sms.conftest import CentreFactory, ManualClock

PHONE = "13800138000"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def today() -> str:
    return dt.datetime.now(SHANGHAI).strftime("%Y%m%d")


# --- Aliyun-style ---------------------------------------------------------------------------


def test_aliyun_send_query_and_record(make_centre: CentreFactory) -> None:
    clock = ManualClock()  # the report is pending until the test moves the clock past it
    centre = make_centre(receipt_delay_seconds=0.5, clock=clock)
    url = centre.base_url("aliyun-style")
    answer = aliyun_send(url, PHONE, "n-1-paid")
    assert answer.status_code == 200
    data = answer.json()
    assert data["Code"] == "OK" and data["BizId"].endswith("^0")

    query = {"PhoneNumber": PHONE, "SendDate": today(), "PageSize": "10", "CurrentPage": "1"}
    pending = aliyun(url, "QuerySendDetails", {**query, "OutId": "n-1-paid"}).json()
    [dto] = pending["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert pending["TotalCount"] == 1
    assert dto["SendStatus"] == 1 and dto["ReceiveDate"] == "" and dto["ErrCode"] == ""
    assert dto["BizId"] == data["BizId"] and dto["OutId"] == "n-1-paid"
    assert dto["PhoneNum"] == "138****8000"
    clock.advance(0.6)
    [dto] = aliyun(url, "QuerySendDetails", query).json()["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert dto["SendStatus"] == 3 and dto["ErrCode"] == "DELIVERED" and dto["ReceiveDate"]

    other = aliyun(url, "QuerySendDetails", {**query, "OutId": "never-sent"}).json()
    assert other["TotalCount"] == 0 and other["SmsSendDetailDTOs"]["SmsSendDetailDTO"] == []
    elsewhere = aliyun(url, "QuerySendDetails", {**query, "PhoneNumber": "13900139000"}).json()
    assert elsewhere["TotalCount"] == 0

    [record] = centre.messages()
    assert record.provider == "aliyun-style" and record.out_id == "n-1-paid"
    assert record.phone_masked == "138****8000" and PHONE not in record.phone_hash
    assert record.template == "SMS_460001"
    assert json.loads(record.params) == {"amount": "1,234.50", "item": "耕地地力保护补贴"}
    assert centre.summary() == {"sent": 1, "failed": 0, "duplicates": 0}


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"secret": "wrong"}, 400, "SignatureDoesNotMatch"),
        ({"tamper": True}, 400, "SignatureDoesNotMatch"),
        ({"key_id": "who"}, 404, "InvalidAccessKeyId.NotFound"),
        ({"timestamp": time.time() - 1000}, 400, "InvalidTimeStamp.Expired"),
    ],
)
def test_aliyun_refuses_bad_authentication(
    make_centre: CentreFactory, kwargs: dict[str, object], status: int, code: str
) -> None:
    centre = make_centre()
    answer = aliyun_send(centre.base_url("aliyun-style"), PHONE, "n-1", **kwargs)
    assert (answer.status_code, answer.json()["Code"]) == (status, code)
    assert centre.messages() == [] and centre.refusals() == []


def test_aliyun_refuses_a_replayed_nonce(make_centre: CentreFactory) -> None:
    centre = make_centre()
    url = centre.base_url("aliyun-style")
    nonce = "n" * 24
    assert aliyun_send(url, PHONE, "a", nonce=nonce).json()["Code"] == "OK"
    assert aliyun_send(url, PHONE, "b", nonce=nonce).json()["Code"] == "SignatureNonceUsed"
    assert len(centre.messages()) == 1


def test_aliyun_missing_parameter(make_centre: CentreFactory) -> None:
    centre = make_centre()
    answer = aliyun(centre.base_url("aliyun-style"), "SendSms", {"PhoneNumbers": PHONE})
    assert (answer.status_code, answer.json()["Code"]) == (400, "MissingParameter")


@pytest.mark.parametrize(
    ("phone", "kwargs", "code"),
    [
        ("1380013800", {}, "isv.MOBILE_NUMBER_ILLEGAL"),
        ("17000000001", {}, "isv.MOBILE_NUMBER_ILLEGAL"),  # invalid_number_pattern
        ("13800138000,13900139000", {}, "isv.MOBILE_COUNT_OVER_LIMIT"),
        (PHONE, {"sign_name": "别的签名"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        (PHONE, {"template": "SMS_999"}, "isv.SMS_TEMPLATE_ILLEGAL"),
        (PHONE, {"params": {"item": "x"}}, "isv.TEMPLATE_MISSING_PARAMETERS"),
        (PHONE, {"params": {"item": "x", "amount": 12}}, "isv.INVALID_JSON_PARAM"),
    ],
)
def test_aliyun_business_refusals_count_as_failed(
    make_centre: CentreFactory, phone: str, kwargs: dict[str, object], code: str
) -> None:
    centre = make_centre(
        {"invalid_number_pattern": "^170"},
        aliyun={
            "sign_names": frozenset({"岳阳县财政局"}),
            "templates": {"SMS_460001": ("item", "amount")},
        },
    )
    answer = aliyun_send(centre.base_url("aliyun-style"), phone, "n-2", **kwargs)
    assert answer.status_code == 200
    assert answer.json()["Code"] == code and "BizId" not in answer.json()
    assert centre.messages() == []
    assert centre.summary() == {"sent": 0, "failed": 1, "duplicates": 0}
    [(provider, out_id, masked, refused, permanent)] = centre.refusals()
    assert (provider, out_id, refused, permanent) == ("aliyun-style", "n-2", code, True)
    assert phone not in masked


# --- Tencent-style ---------------------------------------------------------------------------


def test_tencent_send_pull_and_record(make_centre: CentreFactory) -> None:
    clock = ManualClock()
    centre = make_centre(receipt_delay_seconds=0.5, clock=clock)
    url = centre.base_url("tencent-style")
    data = tencent_send(url, PHONE, "n-3-paid").json()["Response"]
    [status] = data["SendStatusSet"]
    assert status["Code"] == "Ok" and status["SerialNo"].startswith("2645:")
    assert status["SessionContext"] == "n-3-paid" and status["PhoneNumber"] == "+86138****8000"

    begin = int(dt.datetime.now(SHANGHAI).replace(hour=0, minute=0, second=0).timestamp())
    pull = {
        "PhoneNumber": f"+86{PHONE}",
        "SmsSdkAppId": "1400000001",
        "BeginTime": begin,
        "EndTime": begin + 86_399,
        "Offset": 0,
        "Limit": 100,
    }
    [entry] = tencent(url, "PullSmsSendStatusByPhoneNumber", pull).json()["Response"][
        "PullSmsSendStatusSet"
    ]
    assert entry["ReportStatus"] == "PENDING" and entry["UserReceiveTime"] is None
    assert entry["SerialNo"] == status["SerialNo"] and entry["SessionContext"] == "n-3-paid"
    clock.advance(0.6)
    answer = tencent(url, "PullSmsSendStatusByPhoneNumber", {**pull, "SessionContext": "n-3-paid"})
    [entry] = answer.json()["Response"]["PullSmsSendStatusSet"]
    assert entry["ReportStatus"] == "SUCCESS" and entry["ErrMsg"] == "DELIVRD"
    assert entry["SubscriberNumber"] == "138****8000"
    none = tencent(url, "PullSmsSendStatusByPhoneNumber", {**pull, "SessionContext": "x"}).json()
    assert none["Response"]["PullSmsSendStatusSet"] == []
    [record] = centre.messages()
    assert json.loads(record.params) == ["耕地地力保护补贴", "1,234.50"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "who"}, "AuthFailure.SecretIdNotFound"),
        ({"timestamp": time.time() - 400}, "AuthFailure.SignatureExpire"),
        ({"nonce": "short"}, "AuthFailure.SignatureFailure"),
        ({"app_id": "1400009999"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
    ],
)
def test_tencent_request_errors(
    make_centre: CentreFactory, kwargs: dict[str, object], code: str
) -> None:
    centre = make_centre()
    answer = tencent_send(centre.base_url("tencent-style"), PHONE, "n-4", **kwargs)
    assert answer.status_code == 200
    assert answer.json()["Response"]["Error"]["Code"] == code
    assert centre.messages() == []


def test_tencent_replayed_nonce(make_centre: CentreFactory) -> None:
    centre = make_centre()
    url = centre.base_url("tencent-style")
    assert "SendStatusSet" in tencent_send(url, PHONE, "a", nonce="z" * 20).json()["Response"]
    error = tencent_send(url, PHONE, "b", nonce="z" * 20).json()["Response"]["Error"]
    assert error["Code"] == "AuthFailure.NonceUsed"


@pytest.mark.parametrize(
    ("phone", "kwargs", "code"),
    [
        ("17000000001", {}, "InvalidParameterValue.IncorrectPhoneNumber"),
        ("2380013800", {}, "InvalidParameterValue.IncorrectPhoneNumber"),
        (PHONE, {"template": "999"}, "FailedOperation.TemplateIncorrectOrUnapproved"),
        (PHONE, {"params": ["a"]}, "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
        (PHONE, {"sign_name": "x"}, "FailedOperation.SignatureIncorrectOrUnapproved"),
    ],
)
def test_tencent_refusals(
    make_centre: CentreFactory, phone: str, kwargs: dict[str, object], code: str
) -> None:
    centre = make_centre(
        {"invalid_number_pattern": "^170"},
        tencent={"sign_names": frozenset({"岳阳县财政局"}), "templates": {"1860001": 2}},
    )
    response = tencent_send(centre.base_url("tencent-style"), phone, "n-5", **kwargs).json()
    inner = response["Response"]
    got = inner["Error"]["Code"] if "Error" in inner else inner["SendStatusSet"][0]["Code"]
    assert got == code
    if "SendStatusSet" in inner:  # a per-number refusal has no serial
        assert inner["SendStatusSet"][0]["SerialNo"] == ""
    assert centre.summary() == {"sent": 0, "failed": 1, "duplicates": 0}


# --- summary ------------------------------------------------------------------------------


def test_duplicates_by_out_id_and_by_content(make_centre: CentreFactory) -> None:
    centre = make_centre()
    a_url, t_url = centre.base_url("aliyun-style"), centre.base_url("tencent-style")
    aliyun_send(a_url, PHONE, "o-1")
    aliyun_send(a_url, PHONE, "o-1")  # the same out_id again: a duplicate
    aliyun_send(a_url, PHONE, "o-2")  # same template, params and number: a duplicate
    aliyun_send(a_url, PHONE, "o-3", params={"item": "低保", "amount": "300.00"})
    aliyun_send(a_url, "13900139000", "o-4")  # another person
    tencent_send(t_url, PHONE, "o-1")  # the same out_id at another provider: new content
    assert centre.summary() == {"sent": 6, "failed": 0, "duplicates": 2}


def test_linked_duplicates_count_once_per_extra_message(make_centre: CentreFactory) -> None:
    centre = make_centre()
    url = centre.base_url("aliyun-style")
    aliyun_send(url, PHONE, "x-1")
    aliyun_send(url, PHONE, "x-1", params={"item": "changed", "amount": "1"})  # same out_id
    aliyun_send(url, PHONE, "x-2", params={"item": "changed", "amount": "1"})  # same content
    assert centre.summary()["duplicates"] == 2


def test_undeliverable_numbers_fail_once_reported(make_centre: CentreFactory) -> None:
    clock = ManualClock()
    centre = make_centre(
        {"undeliverable_pattern": "^1390000"}, receipt_delay_seconds=0.5, clock=clock
    )
    url = centre.base_url("aliyun-style")
    assert aliyun_send(url, "13900001234", "u-1").json()["Code"] == "OK"
    assert centre.summary() == {"sent": 1, "failed": 0, "duplicates": 0}
    clock.advance(0.6)
    assert centre.summary() == {"sent": 1, "failed": 1, "duplicates": 0}
    query = {"PhoneNumber": "13900001234", "SendDate": today(), "PageSize": "5", "CurrentPage": "1"}
    [dto] = aliyun(url, "QuerySendDetails", query).json()["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert (dto["SendStatus"], dto["ErrCode"]) == (2, "MN:0001")


def test_health_and_summary_over_http(make_centre: CentreFactory) -> None:
    import httpx

    centre = make_centre()
    aliyun_send(centre.base_url("aliyun-style"), PHONE, "h-1")
    base = f"http://127.0.0.1:{centre.port}"
    assert httpx.get(f"{base}/healthz").json() == {"ok": True}
    assert httpx.get(f"{base}/summary").json() == {"sent": 1, "failed": 0, "duplicates": 0}
    assert httpx.post(f"{base}/nowhere", content=b"{}").status_code == 404

"""The Tencent-style API (docs/formats/sms-v1.md), as the mock centre implements it: JSON
bodies with the simplified ``HMAC-SHA256-LITE`` Authorization; ``SendSms``,
``PullSmsSendStatusByPhoneNumber``; status-callback receipt bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from mock_sms.config import TencentAccount
from mock_sms.masking import mask_phone
from mock_sms.service import MOBILE, NONCE, TENCENT, Answer, Centre
from mock_sms.store import MessageRecord, canonical_params, shanghai_text

_AUTH: Final = re.compile(
    r"HMAC-SHA256-LITE Credential=(?P<id>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})"
)
_SHORT_CHINA: Final = re.compile(r"\+86(?P<n>\d+)")


def expected_signature(secret: str, action: str, timestamp: str, nonce: str, body: bytes) -> str:
    lines = ("HMAC-SHA256-LITE", action, timestamp, nonce, hashlib.sha256(body).hexdigest())
    return hmac.new(
        secret.encode("utf-8"), "\n".join(lines).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def _answer(inner: Mapping[str, object], headers: dict[str, str] | None = None) -> Answer:
    payload = {"Response": {**inner, "RequestId": str(uuid.uuid4())}}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Answer(200, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _error(code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return _answer({"Error": {"Code": code, "Message": message}}, headers)


def handle(centre: Centre, headers: Mapping[str, str], body: bytes) -> Answer:
    account = centre.config.tencent
    if account is None:
        return _error("InvalidAction", "the Tencent-style API is not enabled")
    lower = {k.lower(): v for k, v in headers.items()}
    action = lower.get("x-tc-action", "")
    timestamp = lower.get("x-tc-timestamp", "")
    nonce = lower.get("x-tc-nonce", "")
    if not action:
        return _error("MissingParameter", "missing X-TC-Action")
    match = _AUTH.fullmatch(lower.get("authorization", "").strip())
    if match is None or not timestamp.isdigit() or not NONCE.fullmatch(nonce):
        return _error("AuthFailure.SignatureFailure", "malformed authentication")
    if match["id"] != account.secret_id:
        return _error("AuthFailure.SecretIdNotFound", "the SecretId is not found")
    expected = expected_signature(account.secret_key, action, timestamp, nonce, body)
    if not hmac.compare_digest(expected, match["sig"]):
        return _error("AuthFailure.SignatureFailure", "the signature does not match")
    now = centre.clock()
    if abs(now - int(timestamp)) > 300:
        return _error("AuthFailure.SignatureExpire", "the signature has expired")
    if centre.nonces[TENCENT].seen_before(nonce, now):
        return _error("AuthFailure.NonceUsed", "the nonce was used already")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        return _error("InvalidParameter", "the body is not a JSON object")
    if action == "SendSms":
        return _send(centre, account, data)
    if action == "PullSmsSendStatusByPhoneNumber":
        return _pull(centre, account, data)
    return _error("InvalidAction", f"unknown action {action!r}")


def _send(centre: Centre, account: TencentAccount, data: Mapping[str, Any]) -> Answer:
    for name in ("PhoneNumberSet", "SmsSdkAppId", "SignName", "TemplateId"):
        if not data.get(name):
            return _error("MissingParameter", f"missing {name}")
    numbers = data["PhoneNumberSet"]
    out_id = data.get("SessionContext", "")
    params = data.get("TemplateParamSet", [])
    sign_name = data["SignName"]
    template = data["TemplateId"]
    if (
        not isinstance(out_id, str)
        or not isinstance(sign_name, str)
        or not isinstance(template, str)
    ):
        return _error("InvalidParameter", "SessionContext, SignName and TemplateId are strings")
    if not isinstance(numbers, list) or len(numbers) != 1 or not isinstance(numbers[0], str):
        return _error("InvalidParameter", "exactly one number per request")
    number = numbers[0]
    short = _SHORT_CHINA.fullmatch(number)
    phone = short["n"] if short else number

    def refuse(code: str, message: str) -> Answer:
        centre.refuse(TENCENT, out_id, phone, code, permanent=True)
        return _error(code, message)

    if data["SmsSdkAppId"] != account.sdk_app_id:
        return refuse("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail")
    if account.sign_names is not None and sign_name not in account.sign_names:
        return refuse("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误")
    if account.templates is not None and template not in account.templates:
        return refuse("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        return refuse("InvalidParameterValue.TemplateParameterFormatError", "模板参数格式错误")
    if account.templates is not None and len(params) != account.templates[template]:
        return refuse(
            "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "参数个数与模板不匹配"
        )
    if short is None or not MOBILE.fullmatch(phone) or centre.config.faults.invalid_number(phone):
        code = "InvalidParameterValue.IncorrectPhoneNumber"
        centre.refuse(TENCENT, out_id, phone, code, permanent=True)
        return _answer({"SendStatusSet": [_status(number, out_id, "", code, "手机号格式错误")]})
    if centre.faults.should("throttle", TENCENT):
        centre.refuse(TENCENT, out_id, phone, "RequestLimitExceeded", permanent=False)
        return _error("RequestLimitExceeded", "请求的次数超过了频率限制", {"Retry-After": "1"})
    if centre.faults.should("fail", TENCENT):
        centre.refuse(TENCENT, out_id, phone, "ServiceUnavailable", permanent=False)
        return _error("ServiceUnavailable", "当前服务暂时不可用")
    now = centre.clock()
    serial = f"2645:{int(now):010d}{centre.next_seq():08d}"
    centre.accept(
        provider=TENCENT,
        provider_ref=serial,
        out_id=out_id,
        phone=phone,
        sign_name=sign_name,
        template=template,
        params=canonical_params(params),
        codes=("DELIVRD", "UNDELIV"),
        receipt_body=receipt_body,
    )
    answer = _answer({"SendStatusSet": [_status(number, out_id, serial, "Ok", "send success")]})
    answer.hold = centre.faults.should("timeout_after_accept", TENCENT)
    return answer


def _status(number: str, out_id: str, serial: str, code: str, message: str) -> dict[str, object]:
    return {
        "SerialNo": serial,
        "PhoneNumber": "+86" + mask_phone(number),
        "Fee": 1 if code == "Ok" else 0,
        "SessionContext": out_id,
        "Code": code,
        "Message": message,
        "IsoCode": "CN",
    }


def receipt_body(record: MessageRecord) -> bytes:
    entry = {
        "user_receive_time": shanghai_text(record.report_due),
        "nationcode": "86",
        "mobile": record.phone_masked,
        "report_status": "SUCCESS" if record.delivered else "FAIL",
        "errmsg": record.report_code,
        "description": "用户短信送达成功" if record.delivered else "用户短信未送达",
        "sid": record.provider_ref,
        "session_context": record.out_id,
    }
    return json.dumps([entry], ensure_ascii=False).encode("utf-8")


def _int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _pull(centre: Centre, account: TencentAccount, data: Mapping[str, Any]) -> Answer:
    number = data.get("PhoneNumber")
    begin, end = _int(data, "BeginTime"), _int(data, "EndTime")
    offset, limit = _int(data, "Offset"), _int(data, "Limit")
    if (
        not isinstance(number, str)
        or begin is None
        or end is None
        or offset is None
        or limit is None
    ):
        return _error("MissingParameter", "PhoneNumber, BeginTime, EndTime, Offset, Limit")
    if data.get("SmsSdkAppId") != account.sdk_app_id:
        return _error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail")
    if not 1 <= limit <= 100 or offset < 0 or end < begin:
        return _error("InvalidParameter", "Limit 1..100, Offset >= 0, EndTime >= BeginTime")
    short = _SHORT_CHINA.fullmatch(number)
    if short is None or not MOBILE.fullmatch(short["n"]):
        return _error("InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误")
    session = data.get("SessionContext")
    records = centre.store.find(
        provider=TENCENT,
        phone_hash=centre.hash_phone(short["n"]),
        since=begin,
        until=end + 1,
        out_id=session if isinstance(session, str) and session else None,
    )
    now = centre.clock()
    entries = []
    for record in records[offset : offset + limit]:
        status = record.status(now)
        entries.append(
            {
                "UserReceiveTime": None
                if status == "pending"
                else shanghai_text(record.report_due),
                "CountryCode": "86",
                "SubscriberNumber": record.phone_masked,
                "PhoneNumber": "+86" + record.phone_masked,
                "SerialNo": record.provider_ref,
                "ReportStatus": {"pending": "PENDING", "failed": "FAIL", "delivered": "SUCCESS"}[
                    status
                ],
                "ErrMsg": "" if status == "pending" else record.report_code,
                "Description": ""
                if status == "pending"
                else ("用户短信送达成功" if record.delivered else "用户短信未送达"),
                "SessionContext": record.out_id,
            }
        )
    return _answer({"PullSmsSendStatusSet": entries})

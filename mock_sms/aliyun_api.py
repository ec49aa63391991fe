"""The Aliyun-style API (docs/formats/sms-v1.md), as the mock centre implements it:
form-encoded RPC with the simplified HMAC-SHA256 signature; ``SendSms``,
``QuerySendDetails``; ``SmsReport`` receipt bodies."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Final

from mock_sms.config import AliyunAccount
from mock_sms.masking import mask_phone
from mock_sms.service import ALIYUN, MOBILE, NONCE, Answer, Centre
from mock_sms.store import MessageRecord, canonical_params, shanghai_text

_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_COMMON: Final = (
    "Action",
    "Version",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureNonce",
    "Timestamp",
    "Signature",
)
_PERMANENT: Final = True


def _pct(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch in _UNRESERVED:
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8"))
    return "".join(out)


def _unpct(text: str) -> str:
    """Decode an ``application/x-www-form-urlencoded`` value (``+`` is a space)."""
    data = text.encode("ascii")
    raw = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x25:  # %XX
            pair = data[i + 1 : i + 3].decode("ascii")
            if len(pair) != 2 or any(ch not in _HEX for ch in pair):
                raise ValueError("bad percent escape")
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.append(0x20 if c == 0x2B else c)
            i += 1
    return raw.decode("utf-8")


def expected_signature(params: Mapping[str, str], secret: str) -> str:
    canonical = "&".join(
        f"{_pct(name)}={_pct(params[name])}" for name in sorted(params) if name != "Signature"
    )
    to_sign = "POST&%2F&" + _pct(canonical)
    mac = hmac.new((secret + "&").encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Answer(
        status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return _json(
        status, {"RequestId": str(uuid.uuid4()), "Code": code, "Message": message}, headers
    )


def _parse_form(body: bytes) -> dict[str, str] | None:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    params: dict[str, str] = {}
    for part in text.split("&") if text else []:
        name, sep, value = part.partition("=")
        if not sep:
            return None
        try:
            key, decoded = _unpct(name), _unpct(value)
        except (ValueError, UnicodeDecodeError):
            return None
        if key in params:
            return None
        params[key] = decoded
    return params


def handle(centre: Centre, body: bytes) -> Answer:
    account = centre.config.aliyun
    if account is None:
        return _error(404, "InvalidAction.NotFound", "the Aliyun-style API is not enabled")
    params = _parse_form(body)
    if params is None:
        return _error(400, "MissingParameter", "the body is not a form")
    missing = [name for name in _COMMON if not params.get(name)]
    if missing:
        return _error(400, "MissingParameter", f"missing {missing[0]}")
    if params["AccessKeyId"] != account.access_key_id:
        return _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    if params["SignatureMethod"] != "HMAC-SHA256" or not hmac.compare_digest(
        expected_signature(params, account.access_key_secret), params["Signature"]
    ):
        return _error(400, "SignatureDoesNotMatch", "Specified signature is not matched.")
    now = centre.clock()
    try:
        stamp = calendar.timegm(time.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return _error(400, "InvalidTimeStamp.Format", "Timestamp is not UTC ISO 8601")
    if abs(now - stamp) > 900:
        return _error(400, "InvalidTimeStamp.Expired", "Specified time stamp is expired.")
    nonce = params["SignatureNonce"]
    if not NONCE.fullmatch(nonce) or centre.nonces[ALIYUN].seen_before(nonce, now):
        return _error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    action = params["Action"]
    if action == "SendSms":
        return _send(centre, account, params)
    if action == "QuerySendDetails":
        return _query(centre, params)
    return _error(400, "InvalidAction.NotFound", f"unknown action {action!r}")


def _send(centre: Centre, account: AliyunAccount, params: Mapping[str, str]) -> Answer:
    phone = params.get("PhoneNumbers", "")
    sign_name = params.get("SignName", "")
    template = params.get("TemplateCode", "")
    out_id = params.get("OutId", "")
    for name, value in (
        ("PhoneNumbers", phone),
        ("SignName", sign_name),
        ("TemplateCode", template),
    ):
        if not value:
            return _error(400, "MissingParameter", f"missing {name}")

    def refuse(code: str, message: str) -> Answer:
        centre.refuse(ALIYUN, out_id, phone, code, permanent=_PERMANENT)
        return _error(200, code, message)

    if "," in phone:
        return refuse("isv.MOBILE_COUNT_OVER_LIMIT", "one number per request")
    if not MOBILE.fullmatch(phone) or centre.config.faults.invalid_number(phone):
        return refuse("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
    if account.sign_names is not None and sign_name not in account.sign_names:
        return refuse("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法")
    if account.templates is not None and template not in account.templates:
        return refuse("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法")
    try:
        values = json.loads(params.get("TemplateParam", "{}"))
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        return refuse("isv.INVALID_JSON_PARAM", "JSON参数不合法,只接受字符串值")
    if account.templates is not None and set(account.templates[template]) - set(values):
        return refuse("isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量")
    if len(out_id) > 64:
        return refuse("isv.INVALID_PARAMETERS", "OutId too long")
    if centre.faults.should("throttle", ALIYUN):
        centre.refuse(ALIYUN, out_id, phone, "isv.BUSINESS_LIMIT_CONTROL", permanent=False)
        return _error(200, "isv.BUSINESS_LIMIT_CONTROL", "触发业务流控", {"Retry-After": "1"})
    if centre.faults.should("fail", ALIYUN):
        centre.refuse(ALIYUN, out_id, phone, "ServiceUnavailable", permanent=False)
        return _error(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )
    now = centre.clock()
    biz_id = f"{int(now):010d}{centre.next_seq():08d}^0"
    record = centre.accept(
        provider=ALIYUN,
        provider_ref=biz_id,
        out_id=out_id,
        phone=phone,
        sign_name=sign_name,
        template=template,
        params=canonical_params(values),
        codes=("DELIVERED", "MN:0001"),
        receipt_body=receipt_body,
    )
    answer = _json(
        200,
        {
            "RequestId": str(uuid.uuid4()),
            "Code": "OK",
            "Message": "OK",
            "BizId": record.provider_ref,
        },
    )
    answer.hold = centre.faults.should("timeout_after_accept", ALIYUN)
    return answer


def receipt_body(record: MessageRecord) -> bytes:
    entry = {
        "phone_number": record.phone_masked,
        "send_time": shanghai_text(record.accepted_epoch),
        "report_time": shanghai_text(record.report_due),
        "success": record.delivered,
        "err_code": record.report_code,
        "err_msg": "用户接收成功" if record.delivered else "空号",
        "sms_size": "1",
        "biz_id": record.provider_ref,
        "out_id": record.out_id,
    }
    return json.dumps([entry], ensure_ascii=False).encode("utf-8")


def _query(centre: Centre, params: Mapping[str, str]) -> Answer:
    for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
        if not params.get(name):
            return _error(400, "MissingParameter", f"missing {name}")
    phone = params["PhoneNumber"]
    if not MOBILE.fullmatch(phone):
        return _error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
    try:
        day = time.strptime(params["SendDate"], "%Y%m%d")
        size = int(params["PageSize"])
        page = int(params["CurrentPage"])
    except ValueError:
        return _error(200, "isv.INVALID_PARAMETERS", "参数异常")
    if not 1 <= size <= 50 or page < 1:
        return _error(200, "isv.INVALID_PARAMETERS", "参数异常")
    start = calendar.timegm(day) - 8 * 3600  # Asia/Shanghai midnight (no DST)
    records = centre.store.find(
        provider=ALIYUN,
        phone_hash=centre.hash_phone(phone),
        since=start,
        until=start + 86_400,
        out_id=params.get("OutId") or None,
        provider_ref=params.get("BizId") or None,
    )
    now = centre.clock()
    dtos = []
    for record in records[(page - 1) * size : page * size]:
        status = record.status(now)
        dtos.append(
            {
                "PhoneNum": mask_phone(phone),
                "SendStatus": {"pending": 1, "failed": 2, "delivered": 3}[status],
                "ErrCode": "" if status == "pending" else record.report_code,
                "TemplateCode": record.template,
                "SendDate": shanghai_text(record.accepted_epoch),
                "ReceiveDate": "" if status == "pending" else shanghai_text(record.report_due),
                "OutId": record.out_id,
                "BizId": record.provider_ref,
            }
        )
    return _json(
        200,
        {
            "RequestId": str(uuid.uuid4()),
            "Code": "OK",
            "Message": "OK",
            "TotalCount": len(records),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos},
        },
    )

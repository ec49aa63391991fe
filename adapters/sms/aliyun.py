"""Aliyun-style SMS provider (``aliyun-style``, ``docs/formats/sms-v1.md``): ``SendSms``,
``QuerySendDetails`` and signed ``SmsReport`` receipt pushes, over a form-encoded RPC API
with a simplified HMAC-SHA256 request signature."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlencode

import httpx

from adapters.sms.common import (
    Clock,
    CodeTable,
    build_client,
    check_message,
    local_time,
    mask_phone,
    new_nonce,
    parse_json_array,
    post,
    retry_after_of,
    text_field,
    verify_receipt,
)
from gateway.ports import (
    FormatError,
    OutcomeUnknownError,
    SmsMessage,
    SmsReceipt,
    SmsRejectedError,
    SmsSendResult,
    SmsStatus,
    TransportError,
)

PROVIDER: Final = "aliyun-style"
VERSION: Final = "2017-05-25"
PAGE_SIZE: Final = 50
MAX_PAGES: Final = 20

CODES: Final = CodeTable(
    recipient=frozenset(
        {"isv.MOBILE_NUMBER_ILLEGAL", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED", "isv.BLACKLIST"}
    ),
    configuration=frozenset(
        {
            "isv.SMS_SIGNATURE_ILLEGAL",
            "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "isv.INVALID_PARAMETERS",
            "isv.INVALID_JSON_PARAM",
            "isv.PARAM_LENGTH_LIMIT",
            "isv.PARAM_NOT_SUPPORT_URL",
            "isv.BLACK_KEY_CONTROL_LIMIT",
            "isv.MOBILE_COUNT_OVER_LIMIT",
            "isv.AMOUNT_NOT_ENOUGH",
            "isv.OUT_OF_SERVICE",
            "isv.PRODUCT_UN_SUBSCRIPT",
            "isv.PRODUCT_UNSUBSCRIBE",
            "isv.ACCOUNT_NOT_EXISTS",
            "isv.ACCOUNT_ABNORMAL",
            "isv.EXTEND_CODE_ERROR",
            "isp.RAM_PERMISSION_DENY",
            "InvalidAccessKeyId.NotFound",
            "SignatureDoesNotMatch",
            "MissingParameter",
        }
    ),
    technical={
        "isv.BUSINESS_LIMIT_CONTROL": 60.0,
        "isv.DAY_LIMIT_CONTROL": 3600.0,
        "Throttling.User": 1.0,
        "Throttling": 1.0,
        "ServiceUnavailable": 5.0,
        "InvalidTimeStamp.Expired": 5.0,
        "SignatureNonceUsed": 1.0,
    },
)

_STATUS: Final = {1: SmsStatus.PENDING, 2: SmsStatus.FAILED, 3: SmsStatus.DELIVERED}


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of the UTF-8 bytes (only ``A-Za-z0-9-_.~`` stay)."""
    return quote(value, safe="-_.~")


def string_to_sign(params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(params[k])}"
        for k in sorted(params)
        if k != "Signature"
    )
    return "POST&%2F&" + percent_encode(canonical)


def sign(params: Mapping[str, str], access_key_secret: str) -> str:
    """The ``Signature`` parameter for ``params`` (docs/formats/sms-v1.md)."""
    key = (access_key_secret + "&").encode()
    mac = hmac.new(key, string_to_sign(params).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class AliyunStyleSms:
    """``gateway.ports.SmsProvider`` for the Aliyun-style API."""

    name = PROVIDER

    def __init__(
        self,
        *,
        base_url: str,
        access_key_id: str,
        access_key_secret: str,
        default_sign_name: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        verify: object = True,
        receipt_window_seconds: float = 300.0,
        clock: Clock = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/"
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._default_sign_name = default_sign_name
        self._receipt_window = receipt_window_seconds
        self._clock = clock
        self._client = build_client(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            verify=verify,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    # --- the RPC call ---------------------------------------------------------------------

    def _call(self, action: str, params: Mapping[str, str]) -> Mapping[str, object]:
        """Sign and POST one action; answer the decoded body of a ``Code: OK`` answer and
        raise the classified error otherwise."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        full: dict[str, str] = {
            **params,
            "Action": action,
            "Version": VERSION,
            "Format": "JSON",
            "AccessKeyId": self._key_id,
            "SignatureMethod": "HMAC-SHA256",
            "SignatureVersion": "1.0-lite",
            "SignatureNonce": new_nonce(),
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        full["Signature"] = sign(full, self._secret)
        body = urlencode(full, quote_via=quote).encode()
        response = post(
            self._client,
            self._url,
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            what=f"{PROVIDER} {action}",
        )
        data = _decode(response)
        retry_after = retry_after_of(response)
        if data is None:
            raise _status_error(response, f"{PROVIDER} {action}", retry_after)
        code = data.get("Code")
        if code == "OK" and response.status_code == 200:
            return data
        if isinstance(code, str) and code:
            message = data.get("Message")
            raise CODES.error(
                code, message if isinstance(message, str) else "", retry_after=retry_after
            )
        raise _status_error(response, f"{PROVIDER} {action}", retry_after)

    # --- the port -----------------------------------------------------------------------------

    def send(self, msg: SmsMessage) -> SmsSendResult:
        check_message(msg)
        sign_name = msg.sign_name or self._default_sign_name
        if not sign_name:
            raise SmsRejectedError("no sign name", code="LOCAL.INVALID_SIGN", scope="configuration")
        data = self._call(
            "SendSms",
            {
                "PhoneNumbers": msg.phone,
                "SignName": sign_name,
                "TemplateCode": msg.template_id,
                "TemplateParam": json.dumps(dict(msg.params), ensure_ascii=False),
                "OutId": msg.out_id,
            },
        )
        biz_id = data.get("BizId")
        if not isinstance(biz_id, str) or not biz_id:
            raise OutcomeUnknownError(f"{PROVIDER} SendSms: answer OK without a BizId")
        return SmsSendResult(out_id=msg.out_id, provider_ref=biz_id)

    def query(self, out_id: str, sent_on: dt.date, *, phone: str) -> list[SmsReceipt]:
        try:
            return self._query(out_id, sent_on, phone)
        except FormatError as exc:
            raise OutcomeUnknownError(f"{PROVIDER} QuerySendDetails: {exc}") from exc

    def _query(self, out_id: str, sent_on: dt.date, phone: str) -> list[SmsReceipt]:
        receipts: list[SmsReceipt] = []
        for page in range(1, MAX_PAGES + 1):
            data = self._call(
                "QuerySendDetails",
                {
                    "PhoneNumber": phone,
                    "SendDate": sent_on.strftime("%Y%m%d"),
                    "PageSize": str(PAGE_SIZE),
                    "CurrentPage": str(page),
                    "OutId": out_id,
                },
            )
            entries = _details(data)
            receipts.extend(
                _detail_receipt(entry) for entry in entries if entry.get("OutId") == out_id
            )
            total = data.get("TotalCount")
            if not entries or not isinstance(total, int) or page * PAGE_SIZE >= total:
                return receipts
        raise TransportError(f"{PROVIDER} QuerySendDetails: more than {MAX_PAGES} pages")

    def parse_receipts(self, headers: Mapping[str, str], body: bytes) -> list[SmsReceipt]:
        verify_receipt(
            headers,
            body,
            secret=self._secret,
            provider=PROVIDER,
            clock=self._clock,
            window=self._receipt_window,
        )
        receipts: list[SmsReceipt] = []
        for index, entry in enumerate(parse_json_array(body, "SmsReport")):
            what = f"SmsReport[{index}]"
            success = entry.get("success")
            if not isinstance(success, bool):
                raise FormatError(f"{what}: 'success' must be true or false")
            receipts.append(
                SmsReceipt(
                    out_id=text_field(entry, "out_id", what, required=False),
                    provider_ref=text_field(entry, "biz_id", what),
                    status=SmsStatus.DELIVERED if success else SmsStatus.FAILED,
                    code=text_field(entry, "err_code", what, required=False),
                    message=text_field(entry, "err_msg", what, required=False),
                    at=local_time(entry.get("report_time"), what),
                    phone_masked=mask_phone(text_field(entry, "phone_number", what)),
                )
            )
        return receipts


def _decode(response: httpx.Response) -> Mapping[str, object] | None:
    try:
        data = json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _status_error(response: httpx.Response, what: str, retry_after: float | None) -> Exception:
    """An answer without a readable code: classified by its HTTP status alone."""
    status = response.status_code
    if status == 429:
        return TransportError(f"{what}: HTTP 429", retry_after=retry_after or 1.0)
    if 400 <= status < 500:
        return SmsRejectedError(
            f"{what}: HTTP {status} without a code", code=f"HTTP_{status}", scope="configuration"
        )
    return OutcomeUnknownError(f"{what}: HTTP {status} without a readable answer")


def _details(data: Mapping[str, object]) -> list[Mapping[str, object]]:
    outer = data.get("SmsSendDetailDTOs")
    if outer is None:
        return []
    if not isinstance(outer, dict):
        raise FormatError("QuerySendDetails: SmsSendDetailDTOs is malformed")
    inner = outer.get("SmsSendDetailDTO", [])
    if not isinstance(inner, list) or not all(isinstance(e, dict) for e in inner):
        raise FormatError("QuerySendDetails: SmsSendDetailDTOs is malformed")
    return inner


def _detail_receipt(entry: Mapping[str, object]) -> SmsReceipt:
    what = "SmsSendDetailDTO"
    value = entry.get("SendStatus")
    status = _STATUS.get(value) if isinstance(value, int) else None
    if status is None:
        raise FormatError(f"{what}: SendStatus must be 1, 2 or 3")
    return SmsReceipt(
        out_id=text_field(entry, "OutId", what),
        provider_ref=text_field(entry, "BizId", what, required=False),
        status=status,
        code=text_field(entry, "ErrCode", what, required=False),
        message="",
        at=local_time(entry.get("ReceiveDate"), what),
        phone_masked=mask_phone(text_field(entry, "PhoneNum", what)),
    )

"""Tencent-style SMS provider (``tencent-style``, ``docs/formats/sms-v1.md``): ``SendSms``,
``PullSmsSendStatusByPhoneNumber`` and signed status callbacks, over a JSON API with a
simplified HMAC-SHA256 ``Authorization`` header."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Final

import httpx

from adapters.sms.common import (
    SHANGHAI,
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

PROVIDER: Final = "tencent-style"
VERSION: Final = "2021-01-11"
ALGORITHM: Final = "HMAC-SHA256-LITE"
PAGE_LIMIT: Final = 100
MAX_PAGES: Final = 20

CODES: Final = CodeTable(
    recipient=frozenset(
        {
            "InvalidParameterValue.IncorrectPhoneNumber",
            "FailedOperation.PhoneNumberInBlacklist",
            "UnsupportedOperation.UnsupportedRegion",
        }
    ),
    configuration=frozenset(
        {
            "FailedOperation.SignatureIncorrectOrUnapproved",
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
            "FailedOperation.InsufficientBalanceInSmsPackage",
            "FailedOperation.ContainSensitiveWord",
            "InvalidParameterValue.TemplateParameterFormatError",
            "InvalidParameterValue.TemplateParameterLengthLimit",
            "InvalidParameterValue.ContentLengthLimit",
            "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
            "AuthFailure.SecretIdNotFound",
            "AuthFailure.SignatureFailure",
            "MissingParameter",
            "InvalidParameter",
        }
    ),
    technical={
        "RequestLimitExceeded": 1.0,
        "LimitExceeded.DeliveryFrequencyLimit": 60.0,
        "LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
        "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
        "LimitExceeded.PhoneNumberDailyLimit": 3600.0,
        "LimitExceeded.AppDailyLimit": 3600.0,
        "ServiceUnavailable": 5.0,
        "AuthFailure.SignatureExpire": 5.0,
        "AuthFailure.NonceUsed": 1.0,
        "InternalError.RequestTimeException": 5.0,
    },
)

_STATUS: Final = {
    "SUCCESS": SmsStatus.DELIVERED,
    "FAIL": SmsStatus.FAILED,
    "PENDING": SmsStatus.PENDING,
}


def string_to_sign(action: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((ALGORITHM, action, timestamp, nonce, digest)).encode()


def sign(secret_key: str, action: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The hex ``Signature`` of the ``Authorization`` header (docs/formats/sms-v1.md)."""
    message = string_to_sign(action, timestamp, nonce, body)
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


class TencentStyleSms:
    """``gateway.ports.SmsProvider`` for the Tencent-style API."""

    name = PROVIDER

    def __init__(
        self,
        *,
        base_url: str,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
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
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app_id = sdk_app_id
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

    def _call(self, action: str, payload: Mapping[str, object]) -> Mapping[str, object]:
        """Sign and POST one action; answer ``Response`` of an answer without ``Error`` and
        raise the classified error otherwise."""
        what = f"{PROVIDER} {action}"
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(self._clock()))
        nonce = new_nonce()
        signature = sign(self._secret_key, action, timestamp, nonce, body)
        response = post(
            self._client,
            self._url,
            content=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-TC-Action": action,
                "X-TC-Version": VERSION,
                "X-TC-Timestamp": timestamp,
                "X-TC-Nonce": nonce,
                "Authorization": f"{ALGORITHM} Credential={self._secret_id}, Signature={signature}",
            },
            what=what,
        )
        retry_after = retry_after_of(response)
        inner = _decode(response)
        if inner is None:
            raise _status_error(response, what, retry_after)
        error = inner.get("Error")
        if error is not None:
            code = error.get("Code") if isinstance(error, dict) else None
            if not isinstance(code, str) or not code:
                raise OutcomeUnknownError(f"{what}: an Error without a code")
            message = error.get("Message") if isinstance(error, dict) else ""
            raise CODES.error(
                code, message if isinstance(message, str) else "", retry_after=retry_after
            )
        if response.status_code != 200:
            raise _status_error(response, what, retry_after)
        return inner

    # --- the port -----------------------------------------------------------------------------

    def send(self, msg: SmsMessage) -> SmsSendResult:
        check_message(msg)
        sign_name = msg.sign_name or self._default_sign_name
        if not sign_name:
            raise SmsRejectedError("no sign name", code="LOCAL.INVALID_SIGN", scope="configuration")
        data = self._call(
            "SendSms",
            {
                "PhoneNumberSet": [f"+86{msg.phone}"],
                "SmsSdkAppId": self._app_id,
                "SignName": sign_name,
                "TemplateId": msg.template_id,
                "TemplateParamSet": list(msg.params.values()),
                "SessionContext": msg.out_id,
            },
        )
        statuses = data.get("SendStatusSet")
        if (
            not isinstance(statuses, list)
            or len(statuses) != 1
            or not isinstance(statuses[0], dict)
        ):
            raise OutcomeUnknownError(f"{PROVIDER} SendSms: no single SendStatusSet entry")
        status = statuses[0]
        code = status.get("Code")
        if code != "Ok":
            if not isinstance(code, str) or not code:
                raise OutcomeUnknownError(f"{PROVIDER} SendSms: a status without a code")
            message = status.get("Message")
            raise CODES.error(code, message if isinstance(message, str) else "", retry_after=None)
        serial = status.get("SerialNo")
        if not isinstance(serial, str) or not serial:
            raise OutcomeUnknownError(f"{PROVIDER} SendSms: Ok without a SerialNo")
        return SmsSendResult(out_id=msg.out_id, provider_ref=serial)

    def query(self, out_id: str, sent_on: dt.date, *, phone: str) -> list[SmsReceipt]:
        try:
            return self._query(out_id, sent_on, phone)
        except FormatError as exc:
            raise OutcomeUnknownError(f"{PROVIDER} PullSmsSendStatus: {exc}") from exc

    def _query(self, out_id: str, sent_on: dt.date, phone: str) -> list[SmsReceipt]:
        begin = dt.datetime.combine(sent_on, dt.time(0, 0), tzinfo=SHANGHAI)
        end = begin + dt.timedelta(days=1)
        receipts: list[SmsReceipt] = []
        for page in range(MAX_PAGES):
            data = self._call(
                "PullSmsSendStatusByPhoneNumber",
                {
                    "PhoneNumber": f"+86{phone}",
                    "SmsSdkAppId": self._app_id,
                    "BeginTime": int(begin.timestamp()),
                    "EndTime": int(end.timestamp()) - 1,
                    "Offset": page * PAGE_LIMIT,
                    "Limit": PAGE_LIMIT,
                    "SessionContext": out_id,
                },
            )
            entries = data.get("PullSmsSendStatusSet")
            if entries is None:
                entries = []
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise FormatError("PullSmsSendStatusByPhoneNumber: the status set is malformed")
            receipts.extend(
                _pulled_receipt(entry) for entry in entries if entry.get("SessionContext") == out_id
            )
            if len(entries) < PAGE_LIMIT:
                return receipts
        raise TransportError(f"{PROVIDER} PullSmsSendStatus: more than {MAX_PAGES} pages")

    def parse_receipts(self, headers: Mapping[str, str], body: bytes) -> list[SmsReceipt]:
        verify_receipt(
            headers,
            body,
            secret=self._secret_key,
            provider=PROVIDER,
            clock=self._clock,
            window=self._receipt_window,
        )
        receipts: list[SmsReceipt] = []
        for index, entry in enumerate(parse_json_array(body, "status callback")):
            what = f"status callback[{index}]"
            status = _STATUS.get(text_field(entry, "report_status", what))
            if status is None or status is SmsStatus.PENDING:
                raise FormatError(f"{what}: report_status must be SUCCESS or FAIL")
            receipts.append(
                SmsReceipt(
                    out_id=text_field(entry, "session_context", what, required=False),
                    provider_ref=text_field(entry, "sid", what),
                    status=status,
                    code=text_field(entry, "errmsg", what, required=False),
                    message=text_field(entry, "description", what, required=False),
                    at=local_time(entry.get("user_receive_time"), what),
                    phone_masked=mask_phone(text_field(entry, "mobile", what)),
                )
            )
        return receipts


def _decode(response: httpx.Response) -> Mapping[str, object] | None:
    """``Response`` of a ``{"Response": {...}}`` answer, None when there is none."""
    try:
        data = json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    inner = data.get("Response") if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else None


def _status_error(response: httpx.Response, what: str, retry_after: float | None) -> Exception:
    status = response.status_code
    if status == 429:
        return TransportError(f"{what}: HTTP 429", retry_after=retry_after or 1.0)
    if 400 <= status < 500:
        return SmsRejectedError(
            f"{what}: HTTP {status} without a code", code=f"HTTP_{status}", scope="configuration"
        )
    return OutcomeUnknownError(f"{what}: HTTP {status} without a readable answer")


def _pulled_receipt(entry: Mapping[str, object]) -> SmsReceipt:
    what = "PullSmsSendStatus"
    status = _STATUS.get(text_field(entry, "ReportStatus", what))
    if status is None:
        raise FormatError(f"{what}: ReportStatus must be SUCCESS, FAIL or PENDING")
    return SmsReceipt(
        out_id=text_field(entry, "SessionContext", what),
        provider_ref=text_field(entry, "SerialNo", what),
        status=status,
        code=text_field(entry, "ErrMsg", what, required=False),
        message=text_field(entry, "Description", what, required=False),
        at=local_time(entry.get("UserReceiveTime"), what),
        phone_masked=mask_phone(text_field(entry, "PhoneNumber", what)),
    )
